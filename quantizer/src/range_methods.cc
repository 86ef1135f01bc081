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

/// KL(P || Q) for the candidate range: the window is the bins with centre in `cand`.
/// Q's empty bins get kEps each and Q is renormalised (the smoothing idea of TensorRT's and
/// ONNX Runtime's entropy calibrators, in a form that keeps every bin positive), so an edge bin
/// holding only clipped mass gives a finite divergence.
double kl_objective(const Bins& b, Range cand, const QuantParams& q) {
  constexpr double kEps = 1e-4;
  const int first = std::max(0, static_cast<int>(std::ceil((cand.min + b.a) / b.width - 0.5)));
  const int last = std::min(kHistogramBins - 1, static_cast<int>(std::floor((cand.max + b.a) / b.width - 0.5)));
  if (first > last) return std::numeric_limits<double>::infinity();
  double below = 0.0, above = 0.0, inside = 0.0;
  int non_empty = 0;
  std::array<double, 256> level_mass{};  // by int8 level + 128
  std::array<int, 256> level_bins{};
  std::vector<int> level_of(b.index.size(), -1);
  for (size_t k = 0; k < b.index.size(); ++k) {
    if (b.index[k] < first) { below += b.count[k]; continue; }
    if (b.index[k] > last) { above += b.count[k]; continue; }
    level_of[k] = math::quantize_float(b.center[k], q.scale, q.zero_point) + 128;
    level_mass[level_of[k]] += b.count[k];
    ++level_bins[level_of[k]];
    inside += b.count[k];
    ++non_empty;
  }
  if (non_empty == 0) return std::numeric_limits<double>::infinity();
  const int zeros = (last - first + 1) - non_empty;
  const double norm = 1.0 + kEps * zeros;
  double kl = 0.0;
  bool first_seen = false, last_seen = false;
  for (size_t k = 0; k < b.index.size(); ++k) {
    if (level_of[k] < 0) continue;
    double p = b.count[k];
    if (b.index[k] == first) p += below, first_seen = true;
    if (b.index[k] == last) p += above, last_seen = true;
    const double qk = level_mass[level_of[k]] / level_bins[level_of[k]] / inside / norm;
    kl += (p / b.total) * std::log((p / b.total) / qk);
  }
  // Empty edge bins that only hold clipped mass: Q = kEps there.
  if (!first_seen && below > 0) kl += (below / b.total) * std::log((below / b.total) / (kEps / norm));
  if (!last_seen && above > 0) kl += (above / b.total) * std::log((above / b.total) / (kEps / norm));
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
