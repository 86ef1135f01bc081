#pragma once
/// The one-pass histogram behind TensorStats: values are binned as they arrive, and the grid grows
/// when a later batch widens the range, without re-reading earlier batches and without losing counts.
///
/// Grid: kHistogramBins bins of width w = 2^e over [-h, h], h = (kHistogramBins / 2) * w, 0 on the
/// edge between the two middle bins; h is the smallest such half-width strictly above every |x|
/// seen. Growing doubles w: old bins 2k and 2k+1 ... are merged pairwise into new bin
/// kHistogramBins/4 + k (the old edges are new edges, so no count moves across a value). Because
/// h < 2 max|x|, the final range [-max|x|, max|x|] always spans more than kHistogramBins / 2 bins.
#include <cstdint>

#include "anvil/quantizer/quantizer.h"

namespace anvil::quant {

/// What one read of a tensor's values tells: whether all are finite, and (then) their min and max.
struct ValueSummary {
  bool finite = true;  // no NaN, no +-Inf
  float min = 0.0f, max = 0.0f;
};

/// Finiteness, min and max of `n` > 0 values in one vectorised, parallel pass (deterministic: min,
/// max and "all finite" do not depend on the order blocks are merged in).
ValueSummary summarize(const float* values, int64_t n);

/// Adds `n` finite values to `s` (min, max, count, histogram, histogram_half_width), given their
/// summarize() result (the values are then read once more, to bin them).
/// Values equal to 0 seen while the tensor is still all zero are counted and placed in the bin
/// above 0 once the histogram exists.
void accumulate(TensorStats& s, const float* values, int64_t n, const ValueSummary& summary);

/// accumulate() after summarize(); the caller checks finiteness.
void accumulate(TensorStats& s, const float* values, int64_t n);

/// The [batch, channels, inner] view of a tensor of rank >= 2 (channels = axis 1).
struct ChannelLayout {
  int64_t batch = 0, channels = 0, inner = 0;
};

/// accumulate() and accumulate_channel_means() with one read of the batch * channels * inner
/// values: each channel's rows are binned and summed while in cache, the sums in the order
/// accumulate_channel_means takes, so the statistics equal those of the two calls.
void accumulate(TensorStats& s, const float* values, const ValueSummary& summary, const ChannelLayout& layout);

/// accumulate() of a [rows, channels] view, and the running mean of each channel of its last axis
/// (TensorStats::channel_axis -1, what bias correction reads for a MatMul's input): each channel's
/// sum in double, over the rows in order, so the means do not depend on threads.
void accumulate_last_axis(TensorStats& s, const float* values, const ValueSummary& summary, int64_t rows,
                          int64_t channels);

/// The sum of n floats in double, in a fixed order (eight interleaved lanes): one row of a channel.
double row_sum(const float* values, int64_t n);

/// accumulate_channel_means() from the row sums it would take: row_sums[b * channels + c] =
/// row_sum() of image b's `inner` values of channel c. The same means, bit for bit, so a caller
/// that sees a batch in parts (RunOptions::observe_part) can keep the rows and add them in order.
void add_channel_row_sums(TensorStats& s, const double* row_sums, int64_t batch, int64_t channels, int64_t inner);

/// Adds a [batch, channels, inner] block of values to s.channel_mean / s.channel_samples (a running
/// mean per channel, in double). When axis 1 changes size between batches it is not a channel axis
/// (e.g. the batch moved there by a Transpose): the means are dropped and channel_samples set to -1,
/// so later batches add nothing.
void accumulate_channel_means(TensorStats& s, const float* values, int64_t batch, int64_t channels, int64_t inner);

}  // namespace anvil::quant
