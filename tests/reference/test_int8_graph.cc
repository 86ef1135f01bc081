// lower_qdq + run_int8: each QDQ pattern against the float execution of the same model, the
// lowering of weights and fused activations, and the errors of unsupported or malformed graphs.
#include <gtest/gtest.h>

#include "int8_agreement_for_tests.h"
#include "qdq_builder.h"

using namespace anvil;
using anvil::test::ActParams;
using anvil::test::calibrate;
using anvil::test::ModelBuilder;
using anvil::test::QdqBuilder;
using anvil::test::random_tensor;

namespace {

using Build = std::function<onnx::ModelProto(const ActParams&)>;

using Agreement = test::Int8Agreement;

/// The float Executor (Q/DQ included) and run_int8 of lower_qdq on the model's one input.
Agreement compare(const onnx::ModelProto& model, const Tensor& input) {
  auto exec = ref::Executor::create(model);
  EXPECT_TRUE(exec.ok()) << exec.error().what();
  if (!exec.ok()) return {1000, 0.0};
  const std::string in_name = exec->input_names().at(0);
  ref::Int8Graph graph;
  const Agreement a = test::int8_agreement(model, {{in_name, input}}, input.dim(0), &graph);
  EXPECT_EQ(graph.input_names, std::vector<std::string>{in_name});
  return a;
}

/// Calibrates then compares; every element must be within one quantization step.
void expect_within_one_step(const Build& build, const std::vector<std::string>& calibrated, const Tensor& input) {
  const ActParams p = calibrate(build, calibrated, {{"x", input}});
  const Agreement a = compare(build(p), input);
  EXPECT_LE(a.max_diff, 1);
  // Rounding differs from float on ties, and requant.h rounds twice (high multiply, then shift),
  // so a share of elements is off by one; a systematic offset would make most of them differ.
  EXPECT_GT(a.exact, 0.5);
}

std::vector<float> random_vector(int64_t n, uint32_t seed) { return random_tensor({n}, -0.5f, 0.5f, seed).to_vector<float>(); }

/// x -> Conv(+bias) -> [activation] -> Q; activation "Relu", "Clip" (0, 0.6), "ClipMinAboveMax" (0.5, 0.1) or "".
onnx::ModelProto conv_model(const ActParams& p, const Shape& x_shape, const Shape& w_shape, int64_t group,
                            const std::vector<int64_t>& pads, const std::vector<int64_t>& strides,
                            const std::vector<int64_t>& dilations, const std::string& activation) {
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, x_shape[1], x_shape[2], x_shape[3]});
  const std::string x = q.qdq("x");
  std::vector<float> w_scales;
  const std::string w = q.weight("w", random_tensor(w_shape, -0.5f, 0.5f, 7), 0, &w_scales);
  const std::string b = q.bias("b", random_vector(w_shape[0], 8), q.params("x").scale, w_scales);
  auto& conv = q.b.node("Conv", {x, w, b}, {"conv_out"}, "conv");
  ModelBuilder::attr(conv, "group", group);
  ModelBuilder::attr(conv, "pads", pads);
  ModelBuilder::attr(conv, "strides", strides);
  ModelBuilder::attr(conv, "dilations", dilations);
  std::string out = "conv_out";
  if (activation == "Relu") {
    q.b.node("Relu", {"conv_out"}, {"act_out"}, "act");
    out = "act_out";
  } else if (activation == "Clip" || activation == "ClipMinAboveMax") {
    const bool inverted = activation == "ClipMinAboveMax";
    q.b.initializer("lo", Tensor::scalar<float>(inverted ? 0.5f : 0.0f));
    q.b.initializer("hi", Tensor::scalar<float>(inverted ? 0.1f : 0.6f));
    q.b.node("Clip", {"conv_out", "lo", "hi"}, {"act_out"}, "act");
    out = "act_out";
  }
  q.b.output(q.qdq(out));
  return q.b.model();
}

}  // namespace

TEST(Int8Graph, ConvWithGroupsPadsStridesAndReluMatchesFloat) {
  const Tensor x = random_tensor({3, 4, 9, 9}, -1.0f, 2.0f, 1);
  expect_within_one_step(
      [](const ActParams& p) { return conv_model(p, {3, 4, 9, 9}, {6, 2, 3, 3}, 2, {1, 0, 1, 2}, {2, 1}, {1, 1}, "Relu"); },
      {"x", "act_out"}, x);
}

TEST(Int8Graph, DepthwiseDilatedConvWithClipMatchesFloat) {
  const Tensor x = random_tensor({2, 3, 8, 8}, -1.0f, 1.0f, 2);
  expect_within_one_step(
      [](const ActParams& p) { return conv_model(p, {2, 3, 8, 8}, {3, 1, 3, 3}, 3, {2, 2, 2, 2}, {1, 1}, {2, 2}, "Clip"); },
      {"x", "act_out"}, x);
}

TEST(Int8Graph, ReluAndClipFuseAsOutputBounds) {
  ActParams p;
  p["x"] = {0.02f, 3};
  p["act_out"] = {0.01f, -20};
  for (const std::string act : {"Relu", "Clip"}) {
    auto g = ref::lower_qdq(conv_model(p, {1, 2, 5, 5}, {2, 2, 1, 1}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1}, act), 1);
    ASSERT_TRUE(g.ok()) << g.error().what();
    ASSERT_EQ(g->ops.size(), 1u);
    const ref::Int8Op& op = g->ops[0];
    EXPECT_EQ(op.kind, ref::Int8OpKind::kConv);
    EXPECT_EQ(op.act_min, -20) << act;  // Relu: the output zero point; Clip(0, 0.6): quantize(0) = -20
    EXPECT_EQ(op.act_max, act == "Relu" ? 127 : 40) << act;  // quantize(0.6) = 60 - 20
    EXPECT_EQ(g->values[op.output].name, "act_out_q");
  }
  // Bounds beyond int8 are cut to [-128, 127].
  p["act_out"] = {0.001f, 0};
  auto g = ref::lower_qdq(conv_model(p, {1, 2, 5, 5}, {2, 2, 1, 1}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1}, "Clip"), 1);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_EQ(g->ops[0].act_min, 0);
  EXPECT_EQ(g->ops[0].act_max, 127);
}

TEST(Int8Graph, ClipWithMinAboveMaxClampsToMax) {
  // ONNX: Clip(0.5, 0.1) makes every element 0.1; the fused bounds are [quantize(0.1), quantize(0.1)].
  ActParams p;
  p["x"] = {0.02f, 3};
  p["act_out"] = {0.01f, -20};
  const onnx::ModelProto model = conv_model(p, {2, 2, 5, 5}, {2, 2, 1, 1}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1},
                                            "ClipMinAboveMax");
  auto g = ref::lower_qdq(model, 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 1u);
  EXPECT_EQ(g->ops[0].act_min, -10);  // 0.1 / 0.01 - 20
  EXPECT_EQ(g->ops[0].act_max, -10);
  const Agreement a = compare(model, random_tensor({2, 2, 5, 5}, -1.0f, 1.0f, 5));
  EXPECT_EQ(a.max_diff, 0);
}

namespace {
/// x[N,12] -> Gemm (transB 0/1) or MatMul with a [5,12] or [12,5] weight -> Q.
onnx::ModelProto linear_model(const ActParams& p, const std::string& op_type, int64_t trans_b, Tensor* w_int8) {
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 12});
  const std::string x = q.qdq("x");
  const bool k_by_o = op_type == "MatMul" || trans_b == 0;
  std::vector<float> w_scales;
  const std::string w = q.weight("w", random_tensor(k_by_o ? Shape{12, 5} : Shape{5, 12}, -0.5f, 0.5f, 3),
                                 k_by_o ? 1 : 0, &w_scales);
  for (const auto& init : q.b.model().graph().initializer())
    if (init.name() == "w_int8") *w_int8 = tensor_from_proto(init);
  std::vector<std::string> inputs{x, w};
  if (op_type == "Gemm") inputs.push_back(q.bias("b", random_vector(5, 4), q.params("x").scale, w_scales));
  auto& n = q.b.node(op_type, inputs, {"y"}, "linear");
  if (op_type == "Gemm") ModelBuilder::attr(n, "transB", trans_b);
  q.b.output(q.qdq("y"));
  return q.b.model();
}
}  // namespace

TEST(Int8Graph, GemmAndMatMulWeightsBecomeOutputByInputOneByOne) {
  const Tensor x = random_tensor({4, 12}, -1.0f, 1.0f, 5);
  for (const auto& [op_type, trans_b] : std::vector<std::pair<std::string, int64_t>>{{"Gemm", 1}, {"Gemm", 0},
                                                                                       {"MatMul", 0}}) {
    SCOPED_TRACE(op_type + " transB=" + std::to_string(trans_b));
    Tensor w;
    const Build build = [&](const ActParams& p) { return linear_model(p, op_type, trans_b, &w); };
    const ActParams p = calibrate(build, {"x", "y"}, {{"x", x}});
    auto g = ref::lower_qdq(build(p), 4);
    ASSERT_TRUE(g.ok()) << g.error().what();
    ASSERT_EQ(g->ops.size(), 1u);
    const ref::Int8Op& op = g->ops[0];
    ASSERT_EQ(op.weight.shape(), (Shape{5, 12, 1, 1}));
    const bool k_by_o = op_type == "MatMul" || trans_b == 0;
    for (int64_t o = 0; o < 5; ++o)
      for (int64_t k = 0; k < 12; ++k)
        ASSERT_EQ(op.weight.data<int8_t>()[o * 12 + k], w.data<int8_t>()[k_by_o ? k * 5 + o : o * 12 + k]);
    EXPECT_EQ(op.multipliers.size(), 5u);
    EXPECT_EQ(op.bias.numel(), 5);
    EXPECT_EQ(g->values[op.output].shape, (Shape{4, 5}));
    const Agreement a = compare(build(p), x);
    EXPECT_LE(a.max_diff, 1);
  }
}

TEST(Int8Graph, AddWithReluMatchesFloat) {
  const Build build = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 2, 4, 4});
    const std::string x = q.qdq("x");
    std::vector<float> ws;
    const std::string w = q.weight("w", random_tensor({2, 2, 1, 1}, -1.0f, 1.0f, 9), 0, &ws);
    q.b.node("Conv", {x, w}, {"c"}, "conv");
    const std::string c = q.qdq("c");
    q.b.node("Add", {x, c}, {"sum"}, "add");
    q.b.node("Relu", {"sum"}, {"r"}, "relu");
    q.b.output(q.qdq("r"));
    return q.b.model();
  };
  expect_within_one_step(build, {"x", "c", "r"}, random_tensor({2, 2, 4, 4}, -1.0f, 1.0f, 10));
  auto g = ref::lower_qdq(build(calibrate(build, {"x", "c", "r"}, {{"x", random_tensor({2, 2, 4, 4}, -1, 1, 10)}})), 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 2u);
  EXPECT_EQ(g->ops[1].kind, ref::Int8OpKind::kAdd);
  EXPECT_EQ(g->ops[1].add.act_min, g->values[g->ops[1].output].q.zero_point);
}

namespace {
/// x -> pool -> Q, where `configure` sets the pool's attributes.
Build pool_model(const std::string& op_type, std::function<void(onnx::NodeProto&)> configure, bool same_params) {
  return [=](const ActParams& given) {
    ActParams p = given;
    if (same_params && p.count("x")) p["y"] = p["x"];
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 3, 7, 7});
    auto& n = q.b.node(op_type, {q.qdq("x")}, {"y"}, "pool");
    configure(n);
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}
}  // namespace

TEST(Int8Graph, PoolingMatchesFloat) {
  const Tensor x = random_tensor({2, 3, 7, 7}, -1.0f, 3.0f, 11);
  expect_within_one_step(pool_model("MaxPool", [](onnx::NodeProto& n) {
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{3, 3});
    ModelBuilder::attr(n, "strides", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 1, 1, 1});
    ModelBuilder::attr(n, "dilations", std::vector<int64_t>{1, 2});
  }, true), {"x"}, x);
  expect_within_one_step(pool_model("AveragePool", [](onnx::NodeProto& n) {
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{3, 3});
    ModelBuilder::attr(n, "strides", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 1, 1, 1});
    ModelBuilder::attr(n, "count_include_pad", int64_t{1});
  }, false), {"x", "y"}, x);
  expect_within_one_step(pool_model("AveragePool", [](onnx::NodeProto& n) {
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(n, "strides", std::vector<int64_t>{2, 2});
  }, false), {"x", "y"}, x);
  expect_within_one_step(pool_model("GlobalAveragePool", [](onnx::NodeProto&) {}, false), {"x", "y"}, x);
}

TEST(Int8Graph, StandaloneClipIsARequantization) {
  const Build build = [](const ActParams& p) {
    QdqBuilder q(p, 11);
    q.b.input("x", DType::kFloat32, {-1, 10});
    q.b.initializer("lo", Tensor::scalar<float>(-0.5f));
    q.b.initializer("hi", Tensor::scalar<float>(0.75f));
    q.b.node("Clip", {q.qdq("x"), "lo", "hi"}, {"y"}, "clip");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  const Tensor x = random_tensor({5, 10}, -2.0f, 2.0f, 12);
  expect_within_one_step(build, {"x", "y"}, x);
  auto g = ref::lower_qdq(build(calibrate(build, {"x", "y"}, {{"x", x}})), 5);
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 1u);
  EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kRequant);
}

TEST(Int8Graph, ReshapeOnInt8AndBetweenQdqPairs) {
  const Build build = [](const ActParams& given) {
    ActParams p = given;
    if (p.count("x")) p["f"] = p["x"];
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 2, 3, 3});
    q.qdq("x");
    q.b.initializer("shape", Tensor::from_vector<int64_t>({3}, {0, 2, -1}));
    q.b.node("Reshape", {"x_q", "shape"}, {"r_q"}, "reshape");  // directly on the int8 value
    q.b.node("DequantizeLinear", {"r_q", "x_scale", "x_zp"}, {"r_dq"}, "r_DQ");
    q.b.node("Flatten", {"r_dq"}, {"f"}, "flatten");  // between DQ and Q with equal parameters
    q.b.output(q.qdq("f"));
    return q.b.model();
  };
  const Tensor x = random_tensor({2, 2, 3, 3}, -1.0f, 1.0f, 13);
  const ActParams p = calibrate(build, {"x"}, {{"x", x}});
  auto g = ref::lower_qdq(build(p), 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 2u);
  EXPECT_EQ(g->values[g->ops[0].output].shape, (Shape{2, 2, 9}));
  EXPECT_EQ(g->values[g->ops[1].output].shape, (Shape{2, 18}));
  const Agreement a = compare(build(p), x);
  EXPECT_EQ(a.max_diff, 0);
}

// A small CNN (conv-relu-maxpool-conv-relu-gap-flatten-gemm). Differences of one step in early
// layers propagate, so the bound here is looser than for single patterns: measured max 1 step.
TEST(Int8Graph, SmallCnnMatchesFloat) {
  const Build build = [](const ActParams& given) {
    ActParams p = given;
    if (p.count("r1")) p["m"] = p["r1"];
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 1, 12, 12});
    std::vector<float> s1, s2, s3;
    const std::string w1 = q.weight("w1", random_tensor({4, 1, 3, 3}, -0.6f, 0.6f, 21), 0, &s1);
    q.b.node("Conv", {q.qdq("x"), w1, q.bias("b1", random_vector(4, 22), q.params("x").scale, s1)}, {"c1"}, "conv1");
    q.b.node("Relu", {"c1"}, {"r1"}, "relu1");
    auto& mp = q.b.node("MaxPool", {q.qdq("r1")}, {"m"}, "pool");
    ModelBuilder::attr(mp, "kernel_shape", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(mp, "strides", std::vector<int64_t>{2, 2});
    const std::string w2 = q.weight("w2", random_tensor({8, 4, 3, 3}, -0.3f, 0.3f, 23), 0, &s2);
    auto& c2 = q.b.node("Conv", {q.qdq("m"), w2, q.bias("b2", random_vector(8, 24), q.params("m").scale, s2)},
                        {"c2"}, "conv2");
    ModelBuilder::attr(c2, "pads", std::vector<int64_t>{1, 1, 1, 1});
    q.b.node("Relu", {"c2"}, {"r2"}, "relu2");
    q.b.node("GlobalAveragePool", {q.qdq("r2")}, {"gap"}, "gap");
    q.qdq("gap");
    q.b.node("Flatten", {"gap_q"}, {"flat_q"}, "flatten");  // on the int8 value
    q.b.node("DequantizeLinear", {"flat_q", "gap_scale", "gap_zp"}, {"flat_dq"}, "flat_DQ");
    const std::string w3 = q.weight("w3", random_tensor({3, 8}, -0.5f, 0.5f, 25), 0, &s3);
    auto& fc = q.b.node("Gemm", {"flat_dq", w3, q.bias("b3", random_vector(3, 26), q.params("gap").scale, s3)},
                        {"logits"}, "fc");
    ModelBuilder::attr(fc, "transB", int64_t{1});
    q.b.output(q.qdq("logits"));
    return q.b.model();
  };
  const Tensor x = random_tensor({8, 1, 12, 12}, -1.0f, 2.0f, 27);
  const ActParams p = calibrate(build, {"x", "r1", "r2", "gap", "logits"}, {{"x", x}});
  auto g = ref::lower_qdq(build(p), 8);
  ASSERT_TRUE(g.ok()) << g.error().what();
  std::vector<ref::Int8OpKind> kinds;
  for (const auto& op : g->ops) kinds.push_back(op.kind);
  using K = ref::Int8OpKind;
  EXPECT_EQ(kinds, (std::vector<K>{K::kConv, K::kMaxPool, K::kConv, K::kAvgPool, K::kReshape, K::kConv}));
  const Agreement a = compare(build(p), x);
  EXPECT_LE(a.max_diff, 2);
  std::printf("small CNN: max int8 difference %lld, exact %.3f\n", static_cast<long long>(a.max_diff), a.exact);
}

// ---- errors ------------------------------------------------------------------------------------

namespace {
ActParams unit_params() {
  ActParams p;
  for (const char* name : {"x", "y", "c", "act_out", "conv_out"}) p[name] = {0.05f, 0};
  return p;
}

Error lowering_error(const onnx::ModelProto& model, int64_t batch = 1) {
  auto g = ref::lower_qdq(model, batch);
  EXPECT_FALSE(g.ok());
  return g.ok() ? Error(ErrorCode::kInternal, "lowered") : g.error();
}
}  // namespace

TEST(Int8GraphErrors, UnsupportedOperatorInTheMiddle) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 4});
  q.b.node("Exp", {q.qdq("x")}, {"y"}, "exp");
  q.b.output(q.qdq("y"));
  const Error e = lowering_error(q.b.model());
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(e.what(), "node 'exp' (Exp): operator not supported on the NPU");
}

TEST(Int8GraphErrors, FloatWeightIsMalformed) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 2, 4, 4});
  q.b.initializer("w", random_tensor({2, 2, 1, 1}, -1, 1, 1));
  q.b.node("Conv", {q.qdq("x"), "w"}, {"c"}, "conv");
  q.b.output(q.qdq("c"));
  const Error e = lowering_error(q.b.model());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "node 'conv' (Conv): weight 'w' must be a DequantizeLinear of an int8 initializer");
}

TEST(Int8GraphErrors, ConvWithoutQuantizeLinearIsMalformed) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 2, 4, 4});
  std::vector<float> s;
  q.b.node("Conv", {q.qdq("x"), q.weight("w", random_tensor({2, 2, 1, 1}, -1, 1, 1), 0, &s)}, {"c"}, "conv");
  q.b.output("c");
  const Error e = lowering_error(q.b.model());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()).rfind("node 'conv' (Conv): output must feed exactly one QuantizeLinear", 0), 0u)
      << e.what();
}

TEST(Int8GraphErrors, BiasOnTheWrongScaleIsMalformed) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 2, 4, 4});
  std::vector<float> s;
  const std::string w = q.weight("w", random_tensor({2, 2, 1, 1}, -1, 1, 1), 0, &s);
  const std::string b = q.bias("b", {0.1f, 0.2f}, 2.0f * p.at("x").scale, s);  // twice the right scale
  q.b.node("Conv", {q.qdq("x"), w, b}, {"c"}, "conv");
  q.b.output(q.qdq("c"));
  const Error e = lowering_error(q.b.model());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("node 'b_DQ' (DequantizeLinear): bias scale"), std::string::npos) << e.what();
}

TEST(Int8GraphErrors, NonZeroWeightZeroPointIsMalformed) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 2});
  q.b.initializer("w_int8", Tensor::from_vector<int8_t>({2, 2}, {1, 2, 3, 4}));
  q.b.initializer("w_scale", Tensor::scalar<float>(0.1f));
  q.b.initializer("w_zp", Tensor::scalar<int8_t>(3));
  q.b.node("DequantizeLinear", {"w_int8", "w_scale", "w_zp"}, {"w_dq"}, "w_DQ");
  q.b.node("MatMul", {q.qdq("x"), "w_dq"}, {"y"}, "mm");
  q.b.output(q.qdq("y"));
  const Error e = lowering_error(q.b.model());
  EXPECT_STREQ(e.what(), "node 'w_DQ' (DequantizeLinear): weight zero point must be 0 (symmetric weights)");
}

TEST(Int8GraphErrors, AveragePoolWithClippedWindowsIsUnsupported) {
  const ActParams p = unit_params();
  const auto model = pool_model("AveragePool", [](onnx::NodeProto& n) {
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{3, 3});
    ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 1, 1, 1});
  }, false)(p);
  const Error e = lowering_error(model);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(std::string(e.what()).rfind("node 'pool' (AveragePool): average windows of different sizes", 0), 0u);
}

TEST(Int8GraphErrors, MaxPoolThatChangesScaleIsMalformed) {
  ActParams p = unit_params();
  p["y"] = {0.1f, 0};
  const auto model = pool_model("MaxPool", [](onnx::NodeProto& n) {
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
  }, false)(p);
  EXPECT_EQ(std::string(lowering_error(model).what()),
            "node 'pool' (MaxPool): MaxPool input and output quantization parameters must be equal");
}

TEST(Int8GraphErrors, Uint8ActivationsAreUnsupported) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4}).output("y");
  b.initializer("s", Tensor::scalar<float>(0.1f));
  b.initializer("z", Tensor::scalar<uint8_t>(128));
  b.node("QuantizeLinear", {"x", "s", "z"}, {"xq"}, "quant");
  b.node("DequantizeLinear", {"xq", "s", "z"}, {"y"}, "dequant");
  const Error e = lowering_error(b.model());
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(e.what(), "node 'quant' (QuantizeLinear): activations must be int8 with a constant zero point");
}

TEST(Int8GraphErrors, FloatGraphOutputAndBadBatch) {
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 4});
  q.qdq("x");
  q.b.node("Relu", {"x"}, {"y"}, "float_relu");
  q.b.output("y");
  // The float Relu reads the graph input, not a dequantized value.
  EXPECT_STREQ(lowering_error(q.b.model()).what(),
               "node 'float_relu' (Relu): input 'x' is not a DequantizeLinear of a quantized value");

  QdqBuilder ok(p);
  ok.b.input("x", DType::kFloat32, {-1, 4});
  ok.b.output(ok.qdq("x"));
  EXPECT_EQ(lowering_error(ok.b.model(), 0).code(), ErrorCode::kInvalidArgument);
  auto g = ref::lower_qdq(ok.b.model(), 3);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_EQ(g->values[g->inputs[0]].shape, (Shape{3, 4}));
  EXPECT_EQ(g->output_names, std::vector<std::string>{"x_dq"});
  auto missing = ref::run_int8(*g, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto wrong = ref::run_int8(*g, {{"x", Tensor(DType::kInt8, {2, 4})}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_STREQ(wrong.error().what(), "input 'x': expected int8 [3, 4], got int8 [2, 4]");
}

TEST(Int8Graph, QuantizeTensorRoundsHalfToEvenAndSaturates) {
  const Tensor f = Tensor::from_vector<float>({6}, {0.5f, 1.5f, -2.5f, 2.5f, 100.0f, -100.0f});
  const Tensor q = ref::quantize_tensor(f, {1.0f, 0});
  EXPECT_EQ(q.to_vector<int8_t>(), (std::vector<int8_t>{0, 2, -2, 2, 100, -100}));
  EXPECT_EQ(ref::quantize_tensor(f, {0.5f, 10}).to_vector<int8_t>(), (std::vector<int8_t>{11, 13, 5, 15, 127, -128}));
  EXPECT_EQ(ref::dequantize_tensor(Tensor::from_vector<int8_t>({2}, {12, -128}), {0.5f, 10}).to_vector<float>(),
            (std::vector<float>{1.0f, -69.0f}));
}

TEST(Int8Graph, TwoInputsKeepGraphOrder) {
  const Build build = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 6});
    q.b.input("z", DType::kFloat32, {-1, 6});
    const std::string z = q.qdq("z");  // z's QuantizeLinear comes first in node order
    q.b.node("Add", {q.qdq("x"), z}, {"y"}, "add");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  const Tensor x = random_tensor({3, 6}, -1, 1, 30), z = random_tensor({3, 6}, -3, 2, 31);
  const TensorMap feeds{{"x", x}, {"z", z}};
  const ActParams p = calibrate(build, {"x", "z", "y"}, feeds);
  auto g = ref::lower_qdq(build(p), 3);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_EQ(g->input_names, (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(g->values[g->inputs[0]].name, "x_q");
  EXPECT_EQ(g->values[g->inputs[1]].name, "z_q");
  const Tensor want = ref::Executor::create(build(p)).value().run(feeds).value().at("y_dq");
  const TensorMap got = ref::run_int8(*g, {{"x", ref::quantize_tensor(x, p.at("x"))},
                                           {"z", ref::quantize_tensor(z, p.at("z"))}}).value();
  const Tensor expected = ref::quantize_tensor(want, p.at("y"));
  for (int64_t i = 0; i < expected.numel(); ++i)
    EXPECT_LE(std::abs(got.at("y_dq").data<int8_t>()[i] - expected.data<int8_t>()[i]), 1);
}

TEST(Int8GraphErrors, RankOneMatMulIsUnsupported) {
  // A vector times a matrix has no N x K form (a batched [..., M, K] input is reshaped to rows:
  // Int8MatMul.ConstantWeightMatMulOnBatchedRowsIsReshapeConvReshape).
  const ActParams p = unit_params();
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1});
  std::vector<float> s;
  const std::string w = q.weight("w", random_tensor({2, 3}, -1, 1, 40), 1, &s);
  q.b.node("MatMul", {q.qdq("x"), w}, {"y"}, "mm");
  q.b.output(q.qdq("y"));
  const Error e = lowering_error(q.b.model(), 2);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(e.what(), "node 'mm' (MatMul): input must be 2-D N x K on the NPU, got [2]");
}

// ---- lookup-table activations (kLut) -------------------------------------------------------------

namespace {

/// Every entry of make_lut's table against the closed form evaluated in double: the stored byte is
/// the nearest int8 to y / s_out + zp_out (within half a step plus float error), saturated.
void expect_table_matches(const std::function<double(double)>& f, ref::QuantParams in, ref::QuantParams out,
                          const std::array<int8_t, 256>& lut) {
  for (int q = -128; q <= 127; ++q) {
    const double y = f((q - in.zero_point) * static_cast<double>(in.scale)) / out.scale + out.zero_point;
    const int got = lut[q + 128];
    if (y >= 127.5) {
      EXPECT_EQ(got, 127) << q;
    } else if (y <= -128.5) {
      EXPECT_EQ(got, -128) << q;
    } else {
      EXPECT_LE(std::abs(got - y), 0.5 + 1e-3) << "input " << q << ": table " << got << ", closed form " << y;
    }
  }
}

}  // namespace

TEST(Int8Lut, TablesMatchClosedForms) {
  const ref::QuantParams in{0.05f, -10}, sig{1.0f / 256.0f, -128}, tanh_q{1.0f / 128.0f, 0}, wide{0.04f, -20};
  const auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  const auto hsig = [](double x) { return std::clamp(0.2 * x + 0.5, 0.0, 1.0); };
  expect_table_matches(sigmoid, in, sig, ref::make_lut([](float x) { return 1.0f / (1.0f + std::exp(-x)); }, in, sig));
  expect_table_matches([](double x) { return std::tanh(x); }, in, tanh_q,
                       ref::make_lut([](float x) { return std::tanh(x); }, in, tanh_q));
  expect_table_matches(hsig, in, sig,
                       ref::make_lut([](float x) { return std::clamp(0.2f * x + 0.5f, 0.0f, 1.0f); }, in, sig));
  // Spot values: sigmoid(0) = 0.5 is byte 0 with scale 1/256, zp -128; x = 0 is input byte -10.
  const auto lut = ref::make_lut([](float x) { return 1.0f / (1.0f + std::exp(-x)); }, in, sig);
  EXPECT_EQ(lut[-10 + 128], 0);
  EXPECT_EQ(lut[0], math::quantize_float(1.0f / (1.0f + std::exp(5.9f)), sig.scale, sig.zero_point));
  // A table maps the whole int8 range: identity parameters give the identity table.
  const auto id = ref::make_lut([](float x) { return x; }, wide, wide);
  for (int q = -128; q <= 127; ++q) EXPECT_EQ(id[q + 128], q);
}

namespace {

/// x -> [DQ] -> activation -> Q -> y, with activation attributes set by `attrs`.
Build activation_model(const std::string& op, int64_t opset, const std::function<void(onnx::NodeProto&)>& attrs) {
  return [=](const ActParams& p) {
    QdqBuilder q(p, opset);
    q.b.input("x", DType::kFloat32, {-1, 3, 5, 5});
    auto& n = q.b.node(op, {q.qdq("x")}, {"y"}, "act");
    attrs(n);
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}

/// x -> Mul(x, gate(x)) with the gate's output quantized on its own, as anvil's quantizer emits
/// SiLU (gate Sigmoid, gate params 1/256, -128) and x * HardSigmoid(x) (calibrated gate).
Build gated_model(const std::string& gate, bool gate_is_output) {
  return [=](const ActParams& given) {
    ActParams p = given;
    if (gate == "Sigmoid") p["g"] = {1.0f / 256.0f, -128};
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 3, 5, 5});
    const std::string x = q.qdq("x");
    q.b.node(gate, {x}, {"g"}, "gate");
    const std::string g = q.qdq("g");
    q.b.node("Mul", {x, g}, {"y"}, "mul");
    q.b.output(q.qdq("y"));
    if (gate_is_output) q.b.output(g);
    return q.b.model();
  };
}

/// Calibrates, lowers to one kLut and checks run_int8 equals the float QDQ model exactly.
void expect_exact_lut(const Build& build, const std::vector<std::string>& calibrated, const Tensor& x) {
  const ActParams p = calibrate(build, calibrated, {{"x", x}});
  auto g = ref::lower_qdq(build(p), x.dim(0));
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 1u);
  EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kLut);
  const Agreement a = compare(build(p), x);
  EXPECT_EQ(a.max_diff, 0);
  EXPECT_EQ(a.exact, 1.0);
}

}  // namespace

TEST(Int8Lut, EachActivationIsExactlyTheFloatQdqSemantics) {
  const Tensor x = random_tensor({2, 3, 5, 5}, -7.0f, 6.0f, 71);
  const auto none = [](onnx::NodeProto&) {};
  // Sigmoid and Tanh with the quantizer's fixed output parameters; the others calibrated.
  const Build sigmoid = [&](const ActParams& given) {
    ActParams p = given;
    p["y"] = {1.0f / 256.0f, -128};
    return activation_model("Sigmoid", 13, none)(p);
  };
  const Build tanh = [&](const ActParams& given) {
    ActParams p = given;
    p["y"] = {1.0f / 128.0f, 0};
    return activation_model("Tanh", 13, none)(p);
  };
  expect_exact_lut(sigmoid, {"x"}, x);
  expect_exact_lut(tanh, {"x"}, x);
  expect_exact_lut(activation_model("HardSigmoid", 13, [](onnx::NodeProto& n) {
                     ModelBuilder::attr(n, "alpha", 0.25f);
                     ModelBuilder::attr(n, "beta", 0.4f);
                   }),
                   {"x", "y"}, x);
  expect_exact_lut(activation_model("HardSwish", 14, none), {"x", "y"}, x);
  expect_exact_lut(activation_model("LeakyRelu", 13, [](onnx::NodeProto& n) { ModelBuilder::attr(n, "alpha", 0.1f); }),
                   {"x", "y"}, x);
}

TEST(Int8Lut, SiluAndHardSwishMulPatternsBecomeOneTable) {
  const Tensor x = random_tensor({2, 3, 5, 5}, -7.0f, 6.0f, 72);
  expect_exact_lut(gated_model("Sigmoid", false), {"x", "y"}, x);
  expect_exact_lut(gated_model("HardSigmoid", false), {"x", "g", "y"}, x);
}

namespace {

/// x -> [DQ] -> Div(., sqrt 2) -> Erf -> Q -> y: GELU's inner chain as torch exports it and the
/// quantizer leaves it (Div and Erf have no int8 form; their constant stays float).
Build erf_chain(const Tensor& divisor = Tensor::scalar<float>(1.4142135f)) {
  return [=](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 3, 5, 5});
    q.b.initializer("sqrt2", divisor);
    q.b.node("Div", {q.qdq("x"), "sqrt2"}, {"d"}, "div");
    q.b.node("Erf", {"d"}, {"y"}, "erf");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}

}  // namespace

TEST(Int8Lut, ElementwiseChainOfOneElementConstantsIsOneTable) {
  const Tensor x = random_tensor({2, 3, 5, 5}, -7.0f, 6.0f, 73);
  expect_exact_lut(erf_chain(), {"x", "y"}, x);
  // Constant first, a Pow, a Sqrt and a constant of rank 2: (2 - x)^2, its root, over [[4]].
  const Build arithmetic = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 3, 5, 5});
    q.b.initializer("two", Tensor::scalar<float>(2.0f)).initializer("four", Tensor::from_vector<float>({1, 1}, {4.0f}));
    q.b.node("Sub", {"two", q.qdq("x")}, {"s"}, "sub");
    q.b.node("Pow", {"s", "two"}, {"p"}, "pow");
    q.b.node("Sqrt", {"p"}, {"r"}, "sqrt");
    q.b.node("Div", {"r", "four"}, {"y"}, "div");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  expect_exact_lut(arithmetic, {"x", "y"}, x);
  // The table is the chain's own float arithmetic: byte for byte what a kHost op of it computes,
  // on every int8 input value.
  const ActParams p = calibrate(erf_chain(), {"x", "y"}, {{"x", x}});
  ref::LowerOptions host;
  host.host_fallback = true;
  Tensor all(DType::kInt8, {2, 128});
  for (int v = 0; v < 256; ++v) all.data<int8_t>()[v] = static_cast<int8_t>(v - 128);
  const Build chain_2d = [&](const ActParams& given) {
    QdqBuilder q(given);
    q.b.input("x", DType::kFloat32, {-1, 128});
    q.b.initializer("sqrt2", Tensor::scalar<float>(1.4142135f));
    q.b.node("Div", {q.qdq("x"), "sqrt2"}, {"d"}, "div");
    q.b.node("Erf", {"d"}, {"y"}, "erf");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  auto as_table = ref::lower_qdq(chain_2d(p), 2);
  ASSERT_TRUE(as_table.ok()) << as_table.error().what();
  ASSERT_EQ(as_table->ops.size(), 1u);
  EXPECT_EQ(as_table->ops[0].kind, ref::Int8OpKind::kLut);
  // The same model with the Erf's output read twice is no chain: a kHost op, run on all 256 values.
  onnx::ModelProto two_readers = chain_2d(p);
  two_readers.mutable_graph()->add_output()->set_name("y");
  auto as_host = ref::lower_qdq(two_readers, 2, host);
  ASSERT_TRUE(as_host.ok()) << as_host.error().what();
  bool has_host = false;
  for (const auto& op : as_host->ops) has_host = has_host || op.kind == ref::Int8OpKind::kHost;
  EXPECT_TRUE(has_host);
  const std::string in_name = as_table->input_names.at(0);
  const Tensor by_table = ref::run_int8(*as_table, {{in_name, all}}).value().at(as_table->output_names.at(0));
  const Tensor by_host = ref::run_int8(*as_host, {{in_name, all}}).value().at(as_host->output_names.at(0));
  EXPECT_TRUE(by_table == by_host);
}

TEST(Int8Lut, GeluReadingItsInputTwiceIsOneTable) {
  // x * (1 + erf(x / sqrt 2)) * 0.5 as torch exports it, all float between x's DQ and one Q.
  const Build gelu = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 3, 5, 5});
    q.b.initializer("sqrt2", Tensor::scalar<float>(1.4142135f)).initializer("one", Tensor::scalar<float>(1.0f));
    q.b.initializer("half", Tensor::scalar<float>(0.5f));
    const std::string x = q.qdq("x");
    q.b.node("Div", {x, "sqrt2"}, {"d"}, "div");
    q.b.node("Erf", {"d"}, {"e"}, "erf");
    q.b.node("Add", {"e", "one"}, {"a"}, "add");
    q.b.node("Mul", {x, "a"}, {"m"}, "mul");
    q.b.node("Mul", {"m", "half"}, {"y"}, "half");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  expect_exact_lut(gelu, {"x", "y"}, random_tensor({2, 3, 5, 5}, -7.0f, 6.0f, 74));
}

TEST(Int8Lut, RegionsTheTableCannotTakeAreRefusedNamingTheNode) {
  const ActParams p = unit_params();
  // A constant of three elements: one table cannot hold it.
  const Error wide = lowering_error(erf_chain(Tensor::from_vector<float>({3, 1, 1}, {1.0f, 2.0f, 3.0f}))(p));
  EXPECT_EQ(wide.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(wide.what(), "node 'div' (Div): operator not supported on the NPU");
  // erf(x) * z reads a second activation.
  {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 4}).input("z", DType::kFloat32, {-1, 4});
    q.b.node("Erf", {q.qdq("x")}, {"e"}, "erf");
    q.b.node("Mul", {"e", q.qdq("z")}, {"y"}, "mul");
    q.b.output(q.qdq("y"));
    const Error two = lowering_error(q.b.model());
    EXPECT_EQ(two.code(), ErrorCode::kUnsupported);
    EXPECT_STREQ(two.what(), "node 'erf' (Erf): operator not supported on the NPU");
  }
  // erf(x) leaves the region twice: quantized, and as a float graph output.
  {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 4});
    q.b.node("Erf", {q.qdq("x")}, {"e"}, "erf");
    q.b.output(q.qdq("e")).output("e");
    const Error out = lowering_error(q.b.model());
    EXPECT_EQ(out.code(), ErrorCode::kUnsupported);
    EXPECT_STREQ(out.what(), "node 'erf' (Erf): operator not supported on the NPU");
  }
}

TEST(Int8LutErrors, GateDequantizedWithOtherParametersIsMalformed) {
  ActParams p = unit_params();
  onnx::ModelProto m = gated_model("Sigmoid", false)(p);
  auto* init = m.mutable_graph()->add_initializer();
  *init = tensor_to_proto(Tensor::scalar<float>(0.5f), "other_scale");
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.name() == "g_DQ") n.set_input(1, "other_scale");
  const Error e = lowering_error(m);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("parameters differ from the QuantizeLinear that produced 'g_q'"),
            std::string::npos)
      << e.what();
}

TEST(Int8Lut, GateUsedElsewhereIsItsOwnTableAndTheMulAKMul) {
  // The gate's quantized output is also a graph output: the gate is its own table and the Mul of
  // the two activations is a quantized multiply (math::mul_int8).
  ActParams p = unit_params();
  auto g = ref::lower_qdq(gated_model("Sigmoid", true)(p), 1);
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 2u);
  EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kLut);
  EXPECT_EQ(g->ops[1].kind, ref::Int8OpKind::kMul);
}
