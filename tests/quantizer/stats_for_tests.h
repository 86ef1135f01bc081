#pragma once
/// Field-by-field equality of two calibration statistics, for tests that record the same values two
/// ways (fused or separate reads, in the observer or beside the model) and expect the same bits.
#include <gtest/gtest.h>

#include "anvil/quantizer/quantizer.h"

namespace anvil::quant::test {

inline void expect_same_statistics(const TensorStats& got, const TensorStats& want) {
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  EXPECT_EQ(got.histogram_half_width, want.histogram_half_width);
  EXPECT_EQ(got.histogram, want.histogram);
  EXPECT_EQ(got.channel_axis, want.channel_axis);
  EXPECT_EQ(got.channel_samples, want.channel_samples);
  EXPECT_EQ(got.channel_mean, want.channel_mean);  // bit for bit: the same sums in the same order
}

}  // namespace anvil::quant::test
