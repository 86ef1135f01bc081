// Float operators beyond the CNN set (for transformer-style models): values worked out by hand
// from the ONNX specification.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "anvil/reference/executor.h"
#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

TEST(ExecutorOpsExtra, UnaryFunctions) {
  const Tensor x = f32({4}, {-2.0f, -0.5f, 0.0f, 3.0f});
  auto run = [&](const std::string& op, std::function<void(onnx::NodeProto&)> attrs = {}) {
    OneNode n;
    n.in("x", x);
    auto& node = n.node(op);
    if (attrs) attrs(node);
    return n.run1();
  };
  expect_floats(run("Erf"), {std::erf(-2.0f), std::erf(-0.5f), 0.0f, std::erf(3.0f)});
  expect_floats(run("Tanh"), {std::tanh(-2.0f), std::tanh(-0.5f), 0.0f, std::tanh(3.0f)});
  expect_floats(run("Sigmoid"), {1 / (1 + std::exp(2.0f)), 1 / (1 + std::exp(0.5f)), 0.5f, 1 / (1 + std::exp(-3.0f))});
  expect_floats(run("Exp"), {std::exp(-2.0f), std::exp(-0.5f), 1.0f, std::exp(3.0f)});
  expect_floats(run("LeakyRelu"), {-0.02f, -0.005f, 0.0f, 3.0f});
  expect_floats(run("LeakyRelu", [](onnx::NodeProto& n) { ModelBuilder::attr(n, "alpha", 0.5f); }), {-1, -0.25f, 0, 3});
  expect_floats(run("HardSigmoid"), {0.1f, 0.4f, 0.5f, 1.0f});
  expect_floats(run("HardSwish"), {-2.0f * (1.0f / 6.0f), -0.5f * (0.5f - 0.5f / 6.0f), 0.0f, 3.0f});
  OneNode s;
  s.in("x", f32({3}, {0.0f, 4.0f, 2.25f}));
  expect_floats((s.node("Sqrt"), s.run1()), {0.0f, 2.0f, 1.5f});
  OneNode p;
  p.in("x", f32({3}, {-3.0f, 2.0f, 4.0f})).constant("e", f32({}, {2.0f}));
  expect_floats((p.node("Pow"), p.run1()), {9.0f, 4.0f, 16.0f});
  OneNode pi;
  pi.in("x", f32({2}, {2.0f, 9.0f})).constant("e", i64({2}, {3, 0}));
  expect_floats((pi.node("Pow"), pi.run1()), {8.0f, 1.0f});
}

TEST(ExecutorOpsExtra, PowIntegerBase) {
  auto pow = [](const Tensor& base, const Tensor& exponent) {
    OneNode n;
    n.in("x", base).in("e", exponent);
    n.node("Pow");
    return n;
  };
  auto i32 = [](Shape s, std::vector<int32_t> v) { return Tensor::from_vector<int32_t>(std::move(s), v); };
  // Integer exponents are exact; negative ones truncate 1 / x^-e; 2^31 and 2^32 wrap as int32.
  const Tensor y = pow(i32({9}, {2, -3, 5, 1, -1, 0, 7, 2, 2}), i32({9}, {10, 3, 0, -2, -3, 0, -1, 31, 32})).run1();
  ASSERT_EQ(y.dtype(), DType::kInt32);
  const std::vector<int32_t> want{1024, -27, 1, 1, -1, 1, 0, std::numeric_limits<int32_t>::min(), 0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(y.data<int32_t>()[i], want[i]) << "element " << i;
  // 3^39 is odd and above 2^53: a computation in double would round it.
  const Tensor big = pow(i64({2}, {3, 2}), i64({2}, {39, 62})).run1();
  ASSERT_EQ(big.dtype(), DType::kInt64);
  EXPECT_EQ(big.data<int64_t>()[0], int64_t{4052555153018976267});
  EXPECT_EQ(big.data<int64_t>()[1], int64_t{1} << 62);
  // A float exponent: std::pow, truncated to the base's type; an int32 exponent on an int64 base.
  const Tensor f = pow(i64({3}, {4, 2, 3}), f32({3}, {0.5f, -1.0f, 6.0f})).run1();
  ASSERT_EQ(f.dtype(), DType::kInt64);
  EXPECT_EQ(f.data<int64_t>()[0], 2);
  EXPECT_EQ(f.data<int64_t>()[1], 0);
  EXPECT_EQ(f.data<int64_t>()[2], 729);
  const Tensor mixed = pow(i64({1}, {5}), i32({}, {3})).run1();
  EXPECT_EQ(mixed.data<int64_t>()[0], 125);
  // Results that do not exist in the type are errors.
  EXPECT_EQ(pow(i32({1}, {2}), f32({1}, {40.0f})).error(),
            "node 'n' (Pow): Pow result 1099511627776.000000 does not fit int32");
  EXPECT_EQ(pow(i32({1}, {0}), i32({1}, {-1})).error(), "node 'n' (Pow): 0 raised to a negative power");
}

TEST(ExecutorOpsExtra, SoftmaxAxisAndLegacyCoercion) {
  const Tensor x = f32({2, 2}, {0.0f, std::log(3.0f), 1.0f, 1.0f});
  OneNode n;
  n.in("x", x);
  expect_floats((n.node("Softmax"), n.run1()), {0.25f, 0.75f, 0.5f, 0.5f});
  OneNode c;
  c.in("x", x);
  ModelBuilder::attr(c.node("Softmax"), "axis", int64_t{0});
  const float e = std::exp(1.0f);
  expect_floats(c.run1(), {1 / (1 + e), 3 / (3 + e), e / (1 + e), e / (3 + e)});
  // Opset 11, axis 0: the whole tensor is one row.
  OneNode legacy(11);
  legacy.in("x", x);
  ModelBuilder::attr(legacy.node("Softmax"), "axis", int64_t{0});
  const float total = 1 + 3 + 2 * e;
  expect_floats(legacy.run1(), {1 / total, 3 / total, e / total, e / total});
  OneNode l;
  l.in("x", x);
  expect_floats((l.node("LogSoftmax"), l.run1()), {std::log(0.25f), std::log(0.75f), std::log(0.5f), std::log(0.5f)});
}

TEST(ExecutorOpsExtra, LayerNormalization) {
  OneNode n(17);
  n.in("x", f32({2, 2}, {1, 3, -2, 2})).constant("s", f32({2}, {1, 2})).constant("b", f32({2}, {0, 1}));
  ModelBuilder::attr(n.node("LayerNormalization", 3), "epsilon", 0.0f);
  TensorMap out = n.run();
  expect_floats(out["y0"], {-1, 3, -1, 3});
  EXPECT_EQ(out["y1"].shape(), (Shape{2, 1}));
  expect_floats(out["y1"], {2, 0});      // Mean
  expect_floats(out["y2"], {1, 0.5f});  // InvStdDev: variances 1 and 4
}

TEST(ExecutorOpsExtra, Reductions) {
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 9});
  OneNode m;
  m.in("x", x);
  ModelBuilder::attr(m.node("ReduceMean"), "axes", std::vector<int64_t>{-1});
  Tensor y = m.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 1}));
  expect_floats(y, {2, 6});
  OneNode mx;
  mx.in("x", x);
  auto& node = mx.node("ReduceMax");
  ModelBuilder::attr(node, "axes", std::vector<int64_t>{0});
  ModelBuilder::attr(node, "keepdims", int64_t{0});
  y = mx.run1();
  EXPECT_EQ(y.shape(), (Shape{3}));
  expect_floats(y, {4, 5, 9});
  OneNode all;
  all.in("x", x);
  y = (all.node("ReduceSum"), all.run1());  // opset 13, no axes: every axis, kept as 1
  EXPECT_EQ(y.shape(), (Shape{1, 1}));
  expect_floats(y, {24});
  OneNode ax;
  ax.in("x", x).constant("axes", i64({1}, {0}));
  expect_floats((ax.node("ReduceSum"), ax.run1()), {5, 7, 12});
  OneNode noop;
  noop.in("x", x);
  ModelBuilder::attr(noop.node("ReduceSum"), "noop_with_empty_axes", int64_t{1});
  EXPECT_EQ(noop.run1().to_vector<float>(), x.to_vector<float>());
  OneNode g;
  g.in("x", f32({1, 2, 2, 1}, {1, 5, -1, -3}));
  y = (g.node("GlobalMaxPool"), g.run1());
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 1}));
  expect_floats(y, {5, -1});
}

TEST(ExecutorOpsExtra, TransposeConcatSplit) {
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  OneNode t;
  t.in("x", x);
  Tensor y = (t.node("Transpose"), t.run1());
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  expect_floats(y, {1, 4, 2, 5, 3, 6});
  OneNode t3;
  t3.in("x", f32({1, 2, 3}, {1, 2, 3, 4, 5, 6}));
  ModelBuilder::attr(t3.node("Transpose"), "perm", std::vector<int64_t>{2, 0, 1});
  y = t3.run1();
  EXPECT_EQ(y.shape(), (Shape{3, 1, 2}));
  expect_floats(y, {1, 4, 2, 5, 3, 6});
  OneNode c;
  c.in("a", x).in("b", f32({2, 1}, {7, 8}));
  ModelBuilder::attr(c.node("Concat"), "axis", int64_t{-1});
  y = c.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  expect_floats(y, {1, 2, 3, 7, 4, 5, 6, 8});
  OneNode s;
  s.in("x", x).constant("split", i64({2}, {1, 2}));
  ModelBuilder::attr(s.node("Split", 2), "axis", int64_t{1});
  TensorMap parts = s.run();
  expect_floats(parts["y0"], {1, 4});
  expect_floats(parts["y1"], {2, 3, 5, 6});
  OneNode eq(11);
  eq.in("x", x);
  eq.node("Split", 2);  // axis 0, equal parts
  parts = eq.run();
  expect_floats(parts["y1"], {4, 5, 6});
}

TEST(ExecutorOpsExtra, SliceClampsAndSteps) {
  const Tensor x = f32({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  OneNode s;
  s.in("x", x).constant("starts", i64({2}, {0, -1})).constant("ends", i64({2}, {100, -1000}))
      .constant("axes", i64({2}, {0, 1})).constant("steps", i64({2}, {1, -2}));
  Tensor y = (s.node("Slice"), s.run1());
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  expect_floats(y, {3, 1, 7, 5});
  OneNode v1(9);
  v1.in("x", x);
  auto& n = v1.node("Slice");
  ModelBuilder::attr(n, "starts", std::vector<int64_t>{1});
  ModelBuilder::attr(n, "ends", std::vector<int64_t>{3});
  ModelBuilder::attr(n, "axes", std::vector<int64_t>{1});
  expect_floats(v1.run1(), {1, 2, 5, 6});
}

TEST(ExecutorOpsExtra, SqueezeUnsqueezeByOpset) {
  const Tensor x = f32({1, 3, 1}, {1, 2, 3});
  OneNode s13;
  s13.in("x", x).constant("axes", i64({1}, {-1}));
  EXPECT_EQ((s13.node("Squeeze"), s13.run1()).shape(), (Shape{1, 3}));
  OneNode all;
  all.in("x", x);
  EXPECT_EQ((all.node("Squeeze"), all.run1()).shape(), (Shape{3}));
  OneNode u11(11);
  u11.in("x", f32({3}, {1, 2, 3}));
  ModelBuilder::attr(u11.node("Unsqueeze"), "axes", std::vector<int64_t>{0, -1});
  EXPECT_EQ(u11.run1().shape(), (Shape{1, 3, 1}));
  OneNode u13;
  u13.in("x", f32({3}, {1, 2, 3})).constant("axes", i64({1}, {1}));
  EXPECT_EQ((u13.node("Unsqueeze"), u13.run1()).shape(), (Shape{3, 1}));
  OneNode bad;
  bad.in("x", x).constant("axes", i64({1}, {1}));
  bad.node("Squeeze");
  auto r = ref::Executor::create(bad.b.model()).value().run(bad.feeds);
  ASSERT_FALSE(r.ok());
  EXPECT_STREQ(r.error().what(), "node 'n' (Squeeze): cannot squeeze axis 1 of [1, 3, 1]");
}

TEST(ExecutorOpsExtra, PadModes) {
  const Tensor x = f32({1, 3}, {1, 2, 3});
  auto pad = [&](const std::string& mode) {
    OneNode n;
    n.in("x", x).constant("pads", i64({4}, {0, 2, 0, 1})).constant("v", f32({}, {9}));
    ModelBuilder::attr(n.node("Pad"), "mode", mode);
    return n.run1();
  };
  expect_floats(pad("constant"), {9, 9, 1, 2, 3, 9});
  expect_floats(pad("edge"), {1, 1, 1, 2, 3, 3});
  expect_floats(pad("reflect"), {3, 2, 1, 2, 3, 2});
  OneNode crop;
  crop.in("x", x).constant("pads", i64({4}, {0, -1, 0, 0}));
  expect_floats((crop.node("Pad"), crop.run1()), {2, 3});
}

TEST(ExecutorOpsExtra, GatherShapeCastConstantOfShapeExpandWhere) {
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  OneNode g;
  g.in("x", x).constant("i", i64({2}, {-1, 0}));
  ModelBuilder::attr(g.node("Gather"), "axis", int64_t{1});
  Tensor y = g.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  expect_floats(y, {3, 1, 6, 4});
  OneNode g0;
  g0.in("x", x).constant("i", Tensor::scalar<int64_t>(1));
  y = (g0.node("Gather"), g0.run1());
  EXPECT_EQ(y.shape(), (Shape{3}));  // scalar index removes the axis
  expect_floats(y, {4, 5, 6});
  OneNode sh(15);
  sh.in("x", f32({2, 3, 4}, std::vector<float>(24)));
  ModelBuilder::attr(sh.node("Shape"), "start", int64_t{-2});
  EXPECT_EQ(sh.run1().to_vector<int64_t>(), (std::vector<int64_t>{3, 4}));
  OneNode c;
  c.in("x", f32({3}, {1.7f, -1.7f, 0.0f}));
  ModelBuilder::attr(c.node("Cast"), "to", int64_t{7});
  EXPECT_EQ(c.run1().to_vector<int64_t>(), (std::vector<int64_t>{1, -1, 0}));
  OneNode k;
  k.in("s", i64({2}, {2, 1}));
  auto& kn = k.node("ConstantOfShape");
  auto* a = kn.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = tensor_to_proto(Tensor::from_vector<int64_t>({1}, {5}), "value");
  y = k.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 1}));
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{5, 5}));
  OneNode e;
  e.in("x", f32({3, 1}, {1, 2, 3})).constant("s", i64({3}, {2, 1, 2}));
  y = (e.node("Expand"), e.run1());
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  expect_floats(y, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  Tensor cond(DType::kBool, {2});  // Tensor::from_vector cannot take std::vector<bool>
  cond.data<bool>()[0] = true;
  OneNode w;
  w.in("c", cond).in("a", f32({2, 1}, {1, 2})).in("b", f32({}, {0}));
  y = (w.node("Where"), w.run1());
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  expect_floats(y, {1, 0, 2, 0});
}

namespace {
Tensor booleans(Shape s, std::vector<bool> v) { return Tensor::from_vector<bool>(std::move(s), v); }
std::vector<bool> bools_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::kBool);
  return std::vector<bool>(t.data<bool>(), t.data<bool>() + t.numel());
}
/// The output of `op` on the given inputs (graph inputs, in order).
Tensor apply(const std::string& op, std::vector<Tensor> inputs,
             std::function<void(onnx::NodeProto&)> attrs = {}) {
  OneNode n;
  for (size_t i = 0; i < inputs.size(); ++i) n.in("x" + std::to_string(i), inputs[i]);
  auto& node = n.node(op);
  if (attrs) attrs(node);
  return n.run1();
}
std::string apply_error(const std::string& op, std::vector<Tensor> inputs) {
  OneNode n;
  for (size_t i = 0; i < inputs.size(); ++i) n.in("x" + std::to_string(i), inputs[i]);
  n.node(op);
  return n.error();
}
}  // namespace

TEST(ExecutorOpsExtra, MathUnaryFunctions) {
  const Tensor x = f32({6}, {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f});
  expect_floats(apply("Neg", {x}), {2.5f, 1.5f, 0.5f, -0.5f, -1.5f, -2.5f});
  expect_floats(apply("Abs", {x}), {2.5f, 1.5f, 0.5f, 0.5f, 1.5f, 2.5f});
  expect_floats(apply("Floor", {x}), {-3, -2, -1, 0, 1, 2});
  expect_floats(apply("Ceil", {x}), {-2, -1, 0, 1, 2, 3});
  // Round: halves go to the even neighbour, not away from zero.
  expect_floats(apply("Round", {x}), {-2, -2, 0, 0, 2, 2});
  expect_floats(apply("Round", {f32({4}, {0.4999f, 0.5001f, -0.5001f, 3.5f})}), {0, 1, -1, 4});
  expect_floats(apply("Reciprocal", {x}), {-0.4f, -1 / 1.5f, -2, 2, 1 / 1.5f, 0.4f});
  const Tensor s = apply("Sign", {f32({4}, {-3.0f, 0.0f, 2.0f, NAN})});
  EXPECT_EQ(s.data<float>()[0], -1.0f);
  EXPECT_EQ(s.data<float>()[1], 0.0f);
  EXPECT_EQ(s.data<float>()[2], 1.0f);
  EXPECT_TRUE(std::isnan(s.data<float>()[3]));
  expect_floats(apply("Log", {f32({3}, {1.0f, std::exp(2.0f), 0.5f})}), {0, 2, std::log(0.5f)});
  EXPECT_TRUE(std::isinf(apply("Log", {f32({1}, {0.0f})}).data<float>()[0]));
  // Softplus does not overflow where e^x does.
  expect_floats(apply("Softplus", {f32({4}, {-100.0f, 0.0f, 1.0f, 100.0f})}),
                {std::log1p(std::exp(-100.0f)), std::log(2.0f), std::log1p(std::exp(1.0f)), 100.0f});
  expect_floats(apply("Elu", {f32({3}, {-1.0f, 0.0f, 2.0f})}), {std::exp(-1.0f) - 1, 0, 2});
  expect_floats(apply("Elu", {f32({2}, {-1.0f, 2.0f})}, [](onnx::NodeProto& n) { ModelBuilder::attr(n, "alpha", 2.0f); }),
                {2 * (std::exp(-1.0f) - 1), 2});
  const float alpha = 1.67326319217681884765625f, gamma = 1.05070102214813232421875f;
  expect_floats(apply("Selu", {f32({3}, {-1.0f, 0.0f, 2.0f})}), {gamma * alpha * (std::exp(-1.0f) - 1), 0, gamma * 2});
  // The float-only functions reject integers with kUnsupported (a data-type gap).
  EXPECT_NE(apply_error("Floor", {i64({1}, {1})}).find("dtype int64 is not supported"), std::string::npos);
}

TEST(ExecutorOpsExtra, IntegerNegAbsSign) {
  // Shape arithmetic runs these on int64; int8 wraps like the other integer operators.
  EXPECT_EQ(apply("Neg", {i64({3}, {-4, 0, 7})}).to_vector<int64_t>(), (std::vector<int64_t>{4, 0, -7}));
  EXPECT_EQ(apply("Abs", {i64({3}, {-4, 0, 7})}).to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 7}));
  EXPECT_EQ(apply("Sign", {i64({3}, {-4, 0, 7})}).to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 1}));
  const Tensor n = apply("Neg", {Tensor::from_vector<int8_t>({2}, {-128, 5})});
  ASSERT_EQ(n.dtype(), DType::kInt8);
  EXPECT_EQ(n.to_vector<int8_t>(), (std::vector<int8_t>{-128, -5}));
}

TEST(ExecutorOpsExtra, PReluSlopeBroadcasts) {
  // One slope per channel ([C, 1, 1]) over N x C x H x W.
  const Tensor y = apply("PRelu", {f32({1, 2, 1, 2}, {-1, 2, -3, 4}), f32({2, 1, 1}, {0.5f, 0.25f})});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 2}));
  expect_floats(y, {-0.5f, 2, -0.75f, 4});
  expect_floats(apply("PRelu", {f32({3}, {-2, 0, 2}), f32({}, {0.1f})}), {-0.2f, 0, 2});
  // The slope broadcasts to X, never X to the slope.
  EXPECT_NE(apply_error("PRelu", {f32({3}, {-2, 0, 2}), f32({2, 3}, {1, 1, 1, 1, 1, 1})}).find("does not broadcast"),
            std::string::npos);
}

TEST(ExecutorOpsExtra, MinMaxVariadic) {
  // One input: a copy.
  expect_floats(apply("Min", {f32({2}, {3, -1})}), {3, -1});
  expect_floats(apply("Max", {f32({2}, {3, -1})}), {3, -1});
  // Three inputs broadcast together: [2, 1], [3] and a scalar give [2, 3].
  const Tensor a = f32({2, 1}, {1, 5}), b = f32({3}, {0, 2, 6}), c = f32({}, {4});
  Tensor y = apply("Min", {a, b, c});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expect_floats(y, {0, 1, 1, 0, 2, 4});
  expect_floats(apply("Max", {a, b, c}), {4, 4, 6, 5, 5, 6});
  EXPECT_EQ(apply("Max", {i64({2}, {3, -9}), i64({1}, {0})}).to_vector<int64_t>(), (std::vector<int64_t>{3, 0}));
  // A NaN in either place gives NaN.
  y = apply("Min", {f32({2}, {NAN, 1}), f32({2}, {0, NAN})});
  EXPECT_TRUE(std::isnan(y.data<float>()[0]) && std::isnan(y.data<float>()[1]));
  EXPECT_NE(apply_error("Max", {f32({1}, {1}), i64({1}, {1})}).find("Max needs one element type"), std::string::npos);
}

TEST(ExecutorOpsExtra, ComparisonsAndLogic) {
  const Tensor a = f32({2, 2}, {1, 2, 3, 4}), b = f32({2}, {2, 3});
  EXPECT_EQ(bools_of(apply("Equal", {a, b})), (std::vector<bool>{false, false, false, false}));
  EXPECT_EQ(bools_of(apply("Equal", {a, f32({}, {3})})), (std::vector<bool>{false, false, true, false}));
  EXPECT_EQ(bools_of(apply("Less", {a, b})), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(bools_of(apply("LessOrEqual", {a, b})), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(bools_of(apply("Greater", {a, b})), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(bools_of(apply("GreaterOrEqual", {a, f32({2, 1}, {2, 4})})), (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(bools_of(apply("Less", {i64({3}, {-1, 0, 1}), i64({}, {0})})), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(bools_of(apply("Equal", {booleans({2}, {true, false}), booleans({}, {false})})),
            (std::vector<bool>{false, true}));
  const Tensor p = booleans({2, 2}, {true, true, false, false}), q = booleans({2}, {true, false});
  EXPECT_EQ(bools_of(apply("And", {p, q})), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(bools_of(apply("Or", {p, q})), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(bools_of(apply("Not", {q})), (std::vector<bool>{false, true}));
  EXPECT_NE(apply_error("And", {p, f32({1}, {1})}).find("And needs one element type"), std::string::npos);
  EXPECT_NE(apply_error("Not", {f32({1}, {1})}).find("is float32, expected bool"), std::string::npos);
}

TEST(ExecutorOpsExtra, WhereBroadcastsAllThree) {
  // cond [2, 1, 1], x [1, 3, 1] and y [1, 1, 2] broadcast to [2, 3, 2]; int64 values.
  const Tensor y = apply("Where", {booleans({2, 1, 1}, {true, false}), i64({1, 3, 1}, {1, 2, 3}), i64({1, 1, 2}, {-1, -2})});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2, 2, 3, 3, -1, -2, -1, -2, -1, -2}));
}

TEST(ExecutorOpsExtra, RangeAndSize) {
  auto range = [](const Tensor& start, const Tensor& limit, const Tensor& delta) {
    OneNode n;
    n.constant("s", start).constant("l", limit).constant("d", delta);
    n.node("Range");
    return n;
  };
  Tensor y = range(i64({}, {10}), i64({}, {4}), i64({}, {-3})).run1();  // a negative delta counts down
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{10, 7}));
  y = range(i64({}, {10}), i64({}, {3}), i64({}, {-3})).run1();  // ceil(7 / 3) = 3 elements
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{10, 7, 4}));
  y = range(f32({}, {1}), f32({}, {2}), f32({}, {0.25f})).run1();
  expect_floats(y, {1, 1.25f, 1.5f, 1.75f});
  y = range(i64({}, {5}), i64({}, {5}), i64({}, {1})).run1();  // empty, also when delta points away
  EXPECT_EQ(y.shape(), (Shape{0}));
  EXPECT_EQ(range(i64({}, {0}), i64({}, {5}), i64({}, {-1})).run1().shape(), (Shape{0}));
  EXPECT_NE(range(i64({}, {0}), i64({}, {5}), i64({}, {0})).error().find("delta is 0"), std::string::npos);
  EXPECT_NE(range(i64({}, {0}), f32({}, {5}), i64({}, {1})).error().find("float32"), std::string::npos);
  // Counts memory cannot hold are an error naming the count, not a bad_alloc or an undefined cast.
  EXPECT_NE(range(i64({}, {0}), i64({}, {int64_t{1} << 40}), i64({}, {1})).error().find("Range of 1.09951e+12 elements"),
            std::string::npos);
  EXPECT_NE(range(f32({}, {0}), f32({}, {INFINITY}), f32({}, {1})).error().find("Range of inf elements"),
            std::string::npos);

  OneNode empty;
  empty.constant("x", f32({2, 3, 0}, {}));
  y = (empty.node("Size"), empty.run1());
  ASSERT_EQ(y.dtype(), DType::kInt64);
  EXPECT_EQ(y.shape(), Shape{});
  EXPECT_EQ(y.to_vector<int64_t>(), std::vector<int64_t>{0});
  EXPECT_EQ(apply("Size", {f32({2, 3}, {1, 2, 3, 4, 5, 6})}).to_vector<int64_t>(), std::vector<int64_t>{6});
}
