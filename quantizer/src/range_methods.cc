#include "range_methods.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

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
    // In double: c - q(c) rounded to float lost up to 2^-24 of a clipped bin's error.
    const double d = static_cast<double>(c) -
                     math::dequantize(math::quantize_float(c, q.scale, q.zero_point), q.scale, q.zero_point);
    const bool clipped = c < cand.min || c > cand.max;
    noise += b.count[k] * d * d * (obj == Objective::kSqnr && clipped ? kSqnrClipGamma : 1.0);
  }
  return noise;  // SQNR's signal power is the same for every candidate: max SQNR = min noise
}


/// Prefix sums over all kHistogramBins bins, so that a candidate's objective costs O(segments)
/// (at most 256 int8 levels, two quantize_float calls each) instead of a quantize_float (and a
/// log for ENTROPY) per non-empty bin. Counts and index moments are exact int64 sums; the
/// ENTROPY terms are double prefix sums.
///
/// MSE / SQNR: the bins of one int8 level l form a contiguous run [i0, i1) (quantize_float is
/// monotone in c), with centres c_i = c_i0 + j w, j = i - i0, and the same dequantized value v_l:
///   sum_i n_i (c_i - v_l)^2 = N0 d^2 + 2 d w J1 + w^2 J2,  d = c_i0 - v_l,
/// N0 = sum n_i, J1 = sum n_i j, J2 = sum n_i j^2 (exact integers from the prefix sums).
/// ENTROPY: sum over the window's non-empty bins of (n - t) log(n - t), t = the smoothing taken
/// from each (p_take), expands as
///   sum n log n - t (sum log n + #bins) + sum_{k>=2} t^k / (k (k-1)) sum n^(1-k),
/// kept to kSeriesTerms terms, used when t <= kMaxSeriesTake (the omitted terms are then below
/// kMaxSeriesTake^(kSeriesTerms+1) per bin, < 1e-18); larger t takes the bin-by-bin kl_objective.
class FastObjective {
 public:
  static constexpr int kSeriesTerms = 8;
  static constexpr double kMaxSeriesTake = 0.01;
  /// for_each_level's distance from a level boundary, in int8 steps, within which it asks
  /// quantize_float which side a bin centre falls on.
  static constexpr double kTieMargin = 0x1p-10;

  /// Valid when every bin centre is exact in float (a power-of-two bin width and h = kHalf * w,
  /// as histogram.h builds the grid); otherwise usable() is false.
  explicit FastObjective(const Bins& b, const TensorStats& s) : b_(b), s_(s) {
    int exp = 0;
    usable_ = std::frexp(b.width, &exp) == 0.5 && b.a == (kHistogramBins / 2) * b.width;
    if (!usable_) return;
    inv_width_ = 1.0 / b.width;  // a power of two: x * inv_width_ is x / width, exactly
    const size_t n = kHistogramBins + 1;
    count_.assign(n, 0), moment1_.assign(n, 0), moment2_.assign(n, 0), nonempty_.assign(n, 0);
    n_log_n_.assign(n, 0.0), log_n_.assign(n, 0.0);
    inv_pow_.assign(kSeriesTerms, std::vector<double>(n, 0.0));
    for (int i = 0; i < kHistogramBins; ++i) {
      const int64_t c = s.histogram[i];
      count_[i + 1] = count_[i] + c;
      moment1_[i + 1] = moment1_[i] + c * i;
      moment2_[i + 1] = moment2_[i] + c * i * i;
      nonempty_[i + 1] = nonempty_[i] + (c > 0);
      const double x = static_cast<double>(c);
      n_log_n_[i + 1] = n_log_n_[i] + (c > 0 ? x * std::log(x) : 0.0);
      log_n_[i + 1] = log_n_[i] + (c > 0 ? std::log(x) : 0.0);
      double inv = 1.0;
      for (int k = 1; k < kSeriesTerms; ++k) {
        if (c > 0) inv /= x;
        inv_pow_[k][i + 1] = inv_pow_[k][i] + (c > 0 ? inv : 0.0);
      }
    }
    lo_ = b.index.empty() ? 0 : b.index.front();
    hi_ = b.index.empty() ? 0 : b.index.back() + 1;
  }

  bool usable() const { return usable_; }

  double value(Range cand, bool sym, Objective obj) const {
    const QuantParams q = activation_params(cand, sym);
    if (obj == Objective::kEntropy) return kl(cand, q);
    // Bins with centre below cand.min / above cand.max (SQNR weighs their noise by gamma).
    const int clip_lo = first_at_or_above(cand.min), clip_hi = first_above(cand.max);
    double noise = 0.0;
    for_each_level(lo_, hi_, q, [&](int i0, int i1, int level) {
      const double v = math::dequantize(level, q.scale, q.zero_point);
      const int cuts[4] = {i0, std::clamp(clip_lo, i0, i1), std::clamp(clip_hi, i0, i1), i1};
      for (int part = 0; part < 3; ++part) {
        if (cuts[part] >= cuts[part + 1]) continue;
        const double gamma = obj == Objective::kSqnr && part != 1 ? kSqnrClipGamma : 1.0;
        noise += gamma * squared_error(cuts[part], cuts[part + 1], v);
      }
    });
    return noise;
  }

 private:
  float center(int i) const { return static_cast<float>(-b_.a + (i + 0.5) * b_.width); }
  /// The inverse of center: the (fractional) bin index whose centre is x.
  double bin_coordinate(double x) const { return (x + b_.a) * inv_width_ - 0.5; }
  int level_of(int i, const QuantParams& q) const { return math::quantize_float(center(i), q.scale, q.zero_point); }
  /// The first bin whose centre is >= x / > x (centres are exact, so the comparisons are the
  /// direct objective's float comparisons).
  int first_at_or_above(float x) const {
    int i = std::clamp(static_cast<int>(std::ceil(bin_coordinate(x))), 0, kHistogramBins);
    while (i > 0 && center(i - 1) >= x) --i;
    while (i < kHistogramBins && center(i) < x) ++i;
    return i;
  }
  int first_above(float x) const {
    int i = std::clamp(static_cast<int>(std::floor(bin_coordinate(x))) + 1, 0, kHistogramBins);
    while (i > 0 && center(i - 1) > x) --i;
    while (i < kHistogramBins && center(i) <= x) ++i;
    return i;
  }

  /// Calls f(i0, i1, level) for the runs of bins [i0, i1) of [lo, hi) with one int8 level.
  ///
  /// The level changes where c / scale crosses level - zp + 1/2, at bin coordinate x below. When
  /// the bins on either side of x are clearly away from it (more than kTieMargin of a step, where
  /// the float division in quantize_float errs by at most 2^-16 of a step) and a step is at least
  /// a bin wide, the run ends at ceil(x) and the next run has the next level, with no
  /// quantize_float; otherwise (near a tie, or narrow steps) the guess is checked and corrected
  /// bin by bin with quantize_float. Both give the runs quantize_float defines.
  template <typename F>
  void for_each_level(int lo, int hi, const QuantParams& q, F&& f) const {
    if (lo >= hi) return;
    const bool wide_steps = q.scale >= b_.width;
    const double margin = kTieMargin * q.scale * inv_width_;  // in bins
    int level = level_of(lo, q);
    for (int i = lo; i < hi;) {
      int j = hi, next = level;  // the run's end and the level there
      if (level < 127) {
        const double edge = (static_cast<double>(level) - q.zero_point + 0.5) * q.scale;
        const double x = bin_coordinate(edge);
        const double guess = std::ceil(x);
        if (wide_steps && guess - x > margin && x - (guess - 1.0) > margin && guess >= i + 1) {
          if (guess < hi) j = static_cast<int>(guess), next = level + 1;
        } else {
          j = static_cast<int>(std::clamp(guess, static_cast<double>(i + 1), static_cast<double>(hi)));
          while (j > i + 1 && level_of(j - 1, q) > level) --j;
          while (j < hi && (next = level_of(j, q)) == level) ++j;
        }
      }
      f(i, j, level);
      i = j, level = next;
    }
  }

  /// sum over bins [i0, i1) of n_i (c_i - v)^2.
  double squared_error(int i0, int i1, double v) const {
    const int64_t n0 = count_[i1] - count_[i0];
    if (n0 == 0) return 0.0;
    const int64_t s1 = moment1_[i1] - moment1_[i0], s2 = moment2_[i1] - moment2_[i0];
    const int64_t j1 = s1 - i0 * n0, j2 = s2 - 2 * i0 * s1 + static_cast<int64_t>(i0) * i0 * n0;
    const double d = static_cast<double>(center(i0)) - v;
    return static_cast<double>(n0) * d * d + 2.0 * d * b_.width * static_cast<double>(j1) +
           b_.width * b_.width * static_cast<double>(j2);
  }

  /// kl_objective from the prefix sums (see the class comment); the same window, P and Q.
  double kl(Range cand, const QuantParams& q) const {
    constexpr double kEps = 1e-4;
    const int first = std::max(0, static_cast<int>(std::ceil(bin_coordinate(cand.min))));
    const int last = std::min(kHistogramBins - 1, static_cast<int>(std::floor(bin_coordinate(cand.max))));
    if (first > last) return std::numeric_limits<double>::infinity();
    const double below = static_cast<double>(count_[first]), above = static_cast<double>(count_[kHistogramBins] - count_[last + 1]);
    const double inside = static_cast<double>(count_[last + 1] - count_[first]);
    if (inside == 0.0 || below + above > inside) return std::numeric_limits<double>::infinity();
    const int first_level = level_of(first, q), last_level = level_of(last, q);
    const bool first_empty = s_.histogram[first] == 0, last_empty = s_.histogram[last] == 0;
    // The clipped mass goes to the edge bin; an empty edge bin becomes a bin where P > 0.
    const bool extra_first = below > 0 && first_empty, extra_last = above > 0 && last_empty;
    const int window = last - first + 1;
    const int p_nonzero = static_cast<int>(nonempty_[last + 1] - nonempty_[first]) + extra_first + extra_last;
    const int p_zero = window - p_nonzero;
    const double total = below + inside + above;
    const double p_take = kEps * p_zero / p_nonzero;
    if (p_take > kMaxSeriesTake) return kl_objective(b_, cand, q);
    // Per level: window mass (no clipped mass), bins where P > 0, sum of P's counts there.
    struct Level { double mass = 0.0, p_counts = 0.0; int nonzero = 0; };
    std::array<Level, 256> levels{};
    for_each_level(first, last + 1, q, [&](int i0, int i1, int level) {
      Level& l = levels[level + 128];
      l.mass = static_cast<double>(count_[i1] - count_[i0]);
      l.p_counts = l.mass;
      l.nonzero = static_cast<int>(nonempty_[i1] - nonempty_[i0]);
    });
    if (below > 0) levels[first_level + 128].p_counts += below, levels[first_level + 128].nonzero += extra_first;
    if (above > 0) levels[last_level + 128].p_counts += above, levels[last_level + 128].nonzero += extra_last;
    int q_nonzero = 0;
    for (const Level& l : levels) q_nonzero += l.mass > 0.0 ? l.nonzero : 0;
    const int q_zero = window - q_nonzero;
    const double q_take = kEps * q_zero / q_nonzero;
    // sum over P > 0 of (m - p_take) log(m - p_take), m the bin's P count: the window's bins from
    // the prefix sums, the edge bins that receive clipped mass replaced by their own terms.
    auto x_log_x = [](double x) { return x * std::log(x); };
    double sum_mlogm = window_series(first, last + 1, p_take);
    auto replace_edge = [&](int bin, double added, bool extra) {
      if (added <= 0) return;
      const double m = static_cast<double>(s_.histogram[bin]);
      if (!extra) sum_mlogm -= x_log_x(m - p_take);
      sum_mlogm += x_log_x(m + added - p_take);
    };
    if (first == last && below > 0 && above > 0 && !first_empty) {  // one P bin takes both tails
      const double m = static_cast<double>(s_.histogram[first]);
      sum_mlogm += x_log_x(m + below + above - p_take) - x_log_x(m - p_take);
    } else {
      replace_edge(first, below, extra_first);
      replace_edge(last, above, extra_last);
    }
    // KL = p_zero kEps/total log(inside/total) + sum p log p - sum_levels P_l log q_l,
    // p = (m - p_take) / total, so sum p log p = (sum_mlogm - log(total) sum (m - p_take)) / total.
    double kl = p_zero * (kEps / total) * std::log(inside / total);
    kl += (sum_mlogm - std::log(total) * (total - p_take * p_nonzero)) / total;
    for (const Level& l : levels) {
      if (l.nonzero == 0) continue;
      const double qv = l.mass > 0.0 ? std::max(l.mass / l.nonzero - q_take, kEps) / inside : kEps / inside;
      kl -= (l.p_counts - p_take * l.nonzero) / total * std::log(qv);
    }
    return kl;
  }

  /// sum over the non-empty bins of [i0, i1) of (n - t) log(n - t) (series in t, class comment).
  double window_series(int i0, int i1, double t) const {
    double sum = n_log_n_[i1] - n_log_n_[i0];
    sum -= t * (log_n_[i1] - log_n_[i0] + static_cast<double>(nonempty_[i1] - nonempty_[i0]));
    double tk = t;
    for (int k = 2; k <= kSeriesTerms; ++k) {
      tk *= t;
      sum += tk / (k * (k - 1)) * (inv_pow_[k - 1][i1] - inv_pow_[k - 1][i0]);
    }
    return sum;
  }

  const Bins& b_;
  const TensorStats& s_;
  bool usable_ = false;
  double inv_width_ = 0.0;  // 1 / b_.width
  int lo_ = 0, hi_ = 0;  // the non-empty bins lie in [lo_, hi_)
  std::vector<int64_t> count_, moment1_, moment2_, nonempty_;  // prefix sums: n, n i, n i^2, [n > 0]
  std::vector<double> n_log_n_, log_n_;                          // prefix sums over n > 0
  std::vector<std::vector<double>> inv_pow_;                     // [k]: prefix sums of n^-k, k >= 1
};
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
  const FastObjective fast(bins, s);
  Range best = r0;
  double best_value = std::numeric_limits<double>::infinity();
  // Scales the ends selected by `lo`/`hi` of r0 by k / kAlphaSteps, the others stay as in `best`.
  // Returns whether `best` moved.
  auto sweep = [&](bool lo, bool hi) {
    const Range start = best;
    for (int k = kMinAlphaStep; k <= kAlphaSteps; ++k) {
      const float alpha = static_cast<float>(k) / kAlphaSteps;
      const Range cand{lo ? alpha * r0.min : start.min, hi ? alpha * r0.max : start.max};
      const double v = fast.usable() ? fast.value(cand, sym, objective) : objective_value(bins, cand, sym, objective);
      if (v < best_value) best_value = v, best = cand;
    }
    return best.min != start.min || best.max != start.max;
  };
  sweep(true, true);
  if (sym) return best;
  // ASYM: then each end on its own (coordinate descent, two rounds). A sweep of one end while the
  // other has not moved since that end's last sweep evaluates the same candidates again and
  // cannot move `best` (only a strictly lower value does), so it is skipped: the result is the
  // same as with all four sweeps.
  sweep(true, false);
  if (!sweep(false, true)) return best;  // round two would repeat round one
  if (sweep(true, false)) sweep(false, true);
  return best;
}

double objective_direct(const TensorStats& s, Range cand, bool sym, Objective objective) {
  return objective_value(non_empty_bins(s), cand, sym, objective);
}

double objective_fast(const TensorStats& s, Range cand, bool sym, Objective objective) {
  const Bins bins = non_empty_bins(s);
  const FastObjective fast(bins, s);
  if (!fast.usable())
    fail(ErrorCode::kInvalidArgument, "objective_fast: the histogram's grid is not kHistogramBins/2 * 2^e wide");
  return fast.value(cand, sym, objective);
}

}  // namespace anvil::quant
