// fast_exp_nonpositive (Softmax's exponential) against libm's expf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../../reference/src/fast_exp.h"

namespace {

int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(static_cast<int64_t>(ia) - ib);
}

}  // namespace

TEST(FastExp, WithinTwoUlpOfLibmOnADenseGrid) {
  int64_t worst = 0;
  float worst_x = 0;
  for (float x = 0.0f; x >= -87.33f; x = std::nextafter(x - 1e-4f * (1.0f - x), -100.0f)) {
    const int64_t d = ulp_distance(anvil::ref::fast_exp_nonpositive(x), std::exp(x));
    if (d > worst) worst = d, worst_x = x;
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
  EXPECT_EQ(anvil::ref::fast_exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(anvil::ref::fast_exp_nonpositive(-0.0f), 1.0f);
}

TEST(FastExp, EdgesFlushToZeroAndNanPropagates) {
  EXPECT_EQ(anvil::ref::fast_exp_nonpositive(-88.0f), 0.0f);
  EXPECT_EQ(anvil::ref::fast_exp_nonpositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isnan(anvil::ref::fast_exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_GT(anvil::ref::fast_exp_nonpositive(-87.3f), 0.0f);
}
