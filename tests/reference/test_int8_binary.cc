// lower_qdq + run_int8 for Add/Sub/Mul with numpy broadcasting and constant operands, against the
// float Executor of the same QDQ model; the gating Mul patterns stay one lookup table.
#include <gtest/gtest.h>

#include "qdq_builder.h"

using namespace anvil;
using anvil::test::ActParams;
using anvil::test::calibrate;
using anvil::test::QdqBuilder;
using anvil::test::random_tensor;

namespace {

using Build = std::function<onnx::ModelProto(const ActParams&)>;

/// A per-tensor int8 constant behind a DequantizeLinear (as the quantizer writes a Mul's scale or
/// a LayerNorm's gamma).
std::string int8_constant(QdqBuilder& q, const std::string& name, const Tensor& f, float scale, int8_t zp) {
  Tensor t(DType::kInt8, f.shape());
  for (int64_t i = 0; i < f.numel(); ++i) t.data<int8_t>()[i] = math::quantize_float(f.data<float>()[i], scale, zp);
  q.b.initializer(name + "_int8", t);
  q.b.initializer(name + "_scale", Tensor::scalar<float>(scale));
  q.b.initializer(name + "_zp", Tensor::scalar<int8_t>(zp));
  q.b.node("DequantizeLinear", {name + "_int8", name + "_scale", name + "_zp"}, {name + "_dq"}, name + "_DQ");
  return name + "_dq";
}

/// x [, z] -> op(x, z or constant) [-> Relu] -> Q.
Build binary_model(const std::string& op, const Shape& x_shape, const Shape& z_shape, bool constant, bool relu,
                   bool constant_first = false) {
  return [=](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, x_shape);
    const std::string x = q.qdq("x");
    std::string z;
    if (constant) {
      z = int8_constant(q, "c", random_tensor(z_shape, -2.0f, 2.0f, 5), 2.0f / 127, 0);
    } else {
      q.b.input("z", DType::kFloat32, z_shape);
      z = q.qdq("z");
    }
    q.b.node(op, constant_first ? std::vector<std::string>{z, x} : std::vector<std::string>{x, z}, {"y"}, "binary");
    std::string out = "y";
    if (relu) {
      q.b.node("Relu", {"y"}, {"r"}, "relu");
      out = "r";
    }
    q.b.output(q.qdq(out));
    return q.b.model();
  };
}

/// run_int8 against the Executor's float run of the same model: within one quantization step.
/// Why not equal: the float graph computes DQ(a) op DQ(b) in float32 and rounds x / scale half to
/// even, the integer graph requantizes exactly with a 31-bit multiplier, also to even (and Add/Sub
/// first move both operands to a common scale with 20 bits of headroom), so an
/// element whose real value lies within float error of a rounding boundary may land one step off.
void expect_within_one_step(const Build& build, const TensorMap& feeds, const std::vector<std::string>& calibrated,
                            int expected_ops, ref::Int8OpKind kind) {
  const ActParams p = calibrate(build, calibrated, feeds);
  const onnx::ModelProto model = build(p);
  auto g = ref::lower_qdq(model, feeds.begin()->second.dim(0));
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(static_cast<int>(g->ops.size()), expected_ops);
  EXPECT_EQ(g->ops.back().kind, kind);
  const TensorMap want = ref::Executor::create(model).value().run(feeds).value();
  TensorMap int8_in;
  for (size_t i = 0; i < g->inputs.size(); ++i)
    int8_in[g->input_names[i]] = ref::quantize_tensor(feeds.at(g->input_names[i]), g->values[g->inputs[i]].q);
  const TensorMap got = ref::run_int8(*g, int8_in).value();
  // The serialized graph (a host segment) runs the same.
  auto parsed = ref::parse_int8_graph(ref::serialize_int8_graph(*g), "test");
  ASSERT_TRUE(parsed.ok()) << parsed.error().what();
  const TensorMap again = ref::run_int8(*parsed, int8_in).value();
  for (size_t i = 0; i < g->outputs.size(); ++i) {
    const std::string& name = g->output_names[i];
    const Tensor expected = ref::quantize_tensor(want.at(name), g->values[g->outputs[i]].q);
    const Tensor& y = got.at(name);
    ASSERT_EQ(y.shape(), expected.shape());
    EXPECT_TRUE(again.at(name) == y);
    int64_t exact = 0;
    for (int64_t j = 0; j < y.numel(); ++j) {
      const int d = std::abs(y.data<int8_t>()[j] - expected.data<int8_t>()[j]);
      ASSERT_LE(d, 1) << name << " element " << j;
      exact += d == 0;
    }
    EXPECT_GT(exact * 10, y.numel() * 9);  // off-by-one only near ties, not systematically
  }
}

ref::Int8OpKind kind_of(const std::string& op) {
  return op == "Add" ? ref::Int8OpKind::kAdd : op == "Sub" ? ref::Int8OpKind::kSub : ref::Int8OpKind::kMul;
}

}  // namespace

TEST(Int8Binary, BroadcastingAddSubMulMatchFloat) {
  struct Case {
    Shape x, z;
  } cases[] = {  // a graph input's first dimension is the batch: both inputs share it
      {{1, 3, 5, 7}, {1}},          {{1, 3, 5, 7}, {1, 3, 1, 1}}, {{2, 13, 9}, {2, 1, 9}},
      {{1, 1, 4, 1}, {1, 3, 1, 6}}, {{2, 1, 4, 1}, {2, 3, 1, 6}}, {{3, 5}, {3, 5}}};
  uint32_t seed = 1;
  for (const Case& c : cases)
    for (const std::string op : {"Add", "Sub", "Mul"})
      for (bool relu : {false, true}) {
        SCOPED_TRACE(op + " " + shape_str(c.x) + " " + shape_str(c.z) + (relu ? " relu" : ""));
        const TensorMap feeds{{"x", random_tensor(c.x, -1.0f, 2.0f, seed)},
                              {"z", random_tensor(c.z, -1.5f, 1.0f, seed + 1)}};
        seed += 2;
        expect_within_one_step(binary_model(op, c.x, c.z, false, relu), feeds, {"x", "z", relu ? "r" : "y"}, 1,
                               kind_of(op));
      }
}

TEST(Int8Binary, ConstantOperandBecomesTheOpsWeight) {
  const TensorMap feeds{{"x", random_tensor({2, 4, 3, 5}, -1.0f, 1.0f, 9)}};
  for (const std::string op : {"Mul", "Add", "Sub"}) {
    SCOPED_TRACE(op);
    expect_within_one_step(binary_model(op, {2, 4, 3, 5}, {4, 1, 1}, true, false), feeds, {"x", "y"}, 1, kind_of(op));
    auto g = ref::lower_qdq(binary_model(op, {2, 4, 3, 5}, {4, 1, 1}, true, false)({}), 2);
    ASSERT_TRUE(g.ok()) << g.error().what();
    EXPECT_EQ(g->ops[0].inputs.size(), 1u);
    EXPECT_EQ(g->ops[0].weight.shape(), (Shape{4, 1, 1}));
  }
  // Mul commutes: a constant first operand is swapped to the second.
  expect_within_one_step(binary_model("Mul", {2, 4, 3, 5}, {5}, true, true, true), feeds, {"x", "r"}, 1,
                         ref::Int8OpKind::kMul);
}

/// constant - x keeps the constant as the first operand (Int8Op::constant_first), broadcast either
/// way, with a fused Relu; the serialized graph (version 4) carries the flag.
TEST(Int8Binary, ConstantMinusValueMatchesFloat) {
  struct Case {
    Shape x, c;
  } cases[] = {{{2, 4}, {4}}, {{2, 4, 3, 5}, {4, 1, 1}}, {{1, 1, 3}, {2, 3, 1}}, {{3, 6}, {3, 6}}};
  uint32_t seed = 40;
  for (const Case& c : cases)
    for (bool relu : {false, true}) {
      SCOPED_TRACE(shape_str(c.c) + " - " + shape_str(c.x) + (relu ? " relu" : ""));
      const TensorMap feeds{{"x", random_tensor(c.x, -1.0f, 1.5f, seed++)}};
      const Build build = binary_model("Sub", c.x, c.c, true, relu, true);
      expect_within_one_step(build, feeds, {"x", relu ? "r" : "y"}, 1, ref::Int8OpKind::kSub);
      auto g = ref::lower_qdq(build({}), c.x[0]);
      ASSERT_TRUE(g.ok()) << g.error().what();
      EXPECT_TRUE(g->ops[0].constant_first);
      EXPECT_EQ(g->ops[0].weight.shape(), c.c);
      EXPECT_TRUE(ref::parse_int8_graph(ref::serialize_int8_graph(*g), "t").value().ops[0].constant_first);
    }
  // x - constant is not flagged.
  auto g = ref::lower_qdq(binary_model("Sub", {2, 4}, {4}, true, false)({}), 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_FALSE(g->ops[0].constant_first);
}

TEST(Int8Binary, IncompatibleShapesAndMisplacedConstantFirstAreErrorsNamingTheNode) {
  auto bad = ref::lower_qdq(binary_model("Mul", {2, 3}, {2, 4}, false, false)({}), 2);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.error().what()).find("binary"), std::string::npos) << bad.error().what();
  EXPECT_NE(std::string(bad.error().what()).find("do not broadcast"), std::string::npos) << bad.error().what();
  // constant_first on a Mul (or a Sub of two values) is a malformed graph for run_int8 and the parser.
  ref::Int8Graph mul = ref::lower_qdq(binary_model("Mul", {2, 4}, {4}, true, false)({}), 2).value();
  mul.ops[0].constant_first = true;
  TensorMap in{{"x", Tensor(DType::kInt8, {2, 4})}};
  auto run = ref::run_int8(mul, in);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(run.error().what()).find("binary"), std::string::npos) << run.error().what();
  ref::Int8Graph sub2 = ref::lower_qdq(binary_model("Sub", {2, 4}, {2, 4}, false, false)({}), 2).value();
  sub2.ops[0].constant_first = true;
  auto parsed = ref::parse_int8_graph(ref::serialize_int8_graph(sub2), "bad.bin");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code(), ErrorCode::kParseError);
  EXPECT_NE(std::string(parsed.error().what()).find("binary"), std::string::npos) << parsed.error().what();
}

TEST(Int8Binary, GatingMulsStayOneLookupTable) {
  // SiLU and hard swish as the quantizer writes them: Mul(x, Q(gate(x))) is one kLut, no kMul.
  for (const std::string gate : {"Sigmoid", "HardSigmoid"}) {
    const Build build = [gate](const ActParams& p) {
      QdqBuilder q(p);
      q.b.input("x", DType::kFloat32, {-1, 3, 4, 4});
      const std::string x = q.qdq("x");
      q.b.node(gate, {x}, {"g"}, "gate");
      q.b.node("Mul", {x, q.qdq("g")}, {"y"}, "mul");
      q.b.output(q.qdq("y"));
      return q.b.model();
    };
    const TensorMap feeds{{"x", random_tensor({2, 3, 4, 4}, -4.0f, 4.0f, 3)}};
    expect_within_one_step(build, feeds, {"x", "g", "y"}, 1, ref::Int8OpKind::kLut);
  }
}

TEST(Int8Binary, ParserRejectsAMulInAVersion2Graph) {
  auto g = ref::lower_qdq(binary_model("Mul", {2, 4}, {4}, true, false)({}), 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  std::string bytes = ref::serialize_int8_graph(*g);
  bytes[4] = 2;  // the little-endian version field after "AI8G"
  auto parsed = ref::parse_int8_graph(bytes, "old.bin");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code(), ErrorCode::kParseError);
  EXPECT_NE(std::string(parsed.error().what()).find("binary"), std::string::npos) << parsed.error().what();
}
