#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "anvil/common/requant.h"

using namespace anvil::math;

TEST(Requant, MultiplierRepresentsTheRealValue) {
  for (double m : {0.5, 0.25, 0.0003, 0.9999, 1.0, 3.7, 1e-6}) {
    const QuantizedMultiplier q = quantize_multiplier(m);
    EXPECT_GE(q.multiplier, 1 << 30);
    EXPECT_NEAR(q.multiplier * std::ldexp(1.0, q.shift - 31), m, m * 1e-9) << m;
  }
  EXPECT_EQ(quantize_multiplier(0.0).multiplier, 0);
}

// The Q31 mantissa is m rounded to nearest: within half a unit of its last place, also where the
// rounding carries into the next power of two (m just below 1 becomes 2^30 * 2^(1 - 31), not
// 2^31 - 1, which is 2^-31 off). Mutation testing: dropping the carry's ++exponent survived the
// 1e-9 relative tolerance above.
TEST(Requant, MultiplierIsTheNearestQ31ValueAcrossTheCarry) {
  for (double m : {1.0 - std::ldexp(1.0, -40), 0.5 - std::ldexp(1.0, -41), 2.0 - std::ldexp(1.0, -39), 0.75, 0.3}) {
    const QuantizedMultiplier q = quantize_multiplier(m);
    ASSERT_GE(q.multiplier, 1 << 30) << m;
    const double unit = std::ldexp(1.0, q.shift - 31);  // the value of the mantissa's last bit
    EXPECT_LE(std::fabs(q.multiplier * unit - m), unit / 2) << m;
  }
  const QuantizedMultiplier one = quantize_multiplier(1.0 - std::ldexp(1.0, -40));
  EXPECT_EQ(one.multiplier, 1 << 30);
  EXPECT_EQ(one.shift, 1);
}

TEST(Requant, RoundingShiftRoundsHalfToEven) {
  EXPECT_EQ(rounding_shift_right(5, 1), 2);     // 2.5 -> 2
  EXPECT_EQ(rounding_shift_right(7, 1), 4);     // 3.5 -> 4
  EXPECT_EQ(rounding_shift_right(-5, 1), -2);   // -2.5 -> -2
  EXPECT_EQ(rounding_shift_right(-7, 1), -4);   // -3.5 -> -4
  EXPECT_EQ(rounding_shift_right(7, 2), 2);     // 1.75 -> 2
  EXPECT_EQ(rounding_shift_right(-7, 2), -2);   // -1.75 -> -2
  EXPECT_EQ(rounding_shift_right(-6, 2), -2);   // -1.5 -> -2
  EXPECT_EQ(rounding_shift_right(10, 2), 2);    // 2.5 -> 2
  EXPECT_EQ(rounding_shift_right(-9, 2), -2);   // -2.25 -> -2
  EXPECT_EQ(rounding_shift_right(int64_t{1} << 61, 62), 0);   // 0.5 -> 0
  EXPECT_EQ(rounding_shift_right(int64_t{3} << 60, 62), 1);   // 0.75 -> 1
  EXPECT_EQ(rounding_shift_right(-(int64_t{3} << 60), 62), -1);
  EXPECT_EQ(rounding_shift_right(12345, 0), 12345);
  EXPECT_EQ(rounding_shift_right(int64_t{1} << 61, 63), 0);   // beyond the domain: below half a unit
}

// The product x * multiplier has at most 62 significant bits, so a long double (64-bit mantissa on
// x86) holds it and its power-of-two scaling exactly, and nearbyintl rounds it half to even: an
// oracle that shares no code with requant.h.
TEST(Requant, OneRoundingOfTheExactProductTiesToEven) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> acc(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int32_t> small(-300, 300);
  std::uniform_int_distribution<int32_t> mantissa(1 << 30, std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int32_t> shift(-31, 30);
  static_assert(std::numeric_limits<long double>::digits >= 63, "the oracle needs a 64-bit mantissa");
  for (int i = 0; i < 200000; ++i) {
    const QuantizedMultiplier q{i % 4 == 0 ? (1 << 30) : mantissa(rng), shift(rng)};  // 2^30: many exact ties
    const int32_t x = i % 2 == 0 ? acc(rng) : small(rng);
    const long double exact = std::ldexp(static_cast<long double>(x) * q.multiplier, q.shift - 31);
    const long double want = std::clamp<long double>(std::nearbyint(exact), std::numeric_limits<int32_t>::min(),
                                                     std::numeric_limits<int32_t>::max());
    ASSERT_EQ(multiply_by_quantized_multiplier(x, q), static_cast<int32_t>(want))
        << x << " * " << q.multiplier << " * 2^(" << q.shift << " - 31)";
  }
}

// TFLite's default MultiplyByQuantizedMultiplier rounds twice: 181 * 1518500250 / 2^31 = 127.99
// becomes 128, and 128 / 2^8 = 0.5 then rounds away from zero to 1, although the exact product,
// 0.49995, rounds to 0 (about 2^(shift - 1) of the values land on such a second tie).
TEST(Requant, NoSecondRoundingOnTheWay) {
  EXPECT_EQ(multiply_by_quantized_multiplier(181, {1518500250, -8}), 0);
  EXPECT_EQ(multiply_by_quantized_multiplier(-181, {1518500250, -8}), 0);
  EXPECT_EQ(multiply_by_quantized_multiplier(5, {1 << 30, 0}), 2);  // exactly 2.5: to even
  EXPECT_EQ(multiply_by_quantized_multiplier(7, {1 << 30, 0}), 4);  // exactly 3.5
}

TEST(Requant, MatchesFloatWithinHalfAUnit) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> acc(-(1 << 20), 1 << 20);
  for (double m : {0.0123, 0.5, 0.00071, 0.8, 3.7}) {
    const QuantizedMultiplier q = quantize_multiplier(m);
    for (int i = 0; i < 10000; ++i) {
      const int32_t x = acc(rng);
      const double exact = x * m;  // M's 31-bit mantissa moves it by at most |x| * m * 2^-31 < 1e-5
      EXPECT_LE(std::abs(multiply_by_quantized_multiplier(x, q) - exact), 0.5 + 1e-5) << x << " " << m;
    }
  }
}

TEST(Requant, SaturatesToInt32AndThenToTheActivationRange) {
  const QuantizedMultiplier big = quantize_multiplier(1000.0);
  EXPECT_EQ(multiply_by_quantized_multiplier(std::numeric_limits<int32_t>::max(), big),
            std::numeric_limits<int32_t>::max());
  EXPECT_EQ(multiply_by_quantized_multiplier(std::numeric_limits<int32_t>::min(), big),
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(requantize(std::numeric_limits<int32_t>::max(), big, 100), 127);  // no int32 overflow adding the zero point
  EXPECT_EQ(requantize(std::numeric_limits<int32_t>::min(), big, -100), -128);
}

TEST(Requant, RequantizeClampsToActivationRange) {
  const QuantizedMultiplier q = quantize_multiplier(1.0);
  EXPECT_EQ(requantize(1000, q, 0), 127);
  EXPECT_EQ(requantize(-1000, q, 0), -128);
  EXPECT_EQ(requantize(-5, q, 3, 3, 127), 3);  // fused ReLU: act_min = zero point
}

TEST(Requant, AddMatchesFloat) {
  const AddParams p = make_add_params(0.05, 3, 0.02, -7, 0.06, 1);
  for (int a = -128; a < 128; a += 7)
    for (int b = -128; b < 128; b += 11) {
      const double real = (a - 3) * 0.05 + (b + 7) * 0.02;
      const double expect = std::clamp(std::round(real / 0.06) + 1, -128.0, 127.0);
      EXPECT_NEAR(add_int8(static_cast<int8_t>(a), static_cast<int8_t>(b), p), expect, 1.0) << a << " " << b;
    }
}

TEST(Requant, QuantizeFloatRoundsHalfToEvenAndSaturates) {
  EXPECT_EQ(quantize_float(2.5f, 1.0f, 0), 2);
  EXPECT_EQ(quantize_float(3.5f, 1.0f, 0), 4);
  EXPECT_EQ(quantize_float(1000.0f, 1.0f, 0), 127);
  EXPECT_EQ(quantize_float(-1000.0f, 1.0f, 0), -128);
  EXPECT_EQ(quantize_float(0.0f, 0.1f, -5), -5);
}

// The int32 bias rule: saturate_int32(round_half_to_even(b / scale)), the division in double.
// Mutation testing: rounding ties away from zero and dropping the int32 saturation both survived
// tests/common (only the quantizer's tests reached this function).
TEST(Requant, QuantizeBiasRoundsHalfToEvenAndSaturatesToInt32) {
  EXPECT_EQ(quantize_bias(2.5f, 1.0f), 2);
  EXPECT_EQ(quantize_bias(3.5f, 1.0f), 4);
  EXPECT_EQ(quantize_bias(-2.5f, 1.0f), -2);
  EXPECT_EQ(quantize_bias(0.75f, 0.5f), 2);   // 1.5 -> 2
  EXPECT_EQ(quantize_bias(0.25f, 0.5f), 0);   // 0.5 -> 0
  EXPECT_EQ(quantize_bias(1.0f, 0.1f), 10);   // 1 / 0.1f in double is 9.99999985...: 10, no float rounding first
  EXPECT_EQ(quantize_bias(1e10f, 1.0f), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(quantize_bias(-1e10f, 1.0f), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(quantize_bias(1.0f, 1e-12f), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(quantize_bias(3e9f, 1.0f), std::numeric_limits<int32_t>::max());  // fits int64, not int32
}

// quantize_float rounds without libm; its definition is saturate(nearbyint(x / scale) + zp).
TEST(Requant, QuantizeFloatEqualsNearbyintOnTiesLargeValuesAndRandomFloats) {
  auto by_definition = [](float x, float scale, int32_t zp) {
    const float v = std::nearbyint(x / scale) + static_cast<float>(zp);
    return static_cast<int8_t>(std::clamp(v, -128.0f, 127.0f));
  };
  std::vector<float> xs;
  for (int k = -400; k <= 400; ++k) xs.push_back(static_cast<float>(k) * 0.5f);  // every tie and integer
  for (float p : {0x1p21f, 0x1p22f, 0x1p23f, 0x1p24f, 0x1p30f})
    for (float x : {p, std::nextafter(p, 0.0f), std::nextafter(p, 2 * p), p + 0.5f, p - 0.5f, p + 1.5f})
      xs.push_back(x), xs.push_back(-x);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::denorm_min());
  xs.push_back(-std::numeric_limits<float>::denorm_min());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int i = 0; i < 100000; ++i) xs.push_back(std::ldexp(mantissa(rng), exponent(rng)));
  for (float scale : {1.0f, 0.5f, 0.1f, 0.0078125f, 3.7e-5f, 17.0f})
    for (int32_t zp : {0, -128, 127, 5})
      for (float x : xs) ASSERT_EQ(quantize_float(x, scale, zp), by_definition(x, scale, zp)) << x << " " << scale << " " << zp;
}
