#include "histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

namespace anvil::quant {

namespace {
constexpr int kHalf = kHistogramBins / 2;
constexpr int64_t kGrain = 1 << 16;  // values per parallel block

/// The smallest power-of-two bin width w with kHalf * w > m (m > 0).
double initial_width(double m) {
  double w = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(m / kHalf))));
  while (kHalf * w <= m) w *= 2.0;
  while (kHalf * (w / 2.0) > m) w /= 2.0;
  return w;
}

/// Doubles the bin width: bins 2k, 2k+1 -> kHalf/2 + k (the old grid becomes the middle half).
void double_width(std::vector<int64_t>& h) {
  std::vector<int64_t> merged(kHistogramBins, 0);
  for (int i = 0; i < kHistogramBins; ++i) merged[kHalf / 2 + i / 2] += h[i];
  h.swap(merged);
}
}  // namespace

// Eight interleaved partial sums, combined pairwise at the end: independent adds (GCC vectorises
// them) instead of one dependent add per value; the order is fixed by n alone.
double row_sum(const float* p, int64_t n) {
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(p[i + j]);
  for (int j = 0; i < n; ++i, ++j) lane[j] += static_cast<double>(p[i]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

namespace {
/// summarize() of p[begin, end), starting from m's min and max. x < lo ? x : lo is minps, so NaN
/// never becomes a min or max; x - x is 0 for a finite x and NaN for NaN and +-Inf, and the sums of
/// those stay NaN once they are. Four vectors per step: min, max and add are latency bound, and four
/// independent chains of each keep the units busy (the scalar loop ran at about 1 ns per value).
ValueSummary summarize_block(const float* p, int64_t begin, int64_t end, ValueSummary m) {
  int64_t i = begin;
  float lo = m.min, hi = m.max, bad = 0.0f;
#if defined(__SSE2__)
  constexpr int kVectors = 4;
  __m128 vlo[kVectors], vhi[kVectors], vbad[kVectors];
  for (int k = 0; k < kVectors; ++k) vlo[k] = _mm_set1_ps(lo), vhi[k] = _mm_set1_ps(hi), vbad[k] = _mm_setzero_ps();
  for (; i + 4 * kVectors <= end; i += 4 * kVectors)
    for (int k = 0; k < kVectors; ++k) {
      const __m128 x = _mm_loadu_ps(p + i + 4 * k);
      vlo[k] = _mm_min_ps(x, vlo[k]);
      vhi[k] = _mm_max_ps(x, vhi[k]);
      vbad[k] = _mm_add_ps(vbad[k], _mm_sub_ps(x, x));
    }
  float l[4 * kVectors], h[4 * kVectors], b[4 * kVectors];
  for (int k = 0; k < kVectors; ++k)
    _mm_storeu_ps(l + 4 * k, vlo[k]), _mm_storeu_ps(h + 4 * k, vhi[k]), _mm_storeu_ps(b + 4 * k, vbad[k]);
  for (int j = 0; j < 4 * kVectors; ++j) lo = std::min(lo, l[j]), hi = std::max(hi, h[j]), bad += b[j];
#endif
  for (; i < end; ++i) lo = p[i] < lo ? p[i] : lo, hi = p[i] > hi ? p[i] : hi, bad += p[i] - p[i];
  return ValueSummary{bad == 0.0f, lo, hi};
}
}  // namespace

ValueSummary summarize(const float* p, int64_t n) {
  const ValueSummary init{true, p[0], p[0]};
  return tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, n, kGrain), init,
      [p](const tbb::blocked_range<int64_t>& r, const ValueSummary& m) {
        return m.finite ? summarize_block(p, r.begin(), r.end(), m) : m;
      },
      [](const ValueSummary& a, const ValueSummary& b) {
        return ValueSummary{a.finite && b.finite, std::min(a.min, b.min), std::max(a.max, b.max)};
      });
}

void accumulate(TensorStats& s, const float* p, int64_t n) {
  if (n > 0) accumulate(s, p, n, summarize(p, n));
}

namespace {
/// Grows s.min/max/count and the grid for `n` values with extremes `lohi`; returns 1/w, the bin
/// width's inverse, or 0 while the tensor is all zero (no histogram yet).
double grow(TensorStats& s, int64_t n, const ValueSummary& lohi) {
  if (s.count == 0) {
    s.min = lohi.min, s.max = lohi.max;
  } else {
    s.min = std::min(s.min, lohi.min), s.max = std::max(s.max, lohi.max);
  }
  const int64_t zeros_before = s.histogram.empty() ? s.count : 0;  // all of them are 0 then
  s.count += n;
  const double m = std::max(std::fabs(static_cast<double>(s.min)), std::fabs(static_cast<double>(s.max)));
  if (m == 0.0) return 0.0;  // still all zero: no histogram yet
  if (s.histogram.empty()) {
    s.histogram.assign(kHistogramBins, 0);
    s.histogram_half_width = static_cast<float>(kHalf * initial_width(m));
    s.histogram[kHalf] += zeros_before;
  }
  while (s.histogram_half_width <= m) {
    double_width(s.histogram);
    s.histogram_half_width *= 2.0f;
  }
  return kHalf / static_cast<double>(s.histogram_half_width);
}

/// One parallel block's counts, added to the tensor's under a lock once per block.
/// bin = floor(x / w) + kHalf: x * (1/w) is exact (1/w is a power of two, in double), and the
/// floor is a truncation corrected by one below zero, so the loop needs no libm call. Bin indices
/// are computed for a run of values first, then counted into four interleaved copies of the
/// counts, so that repeated bins (the zeros after a ReLU) do not serialise on one counter.
/// The counts are 32-bit (the four copies take 64 KiB, not 128) and only the bins the values can
/// reach, [bin(min), bin(max)], are cleared and merged: a chunk of a few ten thousand values no
/// longer pays for 4 x 4096 (benchmarks/bench_histogram.cc measures the cost per value).
class BlockCounts {
 public:
  BlockCounts(double inv_w, const ValueSummary& lohi)
      : inv_w_(inv_w),
        inv_wf_(float_power_of_two(inv_w)),
        first_(bin_index(lohi.min)),
        bins_(bin_index(lohi.max) - first_ + 1),
        counts_(new uint32_t[static_cast<size_t>(kCopies) * bins_]) {
    std::fill_n(counts_.get(), static_cast<size_t>(kCopies) * bins_, 0u);
  }

  void add(const float* p, int64_t n) {
    int32_t bins[kRun];
    for (int64_t i0 = 0; i0 < n; i0 += kRun) {
      const int m = static_cast<int>(std::min<int64_t>(kRun, n - i0));
      if (counted_ > kMaxCounted - m) spill();
      counted_ += m;
      const int done = bin_indices(p + i0, m, bins);
      for (int k = done; k < m; ++k) bins[k] = bin_index(p[i0 + k]);
      uint32_t* c = counts_.get() - first_;  // c[b] is bin b's counter of copy 0
      int k = 0;
      for (; k + kCopies <= m; k += kCopies)
        for (int j = 0; j < kCopies; ++j) ++c[j * bins_ + bins[k + j]];
      for (; k < m; ++k) ++c[bins[k]];
    }
  }

  /// floor(clamp(x / w, -kHalf, kHalf - 1)) + kHalf, the definition the vector code follows.
  int32_t bin_index(float x) const {
    const double t = std::clamp(static_cast<double>(x) * inv_w_, -static_cast<double>(kHalf),
                                static_cast<double>(kHalf - 1));
    const auto b = static_cast<int32_t>(t);  // toward zero
    return b - (t < static_cast<double>(b) ? 1 : 0) + kHalf;
  }

  /// bin_index() of the first values of p[0, m), four at a time with SSE2 (part of every x86-64;
  /// GCC does not vectorise the scalar code: the compare and select under -ftrapping-math).
  /// Returns how many it did; the caller bins the rest with bin_index().
  ///
  /// In float, four values per instruction: x * (1/w) is the same number as in double, as 1/w is a
  /// power of two that float represents (checked in the constructor, else this returns 0) and
  /// |x / w| < kHalf, except that a product below float's smallest subnormal rounds to 0; for a
  /// negative x that would put -tiny in bin kHalf instead of kHalf - 1, so x < 0 with a product of 0
  /// takes one off like every t below its truncation. Clamp (max/min, equal to std::clamp for
  /// finite values), truncation and that correction are then exact, so the bins equal bin_index().
  int bin_indices(const float* p, int m, int32_t* bins) const {
    int k = 0;
#if defined(__SSE2__)
    if (inv_wf_ == 0.0f) return 0;
    const __m128 inv_w = _mm_set1_ps(inv_wf_), lo = _mm_set1_ps(-static_cast<float>(kHalf)),
                 hi = _mm_set1_ps(static_cast<float>(kHalf - 1)), zero = _mm_setzero_ps();
    const __m128i half = _mm_set1_epi32(kHalf);
    for (; k + 4 <= m; k += 4) {
      const __m128 x = _mm_loadu_ps(p + k);
      const __m128 t = _mm_min_ps(_mm_max_ps(_mm_mul_ps(x, inv_w), lo), hi);
      const __m128i b = _mm_cvttps_epi32(t);  // toward zero
      const __m128 below = _mm_or_ps(_mm_cmplt_ps(t, _mm_cvtepi32_ps(b)),
                                     _mm_and_ps(_mm_cmplt_ps(x, zero), _mm_cmpeq_ps(t, zero)));
      // `below` is -1 as an integer where the floor is one under the truncation.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(bins + k),
                       _mm_add_epi32(_mm_add_epi32(b, _mm_castps_si128(below)), half));
    }
#endif
    return k;
  }

  /// Integer sums: the merged histogram does not depend on the order blocks finish in.
  void merge_into(std::vector<int64_t>& histogram, std::mutex& mu) {
    spill();
    std::lock_guard<std::mutex> lock(mu);
    for (int b = 0; b < bins_; ++b) histogram[static_cast<size_t>(first_ + b)] += wide_[static_cast<size_t>(b)];
  }

 private:
  static constexpr int kCopies = 4, kRun = 256;
  static constexpr uint64_t kMaxCounted = UINT32_MAX;  // values a counter may have seen before spill()
  /// p as a float when that is exact and normal, else 0 (then bin_indices() leaves all to bin_index()).
  static float float_power_of_two(double p) {
    const float f = static_cast<float>(p);
    return std::isnormal(f) && static_cast<double>(f) == p ? f : 0.0f;
  }

  /// Moves the 32-bit counts into the 64-bit sums (before any counter could wrap, and at the end).
  void spill() {
    if (wide_.empty()) wide_.assign(static_cast<size_t>(bins_), 0);
    for (int j = 0; j < kCopies; ++j)
      for (int b = 0; b < bins_; ++b) wide_[static_cast<size_t>(b)] += counts_[static_cast<size_t>(j) * bins_ + b];
    std::fill_n(counts_.get(), static_cast<size_t>(kCopies) * bins_, 0u);
    counted_ = 0;
  }

  double inv_w_;
  float inv_wf_;
  int first_, bins_;  // the bins [first_, first_ + bins_) the values fall in
  std::unique_ptr<uint32_t[]> counts_;  // kCopies x bins_
  uint64_t counted_ = 0;
  std::vector<int64_t> wide_;  // bins_ sums of the spilled counts
};
}  // namespace

void accumulate(TensorStats& s, const float* p, int64_t n, const ValueSummary& lohi) {
  if (n <= 0) return;
  const double inv_w = grow(s, n, lohi);
  if (inv_w == 0.0) return;
  std::mutex mu;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain), [&](const tbb::blocked_range<int64_t>& r) {
    BlockCounts local(inv_w, lohi);
    local.add(p + r.begin(), r.size());
    local.merge_into(s.histogram, mu);
  });
}

namespace {
/// The running mean of `samples` values, given `added` more whose sum is `sum`.
void fold_mean(double& mean, int64_t samples, double sum, int64_t added) {
  mean = (mean * static_cast<double>(samples) + sum) / static_cast<double>(samples + added);
}

/// Readies s.channel_mean for a [batch, channels, inner] block; false when no means are kept for
/// s (none wanted, an empty block, or axis 1 changed size: then they are dropped for good).
bool start_channel_means(TensorStats& s, int64_t batch, int64_t channels, int64_t inner) {
  if (batch <= 0 || channels <= 0 || inner <= 0 || s.channel_samples < 0) return false;
  if (s.channel_mean.empty()) s.channel_mean.assign(static_cast<size_t>(channels), 0.0);
  if (static_cast<int64_t>(s.channel_mean.size()) != channels) {
    // Axis 1 is not a channel axis here (e.g. a transposed tensor with the batch on axis 1, whose
    // size changes with the last, partial batch): no per-channel means for this tensor.
    s.channel_mean.clear();
    s.channel_samples = -1;
    return false;
  }
  return true;
}
}  // namespace

void accumulate(TensorStats& s, const float* p, const ValueSummary& lohi, const ChannelLayout& layout) {
  const int64_t batch = layout.batch, channels = layout.channels, inner = layout.inner;
  const int64_t n = batch * channels * inner;
  if (n <= 0) return;
  if (!start_channel_means(s, batch, channels, inner)) {  // no means for this tensor (it says why)
    accumulate(s, p, n, lohi);
    return;
  }
  const double inv_w = grow(s, n, lohi);
  const int64_t added = batch * inner;
  // Blocks of channels in parallel (about kGrain values each); a channel's rows are binned and
  // summed together while in cache, each row by row_sum as in accumulate_channel_means.
  std::mutex mu;
  const int64_t grain = std::max<int64_t>(1, kGrain / added);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, channels, grain), [&](const tbb::blocked_range<int64_t>& r) {
    BlockCounts local(inv_w, lohi);
    for (int64_t c = r.begin(); c < r.end(); ++c) {
      double sum = 0.0;
      for (int64_t b = 0; b < batch; ++b) {
        const float* row = p + (b * channels + c) * inner;
        if (inv_w != 0.0) local.add(row, inner);
        sum += row_sum(row, inner);
      }
      fold_mean(s.channel_mean[static_cast<size_t>(c)], s.channel_samples, sum, added);
    }
    if (inv_w != 0.0) local.merge_into(s.histogram, mu);
  });
  s.channel_samples += added;
}

void accumulate_last_axis(TensorStats& s, const float* p, const ValueSummary& lohi, int64_t rows, int64_t channels) {
  accumulate(s, p, rows * channels, lohi);
  s.channel_axis = -1;
  if (!start_channel_means(s, rows, channels, 1)) return;
  std::vector<double> sums(static_cast<size_t>(channels), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = p + r * channels;
    for (int64_t c = 0; c < channels; ++c) sums[static_cast<size_t>(c)] += row[c];
  }
  for (int64_t c = 0; c < channels; ++c)
    fold_mean(s.channel_mean[static_cast<size_t>(c)], s.channel_samples, sums[static_cast<size_t>(c)], rows);
  s.channel_samples += rows;
}

void add_channel_row_sums(TensorStats& s, const double* row_sums, int64_t batch, int64_t channels, int64_t inner) {
  if (!start_channel_means(s, batch, channels, inner)) return;
  const int64_t added = batch * inner;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t b = 0; b < batch; ++b) sum += row_sums[b * channels + c];
    fold_mean(s.channel_mean[static_cast<size_t>(c)], s.channel_samples, sum, added);
  }
  s.channel_samples += added;
}

void accumulate_channel_means(TensorStats& s, const float* p, int64_t batch, int64_t channels, int64_t inner) {
  if (!start_channel_means(s, batch, channels, inner)) return;
  const int64_t added = batch * inner;
  // Channels in parallel; each channel's sum has a fixed order, so the means do not depend on threads.
  tbb::parallel_for(int64_t{0}, channels, [&](int64_t c) {
    double sum = 0.0;
    for (int64_t b = 0; b < batch; ++b) {
      sum += row_sum(p + (b * channels + c) * inner, inner);
    }
    fold_mean(s.channel_mean[static_cast<size_t>(c)], s.channel_samples, sum, added);
  });
  s.channel_samples += added;
}

}  // namespace anvil::quant
