// math::mul_int8 and math::sub_int8 over every int8 pair, against double-precision arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "anvil/common/requant.h"

using namespace anvil;

namespace {

struct Scales {
  double a, b, out;
  int32_t a_zp, b_zp, out_zp;
};

/// The real result clamp(round(x) + out_zp) of an exact real x (ties to even), as a
/// double so that a test can measure how far an int8 result is from it.
int32_t reference(double x, int32_t out_zp, int32_t lo, int32_t hi) {
  const double r = std::nearbyint(x) + out_zp;  // default rounding mode: ties to even, requant.h's rule
  return static_cast<int32_t>(std::clamp(r, static_cast<double>(lo), static_cast<double>(hi)));
}

}  // namespace

// requantize rounds the exact integer product once, but M carries a 31-bit mantissa (and the
// double real here is not exact either), so a result may differ from the exactly rounded real by
// one unit where the real lies on or within about 1e-6 of a rounding boundary (with these scales
// many products are real ties, e.g. 125 * 0.012 = 1.5); everywhere else it is exact.
TEST(RequantBinary, MulInt8IsWithinOneUnitOfTheRealProductForEveryPair) {
  const Scales cases[] = {
      {0.02, 0.03, 0.05, 0, 0, 0},        // M = 0.012
      {0.1, 0.2, 0.01, -5, 17, 3},        // M = 2: a left shift
      {0.0123, 0.0456, 0.0789, 127, -128, -128},
      {1.0 / 256, 0.05, 0.004, -128, 3, 10},  // a sigmoid-like operand
  };
  for (const Scales& s : cases) {
    const math::MulParams p = math::make_mul_params(s.a, s.a_zp, s.b, s.b_zp, s.out, s.out_zp, -120, 125);
    int64_t off_boundary = 0;
    for (int a = -128; a <= 127; ++a)
      for (int b = -128; b <= 127; ++b) {
        const double real = static_cast<double>(a - s.a_zp) * (b - s.b_zp) * s.a * s.b / s.out;
        const int32_t want = reference(real, s.out_zp, -120, 125);
        const int32_t got = math::mul_int8(static_cast<int8_t>(a), static_cast<int8_t>(b), p);
        ASSERT_LE(std::abs(got - want), 1) << "a=" << a << " b=" << b << " M=" << s.a * s.b / s.out;
        if (std::abs(std::abs(real - std::trunc(real)) - 0.5) > 1e-6) {
          ASSERT_EQ(got, want) << "a=" << a << " b=" << b << " M=" << s.a * s.b / s.out;
          ++off_boundary;
        }
      }
    EXPECT_GT(off_boundary, 65536 * 9 / 10) << "M=" << s.a * s.b / s.out;
  }
}

TEST(RequantBinary, MulInt8FusesTheClampAndZeroMultiplier) {
  const math::MulParams relu = math::make_mul_params(0.1, 0, 0.1, 0, 0.01, -7, -7, 127);
  EXPECT_EQ(math::mul_int8(-10, 10, relu), -7);   // -100 * 0.01 / 0.01 + zp = -107, clamped at zp
  EXPECT_EQ(math::mul_int8(3, 4, relu), 12 - 7);  // 12 * 1.0 - 7
  const math::MulParams zero = math::make_mul_params(0.0, 0, 0.1, 0, 0.1, 5);
  EXPECT_EQ(math::mul_int8(100, 100, zero), 5);
}

// a - b is a + (-b): with AddParams of the same scales, sub_int8(a, b) equals add_int8(a, b') for
// the b' whose distance to the zero point is negated, wherever that b' is an int8.
TEST(RequantBinary, SubInt8IsAddOfTheNegatedOperandForEveryPair) {
  const Scales s{0.03, 0.05, 0.07, 4, -9, 2};
  const math::AddParams p = math::make_add_params(s.a, s.a_zp, s.b, s.b_zp, s.out, s.out_zp, -128, 127);
  int64_t exact = 0, checked = 0;
  for (int a = -128; a <= 127; ++a)
    for (int b = -128; b <= 127; ++b) {
      const int8_t x = static_cast<int8_t>(a), y = static_cast<int8_t>(b);
      const int32_t got = math::sub_int8(x, y, p);
      const int negated = 2 * s.b_zp - b;
      if (negated >= -128 && negated <= 127) {
        ASSERT_EQ(got, math::add_int8(x, static_cast<int8_t>(negated), p)) << a << " " << b;
        ++checked;
      }
      const double real = ((a - s.a_zp) * s.a - (b - s.b_zp) * s.b) / s.out;
      const int32_t want = reference(real, s.out_zp, -128, 127);
      ASSERT_LE(std::abs(got - want), 1) << a << " " << b;
      exact += got == want;
    }
  EXPECT_GT(checked, 60000);
  EXPECT_GT(exact, 65536 * 99 / 100);
}
