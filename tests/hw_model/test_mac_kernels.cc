// The MAC array's and vector engine's host kernels against plain integer loops and the
// requant.h functions, at the operand extremes where a float GEMM without exact chunks or a
// 16-bit intermediate would go wrong.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "int8_gemm.h"
#include "requant_rows.h"

namespace anvil::hw {
namespace {

/// acc += A * B with int64 sums (checked to fit int32), the definition the kernel must meet.
std::vector<int32_t> naive(int64_t m, int64_t n, int64_t k, const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<int32_t> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t r = 0; r < k; ++r) s += static_cast<int64_t>(a[i * k + r]) * static_cast<int64_t>(b[r * n + j]);
      EXPECT_LE(std::llabs(s), int64_t{INT32_MAX});
      c[i * n + j] = static_cast<int32_t>(s);
    }
  return c;
}

TEST(MacKernels, GemmIsExactAtTheOperandExtremes) {
  std::mt19937 rng(3);
  // Shapes: one chunk, several uneven chunks (K = 4608, a 3x3x512 conv), a split by columns and
  // a split by rows, and a single output.
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape s : {Shape{8, 16, 100}, Shape{64, 49, 4608}, Shape{16, 3000, 1152}, Shape{700, 5, 2048},
                        Shape{1, 1, 4608}}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<float> a(static_cast<size_t>(s.m * s.k)), b(static_cast<size_t>(s.k * s.n));
      // 0: all products +32640 (the largest sums); 1: -128 x 255 and 127 x -255 mixed; 2: random.
      for (size_t i = 0; i < a.size(); ++i)
        a[i] = pattern == 0 ? -128.0f : pattern == 1 ? (rng() & 1 ? -128.0f : 127.0f) : static_cast<float>(int(rng() % 257) - 128);
      for (size_t i = 0; i < b.size(); ++i)
        b[i] = pattern == 0 ? -255.0f : pattern == 1 ? (rng() & 1 ? 255.0f : -255.0f) : static_cast<float>(int(rng() % 511) - 255);
      std::vector<int32_t> acc(static_cast<size_t>(s.m * s.n), 17);  // accumulates onto what is there
      GemmScratch scratch;
      int8_range_gemm_accumulate(s.m, s.n, s.k, a.data(), s.k, b.data(), s.n, acc.data(), scratch);
      std::vector<int32_t> want = naive(s.m, s.n, s.k, a, b);
      for (auto& w : want) w += 17;
      EXPECT_EQ(acc, want) << s.m << "x" << s.n << "x" << s.k << " pattern " << pattern;
    }
  }
}

TEST(MacKernels, RowLoopsEqualTheRequantFunctions) {
  std::mt19937 rng(5);
  std::vector<int32_t> acc(10007);
  for (auto& v : acc) v = static_cast<int32_t>(rng());
  acc[0] = INT32_MIN, acc[1] = INT32_MAX, acc[2] = 0, acc[3] = -1;
  std::vector<int8_t> got(acc.size());
  for (double m : {1e-9, 0.0003, 0.49, 0.5, 0.999, 1.0, 3.7, 1000.0}) {
    const math::QuantizedMultiplier q = math::quantize_multiplier(m);
    for (auto [zp, lo, hi] : {std::tuple{0, -128, 127}, std::tuple{-7, -7, 127}, std::tuple{100, -50, 90}}) {
      requantize_row(acc.data(), got.data(), static_cast<int64_t>(acc.size()), q, zp, lo, hi);
      for (size_t i = 0; i < acc.size(); ++i)
        ASSERT_EQ(got[i], math::requantize(acc[i], q, zp, lo, hi)) << "multiplier " << m << " element " << i;
    }
  }
  // add_int8 over every pair of int8 values, for a few scale/zero-point combinations.
  std::vector<int8_t> a(65536), b(65536), out(65536);
  for (int i = 0; i < 65536; ++i) a[i] = static_cast<int8_t>(i >> 8), b[i] = static_cast<int8_t>(i & 255);
  for (auto [sa, za, sb, zb, so, zo] : {std::tuple{0.05, -3, 0.04, 5, 0.07, 2}, std::tuple{0.5, 127, 0.001, -128, 0.2, 0},
                                        std::tuple{1.0, 0, 1.0, 0, 1.0, 0}}) {
    const math::AddParams p = math::make_add_params(sa, za, sb, zb, so, zo, -100, 127);
    add_int8_row(a.data(), b.data(), out.data(), 65536, p);
    for (int i = 0; i < 65536; ++i) ASSERT_EQ(out[i], math::add_int8(a[i], b[i], p)) << i;
  }
}

}  // namespace
}  // namespace anvil::hw
