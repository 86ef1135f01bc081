#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "quant_params.h"

using namespace anvil;
using namespace anvil::quant;

namespace {
Calibration one_tensor(float lo, float hi) {
  Calibration c;
  c.tensors["t"] = TensorStats{lo, hi, 100, {}, 0.0f, {}, 0};
  return c;
}
void expect_range(const Range& r, float lo, float hi) {
  EXPECT_FLOAT_EQ(r.min, lo);
  EXPECT_FLOAT_EQ(r.max, hi);
}
}  // namespace

TEST(Ranges, MinMaxAsymIsObservedRangeWithZero) {
  expect_range(one_tensor(-1.0f, 3.0f).ranges(Method::kMinMaxAsym).at("t"), -1.0f, 3.0f);
  expect_range(one_tensor(0.5f, 2.0f).ranges(Method::kMinMaxAsym).at("t"), 0.0f, 2.0f);
  expect_range(one_tensor(-4.0f, -1.0f).ranges(Method::kMinMaxAsym).at("t"), -4.0f, 0.0f);
}

TEST(Ranges, MinMaxSymIsSymmetricUnlessNonNegative) {
  expect_range(one_tensor(-1.0f, 3.0f).ranges(Method::kMinMaxSym).at("t"), -3.0f, 3.0f);
  expect_range(one_tensor(-4.0f, -1.0f).ranges(Method::kMinMaxSym).at("t"), -4.0f, 4.0f);
  expect_range(one_tensor(0.5f, 2.0f).ranges(Method::kMinMaxSym).at("t"), 0.0f, 2.0f);
}

TEST(Ranges, AllZeroAndRepeatedValue) {
  expect_range(one_tensor(0.0f, 0.0f).ranges(Method::kMinMaxAsym).at("t"), 0.0f, 0.0f);
  expect_range(one_tensor(-2.5f, -2.5f).ranges(Method::kMinMaxAsym).at("t"), -2.5f, 0.0f);
  expect_range(one_tensor(-2.5f, -2.5f).ranges(Method::kMinMaxSym).at("t"), -2.5f, 2.5f);
}

TEST(Ranges, HistogramMethodsNeedHistograms) {
  try {
    one_tensor(-1.0f, 1.0f).ranges(Method::kEntropyAsym);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("ENTROPY_ASYM"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos);
  }
}

TEST(ActivationParams, AsymmetricFormula) {
  const QuantParams q = activation_params({-1.0f, 3.0f}, false);
  EXPECT_FLOAT_EQ(q.scale, 4.0f / 255.0f);
  EXPECT_EQ(q.zero_point, -64);  // round(-128 + 1 / (4/255)) = round(-64.25)
  // The range ends map to the ends of int8.
  EXPECT_EQ(math::quantize_float(-1.0f, q.scale, q.zero_point), -128);
  EXPECT_EQ(math::quantize_float(3.0f, q.scale, q.zero_point), 127);
  EXPECT_EQ(math::quantize_float(0.0f, q.scale, q.zero_point), q.zero_point);  // 0 exact
}

TEST(ActivationParams, NonNegativeRangeUsesAllCodes) {
  for (bool sym : {false, true}) {
    const QuantParams q = activation_params({0.0f, 2.0f}, sym);
    EXPECT_FLOAT_EQ(q.scale, 2.0f / 255.0f);
    EXPECT_EQ(q.zero_point, -128);
  }
}

TEST(ActivationParams, SymmetricFormula) {
  const QuantParams q = activation_params({-3.0f, 3.0f}, true);
  EXPECT_FLOAT_EQ(q.scale, 3.0f / 127.0f);
  EXPECT_EQ(q.zero_point, 0);
  const QuantParams q2 = activation_params({-1.0f, 3.0f}, true);  // a = max(|min|, |max|)
  EXPECT_FLOAT_EQ(q2.scale, 3.0f / 127.0f);
}

TEST(ActivationParams, NonPositiveRange) {
  const QuantParams q = activation_params({-2.5f, 0.0f}, false);
  EXPECT_FLOAT_EQ(q.scale, 2.5f / 255.0f);
  EXPECT_EQ(q.zero_point, 127);
}

TEST(ActivationParams, DegenerateRangeGetsTinyPositiveScale) {
  for (bool sym : {false, true}) {
    const QuantParams q = activation_params({0.0f, 0.0f}, sym);
    EXPECT_GT(q.scale, 0.0f);
    EXPECT_EQ(q.scale, kMinScale);
    EXPECT_EQ(math::quantize_float(0.0f, q.scale, q.zero_point), q.zero_point);
  }
}

TEST(PerChannel, MaxAbsMapsTo127AlongAxis0) {
  const Tensor w = Tensor::from_vector<float>({3, 2}, {0.25f, -1.0f, 2.0f, 0.25f, 0.0f, 0.0f});
  const ChannelQuantized q = quantize_per_channel(w, 0);
  ASSERT_EQ(q.scales.size(), 3u);
  EXPECT_FLOAT_EQ(q.scales[0], 1.0f / 127.0f);
  EXPECT_FLOAT_EQ(q.scales[1], 2.0f / 127.0f);
  EXPECT_FLOAT_EQ(q.scales[2], 1.0f / 127.0f);  // all-zero channel: exact at any scale
  // ... and its bias (a channel whose output is its bias alone) keeps its value in int32.
  std::vector<float> bias_scales;
  const Tensor b = quantize_bias(Tensor::from_vector<float>({3}, {0.1f, -0.2f, 0.5f}), 0.02f, q.scales, &bias_scales);
  EXPECT_NEAR(b.data<int32_t>()[2] * bias_scales[2], 0.5f, bias_scales[2]);
  EXPECT_EQ(q.values.dtype(), DType::kInt8);
  EXPECT_EQ(q.values.to_vector<int8_t>(), (std::vector<int8_t>{32, -127, 127, 16, 0, 0}));  // 31.75, 15.875
}

TEST(PerChannel, Axis1OfKxO) {
  const Tensor w = Tensor::from_vector<float>({2, 3}, {1.0f, -4.0f, 0.1f, -2.0f, 2.0f, 0.2f});
  const ChannelQuantized q = quantize_per_channel(w, 1);
  ASSERT_EQ(q.scales.size(), 3u);
  EXPECT_FLOAT_EQ(q.scales[0], 2.0f / 127.0f);
  EXPECT_FLOAT_EQ(q.scales[1], 4.0f / 127.0f);
  EXPECT_FLOAT_EQ(q.scales[2], 0.2f / 127.0f);
  const std::vector<int8_t> v = q.values.to_vector<int8_t>();
  EXPECT_EQ(v[3], -127);
  EXPECT_EQ(v[1], -127);
  EXPECT_EQ(v[5], 127);
  for (int8_t x : v) EXPECT_GE(x, -127);
}

TEST(PerChannel, RejectsBadAxis) {
  EXPECT_THROW(quantize_per_channel(Tensor(DType::kFloat32, {2, 2}), 2), Error);
  EXPECT_THROW(quantize_per_channel(Tensor(DType::kInt8, {2, 2}), 0), Error);
}

TEST(Bias, ScaleIsInputScaleTimesWeightScale) {
  const Tensor b = Tensor::from_vector<float>({2}, {1.0f, -0.3f});
  std::vector<float> scales;
  const Tensor q = quantize_bias(b, 0.02f, {0.01f, 0.5f}, &scales);
  ASSERT_EQ(scales.size(), 2u);
  EXPECT_FLOAT_EQ(scales[0], 0.02f * 0.01f);
  EXPECT_FLOAT_EQ(scales[1], 0.02f * 0.5f);
  EXPECT_EQ(q.dtype(), DType::kInt32);
  EXPECT_EQ(q.to_vector<int32_t>(), (std::vector<int32_t>{5000, -30}));
  EXPECT_THROW(quantize_bias(b, 0.02f, {0.01f}, &scales), Error);  // length mismatch
}

TEST(Bias, SaturatesToInt32) {
  std::vector<float> scales;
  const Tensor q = quantize_bias(Tensor::from_vector<float>({1}, {1e30f}), 1e-8f, {1e-8f}, &scales);
  EXPECT_EQ(q.data<int32_t>()[0], std::numeric_limits<int32_t>::max());
}

TEST(ActivationParams, FlooredRangesAreDetected) {
  for (bool sym : {false, true}) {
    const Range r{-3.4e-19f, 3.4e-19f};
    EXPECT_TRUE(scale_is_floored(r, sym));
    EXPECT_EQ(activation_params(r, sym).scale, kMinScale);
    // Random-weight MobileNetV2 logits (~3.4e-9) and EfficientNet-B0's (~4e-14) are resolved.
    EXPECT_FALSE(scale_is_floored({-3.4e-9f, 3.4e-9f}, sym));
    EXPECT_FALSE(scale_is_floored({-4.1e-14f, 4.1e-14f}, sym));
    EXPECT_FALSE(scale_is_floored({-1e-3f, 1e-3f}, sym));
    EXPECT_FALSE(scale_is_floored({0.0f, 0.0f}, sym));  // all zero: exact at any scale
  }
  EXPECT_FALSE(scale_is_floored({0.0f, 255e-18f}, false));  // exactly kMinScale
  EXPECT_TRUE(scale_is_floored({0.0f, 254e-18f}, false));
}

TEST(ActivationParams, BiasScaleOfTwoFlooredScalesIsANormalFloat) {
  // The int32 bias scale is input_scale x weight_scale in float32: even at the floor it must not
  // be denormal or zero.
  EXPECT_GE(kMinScale * kMinScale, std::numeric_limits<float>::min());
  std::vector<float> scales;
  const Tensor q = quantize_bias(Tensor::from_vector<float>({2}, {0.0f, 3e-36f}), kMinScale, {kMinScale, kMinScale}, &scales);
  ASSERT_EQ(scales.size(), 2u);
  EXPECT_GE(scales[1], std::numeric_limits<float>::min());
  EXPECT_EQ(q.data<int32_t>()[0], 0);
  EXPECT_EQ(q.data<int32_t>()[1], 3);
}
