// Requirements of the TFLite 8-bit rules and of the ONNX QDQ output that an audit found untested:
// fixed output parameters, activation fusion, same-scale operators, Concat requantization, and the
// range methods on synthetic data with a closed-form answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "anvil/common/onnx_model.h"
#include "anvil/common/requant.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "../reference/int8_agreement_for_tests.h"
#include "histogram.h"
#include "model_builder.h"
#include "quant_params.h"
#include "range_methods.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

constexpr std::array<Method, 10> kAllMethods = {
    Method::kMinMaxAsym,    Method::kMinMaxSym, Method::kEntropyAsym, Method::kEntropySym, Method::kPercentileAsym,
    Method::kPercentileSym, Method::kSqnrAsym,  Method::kSqnrSym,     Method::kMseAsym,    Method::kMseSym};

/// The parameters of the QuantizeLinear -> DequantizeLinear pair of activation t: the Q reading t,
/// or, for a graph output (renamed, ... -> Q -> DQ -> t), the Q before the DQ writing t.
struct QdqParams {
  bool found = false;
  float scale = 0.0f;
  int zero_point = 0;
};
QdqParams qdq_params(const onnx::ModelProto& m, const std::string& t) {
  const onnx::NodeProto* q = nullptr;
  for (const auto* n : consumers(m, t))
    if (n->op_type() == "QuantizeLinear") q = n;
  const onnx::NodeProto* dq = producer(m, t);
  if (!q && dq && dq->op_type() == "DequantizeLinear") q = producer(m, dq->input(0));
  if (!q || q->op_type() != "QuantizeLinear") return {};
  return {true, initializer(m, q->input(1)).data<float>()[0], initializer(m, q->input(2)).data<int8_t>()[0]};
}

onnx::ModelProto quantized(const onnx::ModelProto& optimized, const Calibration& calib, Method method) {
  QuantizeOptions options;
  options.method = method;
  auto q = quantize(optimized, calib, options);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().what());
  return q.ok() ? q.value() : onnx::ModelProto();
}

Range range_of_stats(const TensorStats& s) { return include_zero({s.min, s.max}); }

/// Largest |a - b| over output `name` of the FP32 and the QDQ model run by the reference executor.
float max_abs_difference(const onnx::ModelProto& fp32, const onnx::ModelProto& qdq, const std::string& name,
                         const Tensor& x) {
  auto want = ref::Executor::create(fp32)->run({{"x", x}});
  auto got = ref::Executor::create(qdq)->run({{"x", x}});
  EXPECT_TRUE(want.ok() && got.ok());
  if (!want.ok() || !got.ok()) return INFINITY;
  const Tensor& a = want->at(name);
  const Tensor& b = got->at(name);
  EXPECT_EQ(a.shape(), b.shape());
  float err = 0.0f;
  for (int64_t i = 0; i < a.numel(); ++i) err = std::max(err, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  return err;
}

}  // namespace

// ---- fixed output parameters ---------------------------------------------------------------------

// TFLite: SOFTMAX's output is int8 with scale 1/256 and zero point -128, whatever its calibrated range.
TEST(SpecFixedParams, SoftmaxOutputIsOneOver256WithZeroPointMinus128) {
  ModelBuilder b;
  b.input("x", {8}).output("y", {3});
  b.init("W", random_tensor({8, 3}, -1.0f, 1.0f, 11));
  b.node("Softmax", {"x"}, {"s"});
  b.node("MatMul", {"s", "W"}, {"y"});
  const onnx::ModelProto opt = optimize(b.model());
  const Calibration calib = calibrate(opt, random_tensor({32, 8}, -4.0f, 4.0f, 12), false);
  // The calibrated range alone would give another scale: the test sees the rule, not a coincidence.
  ASSERT_NE(activation_params(range_of_stats(calib.tensors.at("s")), false).scale, 1.0f / 256.0f);
  for (Method method : {Method::kMinMaxAsym, Method::kMinMaxSym, Method::kMseAsym}) {
    const QdqParams s = qdq_params(quantized(opt, calib, method), "s");
    ASSERT_TRUE(s.found) << method_name(method);
    EXPECT_EQ(s.scale, 1.0f / 256.0f) << method_name(method);
    EXPECT_EQ(s.zero_point, -128) << method_name(method);
  }
}

// ---- fused activations ---------------------------------------------------------------------------

namespace {

/// x [N, 2, 5, 5] -> Conv -> c -> Clip(c, min?, max) -> y; `with_min` false leaves min empty.
onnx::ModelProto conv_clip(bool with_min) {
  ModelBuilder b;
  b.input("x", {2, 5, 5}).output("y", {3, 5, 5});
  b.init("w", random_tensor({3, 2, 3, 3}, -1.0f, 1.0f, 21)).init("bias", random_tensor({3}, -0.5f, 0.5f, 22));
  b.init("lo", Tensor::scalar<float>(0.0f)).init("hi", Tensor::scalar<float>(6.0f));
  set_ints(b.node("Conv", {"x", "w", "bias"}, {"c"}), "pads", {1, 1, 1, 1});
  b.node("Clip", {"c", with_min ? "lo" : "", "hi"}, {"y"});
  return b.model();
}

}  // namespace

// TFLite fuses RELU6 into the Conv: one output range, the Clip's, and no Q/DQ between the two.
TEST(SpecFusedActivation, ConvClip06HasOneRangeAfterTheClip) {
  for (bool with_min : {true, false}) {
    SCOPED_TRACE(with_min ? "Clip(c, 0, 6)" : "Clip(c, , 6)");
    const onnx::ModelProto fp32 = conv_clip(with_min);
    const onnx::ModelProto opt = optimize(fp32);
    const Tensor x = random_tensor({16, 2, 5, 5}, -4.0f, 4.0f, 23);
    const Calibration calib = calibrate(opt, x, false);
    const TensorStats& y = calib.tensors.at("y");
    ASSERT_EQ(y.max, 6.0f);  // the data saturates the Clip
    if (with_min) {
      ASSERT_EQ(y.min, 0.0f);
    } else {
      ASSERT_LT(y.min, -6.0f);  // no lower bound: the Conv's own minimum
    }
    const onnx::ModelProto m = quantized(opt, calib, Method::kMinMaxAsym);
    // Conv -> Clip directly: no QuantizeLinear on c, the Clip reads the Conv's own output.
    EXPECT_EQ(count_ops(m, "QuantizeLinear"), 2);  // x and y
    const auto readers = consumers(m, "c");
    ASSERT_EQ(readers.size(), 1u);
    EXPECT_EQ(readers[0]->op_type(), "Clip");
    EXPECT_EQ(producer(m, "c")->op_type(), "Conv");
    const QdqParams q = qdq_params(m, "y");
    ASSERT_TRUE(q.found);
    if (with_min) {  // [0, 6]: scale 6/255, zero point -128
      EXPECT_EQ(q.scale, 6.0f / 255.0f);
      EXPECT_EQ(q.zero_point, -128);
    } else {  // [min(c), 6]
      const QuantParams want = activation_params({y.min, 6.0f}, false);
      EXPECT_EQ(q.scale, want.scale);
      EXPECT_EQ(q.zero_point, want.zero_point);
      EXPECT_GT(q.zero_point, -128);
    }
    // The integer lowering runs the pair as one Conv with the Clip's bounds.
    EXPECT_LE(anvil::test::int8_agreement(m, {{"x", x}}, 16).max_diff, 1);
  }
}

// ---- same-scale operators ------------------------------------------------------------------------

namespace {

struct SameScaleCase {
  const char* op;
  Shape out;  ///< the output's dims after the batch
};

/// x [N, 1, 4, 4] -> op -> y.
onnx::ModelProto same_scale_model(const SameScaleCase& c) {
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y", c.out);
  const std::string op = c.op;
  std::vector<std::string> inputs = {"x"};
  if (op == "Reshape") {
    b.init("shape", Tensor::from_vector<int64_t>({2}, {-1, 16}));
    inputs.push_back("shape");
  }
  if (op == "Squeeze" || op == "Unsqueeze") {  // opset 13: axes are an input
    b.init("axes", Tensor::from_vector<int64_t>({1}, {1}));
    inputs.push_back("axes");
  }
  if (op == "Slice") {  // rows 1..2
    b.init("starts", Tensor::from_vector<int64_t>({1}, {1})).init("ends", Tensor::from_vector<int64_t>({1}, {3}));
    b.init("axes", Tensor::from_vector<int64_t>({1}, {2}));
    inputs.insert(inputs.end(), {"starts", "ends", "axes"});
  }
  if (op == "Pad") {  // one zero on each side of H and W; 0 is inside the input's range
    b.init("pads", Tensor::from_vector<int64_t>({8}, {0, 0, 1, 1, 0, 0, 1, 1}));
    inputs.push_back("pads");
  }
  if (op == "Resize") {  // nearest, x2
    b.init("scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2}));
    inputs.insert(inputs.end(), {"", "scales"});
  }
  onnx::NodeProto& n = b.node(op, inputs, {"y"});
  if (op == "AveragePool" || op == "MaxPool") set_ints(n, "kernel_shape", {2, 2});
  if (op == "Transpose") set_ints(n, "perm", {0, 1, 3, 2});
  if (op == "Flatten") set_int(n, "axis", 1);
  return b.model();
}

}  // namespace

// TFLite: MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, TRANSPOSE, SQUEEZE, SLICE, PAD and RESIZE keep the
// input's scale and zero point, and so do Unsqueeze and Flatten (reshapes). The output's own
// statistics would give another grid. (MaxPool, Slice, Pad and Resize were added when mutation
// testing found that taking Pad out of the same-scale set failed no test: with real calibration a
// zero-padded tensor's range equals its input's, so only hand-made statistics tell them apart.)
TEST(SpecSameScale, OutputTakesTheInputsScaleAndZeroPoint) {
  const SameScaleCase cases[] = {{"AveragePool", {1, 3, 3}}, {"Reshape", {16}},       {"Transpose", {1, 4, 4}},
                                 {"Squeeze", {4, 4}},        {"Unsqueeze", {1, 1, 4, 4}}, {"Flatten", {16}},
                                 {"MaxPool", {1, 3, 3}},     {"Slice", {1, 2, 4}},        {"Pad", {1, 6, 6}},
                                 {"Resize", {1, 8, 8}}};
  Calibration calib;  // hand-made, so that the output's range differs from the input's
  calib.tensors["x"] = TensorStats{-1.0f, 3.0f, 16, {}, 0.0f, {}, 0};
  calib.tensors["y"] = TensorStats{-0.25f, 0.5f, 16, {}, 0.0f, {}, 0};
  for (const SameScaleCase& c : cases) {
    const onnx::ModelProto opt = optimize(same_scale_model(c));
    for (Method method : {Method::kMinMaxAsym, Method::kMinMaxSym}) {
      SCOPED_TRACE(std::string(c.op) + " " + method_name(method));
      const onnx::ModelProto m = quantized(opt, calib, method);
      const QdqParams x = qdq_params(m, "x"), y = qdq_params(m, "y");
      ASSERT_TRUE(x.found && y.found);
      const bool sym = method == Method::kMinMaxSym;
      EXPECT_EQ(x.scale, sym ? 3.0f / 127.0f : 4.0f / 255.0f);
      EXPECT_EQ(x.zero_point, sym ? 0 : -64);  // -128 + round(1 / (4/255)) = -128 + 64
      EXPECT_EQ(y.scale, x.scale);
      EXPECT_EQ(y.zero_point, x.zero_point);
    }
  }
}

// ---- Concat ----------------------------------------------------------------------------------------

// Concat's inputs and output share one grid (the union of their ranges, qdq.cc
// unify_concat_ranges), except an input whose parameters do not come from its range: a Sigmoid's
// fixed 1/256 grid is kept, and the Concat requantizes it to the output's grid. A graph input
// read by the Concat and by another node is unified: every reader sees the wider grid.
TEST(SpecConcat, FixedScaleSigmoidInputIsRequantizedToTheOutputGrid) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {8});
  b.node("Sigmoid", {"x"}, {"s"});
  set_int(b.node("Concat", {"s", "x"}, {"y"}), "axis", 1);
  const onnx::ModelProto fp32 = b.model();
  const onnx::ModelProto opt = optimize(fp32);
  const Tensor x = random_tensor({32, 4}, -6.0f, 6.0f, 41);
  const Calibration calib = calibrate(opt, x, false);
  const onnx::ModelProto m = quantized(opt, calib, Method::kMinMaxAsym);

  const TensorStats &sx = calib.tensors.at("x"), &ss = calib.tensors.at("s");
  const QuantParams joined =
      activation_params({std::min(sx.min, ss.min), std::max(sx.max, ss.max)}, false);
  const QdqParams qs = qdq_params(m, "s"), qx = qdq_params(m, "x"), qy = qdq_params(m, "y");
  ASSERT_TRUE(qs.found && qx.found && qy.found);
  EXPECT_EQ(qs.scale, 1.0f / 256.0f);
  EXPECT_EQ(qs.zero_point, -128);
  EXPECT_EQ(qy.scale, joined.scale);
  EXPECT_EQ(qy.zero_point, joined.zero_point);
  EXPECT_EQ(qx.scale, qy.scale);
  EXPECT_EQ(qx.zero_point, qy.zero_point);
  // Structure: Sigmoid -> Q(1/256) -> DQ -> Concat <- DQ <- Q(x), Concat -> Q(y grid) -> DQ -> y.
  const onnx::NodeProto* concat = nullptr;
  for (const auto& n : m.graph().node())
    if (n.op_type() == "Concat") concat = &n;
  ASSERT_NE(concat, nullptr);
  for (int k = 0; k < 2; ++k) {
    const onnx::NodeProto* dq = producer(m, concat->input(k));
    ASSERT_TRUE(dq && dq->op_type() == "DequantizeLinear") << k;
    const onnx::NodeProto* q = producer(m, dq->input(0));
    ASSERT_TRUE(q && q->op_type() == "QuantizeLinear") << k;
    EXPECT_EQ(q->input(0), k == 0 ? "s" : "x");
  }
  const auto after = consumers(m, concat->output(0));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]->op_type(), "QuantizeLinear");
  // Each output element is within one output step of FP32: the x half is x rounded once on the
  // output grid (half a step), the s half sigmoid(x) on a 1/256 grid then on the output grid.
  EXPECT_LE(max_abs_difference(fp32, m, "y", x), qy.scale);
  EXPECT_LE(anvil::test::int8_agreement(m, {{"x", x}}, 32).max_diff, 1);
}

// An input produced by a same-scale operator keeps its producer's input grid (qdq.cc: "a
// requantization remains there"), and the Concat requantizes it.
TEST(SpecConcat, SameScaleInputKeepsItsProducersGridAndIsRequantized) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {8});
  b.init("eighth", Tensor::from_vector<float>({4}, {0.125f, 0.125f, 0.125f, 0.125f}));  // not one element: calibrated
  b.init("shape", Tensor::from_vector<int64_t>({2}, {-1, 4}));
  b.node("Mul", {"x", "eighth"}, {"m"});
  b.node("Reshape", {"m", "shape"}, {"r"});
  set_int(b.node("Concat", {"r", "x"}, {"y"}), "axis", 1);
  const onnx::ModelProto fp32 = b.model();
  const onnx::ModelProto opt = optimize(fp32);
  const Tensor x = random_tensor({32, 4}, -8.0f, 8.0f, 51);
  const Calibration calib = calibrate(opt, x, false);
  const onnx::ModelProto m = quantized(opt, calib, Method::kMinMaxAsym);

  const QdqParams qm = qdq_params(m, "m"), qr = qdq_params(m, "r"), qx = qdq_params(m, "x"), qy = qdq_params(m, "y");
  ASSERT_TRUE(qm.found && qr.found && qx.found && qy.found);
  const QuantParams m_grid = activation_params(range_of_stats(calib.tensors.at("m")), false);
  EXPECT_EQ(qm.scale, m_grid.scale);
  EXPECT_EQ(qm.zero_point, m_grid.zero_point);
  EXPECT_EQ(qr.scale, qm.scale);  // the Reshape keeps its input's grid, not the Concat's
  EXPECT_EQ(qr.zero_point, qm.zero_point);
  EXPECT_EQ(qx.scale, qy.scale);
  EXPECT_EQ(qx.zero_point, qy.zero_point);
  EXPECT_GT(qy.scale, 7.0f * qr.scale);  // the output grid is the wide one
  const onnx::NodeProto* dq_r = nullptr;
  for (const auto& n : m.graph().node())
    if (n.op_type() == "Concat") dq_r = producer(m, n.input(0));
  ASSERT_TRUE(dq_r && dq_r->op_type() == "DequantizeLinear");
  EXPECT_EQ(producer(m, dq_r->input(0))->input(0), "r");  // the Concat reads r on r's own grid
  EXPECT_LE(max_abs_difference(fp32, m, "y", x), qy.scale);
  EXPECT_LE(anvil::test::int8_agreement(m, {{"x", x}}, 32).max_diff, 1);
}

// ---- range methods on synthetic data ---------------------------------------------------------------

namespace {

/// The statistics calibrate() records for `values` (histogram.h accumulate, as the observers call it).
TensorStats stats_from(const std::vector<float>& values) {
  TensorStats s;
  accumulate(s, values.data(), static_cast<int64_t>(values.size()));
  return s;
}

Range range_for(const TensorStats& s, Method m, float percentile = 99.99f) {
  Calibration c;
  c.tensors["t"] = s;
  return c.ranges(m, percentile).at("t");
}

/// n evenly spaced values from lo to hi, both included (a deterministic uniform sample).
std::vector<float> evenly_spaced(float lo, float hi, int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
  v.back() = hi;
  return v;
}

}  // namespace

TEST(SpecRangeMethods, UniformMinMaxIsTheExactRange) {
  for (const auto& [lo, hi] : {std::pair{-1.5f, 2.5f}, std::pair{-3.0f, 1.25f}}) {
    const TensorStats s = stats_from(evenly_spaced(lo, hi, 100001));
    const Range asym = range_for(s, Method::kMinMaxAsym), sym = range_for(s, Method::kMinMaxSym);
    EXPECT_EQ(asym.min, lo);
    EXPECT_EQ(asym.max, hi);
    const float m = std::max(-lo, hi);
    EXPECT_EQ(sym.min, -m);
    EXPECT_EQ(sym.max, m);
  }
}

// percentile_range ASYM cuts (100 - P)/2 % of the count from each tail (ONNX Runtime's rule): the
// result's ends are the outer edges of the bins holding the (100 - P)/2 and (100 + P)/2 quantiles.
TEST(SpecRangeMethods, PercentileAsymIsTheCentralQuantilesWithinOneBin) {
  const float lo = -1.5f, hi = 2.5f;
  const std::vector<float> v = evenly_spaced(lo, hi, 100001);  // sorted
  const TensorStats s = stats_from(v);
  ASSERT_EQ(s.histogram_half_width, 4.0f);
  const double w = 2.0 * s.histogram_half_width / kHistogramBins;
  for (float p : {99.0f, 95.0f, 80.0f, 50.0f}) {
    SCOPED_TRACE(p);
    const Range r = range_for(s, Method::kPercentileAsym, p);
    // The order statistics the rule picks: the first value (from either end) past the cut.
    const size_t k = static_cast<size_t>(std::floor((100.0 - p) / 200.0 * static_cast<double>(v.size())));
    const float q_lo = v[k], q_hi = v[v.size() - 1 - k];
    EXPECT_LE(r.min, q_lo);
    EXPECT_GT(r.min + w, q_lo);
    EXPECT_GT(r.max, q_hi);
    EXPECT_LE(r.max - w, q_hi);
    // Bin edges of the grid [-h, h].
    EXPECT_EQ(std::fmod(r.min + 4.0, w), 0.0);
    EXPECT_EQ(std::fmod(r.max + 4.0, w), 0.0);
    // The closed-form quantiles of U(lo, hi).
    EXPECT_NEAR(r.min, lo + (hi - lo) * (100.0 - p) / 200.0, w);
    EXPECT_NEAR(r.max, lo + (hi - lo) * (100.0 + p) / 200.0, w);
  }
}

TEST(SpecRangeMethods, NonNegativeTensorSymMethodsStartAtZero) {
  const float a = 3.0f;
  for (float lo : {0.0f, 0.75f}) {
    SCOPED_TRACE(lo);
    const TensorStats s = stats_from(evenly_spaced(lo, a, 100001));
    for (Method m : kAllMethods) {
      if (!is_symmetric(m)) continue;
      const Range r = range_for(s, m);
      EXPECT_EQ(r.min, 0.0f) << method_name(m);
      EXPECT_GT(r.max, 0.0f) << method_name(m);
      EXPECT_LE(r.max, a) << method_name(m);
    }
    const Range mm = range_for(s, Method::kMinMaxSym);
    EXPECT_EQ(mm.min, 0.0f);
    EXPECT_EQ(mm.max, a);
  }
}

// A tensor that is one value v (many copies). Every method's grid represents v: quantizing v
// gives the grid's extreme code on v's side (127 for v > 0: every range is [0, v] on the
// asymmetric grid; -128 on the asymmetric grid [v, 0]; -127 on the symmetric [v, -v]), and
// dequantizing it returns v to within one float ulp (not exactly in general: 255 * fl(v / 255) is
// v for about 99.7 % of floats), far below half a step.
TEST(SpecRangeMethods, RepeatedValueRoundTripsOnEveryGrid) {
  for (float v : {0.7f, 3.0f, 1e-3f, -0.7f, -3.0f, -1e-3f}) {
    const TensorStats s = stats_from(std::vector<float>(10000, v));
    for (Method m : kAllMethods) {
      SCOPED_TRACE(std::string(method_name(m)) + " v=" + std::to_string(v));
      const Range r = range_for(s, m);
      EXPECT_LE(r.min, 0.0f);
      EXPECT_GE(r.max, 0.0f);
      // v is the range's end on its side. MSE_SYM for v < 0 excepted: its grid [-a, a] has the
      // code -128 = -(128/127) a below -a (activation_params), and the range |v| * 127/128 that
      // puts v there ties with |v| (both exact) and, being narrower, wins.
      if (v > 0.0f || m != Method::kMseSym) {
        EXPECT_EQ(v > 0.0f ? r.max : r.min, v);
      }
      const QuantParams q = activation_params(r, is_symmetric(m));
      const int code = math::quantize_float(v, q.scale, q.zero_point);
      const float back = math::dequantize(code, q.scale, q.zero_point);
      const int want_code = v > 0.0f ? 127 : is_symmetric(m) ? -127 : -128;
      EXPECT_LE(std::abs(code - want_code), m == Method::kMseSym ? 1 : 0);  // MSE_SYM: -128, see above
      EXPECT_LE(std::fabs(back - v), std::fabs(std::nextafter(v, 2.0f * v) - v));
      EXPECT_LE(std::fabs(back - v), 0.5f * q.scale);
    }
  }
}

// An all-zero tensor has no histogram; every method gives [0, 0], and the grid has the documented
// floor scale kMinScale (finite, non-zero) with 0 exact.
TEST(SpecRangeMethods, AllZeroTensorGetsTheFloorScaleAndExactZero) {
  const TensorStats s = stats_from(std::vector<float>(1000, 0.0f));
  for (Method m : kAllMethods) {
    SCOPED_TRACE(method_name(m));
    const Range r = range_for(s, m);
    EXPECT_EQ(r.min, 0.0f);
    EXPECT_EQ(r.max, 0.0f);
    const QuantParams q = activation_params(r, is_symmetric(m));
    EXPECT_TRUE(std::isfinite(q.scale));
    EXPECT_EQ(q.scale, kMinScale);
    EXPECT_EQ(q.zero_point, -128);
    EXPECT_EQ(math::dequantize(math::quantize_float(0.0f, q.scale, q.zero_point), q.scale, q.zero_point), 0.0f);
  }
  // End to end: an all-zero input quantizes with that grid under every method and runs.
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Relu", {"x"}, {"y"});
  const onnx::ModelProto opt = optimize(b.model());
  const Tensor zeros(DType::kFloat32, {8, 4});
  const Calibration calib = calibrate(opt, zeros, false);
  for (Method m : kAllMethods) {
    SCOPED_TRACE(method_name(m));
    const onnx::ModelProto q = quantized(opt, calib, m);
    const QdqParams x = qdq_params(q, "x");
    ASSERT_TRUE(x.found);
    EXPECT_EQ(x.scale, kMinScale);
    auto out = ref::Executor::create(q)->run({{"x", zeros}});
    ASSERT_TRUE(out.ok()) << out.error().what();
    for (float y : out->at("y").to_vector<float>()) EXPECT_EQ(y, 0.0f);
  }
}
