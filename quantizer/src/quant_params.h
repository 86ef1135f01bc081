#pragma once
/// The quantization arithmetic of the quantizer: ranges -> (scale, zero point), per-channel
/// weights, int32 biases. Rounding goes through common/requant.h (math::quantize_float,
/// math::quantize_bias) so it is the same rounding the executor and the hardware use.
#include <string>
#include <vector>

#include "anvil/common/tensor.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::quant {

using ref::QuantParams;

/// The smallest scale the quantizer emits. A tensor that is zero everywhere (range [0, 0], or a
/// weight channel of zeros) gets it instead of 0: DequantizeLinear and the integer multipliers
/// need a positive scale, and any scale represents 0 exactly. A calibrated range whose scale would
/// fall below it is floored with a warning naming the tensor (quantize()).
/// Why 1e-18: an int32 bias scale is the product of two scales (input x weight), computed in
/// float32, and the product of two floored scales (1e-36) must stay a normal float32 (> 1.18e-38);
/// a higher floor silences real tensors: random-weight MobileNetV2's logits are ~3e-9 and
/// EfficientNet-B0's ~4e-14, which a floor of 1e-8 quantized to all zeros (0 dB, see
/// docs/quantization.md).
constexpr float kMinScale = 1e-18f;

/// True when `r` (non-empty) would get a scale below kMinScale, i.e. the floor changes it.
bool scale_is_floored(Range r, bool symmetric);

/// True for the *_SYM methods.
bool is_symmetric(Method method);

/// [min(r.min, 0), max(r.max, 0)].
Range include_zero(Range r);
/// The symmetric form of a range that contains 0: [-a, a] with a = max(|min|, |max|), except that an
/// all-non-negative range [0, b] stays [0, b] (FuriosaAI's *_SYM convention).
Range symmetric(Range r);

/// Per-tensor int8 activation parameters of a range (widened to contain 0 first).
///  asymmetric: scale = (max - min) / 255, zero_point = round(-128 - min / scale) in [-128, 127];
///  symmetric and min < 0: scale = max(|min|, |max|) / 127, zero_point = 0: [-a, a] is codes
///    -127..127, and QuantizeLinear's code -128 holds -(128/127) a (the range searches score
///    candidates on that whole grid, so a SYM range can end one step inside a value it keeps);
///  symmetric and min >= 0 ([0, a], see symmetric()): the asymmetric form, scale = a / 255 with
///    zero_point = -128, as FuriosaAI and TFLite do for non-negative tensors: a/127 with zp 0 would
///    leave the 128 negative codes unused and halve the resolution.
/// A scale below kMinScale becomes kMinScale.
QuantParams activation_params(Range r, bool symmetric);

/// An int8 weight quantized per output channel.
struct ChannelQuantized {
  Tensor values;              ///< int8, same shape as the float weight, in [-127, 127]
  std::vector<float> scales;  ///< one per channel of `axis`
  int64_t raised_channels = 0;  ///< channels whose scale min_scales raised
};
/// Symmetric per-channel quantization along `axis`: scale[c] = max|w[c]| / 127 (at least
/// kMinScale; 1/127 for an all-zero channel, so that its bias scale stays normal), raised to
/// min_scales[c] where that is larger (bias_weight_scales), q = round_half_to_even(w / scale[c])
/// clamped to [-127, 127], zero point 0. A NaN or infinite weight is an error naming `what`.
ChannelQuantized quantize_per_channel(const Tensor& weight, int axis, const std::vector<float>& min_scales = {},
                                      const std::string& what = "weight");

/// The smallest weight scale per channel at which the int32 bias of channel c, with scale
/// input_scale x weight scale, keeps |bias[c]| within 2^30 codes (half the int32 range, headroom
/// for bias correction): |bias[c]| / 2^30 / input_scale, 0 where any scale does. A tiny input
/// scale (a tensor calibrated all zero gets kMinScale) would otherwise saturate the bias and lose
/// it; ONNX Runtime's quantizer raises the weight scale the same way. `bias` has one value per
/// channel.
std::vector<float> bias_weight_scales(const Tensor& bias, float input_scale);

/// Throws kInvalidArgument naming `what` when a float32 constant holds a NaN or an infinity:
/// int8 has no code for them.
void check_finite(const Tensor& constant, const std::string& what);

/// int32 bias with scale[c] = input_scale * weight_scales[c] (computed in float32, the value the
/// model stores for DequantizeLinear); returns the int32 tensor and fills `scales`.
Tensor quantize_bias(const Tensor& bias, float input_scale, const std::vector<float>& weight_scales,
                     std::vector<float>* scales);

}  // namespace anvil::quant
