// math::softmax_row (the integer softmax of common/requant.h) against the softmax evaluated in
// double and quantized exactly: within one output step everywhere, equal on most elements.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "anvil/common/requant.h"

using namespace anvil;

namespace {

/// round_half_even(p / out_scale) + out_zp, saturated: QuantizeLinear of the exact softmax.
std::vector<int> exact_softmax(const std::vector<int8_t>& x, double in_scale, double out_scale, int out_zp) {
  int max = -128;
  for (int8_t v : x) max = std::max<int>(max, v);
  double sum = 0;
  for (int8_t v : x) sum += std::exp(-in_scale * (max - v));
  std::vector<int> q;
  for (int8_t v : x) {
    const double p = std::exp(-in_scale * (max - v)) / sum;
    q.push_back(static_cast<int>(std::clamp(std::nearbyint(p / out_scale) + out_zp, -128.0, 127.0)));
  }
  return q;
}

struct Agreement {
  int max_diff = 0;
  int64_t equal = 0, total = 0;
};

void accumulate(Agreement& a, const std::vector<int8_t>& x, double in_scale, double out_scale, int out_zp) {
  std::vector<int8_t> y(x.size());
  math::softmax_row(x.data(), y.data(), static_cast<int64_t>(x.size()), 1, math::make_softmax_table(in_scale),
                    math::softmax_output_multiplier(out_scale), out_zp);
  const std::vector<int> want = exact_softmax(x, in_scale, out_scale, out_zp);
  for (size_t i = 0; i < x.size(); ++i) {
    const int d = std::abs(y[i] - want[i]);
    a.max_diff = std::max(a.max_diff, d);
    a.equal += d == 0;
    ++a.total;
  }
}

std::vector<int8_t> random_row(std::mt19937& rng, int64_t n, int lo = -128, int hi = 127) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> x(static_cast<size_t>(n));
  for (int8_t& v : x) v = static_cast<int8_t>(dist(rng));
  return x;
}

}  // namespace

TEST(IntegerSoftmax, TableIsTheRoundedExponentialInQ30) {
  const math::SoftmaxTable t = math::make_softmax_table(0.05);
  EXPECT_EQ(t[0], 1 << 30);
  for (int d = 0; d < 256; ++d) EXPECT_EQ(t[d], std::llround(std::exp(-0.05 * d) * (1 << 30))) << d;
  // A wide scale underflows to 0 after entry 0; the row sum stays >= 2^30.
  EXPECT_EQ(math::make_softmax_table(100.0)[1], 0);
}

TEST(IntegerSoftmax, AllEqualRowsAreUniform) {
  for (int n : {1, 2, 4, 8, 64, 256}) {
    std::vector<int8_t> x(n, 17), y(n);
    math::softmax_row(x.data(), y.data(), n, 1, math::make_softmax_table(0.1), math::softmax_output_multiplier(1.0 / 256),
                      -128);
    // p = 1/n exactly: 256/n steps above -128 (n = 1: 256 saturates at 127).
    for (int8_t v : y) EXPECT_EQ(v, std::min(127, 256 / n - 128)) << "n = " << n;
  }
}

TEST(IntegerSoftmax, OneDominantElementTakesEverything) {
  std::vector<int8_t> x(100, -128), y(100);
  x[37] = 127;
  math::softmax_row(x.data(), y.data(), 100, 1, math::make_softmax_table(0.1), math::softmax_output_multiplier(1.0 / 256),
                    -128);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(y[i], i == 37 ? 127 : -128) << i;
}

TEST(IntegerSoftmax, RandomRowsWithinOneStepOfTheExactSoftmaxAndMostlyEqual) {
  std::mt19937 rng(5);
  Agreement a;
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t n = std::uniform_int_distribution<int64_t>(1, 80)(rng);
    const double in_scale = 0.002 + 0.2 * std::uniform_real_distribution<double>(0, 1)(rng);
    accumulate(a, random_row(rng, n), in_scale, 1.0 / 256, -128);
  }
  EXPECT_LE(a.max_diff, 1);
  EXPECT_GT(static_cast<double>(a.equal) / a.total, 0.99) << a.equal << " of " << a.total;
  // Other output parameters (ONNX Runtime's QDQ models choose their own).
  Agreement b;
  for (int trial = 0; trial < 200; ++trial)
    accumulate(b, random_row(rng, 33), 0.07, 0.0021, std::uniform_int_distribution<int>(-128, 0)(rng));
  EXPECT_LE(b.max_diff, 1);
  EXPECT_GT(static_cast<double>(b.equal) / b.total, 0.99) << b.equal << " of " << b.total;
}

TEST(IntegerSoftmax, LongRowsDoNotOverflowAndStayWithinOneStep) {
  std::mt19937 rng(6);
  Agreement a;
  // 100 000 elements near the maximum: the sum of exponentials is ~2^46, in int64.
  accumulate(a, random_row(rng, 100000, 120, 127), 0.01, 1.0 / 256, -128);
  // One large element among many small ones, at the quantizer's scale and at a fine scale.
  std::vector<int8_t> x = random_row(rng, 5000, -128, 0);
  x[4321] = 127;
  accumulate(a, x, 0.05, 1.0 / 256, -128);
  accumulate(a, x, 0.05, 1e-5, -128);
  EXPECT_LE(a.max_diff, 1);
  EXPECT_GT(static_cast<double>(a.equal) / a.total, 0.99);
}

TEST(IntegerSoftmax, StridedRowsAndInPlace) {
  // A row with stride 3 (an axis that is not the innermost) equals the same row packed, and the
  // output may overwrite the input.
  std::mt19937 rng(7);
  const std::vector<int8_t> row = random_row(rng, 11);
  std::vector<int8_t> strided(33, 99), packed(11);
  for (int i = 0; i < 11; ++i) strided[3 * i + 1] = row[i];
  const auto table = math::make_softmax_table(0.04);
  const auto out = math::softmax_output_multiplier(1.0 / 256);
  math::softmax_row(row.data(), packed.data(), 11, 1, table, out, -128);
  math::softmax_row(strided.data() + 1, strided.data() + 1, 11, 3, table, out, -128);
  for (int i = 0; i < 11; ++i) {
    EXPECT_EQ(strided[3 * i + 1], packed[i]);
    EXPECT_EQ(strided[3 * i], 99);  // untouched
  }
}
