#include "quant_params.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "anvil/common/requant.h"

namespace anvil::quant {

Range include_zero(Range r) { return {std::min(r.min, 0.0f), std::max(r.max, 0.0f)}; }

Range symmetric(Range r) {
  r = include_zero(r);
  if (r.min >= 0.0f) return r;
  const float a = std::max(-r.min, r.max);
  return {-a, a};
}

QuantParams activation_params(Range r, bool symmetric) {
  r = include_zero(r);
  QuantParams q;
  if (symmetric && r.min < 0.0f) {
    q.scale = std::max(std::max(-r.min, r.max) / 127.0f, kMinScale);
    q.zero_point = 0;
    return q;
  }
  q.scale = std::max((r.max - r.min) / 255.0f, kMinScale);
  // round(-128 - min/scale) = -128 + round(-min/scale): QuantizeLinear of -min with zero point -128.
  q.zero_point = math::quantize_float(-r.min, q.scale, -128);
  return q;
}

bool scale_is_floored(Range r, bool sym) {
  r = include_zero(r);
  if (r.min == 0.0f && r.max == 0.0f) return false;  // all zero: any scale is exact
  const float raw = sym && r.min < 0.0f ? std::max(-r.min, r.max) / 127.0f : (r.max - r.min) / 255.0f;
  return raw < kMinScale;
}

void check_finite(const Tensor& constant, const std::string& what) {
  if (constant.dtype() != DType::kFloat32) return;
  const float* v = constant.data<float>();
  for (int64_t k = 0; k < constant.numel(); ++k)
    if (!std::isfinite(v[k]))
      fail(ErrorCode::kInvalidArgument, what + " has " + (std::isnan(v[k]) ? "a NaN" : "an infinite value") +
                                            " at element " + std::to_string(k) + ": int8 cannot represent it");
}

std::vector<float> bias_weight_scales(const Tensor& bias, float input_scale) {
  constexpr double kMaxCodes = 1073741824.0;  // 2^30
  std::vector<float> out(static_cast<size_t>(bias.numel()), 0.0f);
  const float* b = bias.data<float>();
  for (int64_t c = 0; c < bias.numel(); ++c) {
    const double need = std::fabs(static_cast<double>(b[c])) / kMaxCodes;  // the bias scale it needs
    if (need == 0.0) continue;
    float w = static_cast<float>(need / input_scale);
    // The model stores the float32 product; step up until it is at least what the bias needs.
    while (static_cast<double>(input_scale * w) < need) w = std::nextafter(w, std::numeric_limits<float>::infinity());
    out[static_cast<size_t>(c)] = w;
  }
  return out;
}

ChannelQuantized quantize_per_channel(const Tensor& weight, int axis, const std::vector<float>& min_scales,
                                      const std::string& what) {
  if (weight.dtype() != DType::kFloat32 || axis < 0 || axis >= static_cast<int>(weight.rank()))
    fail(ErrorCode::kInvalidArgument, "quantize_per_channel: float32 weight with axis " + std::to_string(axis) +
                                          " expected, got " + dtype_name(weight.dtype()) + " " +
                                          shape_str(weight.shape()));
  check_finite(weight, what);
  const int64_t channels = weight.dim(axis);
  int64_t inner = 1;
  for (size_t d = axis + 1; d < weight.rank(); ++d) inner *= weight.dim(d);
  const int64_t outer = channels ? weight.numel() / (channels * inner) : 0;
  const float* w = weight.data<float>();
  auto index = [&](int64_t o, int64_t c, int64_t i) { return (o * channels + c) * inner + i; };

  ChannelQuantized out{Tensor(DType::kInt8, weight.shape()), std::vector<float>(channels, 0.0f)};
  for (int64_t c = 0; c < channels; ++c) {
    float max_abs = 0.0f;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) max_abs = std::max(max_abs, std::fabs(w[index(o, c, i)]));
    // An all-zero channel is exact at any scale; 1/127 (a channel whose largest |w| is 1) keeps
    // its int32 bias scale (input scale x weight scale) at a normal size, so a nonzero bias on
    // that channel fits int32 instead of saturating at a floored scale.
    out.scales[c] = max_abs == 0.0f ? 1.0f / 127.0f : std::max(max_abs / 127.0f, kMinScale);
    if (static_cast<size_t>(c) < min_scales.size() && min_scales[c] > out.scales[c]) {
      out.scales[c] = min_scales[c];
      ++out.raised_channels;
    }
  }
  int8_t* q = out.values.data<int8_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t k = index(o, c, i);
        q[k] = std::max<int8_t>(math::quantize_float(w[k], out.scales[c], 0), -127);
      }
  return out;
}

Tensor quantize_bias(const Tensor& bias, float input_scale, const std::vector<float>& weight_scales,
                     std::vector<float>* scales) {
  if (bias.dtype() != DType::kFloat32 || bias.rank() != 1 ||
      bias.numel() != static_cast<int64_t>(weight_scales.size()))
    fail(ErrorCode::kInvalidArgument, "quantize_bias: float32 bias of " + std::to_string(weight_scales.size()) +
                                          " values expected, got " + dtype_name(bias.dtype()) + " " +
                                          shape_str(bias.shape()));
  Tensor q(DType::kInt32, bias.shape());
  scales->assign(weight_scales.size(), 0.0f);
  for (size_t c = 0; c < weight_scales.size(); ++c) {
    (*scales)[c] = input_scale * weight_scales[c];
    q.data<int32_t>()[c] = math::quantize_bias(bias.data<float>()[c], (*scales)[c]);
  }
  return q;
}

}  // namespace anvil::quant
