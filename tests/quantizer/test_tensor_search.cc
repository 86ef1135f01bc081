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
  o.percentile = 98.0f;
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
  o.percentile = 98.0f;
  o.samples = 128;
  o.exclude_nodes = "^(Pow|Tanh)_";
  const TensorSearchResult r = search_tensor_ranges(m.model, calib, m.inputs, o).value();
  for (const TensorChoice& c : r.choices) EXPECT_NE(c.tensor, "p");
  TensorSearchOptions everything = o;
  everything.exclude_nodes.clear();
  const TensorSearchResult all = search_tensor_ranges(m.model, calib, m.inputs, everything).value();
  EXPECT_TRUE(std::any_of(all.choices.begin(), all.choices.end(), [](const TensorChoice& c) { return c.tensor == "p"; }));
  EXPECT_LT(r.evaluations, all.evaluations);
  // A pattern that matches no node is the quantizer's error, not a silent no-op.
  o.exclude_nodes = "NoSuchNode";
  auto e = search_tensor_ranges(m.model, calib, m.inputs, o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.error().what()).find("NoSuchNode"), std::string::npos) << std::string(e.error().what());
}

TEST(TensorSearch, SensitivityShowsWhichTensorAProbeHelpsOrHurts) {
  const TanhCubeModel m;
  const Calibration calib = calibrate(m.model, m.inputs, false);
  // PERCENTILE at 98 on one tensor, MIN_MAX elsewhere: helps on p, hurts on x and y.
  const std::vector<TensorSensitivity> s =
      tensor_sensitivity(m.model, calib, m.inputs, Method::kMinMaxAsym, Method::kPercentileAsym, 128, 98.0f).value();
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
  auto s = tensor_sensitivity(m.model, calib, m.inputs, Method::kMinMaxAsym, Method::kMseAsym, -1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
}
