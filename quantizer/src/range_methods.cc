#include "range_methods.h"

#include <cmath>
#include <limits>
#include <array>

#include "anvil/common/requant.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {

constexpr int kAlphaSteps = 256;     // candidate ranges alpha * R0, alpha = k / kAlphaSteps
constexpr int kMinAlphaStep = 16;    // alpha >= 1/16, as TensorRT starts at 128 of 2048 bins
constexpr double kSqnrClipGamma = 3.0;

/// max(|min|, |max|): the half-width of the histogram.
float half_width(const TensorStats& s) { return std::max(std::fabs(s.min), std::fabs(s.max)); }

/// The half-width h of the histogram's grid [-h, h] (>= half_width(s)).
float grid_half_width(const TensorStats& s) { return std::max(s.histogram_half_width, half_width(s)); }

bool has_histogram(const TensorStats& s) {
  return static_cast<int>(s.histogram.size()) == kHistogramBins && half_width(s) > 0.0f;
}

/// The min/max range a method starts from.
Range base_range(const TensorStats& s, bool sym) {
  const Range r = include_zero({s.min, s.max});
  return sym ? symmetric(r) : r;
}

/// The non-empty bins of a histogram (the objectives only ever sum over these).
struct Bins {
  double a = 0.0, width = 0.0;  // half-width of the histogram, bin width
  std::vector<int> index;
  std::vector<float> center;
  std::vector<double> count;
  double total = 0.0;
};

Bins non_empty_bins(const TensorStats& s) {
  Bins b;
  b.a = grid_half_width(s);
  b.width = 2.0 * b.a / kHistogramBins;
  for (int i = 0; i < kHistogramBins; ++i)
    if (s.histogram[i] > 0) {
      b.index.push_back(i);
      b.center.push_back(static_cast<float>(-b.a + (i + 0.5) * b.width));
      b.count.push_back(static_cast<double>(s.histogram[i]));
      b.total += static_cast<double>(s.histogram[i]);
    }
  return b;
}

/// KL(P || Q) for the candidate range, as TensorRT's entropy calibration computes it (and MXNet's
/// and ONNX Runtime's implementations of it). The window is the bins with centre in `cand`:
///  P: the window's counts, the counts below / above it added to its first / last bin (clipping);
///  Q: each int8 level's count inside the window (without the clipped counts) spread evenly over
///     the level's bins where P is non-zero, 0 where P is 0;
///  both smoothed as those implementations do, on COUNTS: every zero bin gets kEps = 1e-4 counts and
///  the non-zero bins give up the same total evenly; then KL of the normalised distributions.
/// (The smoothing is in counts, not in probability: 1e-4 of the total mass per empty bin would
/// penalise a window by the number of empty bins it holds, log(1 + 1e-4 * empty bins), which made
/// sparse histograms such as logits clip hard; see docs/quantization.md.)
double kl_objective(const Bins& b, Range cand, const QuantParams& q) {
  constexpr double kEps = 1e-4;
  const int first = std::max(0, static_cast<int>(std::ceil((cand.min + b.a) / b.width - 0.5)));
  const int last = std::min(kHistogramBins - 1, static_cast<int>(std::floor((cand.max + b.a) / b.width - 0.5)));
  if (first > last) return std::numeric_limits<double>::infinity();
  auto level_at = [&](int bin) {
    const float c = static_cast<float>(-b.a + (bin + 0.5) * b.width);
    return math::quantize_float(c, q.scale, q.zero_point) + 128;
  };
  double below = 0.0, above = 0.0, inside = 0.0;
  std::array<double, 256> level_mass{};  // by int8 level + 128: counts inside the window (no clipped mass)
  std::array<int, 256> level_nonzero{};  // bins of the level where P > 0
  struct PBin { double p; int level; };
  std::vector<PBin> pbins;  // the bins where P > 0
  pbins.reserve(b.index.size() + 2);
  int first_at = -1, last_at = -1;  // positions of bins `first` / `last` in pbins
  for (size_t k = 0; k < b.index.size(); ++k) {
    if (b.index[k] < first) { below += b.count[k]; continue; }
    if (b.index[k] > last) { above += b.count[k]; continue; }
    const int level = math::quantize_float(b.center[k], q.scale, q.zero_point) + 128;
    level_mass[level] += b.count[k];
    inside += b.count[k];
    if (b.index[k] == first) first_at = static_cast<int>(pbins.size());
    if (b.index[k] == last) last_at = static_cast<int>(pbins.size());
    pbins.push_back({b.count[k], level});
  }
  // A window that clips more values than it keeps is not a candidate: TensorRT's P piles the
  // clipped values into the edge bin on the premise that they are outliers. When they are the
  // majority (a tensor far from 0, such as a LayerNorm variance in [0.6, 8] against windows
  // [0, T]), P and Q both collapse to that one edge bin and KL -> 0 (measured on vit:
  // 7999 of 8000 values clipped, KL 0.008 against 0.031 for the full range), so the degenerate
  // window would win. TensorRT, MXNet and ONNX Runtime have the same flaw; they rarely meet it
  // because they calibrate only inputs of Conv/Gemm, which are not such tensors.
  if (inside == 0.0 || below + above > inside) return std::numeric_limits<double>::infinity();
  if (below > 0) {
    if (first_at >= 0) pbins[first_at].p += below; else pbins.push_back({below, level_at(first)});
  }
  if (above > 0) {
    if (last_at >= 0) pbins[last_at].p += above; else pbins.push_back({above, level_at(last)});
  }
  for (const PBin& pb : pbins) ++level_nonzero[pb.level];
  const int window = last - first + 1;
  const int p_nonzero = static_cast<int>(pbins.size()), p_zero = window - p_nonzero;
  int q_nonzero = 0;
  for (const PBin& pb : pbins) q_nonzero += level_mass[pb.level] > 0.0;
  const int q_zero = window - q_nonzero;
  const double total = below + inside + above;  // sum of P (smoothing keeps it); sum of Q = inside
  const double p_take = kEps * p_zero / p_nonzero, q_take = kEps * q_zero / q_nonzero;
  // Bins where P = 0 also have Q = 0: both are smoothed to kEps counts.
  double kl = p_zero * (kEps / total) * std::log(inside / total);
  for (const PBin& pb : pbins) {
    const double p = (pb.p - p_take) / total;
    const double qv = level_mass[pb.level] > 0.0
                          ? std::max(level_mass[pb.level] / level_nonzero[pb.level] - q_take, kEps) / inside
                          : kEps / inside;
    kl += p * std::log(p / qv);
  }
  return kl;
}

double objective_value(const Bins& b, Range cand, bool sym, Objective obj) {
  const QuantParams q = activation_params(cand, sym);
  if (obj == Objective::kEntropy) return kl_objective(b, cand, q);
  double noise = 0.0;
  for (size_t k = 0; k < b.index.size(); ++k) {
    const float c = b.center[k];
    const double d = c - math::dequantize(math::quantize_float(c, q.scale, q.zero_point), q.scale, q.zero_point);
    const bool clipped = c < cand.min || c > cand.max;
    noise += b.count[k] * d * d * (obj == Objective::kSqnr && clipped ? kSqnrClipGamma : 1.0);
  }
  return noise;  // SQNR's signal power is the same for every candidate: max SQNR = min noise
}

}  // namespace

Range percentile_range(const TensorStats& s, float percentile, bool sym) {
  if (!has_histogram(s)) return base_range(s, sym);
  const double a = grid_half_width(s), w = 2.0 * a / kHistogramBins;
  const int half = kHistogramBins / 2;
  double total = 0.0;
  for (int64_t n : s.histogram) total += static_cast<double>(n);
  if (sym) {
    const double target = percentile / 100.0 * total;
    double cum = 0.0;
    int j = 0;
    for (; j < half; ++j) {
      cum += static_cast<double>(s.histogram[half + j] + s.histogram[half - 1 - j]);
      if (cum >= target) break;
    }
    const float t = static_cast<float>(std::min<double>((std::min(j, half - 1) + 1) * w, half_width(s)));
    return s.min >= 0.0f ? Range{0.0f, std::min(t, s.max)} : Range{-t, t};
  }
  const double cut = (100.0 - percentile) / 200.0 * total;
  int lo = 0, hi = kHistogramBins - 1;
  for (double cum = 0.0; lo < kHistogramBins - 1; ++lo)
    if ((cum += static_cast<double>(s.histogram[lo])) > cut) break;
  for (double cum = 0.0; hi > 0; --hi)
    if ((cum += static_cast<double>(s.histogram[hi])) > cut) break;
  const Range r{std::max(static_cast<float>(-a + lo * w), s.min), std::min(static_cast<float>(-a + (hi + 1) * w), s.max)};
  return include_zero(r);
}

Range search_range(const TensorStats& s, Objective objective, bool sym) {
  const Range r0 = base_range(s, sym);
  if (!has_histogram(s)) return r0;
  const Bins bins = non_empty_bins(s);
  Range best = r0;
  double best_value = std::numeric_limits<double>::infinity();
  // Scales the ends selected by `lo`/`hi` of r0 by k / kAlphaSteps, the others stay as in `best`.
  auto sweep = [&](bool lo, bool hi) {
    const Range start = best;
    for (int k = kMinAlphaStep; k <= kAlphaSteps; ++k) {
      const float alpha = static_cast<float>(k) / kAlphaSteps;
      const Range cand{lo ? alpha * r0.min : start.min, hi ? alpha * r0.max : start.max};
      const double v = objective_value(bins, cand, sym, objective);
      if (v < best_value) best_value = v, best = cand;
    }
  };
  sweep(true, true);
  if (!sym)  // ASYM: then each end on its own (coordinate descent, two rounds)
    for (int round = 0; round < 2; ++round) sweep(true, false), sweep(false, true);
  return best;
}

}  // namespace anvil::quant
