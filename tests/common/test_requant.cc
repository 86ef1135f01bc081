#include <gtest/gtest.h>

#include <cmath>
#include <random>

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

TEST(Requant, RoundingDivideRoundsHalfAwayFromZero) {
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);    // 2.5 -> 3
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);  // -2.5 -> -3
  EXPECT_EQ(rounding_divide_by_pot(7, 2), 2);    // 1.75 -> 2
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);  // -1.5 -> -2
  EXPECT_EQ(rounding_divide_by_pot(6, 2), 2);    // 1.5 -> 2
}

TEST(Requant, MatchesFloatWithinOneUnit) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> acc(-(1 << 20), 1 << 20);
  for (double m : {0.0123, 0.5, 0.00071, 0.8}) {
    const QuantizedMultiplier q = quantize_multiplier(m);
    for (int i = 0; i < 10000; ++i) {
      const int32_t x = acc(rng);
      const double exact = x * m;
      EXPECT_LT(std::abs(multiply_by_quantized_multiplier(x, q) - exact), 1.0) << x << " " << m;
    }
  }
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
