#include "mac_array.h"

#include <cstring>
#include <vector>

#include "anvil/common/requant.h"

namespace anvil::hw {

namespace {
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
}  // namespace

MacArray::MacArray(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq)
    : ExecUnit(name, ctx, seq, isa::Unit::kMac) {}

uint64_t MacArray::conv_cycles(const isa::ConvArgs& c, const HwConfig& cfg, uint32_t slices) {
  const uint64_t groups = c.groups ? c.groups : 1;
  const uint64_t pixels = static_cast<uint64_t>(c.n) * c.out_h * c.out_w;
  const uint64_t k = static_cast<uint64_t>(c.in_c / groups) * c.kernel_h * c.kernel_w;
  return cfg.conv_fill_cycles + ceil_div(pixels, slices) * ceil_div(c.out_c / groups, cfg.mac_rows) *
                                    ceil_div(k, cfg.mac_cols) * groups;
}

sc_core::sc_time MacArray::execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time&) {
  if (inst.opcode != isa::Opcode::kConv) throw PeFault{isa::DeviceError::kBadProgram, index};
  const isa::ConvArgs& c = inst.conv;
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  if (c.groups == 0 || c.n == 0 || c.in_c == 0 || c.out_c == 0 || c.in_c % c.groups || c.out_c % c.groups ||
      c.in_h == 0 || c.in_w == 0 || c.out_h == 0 || c.out_w == 0 || c.kernel_h == 0 || c.kernel_w == 0 ||
      c.stride_h == 0 || c.stride_w == 0 || c.dilation_h == 0 || c.dilation_w == 0 || c.act_min > c.act_max ||
      c.act_min < -128 || c.act_max > 127)
    throw bad;
  const int64_t N = c.n, IC = c.in_c, H = c.in_h, W = c.in_w, OC = c.out_c, OH = c.out_h, OW = c.out_w;
  const int64_t G = c.groups, ICg = IC / G, OCg = OC / G, KH = c.kernel_h, KW = c.kernel_w;
  const int64_t weights = OC * ICg * KH * KW;
  check_sram(c.in_addr, N * IC * H * W, index, "conv input");
  check_sram(c.weight_addr, weights, index, "conv weights");
  check_sram(c.bias_addr, 4 * OC, index, "conv bias");
  check_sram(c.mult_addr, 4 * OC, index, "conv multipliers");
  check_sram(c.shift_addr, 4 * OC, index, "conv shifts");
  check_sram(c.out_addr, N * OC * OH * OW, index, "conv output");

  const auto* in = reinterpret_cast<const int8_t*>(sram_.read_ptr(c.in_addr));
  const auto* wt = reinterpret_cast<const int8_t*>(sram_.read_ptr(c.weight_addr));
  const uint8_t* bias = sram_.read_ptr(c.bias_addr);
  const uint8_t* mult = sram_.read_ptr(c.mult_addr);
  const uint8_t* shift = sram_.read_ptr(c.shift_addr);
  // The output may alias nothing the conv still reads: compute into a buffer, then copy.
  std::vector<int8_t> out(static_cast<size_t>(N * OC * OH * OW));
  // Inputs minus zero point once, as int16 (|x - zp| <= 255).
  std::vector<int16_t> xz(static_cast<size_t>(N * IC * H * W));
  for (size_t i = 0; i < xz.size(); ++i) xz[i] = static_cast<int16_t>(in[i] - c.in_zero_point);
  std::vector<int32_t> acc(static_cast<size_t>(OH * OW));

  for (int64_t n = 0; n < N; ++n) {
    for (int64_t oc = 0; oc < OC; ++oc) {
      const int64_t g = oc / OCg;
      std::fill(acc.begin(), acc.end(), load_i32(bias, oc));
      for (int64_t icg = 0; icg < ICg; ++icg) {
        const int16_t* plane = xz.data() + ((n * IC + g * ICg + icg) * H) * W;
        for (int64_t kh = 0; kh < KH; ++kh) {
          for (int64_t kw = 0; kw < KW; ++kw) {
            const int32_t w = wt[((oc * ICg + icg) * KH + kh) * KW + kw];
            if (w == 0) continue;
            // Output columns whose input column iw = ow*sw - pad_left + kw*dw lies in [0, W).
            const int64_t col0 = kw * c.dilation_w - c.pad_left;
            int64_t ow_lo = col0 >= 0 ? 0 : (-col0 + c.stride_w - 1) / c.stride_w;
            int64_t ow_hi = col0 > W - 1 ? 0 : (W - 1 - col0) / c.stride_w + 1;
            ow_hi = std::min(ow_hi, OW);
            if (ow_lo >= ow_hi) continue;
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * c.stride_h - c.pad_top + kh * c.dilation_h;
              if (ih < 0 || ih >= H) continue;
              const int16_t* row = plane + ih * W;
              int32_t* a = acc.data() + oh * OW;
              if (c.stride_w == 1) {
                for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow] += row[col0 + ow] * w;
              } else {
                for (int64_t ow = ow_lo; ow < ow_hi; ++ow) a[ow] += row[col0 + ow * c.stride_w] * w;
              }
            }
          }
        }
      }
      const math::QuantizedMultiplier q{load_i32(mult, oc), load_i32(shift, oc)};
      if (!multiplier_valid(q)) throw bad;
      int8_t* o = out.data() + (n * OC + oc) * OH * OW;
      for (int64_t p = 0; p < OH * OW; ++p) o[p] = math::requantize(acc[p], q, c.out_zero_point, c.act_min, c.act_max);
    }
  }
  std::memcpy(sram_.write_ptr(c.out_addr, out.size()), out.data(), out.size());
  macs_ += isa::conv_macs(c);
  return ctx_.cycles(conv_cycles(c, ctx_.config, seq_.slices()));
}

nlohmann::json MacArray::trace_args(const isa::Instruction& inst) const {
  const isa::ConvArgs& c = inst.conv;
  return {{"macs", isa::conv_macs(c)},
          {"shape", std::to_string(c.n) + "x" + std::to_string(c.in_c) + "x" + std::to_string(c.in_h) + "x" +
                        std::to_string(c.in_w) + " -> " + std::to_string(c.out_c) + "x" + std::to_string(c.out_h) +
                        "x" + std::to_string(c.out_w)},
          {"kernel", std::to_string(c.kernel_h) + "x" + std::to_string(c.kernel_w)},
          {"stride", c.stride_h},
          {"groups", c.groups}};
}

}  // namespace anvil::hw
