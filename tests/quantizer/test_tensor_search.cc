/// Per-tensor choice of method (quant::search_tensor_ranges) and the per-tensor sensitivity
/// diagnosis, on a model where the right choice per tensor is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "anvil/quantizer/quantizer.h"
#include "model_builder.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

/// y = Tanh(x^3) + x. x: 256 x 64 values uniform in [-1.5, 1.5], 1% of them at +-6 (a sparse tail).
/// p = x^3 (a float Pow; its output is quantized) has the outliers at +-216 while Tanh saturates
/// beyond 3: p wants its tail clipped (Tanh(8) = Tanh(216)); x and y pass the outliers to the output
/// linearly and want them kept (min/max). With the 98th percentile (1% cut from each tail), the
/// right choice is: x MIN_MAX, p PERCENTILE, y MIN_MAX.
struct TanhCubeModel {
  onnx::ModelProto model;
  Tensor inputs;
  TanhCubeModel() {
    ModelBuilder b;
    b.input("x", {64}).output("y", {64});
    b.init("three", Tensor::scalar<float>(3.0f));
    b.node("Pow", {"x", "three"}, {"p"});
    b.node("Tanh", {"p"}, {"t"});
    b.node("Add", {"t", "x"}, {"y"});
    model = optimize(b.model());
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.5f, 1.5f);
    std::vector<float> v(256 * 64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = i % 100 == 7 ? (i % 200 == 7 ? 6.0f : -6.0f) : u(rng);
    inputs = Tensor::from_vector<float>({256, 64}, v);
  }
};

}  // namespace

TEST(TensorSearch, FindsTheKnownChoicePerTensor) {
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  TensorSearchOptions o;
  o.candidates = {Method::kMinMaxAsym, Method::kPercentileAsym};
  o.quantize.percentile = 98.0f;
  o.samples = 128;
  const TensorSearchResult r = search_tensor_ranges(m.model, calib, m.inputs, o).value();
  ASSERT_EQ(r.method_sqnr_db.size(), 2u);
  const double minmax_db = r.method_sqnr_db[0].second, percentile_db = r.method_sqnr_db[1].second;
  EXPECT_EQ(r.start_sqnr_db, std::max(minmax_db, percentile_db));
  const std::map<std::string, Range> mm = calib.ranges(Method::kMinMaxAsym);
  const std::map<std::string, Range> pc = calib.ranges(Method::kPercentileAsym, 98.0f);
  // The known choice.
  EXPECT_FLOAT_EQ(r.ranges.at("x").max, mm.at("x").max);
  EXPECT_FLOAT_EQ(r.ranges.at("y").max, mm.at("y").max);
  EXPECT_FLOAT_EQ(r.ranges.at("p").max, pc.at("p").max);
  EXPECT_LT(r.ranges.at("p").max, 0.1f * mm.at("p").max);
  // It beats both single methods clearly, and never loses against its start.
  EXPECT_GT(r.sqnr_db, std::max(minmax_db, percentile_db) + 3.0);
  EXPECT_GE(r.sqnr_db, r.start_sqnr_db);
  EXPECT_FALSE(r.choices.empty());
  EXPECT_GT(r.evaluations, 2);
  // The ranges quantize to a model (the grid is the start method's).
  QuantizeOptions q;
  q.method = r.grid;
  EXPECT_TRUE(quantize(m.model, r.ranges, q).ok());
}

TEST(TensorSearch, NodesKeptInFloatAreNotSearched) {
  // With Pow and Tanh in float, p lies between two float nodes: it is not quantized, so it is not
  // searched, and the choice that helped on it (PERCENTILE) is not made.
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  TensorSearchOptions o;
  o.candidates = {Method::kMinMaxAsym, Method::kPercentileAsym};
  o.quantize.percentile = 98.0f;
  o.samples = 128;
  o.quantize.exclude_nodes = "^(Pow|Tanh)_";
  const TensorSearchResult r = search_tensor_ranges(m.model, calib, m.inputs, o).value();
  for (const TensorChoice& c : r.choices) EXPECT_NE(c.tensor, "p");
  TensorSearchOptions everything = o;
  everything.quantize.exclude_nodes.clear();
  const TensorSearchResult all = search_tensor_ranges(m.model, calib, m.inputs, everything).value();
  EXPECT_TRUE(std::any_of(all.choices.begin(), all.choices.end(), [](const TensorChoice& c) { return c.tensor == "p"; }));
  EXPECT_LT(r.evaluations, all.evaluations);
  // A pattern that matches no node is the quantizer's error, not a silent no-op.
  o.quantize.exclude_nodes = "NoSuchNode";
  auto e = search_tensor_ranges(m.model, calib, m.inputs, o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.error().what()).find("NoSuchNode"), std::string::npos) << std::string(e.error().what());
}

TEST(TensorSearch, SensitivityShowsWhichTensorAProbeHelpsOrHurts) {
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  // PERCENTILE at 98 on one tensor, MIN_MAX elsewhere: helps on p, hurts on x and y.
  QuantizeOptions minmax;
  minmax.method = Method::kMinMaxAsym;
  minmax.percentile = 98.0f;
  const std::vector<TensorSensitivity> s =
      tensor_sensitivity(m.model, calib, m.inputs, minmax, Method::kPercentileAsym, 128).value();
  std::map<std::string, double> db;
  for (const TensorSensitivity& t : s) db[t.tensor] = t.sqnr_db;
  ASSERT_EQ(db.size(), 3u);  // x, p, y (t is Tanh's fixed-parameter output)
  const double base = s[0].base_sqnr_db;
  EXPECT_GT(db.at("p"), base + 3.0);
  EXPECT_LT(db.at("x"), base);
  EXPECT_LT(db.at("y"), base);
}

TEST(TensorSearch, BadInputsAreErrors) {
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  TensorSearchOptions o;
  o.samples = 0;
  auto r = search_tensor_ranges(m.model, calib, m.inputs, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  o.samples = 8;
  auto e = search_tensor_ranges(m.model, calib, Tensor(DType::kInt8, {8, 64}), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  auto s = tensor_sensitivity(m.model, calib, m.inputs, QuantizeOptions{}, Method::kMseAsym, -1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  // Held-out inputs: a negative count, and more scoring + held-out inputs than given (256).
  o.holdout = -1;
  auto h = search_tensor_ranges(m.model, calib, m.inputs, o);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.error().what()).find("holdout"), std::string::npos) << std::string(h.error().what());
  o.samples = 200;
  o.holdout = 100;
  auto big = search_tensor_ranges(m.model, calib, m.inputs, o);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(big.error().what()).find("200 scoring + 100 held-out inputs asked, 256 given"), std::string::npos)
      << std::string(big.error().what());
}

TEST(TensorSearch, SensitivityKeepsTheExcludedNodesInFloat) {
  // As NodesKeptInFloatAreNotSearched: with Pow and Tanh float, p is not quantized, so it has no row.
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  QuantizeOptions base;
  base.percentile = 98.0f;
  base.exclude_nodes = "^(Pow|Tanh)_";
  const std::vector<TensorSensitivity> s =
      tensor_sensitivity(m.model, calib, m.inputs, base, Method::kPercentileAsym, 128).value();
  ASSERT_FALSE(s.empty());
  for (const TensorSensitivity& t : s) EXPECT_NE(t.tensor, "p");
}

TEST(TensorSearch, HeldOutInputsRefuseAChangeThatOnlyFitsTheScoringInputs) {
  // The TanhCube model. Scoring inputs (also the calibration data): x uniform in [-0.8, 0.8] with
  // 1% at +-6, so p = x^3 lies in [-0.51, 0.51] but for the tail at +-216. There MIN_MAX wins as
  // a whole (it keeps the tail of x and y), and p alone wants PERCENTILE (98: about [-0.51, 0.51]),
  // where Tanh(216) = Tanh(0.51) hardly matters against MIN_MAX's 1.7-wide steps on p.
  // Held-out inputs: |x| in [1.2, 1.5], p in [1.7, 3.4], which that clipped range of p cuts to
  // Tanh(0.51) = 0.47 instead of 0.94-1.0: the change fits the scoring inputs only.
  const TanhCubeModel m;
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> small(-0.8f, 0.8f), mid(1.2f, 1.5f);
  std::vector<float> v;
  for (int i = 0; i < 128 * 64; ++i) v.push_back(i % 100 == 7 ? (i % 200 == 7 ? 6.0f : -6.0f) : small(rng));
  const Calibration calib = calibrate(m.model, Tensor::from_vector<float>({128, 64}, v), false);
  for (int i = 0; i < 128 * 64; ++i) v.push_back(i % 2 ? mid(rng) : -mid(rng));
  const Tensor inputs = Tensor::from_vector<float>({256, 64}, v);
  TensorSearchOptions o;
  o.candidates = {Method::kPercentileAsym, Method::kMinMaxAsym};
  o.quantize.percentile = 98.0f;
  o.samples = 128;
  const TensorSearchResult plain = search_tensor_ranges(m.model, calib, inputs, o).value();
  EXPECT_TRUE(std::isnan(plain.holdout_db));
  EXPECT_TRUE(plain.rejected.empty());
  o.holdout = 128;
  const TensorSearchResult held = search_tensor_ranges(m.model, calib, inputs, o).value();
  // Same start on the same scoring inputs.
  EXPECT_EQ(held.grid, plain.grid);
  EXPECT_EQ(held.start_sqnr_db, plain.start_sqnr_db);
  ASSERT_FALSE(std::isnan(held.start_holdout_db));
  // The plain search clips p; the held-out inputs refuse exactly that ...
  EXPECT_TRUE(std::any_of(plain.choices.begin(), plain.choices.end(), [](const TensorChoice& c) {
    return c.tensor == "p" && c.method == Method::kPercentileAsym;
  }));
  EXPECT_TRUE(std::any_of(held.rejected.begin(), held.rejected.end(), [](const TensorChoice& c) {
    return c.tensor == "p" && c.method == Method::kPercentileAsym;
  }));
  for (const TensorChoice& c : held.choices) EXPECT_NE(c.tensor, "p");
  // ... and every change it kept raised both SQNRs.
  double scoring = held.start_sqnr_db, holdout = held.start_holdout_db;
  for (const TensorChoice& c : held.choices) {
    EXPECT_GT(c.sqnr_db, scoring) << c.tensor;
    EXPECT_GT(c.holdout_db, holdout) << c.tensor;
    scoring = c.sqnr_db, holdout = c.holdout_db;
  }
  EXPECT_GE(held.holdout_db, held.start_holdout_db);
}
