#include "mac_array.h"

#include <cstring>
#include <vector>

#include <tbb/parallel_for.h>

#include "anvil/common/requant.h"
#include "requant_rows.h"

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

uint64_t MacArray::matmul_cycles(const isa::MatMulArgs& m, const HwConfig& cfg, uint32_t slices) {
  return cfg.conv_fill_cycles + ceil_div(static_cast<uint64_t>(m.batch) * m.m, slices) * ceil_div(m.n, cfg.mac_rows) *
                                    ceil_div(m.k, cfg.mac_cols);
}

sc_core::sc_time MacArray::matmul(const isa::MatMulArgs& m, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const math::QuantizedMultiplier q{m.mult, m.shift};
  if (m.batch == 0 || m.m == 0 || m.k == 0 || m.n == 0 || m.k > 33025 || !multiplier_valid(q) ||
      m.act_min > m.act_max || m.act_min < -128 || m.act_max > 127 || std::abs(m.a_zero_point) > 255 ||
      std::abs(m.b_zero_point) > 255)
    throw bad;
  const uint64_t B = m.batch, M = m.m, K = m.k, N = m.n;
  check_sram(m.a_addr, (m.a_step ? (B - 1) * m.a_step : 0) + M * K, index, "matmul a");
  check_sram(m.b_addr, (m.b_step ? (B - 1) * m.b_step : 0) + K * N, index, "matmul b");
  check_sram(m.out_addr, B * M * N, index, "matmul output");
  const auto* a = reinterpret_cast<const int8_t*>(sram_.read_ptr(m.a_addr));
  const auto* b = reinterpret_cast<const int8_t*>(sram_.read_ptr(m.b_addr));
  out_.resize(B * M * N);
  acc_.resize(N);
  for (uint64_t p = 0; p < B; ++p)
    for (uint64_t i = 0; i < M; ++i) {
      const int8_t* arow = a + p * m.a_step + i * K;
      const int8_t* bm = b + p * m.b_step;
      std::fill(acc_.begin(), acc_.end(), 0);
      for (uint64_t k = 0; k < K; ++k) {
        const int32_t x = arow[k] - m.a_zero_point;
        for (uint64_t j = 0; j < N; ++j) acc_[j] += x * (bm[k * N + j] - m.b_zero_point);
      }
      requantize_row(acc_.data(), out_.data() + (p * M + i) * N, static_cast<int64_t>(N), q, m.out_zero_point,
                     m.act_min, m.act_max);
    }
  // The output may alias an operand: computed into out_, then copied.
  std::memcpy(sram_.write_ptr(m.out_addr, out_.size()), out_.data(), out_.size());
  macs_ += isa::matmul_macs(m);
  return ctx_.cycles(matmul_cycles(m, ctx_.config, seq_.slices()));
}

void MacArray::im2col(const isa::ConvArgs& c, const float* planes, int64_t H, int64_t W, int64_t channels) {
  const int64_t KH = c.kernel_h, KW = c.kernel_w, OH = c.out_h, OW = c.out_w, P = OH * OW;
  auto row = [&](int64_t r) {
    const int64_t ic = r / (KH * KW), kh = r / KW % KH, kw = r % KW;
    const float* plane = planes + ic * H * W;
    float* dst = cols_.data() + r * P;
    // Output columns whose input column iw = ow*sw - pad_left + kw*dw lies in [0, W).
    const int64_t col0 = kw * c.dilation_w - c.pad_left;
    const int64_t ow_lo = std::min<int64_t>(OW, col0 >= 0 ? 0 : (-col0 + c.stride_w - 1) / c.stride_w);
    const int64_t ow_hi = std::max(ow_lo, std::min<int64_t>(OW, col0 > W - 1 ? 0 : (W - 1 - col0) / c.stride_w + 1));
    for (int64_t oh = 0; oh < OH; ++oh, dst += OW) {
      const int64_t ih = oh * c.stride_h - c.pad_top + kh * c.dilation_h;
      if (ih < 0 || ih >= H) {
        std::fill_n(dst, OW, 0.0f);
        continue;
      }
      const float* src = plane + ih * W + col0;
      std::fill_n(dst, ow_lo, 0.0f);
      if (c.stride_w == 1) {
        std::copy(src + ow_lo, src + ow_hi, dst + ow_lo);
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow * c.stride_w];
      }
      std::fill(dst + ow_hi, dst + OW, 0.0f);
    }
  };
  const int64_t rows = channels * KH * KW;
  if (rows * P < (int64_t{1} << 16)) {
    for (int64_t r = 0; r < rows; ++r) row(r);
  } else {
    tbb::parallel_for(int64_t{0}, rows, [&](int64_t r) { row(r); });
  }
}

sc_core::sc_time MacArray::execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time&) {
  if (inst.opcode == isa::Opcode::kMatMul) return matmul(inst.matmul, index);
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
  std::vector<math::QuantizedMultiplier> q(static_cast<size_t>(OC));
  for (int64_t oc = 0; oc < OC; ++oc) {
    q[oc] = {load_i32(mult, oc), load_i32(shift, oc)};
    if (!multiplier_valid(q[oc])) throw bad;
  }

  // As a GEMM per image and group: acc[OCg x P] = bias + W[OCg x Kg] * cols[Kg x P], with
  // P = OH*OW output pixels and Kg = ICg*KH*KW; cols holds x - in_zp at each window position (0
  // where the window lies in the padding). Operands are float holding exact integers
  // (|w| <= 128, |x - zp| <= 255); int8_gemm.h shows why the result is exact.
  const int64_t P = OH * OW, Kg = ICg * KH * KW;
  xf_.resize(static_cast<size_t>(N * IC * H * W));
  for (size_t i = 0; i < xf_.size(); ++i) xf_[i] = static_cast<float>(in[i] - c.in_zero_point);
  wf_.resize(static_cast<size_t>(weights));
  for (size_t i = 0; i < wf_.size(); ++i) wf_[i] = wt[i];
  // A 1x1, stride 1, unpadded conv reads its input planes as they are: no window copy.
  const bool planes_are_cols = KH == 1 && KW == 1 && c.stride_h == 1 && c.stride_w == 1 && c.pad_top == 0 &&
                               c.pad_left == 0 && OH == H && OW == W;
  if (!planes_are_cols) cols_.resize(static_cast<size_t>(Kg * P));
  acc_.resize(static_cast<size_t>(OC * P));
  out_.resize(static_cast<size_t>(N * OC * P));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t oc = 0; oc < OC; ++oc) std::fill_n(acc_.data() + oc * P, P, load_i32(bias, oc));
    for (int64_t g = 0; g < G; ++g) {
      const float* planes = xf_.data() + (n * IC + g * ICg) * H * W;
      if (!planes_are_cols) im2col(c, planes, H, W, ICg);
      int8_range_gemm_accumulate(OCg, P, Kg, wf_.data() + g * OCg * Kg, Kg, planes_are_cols ? planes : cols_.data(),
                                 P, acc_.data() + g * OCg * P, gemm_);
    }
    auto epilogue = [&](int64_t oc) {
      const int32_t* a = acc_.data() + oc * P;
      int8_t* o = out_.data() + (n * OC + oc) * P;
      requantize_row(a, o, P, q[oc], c.out_zero_point, c.act_min, c.act_max);
    };
    if (OC * P < (int64_t{1} << 15)) {
      for (int64_t oc = 0; oc < OC; ++oc) epilogue(oc);
    } else {
      tbb::parallel_for(int64_t{0}, OC, epilogue);
    }
  }
  // The output may alias what the conv reads: it was computed into out_, then copied.
  std::memcpy(sram_.write_ptr(c.out_addr, out_.size()), out_.data(), out_.size());
  macs_ += isa::conv_macs(c);
  return ctx_.cycles(conv_cycles(c, ctx_.config, seq_.slices()));
}

nlohmann::json MacArray::trace_args(const isa::Instruction& inst) const {
  if (inst.opcode == isa::Opcode::kMatMul) {
    const isa::MatMulArgs& m = inst.matmul;
    return {{"macs", isa::matmul_macs(m)},
            {"shape", std::to_string(m.batch) + "x(" + std::to_string(m.m) + "x" + std::to_string(m.k) + " * " +
                          std::to_string(m.k) + "x" + std::to_string(m.n) + ")"}};
  }
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
