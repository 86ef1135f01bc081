// lower_qdq + run_int8 for MatMul of two int8 activations (kMatMul) and Softmax (kSoftmax): the
// patterns, agreement with the float execution of the same QDQ model, serialization, and the
// refusals that send a node to the host.
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

/// a [batch, ...] and b (its first dimension is the batch too; `b_shape` reshapes it on the int8
/// value, so B can have other batch dimensions) -> MatMul -> [activation] -> Q -> y.
Build matmul_model(const Shape& a_shape, const Shape& b_input, const Shape& b_shape, const std::string& activation) {
  return [=](const ActParams& p) {
    QdqBuilder q(p);
    Shape a_dyn = a_shape, b_dyn = b_input;
    a_dyn[0] = -1, b_dyn[0] = -1;
    q.b.input("a", DType::kFloat32, a_dyn);
    q.b.input("b", DType::kFloat32, b_dyn);
    const std::string a = q.qdq("a");
    std::string b = q.qdq("b");
    if (b_shape != b_input) {  // reshape the int8 value, then dequantize it again
      q.b.initializer("b_shape", Tensor::from_vector<int64_t>({static_cast<int64_t>(b_shape.size())}, b_shape));
      q.b.node("Reshape", {"b_q", "b_shape"}, {"b_r"}, "b_reshape");
      q.b.node("DequantizeLinear", {"b_r", "b_scale", "b_zp"}, {"b_r_dq"}, "b_r_DQ");
      b = "b_r_dq";
    }
    q.b.node("MatMul", {a, b}, {activation.empty() ? "y" : "mm"}, "matmul");
    if (activation == "Relu") q.b.node("Relu", {"mm"}, {"y"}, "relu");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}

Build softmax_model(const Shape& shape, int64_t axis, int64_t opset, bool fixed_output) {
  return [=](const ActParams& given) {
    ActParams p = given;
    if (fixed_output) p["y"] = {1.0f / 256.0f, -128};  // the quantizer's softmax output
    QdqBuilder q(p, opset);
    Shape dyn = shape;
    dyn[0] = -1;
    q.b.input("x", DType::kFloat32, dyn);
    auto& n = q.b.node("Softmax", {q.qdq("x")}, {"y"}, "softmax");
    ModelBuilder::attr(n, "axis", axis);
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}

}  // namespace

TEST(Int8MatMul, TwoActivationsLowerToOneMatMulWithinOneStepOfFloat) {
  struct Case {
    Shape a, b_input, b;
    std::string activation;
  };
  const std::vector<Case> cases = {
      {{2, 5, 7}, {2, 7, 3}, {2, 7, 3}, ""},             // batched, odd sizes
      {{2, 3, 4, 9}, {2, 3, 9, 5}, {2, 3, 9, 5}, "Relu"},  // two batch dims, fused Relu
      {{2, 6, 8}, {2, 20}, {8, 5}, ""},                  // B one matrix, broadcast to the batch
      {{3, 4}, {3, 4, 6}, {3, 4, 6}, ""},                // rank 2 x rank 3: A broadcast
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const Build build = matmul_model(c.a, c.b_input, c.b, c.activation);
    const TensorMap in{{"a", random_tensor(c.a, -2.0f, 1.5f, seed)}, {"b", random_tensor(c.b_input, -1.0f, 3.0f, seed + 1)}};
    seed += 2;
    const ActParams p = calibrate(build, {"a", "b", "y"}, in);
    auto g = ref::lower_qdq(build(p), c.a[0]);
    ASSERT_TRUE(g.ok()) << g.error().what();
    const ref::Int8Op& mm = g->ops.back();
    ASSERT_EQ(mm.kind, ref::Int8OpKind::kMatMul);
    EXPECT_EQ(mm.inputs.size(), 2u);
    EXPECT_EQ(mm.act_min, c.activation == "Relu" ? p.at("y").zero_point : -128);
    const double want = static_cast<double>(p.at("a").scale) * p.at("b").scale / p.at("y").scale;
    const auto m = math::quantize_multiplier(want);
    EXPECT_EQ(mm.multiplier.multiplier, m.multiplier);
    EXPECT_EQ(mm.multiplier.shift, m.shift);
    // The float graph sums float32 products in another order and rounds half to even; the
    // integer graph sums exactly and requant.h rounds that once with a 31-bit multiplier: one step at most.
    const Agreement a = test::int8_agreement(build(p), in, c.a[0]);
    EXPECT_LE(a.max_diff, 1);
    EXPECT_GT(a.exact, 0.8);
  }
}

TEST(Int8MatMul, ConstantWeightMatMulKeepsTheConvPath) {
  const Build build = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 6});
    std::vector<float> scales;
    const std::string w = q.weight("w", random_tensor({6, 4}, -0.5f, 0.5f, 3), 1, &scales);
    q.b.node("MatMul", {q.qdq("x"), w}, {"y"}, "fc");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  const TensorMap in{{"x", random_tensor({3, 6}, -1.0f, 1.0f, 4)}};
  auto g = ref::lower_qdq(build(calibrate(build, {"x", "y"}, in)), 3);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_EQ(g->ops.back().kind, ref::Int8OpKind::kConv);
}

TEST(Int8MatMul, ConstantWeightMatMulOnBatchedRowsIsReshapeConvReshape) {
  // [batch, ..., M, K] x W[K, O] (a transformer's projections): all leading rows form one N x K
  // matrix, so the op is the 1x1 conv between two kReshapes (same bytes), within one step of float.
  for (const Shape& x_shape : {Shape{2, 5, 6}, Shape{2, 3, 5, 6}}) {
    const Build build = [x_shape](const ActParams& p) {
      QdqBuilder q(p);
      Shape dyn = x_shape;
      dyn[0] = -1;
      q.b.input("x", DType::kFloat32, dyn);
      std::vector<float> scales;
      const std::string w = q.weight("w", random_tensor({6, 7}, -0.5f, 0.5f, 11), 1, &scales);
      q.b.node("MatMul", {q.qdq("x"), w}, {"y"}, "proj");
      q.b.output(q.qdq("y"));
      return q.b.model();
    };
    const TensorMap in{{"x", random_tensor(x_shape, -1.0f, 1.0f, 12)}};
    const ActParams p = calibrate(build, {"x", "y"}, in);
    auto g = ref::lower_qdq(build(p), x_shape[0]);
    ASSERT_TRUE(g.ok()) << g.error().what();
    ASSERT_EQ(g->ops.size(), 3u);
    EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kReshape);
    EXPECT_EQ(g->ops[1].kind, ref::Int8OpKind::kConv);
    EXPECT_EQ(g->ops[2].kind, ref::Int8OpKind::kReshape);
    const int64_t rows = shape_numel(x_shape) / 6;
    EXPECT_EQ(g->values[g->ops[1].inputs[0]].shape, (Shape{rows, 6}));
    EXPECT_EQ(g->values[g->ops[1].output].shape, (Shape{rows, 7}));
    Shape y_shape = x_shape;
    y_shape.back() = 7;
    EXPECT_EQ(g->values[g->ops[2].output].shape, y_shape);
    ASSERT_EQ(g->outputs.size(), 1u);
    EXPECT_EQ(g->outputs[0], g->ops[2].output);  // the graph output is the unflattened value
    const Agreement a = test::int8_agreement(build(p), in, x_shape[0]);
    EXPECT_LE(a.max_diff, 1);
    EXPECT_GT(a.exact, 0.8);
  }
}

TEST(Int8MatMul, ConstantWeightMatMulWithBiasAddIsOneConvWithTheInt32Bias) {
  // nn.Linear on a 3-D input exports as MatMul + Add(bias); the quantizer gives the Add an int32 bias
  // on the accumulator's scale and no Q/DQ between the two (find_bias_adds). The pair lowers to the
  // Conv path with that bias: no kAdd, and within one step of float. Either operand order of the Add,
  // with or without a fused Relu.
  for (const bool bias_first : {false, true})
    for (const std::string activation : {"", "Relu"}) {
      SCOPED_TRACE(std::string(bias_first ? "Add(bias, product)" : "Add(product, bias)") + " " + activation);
      const std::vector<float> b_float = random_tensor({7}, -0.5f, 0.5f, 13).to_vector<float>();
      const Build build = [&](const ActParams& p) {
        QdqBuilder q(p);
        q.b.input("x", DType::kFloat32, {-1, 5, 6});
        std::vector<float> scales;
        const std::string w = q.weight("w", random_tensor({6, 7}, -0.5f, 0.5f, 11), 1, &scales);
        const std::string x = q.qdq("x");
        const std::string b = q.bias("b", b_float, q.params("x").scale, scales);
        q.b.node("MatMul", {x, w}, {"mm"}, "proj");
        q.b.node("Add", bias_first ? std::vector<std::string>{b, "mm"} : std::vector<std::string>{"mm", b},
                 {activation.empty() ? "y" : "sum"}, "proj_bias");
        if (!activation.empty()) q.b.node("Relu", {"sum"}, {"y"}, "relu");
        q.b.output(q.qdq("y"));
        return q.b.model();
      };
      const TensorMap in{{"x", random_tensor({2, 5, 6}, -1.0f, 1.0f, 12)}};
      const ActParams p = calibrate(build, {"x", "y"}, in);
      ref::Int8Graph g;
      const Agreement a = test::int8_agreement(build(p), in, 2, &g);
      EXPECT_LE(a.max_diff, 1);
      EXPECT_GT(a.exact, 0.8);
      ASSERT_EQ(g.ops.size(), 3u);
      EXPECT_EQ(g.ops[0].kind, ref::Int8OpKind::kReshape);
      ASSERT_EQ(g.ops[1].kind, ref::Int8OpKind::kConv);
      EXPECT_EQ(g.ops[2].kind, ref::Int8OpKind::kReshape);
      const ref::Int8Op& conv = g.ops[1];
      ASSERT_EQ(conv.bias.numel(), 7);
      int64_t nonzero = 0;
      for (int32_t v : conv.bias.to_vector<int32_t>()) nonzero += v != 0;
      EXPECT_EQ(nonzero, 7);  // the Add's int32 values, not an all-zero bias
      if (!activation.empty()) {
        EXPECT_EQ(conv.act_min, p.at("y").zero_point);  // the Relu is fused too
      }
    }
}

TEST(Int8MatMul, BiasAddOnAnotherScaleIsRefusedNamingTheBias) {
  const Build build = [](const ActParams& p) {
    QdqBuilder q(p);
    q.b.input("x", DType::kFloat32, {-1, 5, 6});
    std::vector<float> scales;
    const std::string w = q.weight("w", random_tensor({6, 7}, -0.5f, 0.5f, 11), 1, &scales);
    const std::string x = q.qdq("x");
    const std::string b = q.bias("b", random_tensor({7}, -0.5f, 0.5f, 13).to_vector<float>(),
                                 2.0f * q.params("x").scale, scales);
    q.b.node("MatMul", {x, w}, {"mm"}, "proj");
    q.b.node("Add", {"mm", b}, {"y"}, "proj_bias");
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
  const TensorMap in{{"x", random_tensor({2, 5, 6}, -1.0f, 1.0f, 12)}};
  const ActParams p = calibrate(build, {"x", "y"}, in);
  auto g = ref::lower_qdq(build(p), 2);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(std::string(g.error().what()).find("is not input scale * weight scale"), std::string::npos)
      << g.error().what();
  EXPECT_NE(std::string(g.error().what()).find("b_DQ"), std::string::npos) << g.error().what();
}

TEST(Int8MatMul, BatchDimensionsBroadcastAcrossBothOperandsMatchFloat) {
  // Batch dimensions broadcast across both operands (B reshaped on its int8 value).
  struct Case {
    Shape a, b_input, b;
  } cases[] = {{{2, 1, 3, 4}, {2, 20}, {1, 2, 4, 5}}, {{2, 1, 3, 4}, {2, 2, 4, 6}, {2, 1, 2, 4, 6}},
               {{2, 3, 1, 5}, {2, 10}, {2, 1, 5, 2}}};
  uint32_t seed = 5;
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str(c.a) + " x " + shape_str(c.b));
    const Build cross = matmul_model(c.a, c.b_input, c.b, "");
    const TensorMap in{{"a", random_tensor(c.a, -1.0f, 1.0f, seed)}, {"b", random_tensor(c.b_input, -1.0f, 1.0f, seed + 1)}};
    seed += 2;
    const ActParams p = calibrate(cross, {"a", "b", "y"}, in);
    auto g = ref::lower_qdq(cross(p), c.a[0]);
    ASSERT_TRUE(g.ok()) << g.error().what();
    ASSERT_EQ(g->ops.back().kind, ref::Int8OpKind::kMatMul);
    const Agreement a = test::int8_agreement(cross(p), in, c.a[0]);
    EXPECT_LE(a.max_diff, 1);
    EXPECT_GT(a.exact, 0.8);
  }
  // The product order and each product's matrices.
  const ref::MatMulDims d = ref::matmul_dims({2, 3, 1, 4, 7}, {3, 4, 7, 5});
  EXPECT_TRUE(d.cross);
  EXPECT_EQ(d.out, (Shape{2, 3, 4, 4, 5}));
  ASSERT_EQ(d.batch, 24);
  EXPECT_EQ(d.a_index[0], 0);
  EXPECT_EQ(d.a_index[5], 1);   // p = (0, 1, 1)
  EXPECT_EQ(d.b_index[5], 5);
  EXPECT_EQ(d.a_index[23], 5);  // p = (1, 2, 3)
  EXPECT_EQ(d.b_index[23], 11);
  EXPECT_FALSE(ref::matmul_dims({2, 3, 4, 7}, {7, 5}).cross);
  EXPECT_FALSE(ref::matmul_dims({2, 3, 4, 7}, {1, 1, 7, 5}).cross);
  EXPECT_FALSE(ref::matmul_dims({2, 3, 4, 7}, {2, 3, 7, 5}).cross);
  EXPECT_TRUE(ref::matmul_dims({2, 3, 4, 7}, {1, 3, 7, 5}).cross);  // B's matrix p % 3
  EXPECT_EQ(ref::matmul_dims({2, 3, 4, 7}, {1, 3, 7, 5}).b_index[4], 1);
}

TEST(Int8MatMul, InexpressibleOperandsAreRefusedOrRunOnTheHost) {
  // A rank-1 operand.
  const Build vec = matmul_model({2, 3, 4}, {2, 2}, {4}, "");
  const TensorMap vin{{"a", random_tensor({2, 3, 4}, -1.0f, 1.0f, 7)}, {"b", random_tensor({2, 2}, -1.0f, 1.0f, 8)}};
  auto gv = ref::lower_qdq(vec(calibrate(vec, {"a", "b", "y"}, vin)), 2);
  ASSERT_FALSE(gv.ok());
  EXPECT_EQ(gv.error().code(), ErrorCode::kUnsupported);
}

TEST(Int8Softmax, LowersToOneSoftmaxWithinOneStepOfFloatOnAnyAxis) {
  struct Case {
    Shape shape;
    int64_t axis, want_axis;
    bool fixed_output;
  };
  const std::vector<Case> cases = {{{2, 4, 16}, -1, 2, true},  {{2, 4, 16}, 1, 1, true}, {{3, 50}, 1, 1, true},
                                   {{2, 3, 5, 7}, -3, 1, true}, {{4, 9}, 0, 0, true},    {{2, 6, 33}, 2, 2, false}};
  uint32_t seed = 20;
  int64_t total_exactish = 0;
  for (const Case& c : cases) {
    const Build build = softmax_model(c.shape, c.axis, 13, c.fixed_output);
    const TensorMap in{{"x", random_tensor(c.shape, -6.0f, 4.0f, seed++)}};
    const ActParams p = calibrate(build, c.fixed_output ? std::vector<std::string>{"x"} : std::vector<std::string>{"x", "y"}, in);
    auto g = ref::lower_qdq(build(p), c.shape[0]);
    ASSERT_TRUE(g.ok()) << g.error().what();
    ASSERT_EQ(g->ops.size(), 1u);
    EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kSoftmax);
    EXPECT_EQ(g->ops[0].axis, c.want_axis);
    EXPECT_EQ(g->ops[0].softmax_table, math::make_softmax_table(p.at("x").scale));
    // The float Executor's float32 exponentials and QuantizeLinear's ties-to-even against the Q30
    // integer softmax (requant.h): equal except within ~1e-6 of a rounding boundary.
    const Agreement a = test::int8_agreement(build(p), in, c.shape[0]);
    EXPECT_LE(a.max_diff, 1);
    EXPECT_GT(a.exact, 0.95);
    total_exactish += a.exact > 0.95;
  }
  EXPECT_EQ(total_exactish, static_cast<int64_t>(cases.size()));
}

TEST(Int8Softmax, OldOpsetOnlyOverTheLastAxis) {
  const TensorMap in{{"x", random_tensor({2, 3, 8}, -3.0f, 3.0f, 9)}};
  const Build last = softmax_model({2, 3, 8}, 2, 11, true);
  auto g = ref::lower_qdq(last(calibrate(last, {"x"}, in)), 2);
  ASSERT_TRUE(g.ok()) << g.error().what();
  EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kSoftmax);
  // opset 11 axis 1 normalises over the flattened 3 x 8: refused (to the host with fallback).
  const Build flat = softmax_model({2, 3, 8}, 1, 11, true);
  auto f = ref::lower_qdq(flat(calibrate(flat, {"x"}, in)), 2);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(f.error().what()).find("softmax"), std::string::npos) << f.error().what();
  // An axis outside the rank is a malformed model.
  const Build bad = softmax_model({2, 3, 8}, 3, 13, true);
  auto b = ref::lower_qdq(bad(ActParams{{"x", {0.05f, 0}}}), 2);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), ErrorCode::kInvalidArgument);
}

TEST(Int8Attention, SerializedGraphRunsTheSameAndCorruptTablesAreRejected) {
  const Build build = softmax_model({2, 4, 16}, -1, 13, true);
  const TensorMap in{{"x", random_tensor({2, 4, 16}, -6.0f, 4.0f, 31)}};
  const ref::Int8Graph g = ref::lower_qdq(build(calibrate(build, {"x"}, in)), 2).value();
  const std::string bytes = ref::serialize_int8_graph(g);
  const ref::Int8Graph back = ref::parse_int8_graph(bytes, "softmax.ai8g").value();
  EXPECT_EQ(back.ops[0].kind, ref::Int8OpKind::kSoftmax);
  EXPECT_EQ(back.ops[0].axis, 2);
  EXPECT_EQ(back.ops[0].softmax_table, g.ops[0].softmax_table);
  const TensorMap q{{"x", ref::quantize_tensor(in.at("x"), g.values[g.inputs[0]].q)}};
  const std::string y = g.output_names.at(0);
  EXPECT_TRUE(ref::run_int8(back, q).value().at(y) == ref::run_int8(g, q).value().at(y));
  EXPECT_EQ(ref::serialize_int8_graph(back), bytes);

  ref::Int8Graph bad = g;
  bad.ops[0].softmax_table[0] = 0;
  auto p = ref::parse_int8_graph(ref::serialize_int8_graph(bad), "zero.ai8g");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kParseError);
  EXPECT_NE(std::string(p.error().what()).find("softmax"), std::string::npos) << p.error().what();
  bad = g;
  bad.ops[0].axis = 3;
  EXPECT_FALSE(ref::parse_int8_graph(ref::serialize_int8_graph(bad), "axis.ai8g").ok());
  // An op kind this anvil does not define (12 is kResize since format version 4).
  bad = g;
  bad.ops[0].kind = static_cast<ref::Int8OpKind>(99);
  auto k = ref::parse_int8_graph(ref::serialize_int8_graph(bad), "kind.ai8g");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(std::string(k.error().what()).find("unknown op kind"), std::string::npos);
}

TEST(Int8Attention, RunInt8RejectsInconsistentOps) {
  // Hand-built graphs (as a parsed host segment could be): shapes that do not match the op.
  ref::Int8Graph g;
  g.values = {{"a", {2, 3}, {0.1f, 0}}, {"b", {4, 5}, {0.1f, 0}}, {"y", {2, 5}, {0.1f, 0}}};
  g.inputs = {0, 1};
  g.input_names = {"a", "b"};
  g.outputs = {2};
  g.output_names = {"y"};
  ref::Int8Op mm;
  mm.kind = ref::Int8OpKind::kMatMul;
  mm.node = "mm";
  mm.inputs = {0, 1};
  mm.output = 2;
  mm.multiplier = math::quantize_multiplier(0.1);
  g.ops = {mm};
  const TensorMap in{{"a", Tensor(DType::kInt8, {2, 3})}, {"b", Tensor(DType::kInt8, {4, 5})}};
  auto r = ref::run_int8(g, in);  // K = 3 against 4 rows of b
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  g.values[1].shape = {3, 5};
  g.values[2].shape = {2, 4};  // the product is 2 x 5
  r = ref::run_int8(g, {{"a", Tensor(DType::kInt8, {2, 3})}, {"b", Tensor(DType::kInt8, {3, 5})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.error().what()).find("matmul 'mm'"), std::string::npos) << r.error().what();

  ref::Int8Op sm;
  sm.kind = ref::Int8OpKind::kSoftmax;
  sm.node = "sm";
  sm.inputs = {0};
  sm.output = 2;
  sm.axis = 2;  // rank 2
  sm.softmax_table = math::make_softmax_table(0.1);
  g.ops = {sm};
  g.values[2].shape = {2, 3};
  g.inputs = {0};
  g.input_names = {"a"};
  r = ref::run_int8(g, {{"a", Tensor(DType::kInt8, {2, 3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.error().what()).find("softmax 'sm'"), std::string::npos) << r.error().what();
}
