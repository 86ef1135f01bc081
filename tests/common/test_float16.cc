// float16 / bfloat16 conversions (common/float16.h) and their use by Tensor::cast.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "anvil/common/float16.h"
#include "anvil/common/tensor.h"

using namespace anvil;

namespace {
uint16_t h(double x) { return float16_from_double(x).bits; }
uint16_t bf(float x) { return bfloat16_from_float(x).bits; }
float float_of_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
const double kInf = std::numeric_limits<double>::infinity();
}  // namespace

TEST(Float16, ExactValues) {
  EXPECT_EQ(h(0.0), 0x0000);
  EXPECT_EQ(h(-0.0), 0x8000);
  EXPECT_EQ(h(1.0), 0x3c00);
  EXPECT_EQ(h(-2.0), 0xc000);
  EXPECT_EQ(h(0.5), 0x3800);
  EXPECT_EQ(h(65504.0), 0x7bff);  // largest finite
  EXPECT_EQ(h(0x1p-14), 0x0400);  // smallest normal
  EXPECT_EQ(h(0x1p-24), 0x0001);  // smallest subnormal
  EXPECT_EQ(h(1023 * 0x1p-24), 0x03ff);  // largest subnormal
}

TEST(Float16, RoundsToNearestTiesToEven) {
  // Between 1 and 2 the step is 2^-10.
  EXPECT_EQ(h(1.0 + 0x1p-11), 0x3c00);               // tie between 0x3c00 and 0x3c01: even
  EXPECT_EQ(h(1.0 + 3 * 0x1p-11), 0x3c02);           // tie between 0x3c01 and 0x3c02: even
  EXPECT_EQ(h(1.0 + 0x1p-11 + 0x1p-30), 0x3c01);     // just above the tie
  EXPECT_EQ(h(1.0 + 0x1p-11 - 0x1p-30), 0x3c00);     // just below
  EXPECT_EQ(h(-(1.0 + 3 * 0x1p-11)), 0xbc02);        // the sign does not change the rounding
  EXPECT_EQ(h(2.0 - 0x1p-12), 0x4000);               // carries into the exponent
  // One rounding from double: via float, 1 + 2^-11 + 2^-40 would become the tie 1 + 2^-11 and round down.
  EXPECT_EQ(h(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
}

TEST(Float16, Subnormals) {
  EXPECT_EQ(h(0x1p-25), 0x0000);                 // half the smallest subnormal: tie to even (zero)
  EXPECT_EQ(h(0x1p-25 + 0x1p-40), 0x0001);       // above the tie
  EXPECT_EQ(h(3 * 0x1p-25), 0x0002);             // 1.5 steps: tie to even
  EXPECT_EQ(h(5 * 0x1p-25), 0x0002);             // 2.5 steps: tie to even
  EXPECT_EQ(h(-0x1p-26), 0x8000);                // underflows to -0
  EXPECT_EQ(h(1023.5 * 0x1p-24), 0x0400);        // rounds up into the smallest normal
  EXPECT_EQ(float16_to_float({0x0001}), std::ldexp(1.0f, -24));
  EXPECT_EQ(float16_to_float({0x83ff}), -1023 * std::ldexp(1.0f, -24));
}

TEST(Float16, OverflowInfinityAndNaN) {
  EXPECT_EQ(h(65519.99), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(h(65520.0), 0x7c00);   // the midpoint rounds to even: the infinity
  EXPECT_EQ(h(-1e6), 0xfc00);
  EXPECT_EQ(h(kInf), 0x7c00);
  EXPECT_EQ(h(-kInf), 0xfc00);
  EXPECT_EQ(h(std::numeric_limits<double>::quiet_NaN()), 0x7e00);
  EXPECT_EQ(h(static_cast<double>(float_of_bits(0x7f800001))) & 0x7c00, 0x7c00);  // payload only in low bits
  EXPECT_NE(h(static_cast<double>(float_of_bits(0x7f800001))) & 0x03ff, 0);      // still a NaN
  EXPECT_TRUE(std::isinf(float16_to_float({0x7c00})));
  EXPECT_LT(float16_to_float({0xfc00}), 0.0f);
  EXPECT_TRUE(std::isnan(float16_to_float({0x7e00})));
  EXPECT_TRUE(std::isnan(float16_to_float({0xfc01})));
}

TEST(Float16, EveryBitPatternRoundTrips) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const Float16 in{static_cast<uint16_t>(b)};
    const float f = float16_to_float(in);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(float16_to_float(float16_from_double(f)))) << b;
    } else {
      ASSERT_EQ(float16_from_double(f).bits, b) << "bits " << b << " value " << f;
    }
  }
}

TEST(BFloat16, TruncatesLikeOnnx112) {
  EXPECT_EQ(bf(1.0f), 0x3f80);
  EXPECT_EQ(bf(float_of_bits(0x3ef5eeb0)), 0x3ef5);  // ONNX 1.12 test data: the low half is dropped
  EXPECT_EQ(bf(float_of_bits(0x3f808000)), 0x3f80);  // an exact tie goes toward zero
  EXPECT_EQ(bf(float_of_bits(0xbf80ffff)), 0xbf80);  // and so does anything below the next step
  EXPECT_EQ(bf(float_of_bits(0x007fffff)), 0x007f);  // subnormal float
  EXPECT_EQ(bf(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bf(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(bf(std::numeric_limits<float>::max()), 0x7f7f);  // truncation never overflows
  EXPECT_EQ(bf(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(bfloat16_from_float(float_of_bits(0x7f800001)))));  // not inf
  EXPECT_EQ(bfloat16_to_float({0x3ef5}), float_of_bits(0x3ef50000));
  EXPECT_EQ(bfloat16_to_float({0x0001}), float_of_bits(0x00010000));  // subnormal
}

TEST(Float16, TensorCastUsesTheConversions) {
  const Tensor f = Tensor::from_vector<float>({4}, {1.0f, 65520.0f, 1.0f + 0x1p-11f, -0.0f});
  const Tensor hf = f.cast(DType::kFloat16);
  ASSERT_EQ(hf.dtype(), DType::kFloat16);
  EXPECT_EQ(hf.nbytes(), 8u);
  const uint16_t want[] = {0x3c00, 0x7c00, 0x3c00, 0x8000};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(hf.data<Float16>()[i].bits, want[i]) << i;
  const Tensor back = hf.cast(DType::kFloat32);
  EXPECT_EQ(back.data<float>()[0], 1.0f);
  EXPECT_TRUE(std::isinf(back.data<float>()[1]));

  // double -> float16 rounds once; int -> float16 goes through the exact double.
  const Tensor d = Tensor::from_vector<double>({1}, {1.0 + 0x1p-11 + 0x1p-40});
  EXPECT_EQ(d.cast(DType::kFloat16).data<Float16>()[0].bits, 0x3c01);
  const Tensor i = Tensor::from_vector<int32_t>({2}, {2049, -70000});
  EXPECT_EQ(i.cast(DType::kFloat16).data<Float16>()[0].bits, h(2048.0));  // tie to even
  EXPECT_EQ(i.cast(DType::kFloat16).data<Float16>()[1].bits, 0xfc00);

  const Tensor b = Tensor::from_vector<float>({1}, {float_of_bits(0x3effd6b2)}).cast(DType::kBFloat16);
  EXPECT_EQ(b.data<BFloat16>()[0].bits, 0x3eff);
  EXPECT_EQ(b.cast(DType::kFloat16).cast(DType::kBFloat16), b);  // bf16 -> f16 -> bf16 of a short mantissa
  EXPECT_EQ(b.cast(DType::kInt32).data<int32_t>()[0], 0);         // 0.498... truncates to 0
  EXPECT_THROW(hf.data<uint16_t>(), Error);                       // typed access is checked
}
