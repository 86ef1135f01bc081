#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "anvil/common/requant.h"
#include "anvil/quantizer/quantizer.h"
#include "model_builder.h"
#include "quant_params.h"
#include "range_methods.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

/// Statistics of `values` as calibrate() records them (x -> Relu -> y, values fed as x).
TensorStats stats_of(const std::vector<float>& values) {
  ModelBuilder b;
  b.input("x", {static_cast<int64_t>(values.size()) / 100}).output("y", {static_cast<int64_t>(values.size()) / 100});
  b.node("Relu", {"x"}, {"y"});
  const Tensor in = Tensor::from_vector<float>({100, static_cast<int64_t>(values.size()) / 100}, values);
  return calibrate(b.model(), in, false).tensors.at("x");
}

Calibration one(const TensorStats& s) {
  Calibration c;
  c.tensors["t"] = s;
  return c;
}

Range range_of(const TensorStats& s, Method m, float pct = 99.99f) { return one(s).ranges(m, pct).at("t"); }

std::vector<float> ramp(float lo, float hi, int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = lo + (hi - lo) * i / (n - 1);
  return v;
}

/// 100000 N(0, 1) samples with one outlier at 40.
std::vector<float> gaussian_with_outlier() {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(100000);
  for (float& x : v) x = dist(rng);
  v[123] = 40.0f;
  return v;
}

/// Mean squared error of quantizing the raw values with the parameters quantize() derives from r.
double mse(const std::vector<float>& v, Range r, bool sym) {
  const QuantParams q = activation_params(r, sym);
  double e = 0.0;
  for (float x : v) {
    const double d = x - math::dequantize(math::quantize_float(x, q.scale, q.zero_point), q.scale, q.zero_point);
    e += d * d;
  }
  return e / v.size();
}

constexpr float kBin = 1.0f / kHistogramBins;  // a bin as a fraction of the histogram's full width

}  // namespace

TEST(Histogram, CountsEveryValue) {
  const TensorStats s = stats_of(ramp(-1.0f, 3.0f, 100000));
  ASSERT_EQ(s.histogram.size(), static_cast<size_t>(kHistogramBins));
  int64_t total = 0;
  for (int64_t n : s.histogram) total += n;
  EXPECT_EQ(total, 100000);
  // The grid is [-h, h] with h the smallest power-of-two grid above max |x| = 3 (histogram.h).
  EXPECT_EQ(s.histogram_half_width, 4.0f);
  const double w = 2.0 * s.histogram_half_width / kHistogramBins;
  EXPECT_EQ(s.histogram.front(), 0);  // [-4, -1) is empty
  const int bin_of_min = static_cast<int>(std::floor((-1.0 + 4.0) / w));
  EXPECT_EQ(s.histogram[bin_of_min - 1], 0);  // nothing below min = -1
  EXPECT_GT(s.histogram[bin_of_min], 0);
  EXPECT_GT(s.histogram[static_cast<int>(std::floor((3.0 + 4.0) / w))], 0);   // the bin of max = 3
  EXPECT_EQ(s.histogram.back(), 0);  // above max
}

TEST(Percentile, AsymCutsHalfTheRestFromEachTail) {
  const TensorStats s = stats_of(ramp(-1.0f, 3.0f, 100000));
  const Range r = range_of(s, Method::kPercentileAsym, 99.0f);  // 0.5% of 4 = 0.02 from each end
  const float tol = 2 * 6.0f * kBin;
  EXPECT_NEAR(r.min, -0.98f, tol);
  EXPECT_NEAR(r.max, 2.98f, tol);
  const Range all = range_of(s, Method::kPercentileAsym, 100.0f);
  EXPECT_NEAR(all.min, -1.0f, tol);
  EXPECT_NEAR(all.max, 3.0f, tol);
}

TEST(Percentile, SymIsThePercentileOfAbs) {
  // |x| of a ramp on [-1, 3]: density 2 on [0, 1], 1 on (1, 3]; 1% of the mass 4 lies above 2.96.
  const Range r = range_of(stats_of(ramp(-1.0f, 3.0f, 100000)), Method::kPercentileSym, 99.0f);
  EXPECT_NEAR(r.max, 2.96f, 2 * 6.0f * kBin);
  EXPECT_EQ(r.min, -r.max);
}

TEST(Percentile, SymOfNonNegativeTensorIsZeroToT) {
  const Range r = range_of(stats_of(ramp(0.0f, 2.0f, 10000)), Method::kPercentileSym, 90.0f);
  EXPECT_EQ(r.min, 0.0f);
  EXPECT_NEAR(r.max, 1.8f, 2 * 4.0f * kBin);
}

TEST(SearchMethods, OnAGaussianWithOneOutlier) {
  const std::vector<float> v = gaussian_with_outlier();
  const TensorStats s = stats_of(v);
  for (bool sym : {false, true}) {
    const Range mm = range_of(s, sym ? Method::kMinMaxSym : Method::kMinMaxAsym);
    const Range e = range_of(s, sym ? Method::kEntropySym : Method::kEntropyAsym);
    const Range m = range_of(s, sym ? Method::kMseSym : Method::kMseAsym);
    const Range q = range_of(s, sym ? Method::kSqnrSym : Method::kSqnrAsym);
    EXPECT_FLOAT_EQ(mm.max, 40.0f);
    for (const Range& r : {e, m, q}) {
      EXPECT_LE(r.min, 0.0f);
      EXPECT_GE(r.max, 0.0f);
      EXPECT_GE(r.min, mm.min);
      EXPECT_LE(r.max, mm.max);
      if (sym) {
        EXPECT_EQ(r.min, -r.max);
      }
    }
    // KL divergence clips the lone outlier and keeps the Gaussian bulk (TensorRT's ~3-4 sigma).
    EXPECT_GT(e.max, 2.5f) << "sym=" << sym;
    EXPECT_LT(e.max, 6.0f) << "sym=" << sym;
    // One value in 1e5 at 40 costs more clipped than the finer grid saves: MSE clips little. Its
    // choice beats min/max on the raw values too, not only on the histogram.
    EXPECT_GT(m.max, 20.0f) << "sym=" << sym;
    EXPECT_LT(mse(v, m, sym), mse(v, mm, sym)) << "sym=" << sym;
    // Clipping noise counts 3x in SQNR: it clips less than MSE.
    EXPECT_GT(q.max, m.max) << "sym=" << sym;
  }
}

TEST(SearchMethods, SymKeepsNonNegativeTensorsAtZero) {
  std::vector<float> v = gaussian_with_outlier();
  for (float& x : v) x = std::max(x, 0.0f);
  const TensorStats s = stats_of(v);
  for (Method m : {Method::kEntropySym, Method::kMseSym, Method::kSqnrSym, Method::kPercentileSym}) {
    const Range r = range_of(s, m);
    EXPECT_EQ(r.min, 0.0f) << method_name(m);
    EXPECT_GT(r.max, 0.0f) << method_name(m);
  }
}

TEST(SearchMethods, AllZeroTensorHasZeroRangeEverywhere) {
  const TensorStats s = stats_of(std::vector<float>(1000, 0.0f));
  EXPECT_TRUE(s.histogram.empty());
  for (const char* name : {"MIN_MAX_ASYM", "MIN_MAX_SYM", "ENTROPY_ASYM", "ENTROPY_SYM", "PERCENTILE_ASYM",
                           "PERCENTILE_SYM", "SQNR_ASYM", "SQNR_SYM", "MSE_ASYM", "MSE_SYM"}) {
    const Range r = range_of(s, method_from_name(name));
    EXPECT_EQ(r.min, 0.0f) << name;
    EXPECT_EQ(r.max, 0.0f) << name;
  }
}

TEST(SearchMethods, UniformDataIsNotClippedByMse) {
  // Without outliers, clipping only adds error: MSE keeps (nearly) the whole range.
  const TensorStats s = stats_of(ramp(-1.0f, 1.0f, 100000));
  const Range r = range_of(s, Method::kMseSym);
  EXPECT_GT(r.max, 0.95f);
}

// ENTROPY follows TensorRT's KL calibration (MXNet's / ONNX Runtime's form): P and Q are smoothed
// in counts (1e-4 per empty bin), so neither the number of empty bins in a window nor a sparse
// histogram decides the range.
TEST(Entropy, UniformIsNotClipped) {
  // No tail: any clipping piles mass into the edge bin that Q does not have.
  const TensorStats s = stats_of(ramp(-2.0f, 2.0f, 100000));
  for (Method m : {Method::kEntropyAsym, Method::kEntropySym}) {
    const Range r = range_of(s, m);
    EXPECT_GT(r.max, 0.97f * 2.0f) << method_name(m);
    EXPECT_LT(r.min, -0.97f * 2.0f) << method_name(m);
  }
}

TEST(Entropy, SparseHistogramIsNotClipped) {
  // 2,000 values spread uniformly over [-10, 10]: the 4096-bin histogram is mostly empty (as for
  // logits: 10 values per image). Smoothing 1e-4 of the total mass into each empty bin made every
  // wide window pay log(1 + 1e-4 * empty bins) and clipped such tensors to a fraction of their range.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-10.0f, 10.0f);
  std::vector<float> v(2000);
  for (float& x : v) x = u(rng);
  const TensorStats s = stats_of(v);
  for (Method m : {Method::kEntropyAsym, Method::kEntropySym}) {
    const Range r = range_of(s, m);
    EXPECT_GT(r.max, 0.9f * s.max) << method_name(m);
    EXPECT_LT(r.min, 0.9f * s.min) << method_name(m);
  }
}

TEST(Entropy, ClipsAHeavyTailOnlyWhereItIsSparse) {
  // Laplace(0, 1) bulk: the range ends in the tail, well past the bulk (> 4 scale units, which
  // holds all but e^-4 = 1.8% of the mass) and before the extreme.
  std::mt19937 rng(3);
  std::exponential_distribution<float> e(1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(100000);
  for (float& x : v) x = sign(rng) ? e(rng) : -e(rng);
  const TensorStats s = stats_of(v);
  const Range r = range_of(s, Method::kEntropySym);
  EXPECT_GT(r.max, 4.0f);
  EXPECT_LT(r.max, s.max);
}

TEST(Entropy, ATensorFarFromZeroIsNotClippedToAnEdgeSpike) {
  // 2,000 values uniform on [4, 8], like a LayerNorm variance, and one low value at 0.498 (vit's final
  // LayerNorm variance: 7999 of 8000 values above 0.6). The window [0, 0.5] (a candidate: 16/256
  // of the range) holds only that value, in its edge bin, where P piles up all the clipped values:
  // P and Q are then the same one-bin spike and KL = 0. Windows that clip more values than they
  // keep are not candidates, so ENTROPY keeps (nearly) the whole range, as for any uniform data.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(4.0f, 8.0f);
  std::vector<float> v(2000);
  for (float& x : v) x = u(rng);
  v[0] = 8.0f, v[1] = 0.498f;
  const TensorStats s = stats_of(v);
  for (Method m : {Method::kEntropyAsym, Method::kEntropySym}) {
    const Range r = range_of(s, m);
    EXPECT_EQ(r.min, 0.0f) << method_name(m);
    EXPECT_GT(r.max, 0.97f * 8.0f) << method_name(m);
  }
}

namespace {

/// A random histogram on the grid histogram.h builds (h = kHistogramBins/2 * 2^-3): counts over
/// [lo_bin, hi_bin), `fill` of the bins non-empty, counts 1..max_count, plus a few large spikes.
TensorStats random_histogram(std::mt19937& rng, int lo_bin, int hi_bin, double fill, int max_count) {
  TensorStats s;
  s.histogram.assign(kHistogramBins, 0);
  s.histogram_half_width = (kHistogramBins / 2) * 0.125f;
  std::bernoulli_distribution take(fill);
  std::uniform_int_distribution<int> count(1, max_count);
  for (int i = lo_bin; i < hi_bin; ++i)
    if (take(rng)) s.histogram[i] = count(rng);
  std::uniform_int_distribution<int> at(lo_bin, hi_bin - 1);
  for (int k = 0; k < 3; ++k) s.histogram[at(rng)] += 100000;
  s.histogram[lo_bin] += 1, s.histogram[hi_bin - 1] += 1;  // the extremes are non-empty
  const double w = 2.0 * s.histogram_half_width / kHistogramBins;
  s.min = static_cast<float>(-s.histogram_half_width + (lo_bin + 0.25) * w);
  s.max = static_cast<float>(-s.histogram_half_width + (hi_bin - 0.25) * w);
  for (int64_t n : s.histogram) s.count += n;
  return s;
}

/// The candidates search_range tries: alpha * R0 for both ends and for each end alone.
std::vector<Range> candidates(const TensorStats& s, bool sym) {
  Range r0 = include_zero({s.min, s.max});
  if (sym) r0 = symmetric(r0);
  std::vector<Range> out;
  for (int k = 16; k <= 256; k += 8) {
    const float alpha = k / 256.0f;
    out.push_back({alpha * r0.min, alpha * r0.max});
    if (!sym) out.push_back({alpha * r0.min, r0.max}), out.push_back({r0.min, alpha * r0.max});
  }
  // Steps of k bins (the histograms' bins are 0.125 wide, centred on odd multiples of 0.0625):
  // for odd k every level boundary falls exactly on a bin centre, a tie quantize_float rounds to
  // even; for k = 1/2 a step is narrower than a bin.
  for (float k : {0.5f, 1.0f, 2.0f, 3.0f, 5.0f, 8.0f}) {
    const float step = 0.125f * k;
    out.push_back(sym ? Range{-127 * step, 127 * step} : Range{-100 * step, 155 * step});
  }
  return out;
}

}  // namespace

TEST(FastObjective, EqualsTheBinByBinObjectiveOnRandomHistograms) {
  std::mt19937 rng(11);
  struct Shape { int lo, hi; double fill; int max_count; };
  // Dense and sparse, signed and non-negative (a ReLU output's spike at 0 included), narrow.
  const Shape shapes[] = {{100, 4000, 0.9, 50}, {1, 4095, 0.05, 3}, {2048, 4096, 0.7, 1000},
                          {1900, 2300, 1.0, 7}, {0, 4096, 0.3, 1}, {1024, 3000, 0.01, 20}};
  int compared = 0, finite = 0;
  for (const Shape& sh : shapes) {
    const TensorStats s = random_histogram(rng, sh.lo, sh.hi, sh.fill, sh.max_count);
    for (bool sym : {false, true})
      for (Objective obj : {Objective::kEntropy, Objective::kMse, Objective::kSqnr})
        for (const Range& cand : candidates(s, sym)) {
          const double direct = objective_direct(s, cand, sym, obj), fast = objective_fast(s, cand, sym, obj);
          ++compared;
          if (std::isinf(direct)) {
            EXPECT_TRUE(std::isinf(fast)) << "[" << cand.min << ", " << cand.max << "]";
            continue;
          }
          ++finite;
          // KL may be exactly 0 (P = Q); the prefix sums leave ~1e-15 there.
          EXPECT_NEAR(fast, direct, 1e-9 * std::fabs(direct) + (obj == Objective::kEntropy ? 1e-12 : 0.0))
              << "objective " << static_cast<int>(obj) << (sym ? " sym" : " asym") << " [" << cand.min << ", "
              << cand.max << "]";
        }
  }
  EXPECT_GT(finite, compared / 2);
}

TEST(FastObjective, RejectsAGridThatIsNotAPowerOfTwo) {
  std::mt19937 rng(2);
  TensorStats s = random_histogram(rng, 1000, 3000, 0.5, 10);
  s.histogram_half_width *= 1.5f;  // a JSON file may carry any half-width >= max |x|
  EXPECT_THROW(objective_fast(s, {s.min, s.max}, false, Objective::kMse), Error);
  // search_range then takes the bin-by-bin objective.
  EXPECT_LE(search_range(s, Objective::kMse, false).max, s.max);
}

TEST(FastObjective, SearchPicksTheRangeOfABinByBinSweep) {
  // search_range (prefix sums) against the sweep written out with the bin-by-bin objective.
  std::mt19937 rng(5);
  const TensorStats s = random_histogram(rng, 700, 3600, 0.6, 40);
  for (bool sym : {false, true})
    for (Objective obj : {Objective::kEntropy, Objective::kMse, Objective::kSqnr}) {
      Range r0 = include_zero({s.min, s.max});
      if (sym) r0 = symmetric(r0);
      Range best = r0;
      double best_value = INFINITY;
      auto sweep = [&](bool lo, bool hi) {
        const Range start = best;
        for (int k = 16; k <= 256; ++k) {
          const float alpha = static_cast<float>(k) / 256;
          const Range cand{lo ? alpha * r0.min : start.min, hi ? alpha * r0.max : start.max};
          const double v = objective_direct(s, cand, sym, obj);
          if (v < best_value) best_value = v, best = cand;
        }
      };
      sweep(true, true);
      if (!sym)
        for (int round = 0; round < 2; ++round) sweep(true, false), sweep(false, true);
      const Range got = search_range(s, obj, sym);
      EXPECT_EQ(got.min, best.min) << static_cast<int>(obj) << sym;
      EXPECT_EQ(got.max, best.max) << static_cast<int>(obj) << sym;
    }
}
