#pragma once
// Hand-written ISA programs for the hardware/runtime tests (what the compiler would emit for one
// layer), and direct expectations computed with common/requant.h.
#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "anvil/common/requant.h"
#include "anvil/common/tensor.h"
#include "anvil/isa/program.h"

namespace anvil::testing {

inline isa::Instruction dma(isa::Opcode op, isa::Region region, uint64_t dram_offset, uint32_t sram_addr,
                            uint32_t bytes, std::array<uint32_t, 3> wait = {0, 0, 0}) {
  isa::Instruction i;
  i.opcode = op;
  i.dma.region = static_cast<uint8_t>(region);
  i.dma.dram_offset = dram_offset;
  i.dma.sram_addr = sram_addr;
  i.dma.row_bytes = bytes;
  i.dma.rows = 1;
  i.dma.dram_stride = bytes;
  i.dma.sram_stride = bytes;
  for (int u = 0; u < 3; ++u) i.wait[u] = wait[u];
  return i;
}

/// One conv layer's geometry and parameters.
struct ConvLayer {
  int n = 1, ic = 3, h = 8, w = 8, oc = 4, kh = 3, kw = 3, stride = 1, pad = 1, groups = 1, dilation = 1;
  int32_t in_zp = 3, out_zp = -5, act_min = -128, act_max = 127;
  std::vector<int8_t> weights;  // OIHW
  std::vector<int32_t> bias, mult, shift;
  int oh() const { return (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1; }
  int ow() const { return (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1; }

  static ConvLayer random(uint32_t seed, ConvLayer g) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> i8(-128, 127), b(-2000, 2000);
    g.weights.resize(static_cast<size_t>(g.oc) * (g.ic / g.groups) * g.kh * g.kw);
    for (auto& x : g.weights) x = static_cast<int8_t>(i8(rng));
    for (int o = 0; o < g.oc; ++o) {
      g.bias.push_back(b(rng));
      const auto q = math::quantize_multiplier(0.0005 + 0.0001 * o);
      g.mult.push_back(q.multiplier);
      g.shift.push_back(q.shift);
    }
    return g;
  }

  /// The expectation, straight from the definition (run_int8's semantics).
  std::vector<int8_t> expected(const std::vector<int8_t>& x) const {
    std::vector<int8_t> out(static_cast<size_t>(n) * oc * oh() * ow());
    const int icg = ic / groups, ocg = oc / groups;
    for (int b = 0; b < n; ++b)
      for (int o = 0; o < oc; ++o)
        for (int y = 0; y < oh(); ++y)
          for (int z = 0; z < ow(); ++z) {
            int32_t acc = bias[o];
            const int g = o / ocg;
            for (int c = 0; c < icg; ++c)
              for (int r = 0; r < kh; ++r)
                for (int s = 0; s < kw; ++s) {
                  const int iy = y * stride - pad + r * dilation, ix = z * stride - pad + s * dilation;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  const int32_t xv = x[((b * ic + g * icg + c) * h + iy) * w + ix] - in_zp;
                  acc += xv * weights[((o * icg + c) * kh + r) * kw + s];
                }
            out[((b * oc + o) * oh() + y) * ow() + z] =
                math::requantize(acc, {mult[o], shift[o]}, out_zp, act_min, act_max);
          }
    return out;
  }

  isa::ConvArgs args(uint32_t in, uint32_t wt, uint32_t bias_a, uint32_t out) const {
    isa::ConvArgs c{};
    c.in_addr = in, c.weight_addr = wt, c.bias_addr = bias_a, c.mult_addr = bias_a + 4 * oc;
    c.shift_addr = bias_a + 8 * oc, c.out_addr = out;
    c.n = n, c.in_c = ic, c.in_h = h, c.in_w = w, c.out_c = oc, c.out_h = oh(), c.out_w = ow();
    c.kernel_h = kh, c.kernel_w = kw, c.stride_h = c.stride_w = stride, c.pad_top = c.pad_left = pad;
    c.dilation_h = c.dilation_w = dilation, c.groups = groups;
    c.in_zero_point = in_zp, c.out_zero_point = out_zp, c.act_min = act_min, c.act_max = act_max;
    return c;
  }

  /// load weights, load bias|mult|shift, load input, conv, store output.
  isa::Program program(uint8_t num_pes = 1) const {
    isa::Program p;
    p.num_pes = num_pes;
    const uint32_t in_bytes = n * ic * h * w, out_bytes = n * oc * oh() * ow();
    const uint32_t wbytes = static_cast<uint32_t>(weights.size()), vbytes = 12 * oc;
    p.constants.resize(wbytes + vbytes);
    std::memcpy(p.constants.data(), weights.data(), wbytes);
    std::memcpy(p.constants.data() + wbytes, bias.data(), 4 * oc);
    std::memcpy(p.constants.data() + wbytes + 4 * oc, mult.data(), 4 * oc);
    std::memcpy(p.constants.data() + wbytes + 8 * oc, shift.data(), 4 * oc);
    const uint32_t s_w = 0, s_v = 1 << 16, s_in = 1 << 17, s_out = 1 << 19;
    p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, s_w, wbytes));
    p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kConst, wbytes, s_v, vbytes));
    p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, s_in, in_bytes));
    isa::Instruction conv;
    conv.opcode = isa::Opcode::kConv;
    conv.conv = args(s_in, s_w, s_v, s_out);
    conv.wait[0] = 3;
    p.instructions.push_back(conv);
    p.instructions.push_back(dma(isa::Opcode::kDmaStore, isa::Region::kIo, in_bytes, s_out, out_bytes, {3, 1, 0}));
    isa::TensorDesc in{"x", DType::kInt8, isa::Layout::kNCHW, {n, ic, h, w}, 0.05f, in_zp, 0};
    isa::TensorDesc out{"y", DType::kInt8, isa::Layout::kNCHW, {n, oc, oh(), ow()}, 0.1f, out_zp, in_bytes};
    p.inputs = {in};
    p.outputs = {out};
    p.io_bytes = in_bytes + out_bytes;
    p.sram_bytes = s_out + out_bytes;
    return p;
  }
};

inline std::vector<int8_t> random_int8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

}  // namespace anvil::testing
