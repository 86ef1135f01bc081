#include "histogram.h"

#include <algorithm>
#include <cmath>

namespace anvil::quant {

namespace {
constexpr int kHalf = kHistogramBins / 2;

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

void accumulate(TensorStats& s, const float* p, int64_t n) {
  if (n <= 0) return;
  float lo = p[0], hi = p[0];
  for (int64_t i = 1; i < n; ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
  if (s.count == 0) {
    s.min = lo, s.max = hi;
  } else {
    s.min = std::min(s.min, lo), s.max = std::max(s.max, hi);
  }
  const int64_t zeros_before = s.histogram.empty() ? s.count : 0;  // all of them are 0 then
  s.count += n;
  const double m = std::max(std::fabs(static_cast<double>(s.min)), std::fabs(static_cast<double>(s.max)));
  if (m == 0.0) return;  // still all zero: no histogram yet
  if (s.histogram.empty()) {
    s.histogram.assign(kHistogramBins, 0);
    s.histogram_half_width = static_cast<float>(kHalf * initial_width(m));
    s.histogram[kHalf] += zeros_before;
  }
  while (s.histogram_half_width <= m) {
    double_width(s.histogram);
    s.histogram_half_width *= 2.0f;
  }
  const double inv_w = kHalf / static_cast<double>(s.histogram_half_width);  // 1 / w, a power of two
  for (int64_t i = 0; i < n; ++i) {
    const int64_t bin = static_cast<int64_t>(std::floor(p[i] * inv_w)) + kHalf;
    ++s.histogram[std::clamp<int64_t>(bin, 0, kHistogramBins - 1)];
  }
}

void accumulate_channel_means(TensorStats& s, const float* p, int64_t batch, int64_t channels, int64_t inner) {
  if (batch <= 0 || channels <= 0 || inner <= 0 || s.channel_samples < 0) return;
  if (s.channel_mean.empty()) s.channel_mean.assign(static_cast<size_t>(channels), 0.0);
  if (static_cast<int64_t>(s.channel_mean.size()) != channels) {
    // Axis 1 is not a channel axis here (e.g. a transposed tensor with the batch on axis 1, whose
    // size changes with the last, partial batch): no per-channel means for this tensor.
    s.channel_mean.clear();
    s.channel_samples = -1;
    return;
  }
  const int64_t added = batch * inner;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = p + (b * channels + c) * inner;
      for (int64_t k = 0; k < inner; ++k) sum += row[k];
    }
    double& mean = s.channel_mean[static_cast<size_t>(c)];
    mean = (mean * static_cast<double>(s.channel_samples) + sum) / static_cast<double>(s.channel_samples + added);
  }
  s.channel_samples += added;
}

}  // namespace anvil::quant
