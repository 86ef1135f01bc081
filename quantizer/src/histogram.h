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

/// Adds `n` finite values to `s` (min, max, count, histogram, histogram_half_width).
/// Values equal to 0 seen while the tensor is still all zero are counted and placed in the bin
/// above 0 once the histogram exists. The caller checks finiteness.
void accumulate(TensorStats& s, const float* values, int64_t n);

/// True when no value is NaN or +-Inf.
bool all_finite(const float* values, int64_t n);

/// Adds a [batch, channels, inner] block of values to s.channel_mean / s.channel_samples (a running
/// mean per channel, in double). When axis 1 changes size between batches it is not a channel axis
/// (e.g. the batch moved there by a Transpose): the means are dropped and channel_samples set to -1,
/// so later batches add nothing.
void accumulate_channel_means(TensorStats& s, const float* values, int64_t batch, int64_t channels, int64_t inner);

}  // namespace anvil::quant
