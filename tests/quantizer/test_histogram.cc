// The one-pass growing histogram (quantizer/src/histogram.h): a stream whose range widens across
// batches must end with the same statistics as the whole data seen at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "anvil/quantizer/quantizer.h"
#include "histogram.h"
#include "model_builder.h"
#include "stats_for_tests.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

constexpr const char* kAllMethods[] = {"MIN_MAX_ASYM", "MIN_MAX_SYM", "ENTROPY_ASYM", "ENTROPY_SYM",
                                       "PERCENTILE_ASYM", "PERCENTILE_SYM", "SQNR_ASYM", "SQNR_SYM",
                                       "MSE_ASYM", "MSE_SYM"};

/// Batches whose range widens: N(0, 0.01), then N(0, 1), then a tail up to 37.5 and a negative
/// outlier; the first batch is all zero, so its counts arrive before any histogram exists.
std::vector<std::vector<float>> widening_batches() {
  std::mt19937 rng(7);
  std::vector<std::vector<float>> b(4);
  b[0].assign(500, 0.0f);
  std::normal_distribution<float> narrow(0.0f, 0.01f), wide(0.0f, 1.0f);
  for (int i = 0; i < 3000; ++i) b[1].push_back(narrow(rng));
  for (int i = 0; i < 3000; ++i) b[2].push_back(wide(rng));
  std::uniform_real_distribution<float> tail(0.0f, 37.5f);
  for (int i = 0; i < 300; ++i) b[3].push_back(tail(rng));
  b[3].push_back(-3.25f);
  return b;
}

int64_t total(const TensorStats& s) {
  int64_t t = 0;
  for (int64_t n : s.histogram) t += n;
  return t;
}

Calibration one(const TensorStats& s) {
  Calibration c;
  c.tensors["t"] = s;
  return c;
}

}  // namespace

TEST(GrowingHistogram, WideningStreamEqualsSingleBatch) {
  const auto batches = widening_batches();
  TensorStats streamed, single;
  std::vector<float> all;
  for (const auto& b : batches) {
    accumulate(streamed, b.data(), static_cast<int64_t>(b.size()));
    all.insert(all.end(), b.begin(), b.end());
  }
  accumulate(single, all.data(), static_cast<int64_t>(all.size()));

  EXPECT_EQ(streamed.count, static_cast<int64_t>(all.size()));
  EXPECT_EQ(total(streamed), static_cast<int64_t>(all.size()));  // no count lost while re-gridding
  EXPECT_EQ(streamed.min, -3.25f);
  EXPECT_EQ(streamed.min, single.min);
  EXPECT_EQ(streamed.max, single.max);
  EXPECT_EQ(streamed.histogram_half_width, single.histogram_half_width);
  // Power-of-two grids with edges kept when doubling: the streamed histogram is exactly the
  // single-batch one, so every method (MIN_MAX and the histogram searches) gives the same range.
  EXPECT_EQ(streamed.histogram, single.histogram);
  for (const char* name : kAllMethods) {
    const Range a = one(streamed).ranges(method_from_name(name), 99.9f).at("t");
    const Range b = one(single).ranges(method_from_name(name), 99.9f).at("t");
    EXPECT_EQ(a.min, b.min) << name;
    EXPECT_EQ(a.max, b.max) << name;
  }
  const Range mm = one(streamed).ranges(Method::kMinMaxAsym).at("t");
  EXPECT_EQ(mm.min, -3.25f);
  EXPECT_EQ(mm.max, streamed.max);
}

TEST(GrowingHistogram, ResolutionOverTheFinalRange) {
  for (float m : {1e-6f, 0.3f, 1.0f, 2.0f, 3.0f, 37.5f, 1e6f}) {
    TensorStats s;
    const std::vector<float> v{-m / 3, m};
    accumulate(s, v.data(), 2);
    const double w = 2.0 * s.histogram_half_width / kHistogramBins;
    EXPECT_GT(s.histogram_half_width, m) << m;
    EXPECT_LE(s.histogram_half_width, 2 * m) << m;
    EXPECT_GE(2.0 * m / w, kHistogramBins / 2) << m;  // >= 2048 bins over [-m, m]
    EXPECT_EQ(std::exp2(std::round(std::log2(w))), w) << m;  // a power of two
    EXPECT_EQ(s.histogram.back() + s.histogram.front(), 0) << m;  // the extremes fall inside
  }
}

TEST(GrowingHistogram, BinsAreWhereTheValuesAre) {
  TensorStats s;
  const std::vector<float> a{0.5f, -0.5f}, b{4.0f};  // then the grid grows 8x
  accumulate(s, a.data(), 2);
  accumulate(s, b.data(), 1);
  const double w = 2.0 * s.histogram_half_width / kHistogramBins;
  const int half = kHistogramBins / 2;
  EXPECT_EQ(s.histogram[half + static_cast<int>(std::floor(0.5 / w))], 1);
  EXPECT_EQ(s.histogram[half + static_cast<int>(std::floor(-0.5 / w))], 1);
  EXPECT_EQ(s.histogram[half + static_cast<int>(std::floor(4.0 / w))], 1);
  EXPECT_EQ(total(s), 3);
}

TEST(GrowingHistogram, CalibrateMakesOnePassWithWideningBatches) {
  // Samples 0..63 (the first executor batch) are narrow, the rest wide: calibrate() must see
  // the same statistics as accumulating all values at once.
  ModelBuilder mb;
  mb.input("x", {4}).output("y", {4});
  mb.node("Relu", {"x"}, {"y"});
  Tensor in(DType::kFloat32, {200, 4});
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = d(rng) * (i < 64 * 4 ? 0.05f : 5.0f);
  const Calibration c = calibrate(mb.model(), in, false);
  TensorStats expect;
  accumulate(expect, in.data<float>(), in.numel());
  const TensorStats& x = c.tensors.at("x");
  EXPECT_EQ(x.count, 800);
  EXPECT_EQ(x.min, expect.min);
  EXPECT_EQ(x.max, expect.max);
  EXPECT_EQ(x.histogram, expect.histogram);
  EXPECT_EQ(total(c.tensors.at("y")), 800);
}

TEST(GrowingHistogram, JsonKeepsTheGrid) {
  TensorStats s;
  const std::vector<float> v{-0.25f, 3.0f, 1.0f};
  accumulate(s, v.data(), 3);
  Calibration c = one(s);
  const Calibration d = Calibration::from_json(nlohmann::json::parse(c.to_json().dump()));
  EXPECT_EQ(d.tensors.at("t").histogram_half_width, s.histogram_half_width);
  EXPECT_EQ(d.tensors.at("t").histogram, s.histogram);
  nlohmann::json j = c.to_json();
  j["tensors"]["t"]["histogram_half_width"] = 1.0;  // below max |x| = 3
  try {
    Calibration::from_json(j);
    FAIL() << "half-width below the data accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_NE(std::string(e.what()).find("histogram_half_width"), std::string::npos) << e.what();
  }
}

TEST(GrowingHistogram, ParallelBinningEqualsFloorOfValueOverWidth) {
  // More values than one parallel block (accumulate splits at 65,536), with values exactly on bin
  // edges, -0.0, tiny negatives, and the extremes: every count must be where floor(x / w) says.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> v;
  for (int i = 0; i < 300000; ++i) v.push_back(normal(rng));
  v.push_back(6.0f), v.push_back(-6.0f);  // the final range [-6, 6]: half-width 8, w = 8 / 1024
  for (int k = -1024; k < 1024; k += 7) v.push_back(static_cast<float>(k) * (8.0f / 1024));  // edges
  v.push_back(-0.0f), v.push_back(-1e-30f), v.push_back(1e-30f), v.push_back(0.0f);
  std::vector<float> clipped;
  for (float x : v) clipped.push_back(std::clamp(x, -6.0f, 6.0f));
  TensorStats s;
  accumulate(s, clipped.data(), static_cast<int64_t>(clipped.size()));
  ASSERT_EQ(s.histogram_half_width, 8.0f);
  std::vector<int64_t> want(kHistogramBins, 0);
  const double w = 16.0 / kHistogramBins;
  for (float x : clipped) ++want[static_cast<size_t>(kHistogramBins / 2 + static_cast<int>(std::floor(x / w)))];
  EXPECT_EQ(s.histogram, want);
  EXPECT_EQ(s.min, -6.0f);
  EXPECT_EQ(s.max, 6.0f);
  EXPECT_EQ(s.count, static_cast<int64_t>(clipped.size()));
}

TEST(GrowingHistogram, SummarizeFindsNanAndInfAnywhere) {
  std::vector<float> v(200000, 1.0f);
  EXPECT_TRUE(summarize(v.data(), static_cast<int64_t>(v.size())).finite);
  for (float bad : {std::nanf(""), INFINITY, -INFINITY})
    for (size_t at : {size_t{0}, size_t{3}, size_t{65536}, size_t{65541}, v.size() - 1}) {
      std::vector<float> w = v;
      w[at] = bad;
      EXPECT_FALSE(summarize(w.data(), static_cast<int64_t>(w.size())).finite) << bad << " at " << at;
    }
}

TEST(GrowingHistogram, SummarizeGivesTheMinAndMaxOfEveryValue) {
  // The fused pass against separate passes, over sizes around the 8-lane and parallel-block edges.
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{65536}, int64_t{65537}, int64_t{300001}}) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = normal(rng);
    v[static_cast<size_t>(n) - 1] = 100.0f;  // an extreme in the scalar tail
    const ValueSummary got = summarize(v.data(), n);
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    EXPECT_TRUE(got.finite) << n;
    EXPECT_EQ(got.min, *lo) << n;
    EXPECT_EQ(got.max, *hi) << n;
  }
}

TEST(GrowingHistogram, OneReadWithChannelMeansEqualsTheSeparatePasses) {
  // Batches [batch, channels, inner] that widen the range (the first all zero) and end with a
  // partial batch; inner = 1 (a Gemm input) and a large inner (a Conv input); then a batch whose
  // axis 1 changes size (not a channel axis: the means are dropped in all). The means from the row
  // sums (add_channel_row_sums, what calibrate() does with a value seen in parts) are the same too.
  std::mt19937 rng(9);
  auto add_rows = [](TensorStats& s, const std::vector<float>& v, int64_t batch, int64_t channels, int64_t inner) {
    std::vector<double> rows;
    for (int64_t r = 0; r < batch * channels; ++r) rows.push_back(row_sum(v.data() + r * inner, inner));
    add_channel_row_sums(s, rows.data(), batch, channels, inner);
  };
  struct Case { int64_t channels, inner; };
  for (const Case& cs : {Case{1280, 1}, Case{16, 12544}, Case{3, 7}}) {
    TensorStats fused, separate, from_rows;
    int64_t batch_no = 0;
    for (int64_t batch : {int64_t{4}, int64_t{4}, int64_t{4}, int64_t{3}}) {
      std::normal_distribution<float> normal(0.5f, 0.1f * static_cast<float>(1 << (2 * batch_no)));
      std::vector<float> v(static_cast<size_t>(batch * cs.channels * cs.inner), 0.0f);
      if (batch_no++ > 0)
        for (float& x : v) x = normal(rng);
      const int64_t n = static_cast<int64_t>(v.size());
      const ValueSummary summary = summarize(v.data(), n);
      accumulate(fused, v.data(), summary, {batch, cs.channels, cs.inner});
      accumulate(separate, v.data(), n, summary);
      accumulate_channel_means(separate, v.data(), batch, cs.channels, cs.inner);
      add_rows(from_rows, v, batch, cs.channels, cs.inner);
      SCOPED_TRACE(std::to_string(cs.channels) + " channels, batch " + std::to_string(batch_no));
      EXPECT_EQ(from_rows.channel_mean, separate.channel_mean);
      EXPECT_EQ(from_rows.channel_samples, separate.channel_samples);
      expect_same_statistics(fused, separate);
    }
    EXPECT_FALSE(fused.histogram.empty());
    EXPECT_EQ(fused.channel_mean.size(), static_cast<size_t>(cs.channels));
    // Axis 1 of another size: both drop the means.
    std::vector<float> v(static_cast<size_t>(2 * (cs.channels + 1) * cs.inner), 0.25f);
    const ValueSummary summary = summarize(v.data(), static_cast<int64_t>(v.size()));
    accumulate(fused, v.data(), summary, {2, cs.channels + 1, cs.inner});
    accumulate(separate, v.data(), static_cast<int64_t>(v.size()), summary);
    accumulate_channel_means(separate, v.data(), 2, cs.channels + 1, cs.inner);
    add_rows(from_rows, v, 2, cs.channels + 1, cs.inner);
    EXPECT_EQ(fused.histogram, separate.histogram);
    EXPECT_TRUE(fused.channel_mean.empty());
    EXPECT_EQ(fused.channel_samples, -1);
    EXPECT_TRUE(from_rows.channel_mean.empty());
    EXPECT_EQ(from_rows.channel_samples, -1);
  }
}

namespace {
/// floor(clamp(x / w)) value by value, on the grid [-h, h].
std::vector<int64_t> per_value_bins(const std::vector<float>& values, float h) {
  const double inv_w = (kHistogramBins / 2) / static_cast<double>(h);
  std::vector<int64_t> want(kHistogramBins, 0);
  for (float x : values) {
    const double t = std::clamp(static_cast<double>(x) * inv_w, -kHistogramBins / 2.0, kHistogramBins / 2.0 - 1);
    ++want[static_cast<size_t>(kHistogramBins / 2 + static_cast<int>(std::floor(t)))];
  }
  return want;
}
}  // namespace

TEST(GrowingHistogram, VectorBinningKeepsTinyNegativesBelowZeroAndTinyGrids) {
  // Wide data (1/w = 1/8): -denorm_min / 8 is 0 in float but its bin is the one below 0, as are
  // the other tiny negatives; the positives stay in the bin above. Then a grid so fine that 1/w
  // (2^129) is not a float: the vector path steps aside and the bins are still the definition's.
  std::vector<float> wide{10000.0f, -10000.0f};
  for (int i = 0; i < 9; ++i)
    for (float x : {-1e-45f, 1e-45f, -3e-39f, -0.0f, 0.0f, -1e-38f, 7.0f, -7.0f, -0.125f, 0.124f})
      wide.push_back(x);
  TensorStats s;
  accumulate(s, wide.data(), static_cast<int64_t>(wide.size()));
  EXPECT_EQ(s.histogram, per_value_bins(wide, s.histogram_half_width));
  EXPECT_EQ(s.histogram[kHistogramBins / 2 - 1], 9 * 5);  // [-8, 0): -1e-45, -3e-39, -1e-38, -0.125, -7
  EXPECT_EQ(s.histogram[kHistogramBins / 2], 9 * 5);      // [0, 8): 1e-45, -0.0, 0.0, 0.124, 7

  std::vector<float> tiny;  // max 1e-39: w = 2^-140
  for (int i = 0; i < 40; ++i) tiny.push_back(static_cast<float>(i - 20) * 5e-41f);
  tiny.push_back(1e-39f);
  TensorStats t;
  accumulate(t, tiny.data(), static_cast<int64_t>(tiny.size()));
  EXPECT_EQ(t.histogram, per_value_bins(tiny, t.histogram_half_width));
  EXPECT_EQ(t.histogram_half_width, std::ldexp(1.0f, -129));
}

TEST(GrowingHistogram, VectorBinningEqualsThePerValueDefinition) {
  // The binning's vector path (four values at a time) against floor(clamp(x / w)) value by value,
  // for batches that widen the grid (the final grid is what counts: merging keeps every edge), with
  // bin edges, -0.0, denormals of both signs, the extremes and a length that leaves a scalar tail.
  std::mt19937 rng(5);
  std::vector<std::vector<float>> batches(3);
  std::normal_distribution<float> narrow(0.0f, 0.01f), wide(0.0f, 1.0f);
  for (int i = 0; i < 70001; ++i) batches[0].push_back(narrow(rng));
  for (int i = 0; i < 1003; ++i) batches[1].push_back(wide(rng));
  for (float x : {4.0f, -4.0f, -0.0f, 0.0f, 1e-45f, -1e-45f, 1.17e-38f, -1.17e-38f, 3e-39f, -3e-39f})
    batches[1].push_back(x);
  batches[2] = batches[1];
  for (int k = -2048; k < 2048; k += 3) batches[2].push_back(static_cast<float>(k) * (16.0f / 2048));  // edges
  batches[2].push_back(15.999999f), batches[2].push_back(-16.0f);  // final half-width 32: w = 1 / 64
  batches[2].push_back(std::nextafter(-16.0f / 2048, 0.0f)), batches[2].push_back(-16.0f / 2048 / 3);
  TensorStats s;
  std::vector<float> all;
  for (const auto& b : batches) {
    accumulate(s, b.data(), static_cast<int64_t>(b.size()));
    all.insert(all.end(), b.begin(), b.end());
  }
  ASSERT_EQ(s.histogram_half_width, 32.0f);
  EXPECT_EQ(s.histogram, per_value_bins(all, 32.0f));
  EXPECT_EQ(s.count, static_cast<int64_t>(all.size()));
  EXPECT_EQ(s.min, -16.0f);
}
