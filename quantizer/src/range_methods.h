#pragma once
/// Range selection from a tensor's histogram: the PERCENTILE, ENTROPY, MSE and SQNR methods.
///
/// The histogram (TensorStats::histogram) has kHistogramBins bins over [-h, h], h =
/// histogram_half_width >= max(|min|, |max|) (see histogram.h); each bin is represented by its
/// centre c_i and count n_i.
///
/// ENTROPY, MSE and SQNR search the clipping range R = alpha * R0 for alpha = k / 256, k = 16..256,
/// where R0 is the min/max range (ASYM: [min, max] with 0; SYM: [-a, a], or [0, max] for a
/// non-negative tensor). For each candidate the int8 grid is the one quantize() will emit
/// (activation_params), q(c) = DequantizeLinear(QuantizeLinear(c)), and:
///   MSE:     minimise  sum_i n_i (c_i - q(c_i))^2
///   SQNR:    maximise  sum_i n_i c_i^2 / N  with noise
///            N = sum_{c_i in R} n_i (c_i - q(c_i))^2 + gamma * sum_{c_i outside R} n_i (c_i - q(c_i))^2,
///            gamma = 3 (clipping noise weighted as in AIMET's SQNR encoding analyzer), so SQNR keeps
///            wider ranges than MSE when outliers matter;
///   ENTROPY: minimise KL(P || Q) (TensorRT's calibration) over the bins with centre in R:
///            P = those bins' counts, the mass outside R added to the nearest edge bin; Q = the same
///            bins' counts without that mass, each int8 level's total spread evenly over the level's
///            non-empty bins where P is non-zero; both smoothed in counts (1e-4 per empty bin);
///            windows that clip more values than they keep are not candidates (kl_objective in
///            range_methods.cc says why).
/// ASYM then refines each end on its own (alpha_lo * R0.min with the max fixed, alpha_hi * R0.max
/// with the min fixed; two rounds), since a tensor's two tails need not be alike. The first
/// (smallest) candidate reaching the optimum wins.
#include "anvil/quantizer/quantizer.h"

namespace anvil::quant {

/// PERCENTILE: ASYM keeps the central `percentile` % of the values ((100 - p) / 2 % cut from each
/// tail, ONNX Runtime's rule); SYM takes the `percentile` % point t of |x|: [-t, t], or [0, t] for a
/// non-negative tensor. Results are bin edges, clamped to [min, max], and contain 0.
Range percentile_range(const TensorStats& s, float percentile, bool symmetric);

enum class Objective { kEntropy, kMse, kSqnr };
/// ENTROPY / MSE / SQNR range (see the top of this file).
Range search_range(const TensorStats& s, Objective objective, bool symmetric);

/// The value search_range minimises for the candidate `cand` (a histogram is required): computed
/// bin by bin (the definition above) or from prefix sums over the histogram (the search's path;
/// range_methods.cc FastObjective). objective_fast throws kInvalidArgument when the grid is not
/// the one histogram.h builds (power-of-two bin width), where the search takes the direct path.
/// Exposed so that tests can compare the two.
double objective_direct(const TensorStats& s, Range cand, bool sym, Objective objective);
double objective_fast(const TensorStats& s, Range cand, bool sym, Objective objective);

}  // namespace anvil::quant
