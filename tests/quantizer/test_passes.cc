#include <gtest/gtest.h>

#include <cmath>

#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "model_builder.h"
#include "passes.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

Tensor run1(const onnx::ModelProto& m, const Tensor& x) {
  auto exec = ref::Executor::create(m);
  EXPECT_TRUE(exec.ok()) << (exec.ok() ? "" : exec.error().what());
  auto out = exec->run({{"x", x}});
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().what());
  return out->at("y");
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float d = 0.0f;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  return d;
}

void add_bn(ModelBuilder& b, const std::string& in, const std::string& out, int64_t c, unsigned seed) {
  b.init("gamma", random_tensor({c}, 0.5f, 1.5f, seed))
      .init("beta", random_tensor({c}, -0.5f, 0.5f, seed + 1))
      .init("mean", random_tensor({c}, -0.3f, 0.3f, seed + 2))
      .init("var", random_tensor({c}, 0.2f, 2.0f, seed + 3));
  set_float(b.node("BatchNormalization", {in, "gamma", "beta", "mean", "var"}, {out}), "epsilon", 1e-3f);
}

}  // namespace

TEST(RemoveIdentity, RewiresReadersAndKeepsOutputName) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Identity", {"x"}, {"a"});
  b.node("Relu", {"a"}, {"r"});
  b.node("Dropout", {"r"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::remove_identity(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(m.graph().node(0).op_type(), "Relu");
  EXPECT_EQ(m.graph().node(0).input(0), "x");
  EXPECT_EQ(m.graph().node(0).output(0), "y");
  EXPECT_NO_THROW(check_onnx(m, "after remove-identity"));
}

// An Identity writing a graph output: its input's producer writes the output name, and the other
// readers of the input read the output name too. (Mutation testing: not renaming those readers
// failed no test; the graph then read a value nothing writes.)
TEST(RemoveIdentity, OtherReadersOfTheInputFollowTheRenamedOutput) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4}).output("z", {4});
  b.node("Relu", {"x"}, {"r"});
  b.node("Identity", {"r"}, {"y"});
  b.node("Neg", {"r"}, {"z"});
  onnx::ModelProto m = b.model();
  passes::remove_identity(m);
  ASSERT_EQ(m.graph().node_size(), 2);
  EXPECT_EQ(m.graph().node(0).output(0), "y");
  EXPECT_EQ(m.graph().node(1).input(0), "y");
  EXPECT_NO_THROW(check_onnx(m, "after remove-identity"));
}

TEST(RemoveIdentity, KeepsIdentityFromGraphInputToGraphOutput) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Identity", {"x"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::remove_identity(m);
  EXPECT_EQ(m.graph().node_size(), 1);
}

TEST(RemoveIdentity, KeepsDropoutWhoseMaskIsRead) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4}).output("mask_f", {4});
  b.node("Dropout", {"x"}, {"y", "mask"});
  b.node("Cast", {"mask"}, {"mask_f"});
  onnx::ModelProto m = b.model();
  passes::remove_identity(m);
  EXPECT_EQ(count_ops(m, "Dropout"), 1);
}

TEST(RemoveIdentity, RemovesDropoutWithAConstantFalseTrainingModeAndKeepsATrueOne) {
  for (bool training : {false, true}) {
    ModelBuilder b;
    b.input("x", {4}).output("y", {4});
    b.init("ratio", Tensor::scalar<float>(0.5f)).init("training", Tensor::from_vector<bool>({}, {training}));
    b.node("Relu", {"x"}, {"r"});
    b.node("Dropout", {"r", "ratio", "training"}, {"y"});
    onnx::ModelProto m = b.model();
    passes::remove_identity(m);
    EXPECT_EQ(count_ops(m, "Dropout"), training ? 1 : 0) << "training_mode " << training;
    EXPECT_NO_THROW(check_onnx(m, "after remove-identity"));
  }
}

TEST(FoldBatchNorm, ConvWithBiasMatchesUnfolded) {
  ModelBuilder b;
  b.input("x", {2, 5, 5}).output("y", {3, 5, 5});
  b.init("w", random_tensor({3, 2, 3, 3}, -1.0f, 1.0f, 1)).init("b", random_tensor({3}, -1.0f, 1.0f, 2));
  auto& conv = b.node("Conv", {"x", "w", "b"}, {"c"});
  set_ints(conv, "pads", {1, 1, 1, 1});
  set_ints(conv, "kernel_shape", {3, 3});
  add_bn(b, "c", "bn", 3, 10);
  b.node("Relu", {"bn"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  passes::remove_dead_initializers(m);
  EXPECT_EQ(count_ops(m, "BatchNormalization"), 0);
  EXPECT_EQ(m.graph().node(0).output(0), "bn");
  EXPECT_EQ(m.graph().initializer_size(), 2);  // folded weight and bias only
  EXPECT_NO_THROW(check_onnx(m, "after fold-batchnorm"));
  const Tensor x = random_tensor({4, 2, 5, 5}, -2.0f, 2.0f, 3);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
}

TEST(FoldBatchNorm, ConvWithoutBiasGetsOne) {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y", {3, 4, 4});
  b.init("w", random_tensor({3, 2, 1, 1}, -1.0f, 1.0f, 4));
  b.node("Conv", {"x", "w"}, {"c"});
  add_bn(b, "c", "y", 3, 20);
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(m.graph().node(0).input_size(), 3);
  const Tensor x = random_tensor({2, 2, 4, 4}, -2.0f, 2.0f, 5);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
}

class FoldBatchNormGemm : public ::testing::TestWithParam<int> {};

TEST_P(FoldBatchNormGemm, MatchesUnfolded) {
  const int trans_b = GetParam();
  ModelBuilder b;
  b.input("x", {6}).output("y", {4});
  b.init("B", random_tensor(trans_b ? Shape{4, 6} : Shape{6, 4}, -1.0f, 1.0f, 6));
  b.init("C", random_tensor({4}, -1.0f, 1.0f, 7));
  auto& gemm = b.node("Gemm", {"x", "B", "C"}, {"g"});
  set_int(gemm, "transB", trans_b);
  set_float(gemm, "alpha", 0.7f);
  set_float(gemm, "beta", 0.5f);
  add_bn(b, "g", "y", 4, 30);
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  const Tensor x = random_tensor({5, 6}, -2.0f, 2.0f, 8);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
}
INSTANTIATE_TEST_SUITE_P(TransB, FoldBatchNormGemm, ::testing::Values(0, 1));

TEST(FoldBatchNorm, MatMulOfA2DInputBecomesAGemmWithTheFoldedBias) {
  ModelBuilder b;
  b.input("x", {6}).output("y", {4});
  b.init("W", random_tensor({6, 4}, -1.0f, 1.0f, 40));
  b.node("MatMul", {"x", "W"}, {"m"});
  add_bn(b, "m", "y", 4, 41);
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(m.graph().node(0).op_type(), "Gemm");
  EXPECT_EQ(m.graph().node(0).output(0), "y");
  EXPECT_NO_THROW(check_onnx(m, "after fold-batchnorm"));
  const Tensor x = random_tensor({5, 6}, -2.0f, 2.0f, 42);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
}

TEST(FoldBatchNorm, MatMulBiasAddFoldsIntoTheWeightAndTheBias) {
  for (bool bias_first : {false, true}) {
    ModelBuilder b;
    b.input("x", {6}).output("y", {4});
    b.init("W", random_tensor({6, 4}, -1.0f, 1.0f, 43)).init("c", random_tensor({4}, -1.0f, 1.0f, 44));
    b.node("MatMul", {"x", "W"}, {"m"});
    b.node("Add", bias_first ? std::vector<std::string>{"c", "m"} : std::vector<std::string>{"m", "c"}, {"a"});
    add_bn(b, "a", "y", 4, 45);
    onnx::ModelProto m = b.model();
    passes::fold_batchnorm(m);
    ASSERT_EQ(m.graph().node_size(), 2) << "bias first " << bias_first;
    EXPECT_EQ(m.graph().node(0).op_type(), "MatMul");
    EXPECT_EQ(m.graph().node(1).op_type(), "Add");
    EXPECT_EQ(m.graph().node(1).output(0), "y");
    const Tensor x = random_tensor({5, 6}, -2.0f, 2.0f, 46);
    EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
  }
}

TEST(FoldBatchNorm, LeavesBnAfterAMatMulOfA3DInput) {
  // [N, 4, 6] x [6, 4] -> [N, 4, 4]: BatchNormalization scales axis 1, the weight's columns are axis 2.
  ModelBuilder b;
  b.input("x", {4, 6}).output("y", {4, 4});
  b.init("W", random_tensor({6, 4}, -1.0f, 1.0f, 47));
  b.node("MatMul", {"x", "W"}, {"m"});
  add_bn(b, "m", "y", 4, 48);
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  EXPECT_EQ(count_ops(m, "BatchNormalization"), 1);
  EXPECT_EQ(count_ops(m, "MatMul"), 1);
}

TEST(FoldBatchNorm, LeavesBnWhenConvOutputHasAnotherReader) {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y", {3, 4, 4});
  b.init("w", random_tensor({3, 2, 1, 1}, -1.0f, 1.0f, 4));
  b.node("Conv", {"x", "w"}, {"c"});
  add_bn(b, "c", "bn", 3, 20);
  b.node("Add", {"c", "bn"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::fold_batchnorm(m);
  EXPECT_EQ(count_ops(m, "BatchNormalization"), 1);
}

TEST(RemoveDeadInitializers, DropsUnreadOnly) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {2});
  b.init("used", random_tensor({2}, 0, 1, 1)).init("unused", random_tensor({2}, 0, 1, 2));
  b.node("Add", {"x", "used"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::remove_dead_initializers(m);
  ASSERT_EQ(m.graph().initializer_size(), 1);
  EXPECT_EQ(m.graph().initializer(0).name(), "used");
}

TEST(InferShapes, TypesEveryIntermediateTensor) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {2});
  b.node("Relu", {"x"}, {"r"});
  b.node("Relu", {"r"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::infer_shapes(m);
  ASSERT_EQ(m.graph().value_info_size(), 1);
  EXPECT_EQ(m.graph().value_info(0).name(), "r");
  EXPECT_EQ(m.graph().value_info(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
}

TEST(UpgradeOpset, ConvertsOpset11To13) {
  ModelBuilder b(11);
  b.input("x", {1, 3}).output("y", {3});
  auto& sq = b.node("Squeeze", {"x"}, {"y"});
  set_ints(sq, "axes", {1});
  onnx::ModelProto m = b.model();
  passes::upgrade_opset(m);
  EXPECT_EQ(onnx_opset(m), 13);
  const onnx::NodeProto* sq13 = producer(m, "y");
  ASSERT_NE(sq13, nullptr);
  EXPECT_EQ(sq13->input_size(), 2);  // Squeeze-13 takes axes as an input (a Constant node)
  EXPECT_NO_THROW(check_onnx(m, "upgraded"));
}

TEST(UpgradeOpset, Opset11SoftmaxWithoutValueInfoIsConverted) {
  // The converter's Softmax 12 -> 13 adapter needs the input's rank; nothing told it before.
  ModelBuilder b(11);
  b.input("x", {3, 4}).output("y", {3, 4});
  b.node("Relu", {"x"}, {"r"});
  set_int(b.node("Softmax", {"r"}, {"y"}), "axis", 2);
  onnx::ModelProto m = b.model();
  ASSERT_EQ(m.graph().value_info_size(), 0);
  passes::upgrade_opset(m);
  EXPECT_EQ(onnx_opset(m), 13);
  EXPECT_NO_THROW(check_onnx(m, "upgraded"));
  const Tensor x = random_tensor({2, 3, 4}, -2, 2, 5);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-6f);
}

TEST(UpgradeOpset, Opset10PadWithoutItsValueAttributeIsConverted) {
  // Pad-2's `value` is optional (default 0); the converter's adapter read it unconditionally.
  ModelBuilder b(10);
  b.input("x", {2, 3}).output("y", {2, 5});
  auto& pad = b.node("Pad", {"x"}, {"y"});
  set_ints(pad, "pads", {0, 0, 1, 0, 0, 1});
  onnx::ModelProto m = b.model();
  passes::upgrade_opset(m);
  EXPECT_EQ(onnx_opset(m), 13);
  EXPECT_NO_THROW(check_onnx(m, "upgraded"));
  const Tensor x = random_tensor({1, 2, 3}, 1, 2, 6), y = run1(m, x);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 5}));
  EXPECT_EQ(y.data<float>()[0], 0.0f);
  EXPECT_EQ(y.data<float>()[1], x.data<float>()[0]);
}

TEST(UpgradeOpset, AnIr3ModelIsQuantizedWithItsInitializersAsInputs) {
  // Under IR 3 every initializer is also a graph input; the quantizer's new scales are not, so
  // the IR version must rise to opset 13's, 7, or the checker refuses the quantized model.
  ModelBuilder b(9);
  b.input("x", {4}).output("y", {2});
  b.init("W", random_tensor({4, 2}, -1, 1, 7)).input("W", {4, 2});
  b.node("MatMul", {"x", "W"}, {"y"});
  onnx::ModelProto m = b.model();
  auto* w_shape = m.mutable_graph()->mutable_input(1)->mutable_type()->mutable_tensor_type()->mutable_shape();
  w_shape->clear_dim();  // W is [4, 2], no batch
  w_shape->add_dim()->set_dim_value(4);
  w_shape->add_dim()->set_dim_value(2);
  m.set_ir_version(3);
  QuantizeOptions o;
  auto q = quantize_model(m, random_tensor({8, 4}, -1, 1, 8), o);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_GE(q->ir_version(), 7);
  EXPECT_NO_THROW(check_onnx(*q, "quantized"));
}

TEST(ConstantsToInitializers, MovesTensorConstants) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  auto& c = b.node("Constant", {}, {"k"});
  auto* a = c.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = tensor_to_proto(Tensor::from_vector<float>({3}, {1, 2, 3}), "");
  b.node("Add", {"x", "k"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::constants_to_initializers(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(initializer(m, "k").to_vector<float>(), (std::vector<float>{1, 2, 3}));
  const Tensor x = random_tensor({2, 3}, -1, 1, 1);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 0.0f);
}

TEST(FoldConstants, FoldsAConstantSubgraph) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y", {6});
  b.init("a", Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}));
  b.init("c", Tensor::from_vector<float>({1}, {0.5f}));
  b.init("shape", Tensor::from_vector<int64_t>({2}, {-1, 6}));
  b.node("Mul", {"a", "c"}, {"ac"});         // constant
  b.node("Relu", {"ac"}, {"rac"});           // constant, through the first fold
  b.node("Identity", {"shape"}, {"shape2"}); // constant int64
  b.node("Add", {"x", "rac"}, {"s"});        // reads the input: stays
  b.node("Reshape", {"s", "shape2"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::fold_constants(m);
  ASSERT_EQ(m.graph().node_size(), 2);
  EXPECT_EQ(m.graph().node(0).op_type(), "Add");
  EXPECT_EQ(initializer(m, "rac").to_vector<float>(), (std::vector<float>{0.5f, 1, 1.5f, 2, 2.5f, 3}));
  EXPECT_EQ(initializer(m, "shape2").to_vector<int64_t>(), (std::vector<int64_t>{-1, 6}));
  EXPECT_NO_THROW(check_onnx(m, "after fold-constants"));
  const Tensor x = random_tensor({3, 2, 3}, -1, 1, 9);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 0.0f);
}

// A node without inputs is a constant too: a Constant of the value_float form, which
// constants-to-initializers leaves as a node, becomes an initializer. (Mutation testing: folding
// only nodes with inputs failed no test.)
TEST(FoldConstants, FoldsANodeWithoutInputs) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  set_float(b.node("Constant", {}, {"k"}), "value_float", 2.5f);
  b.node("Mul", {"x", "k"}, {"y"});
  onnx::ModelProto m = b.model();
  passes::constants_to_initializers(m);
  ASSERT_EQ(m.graph().node_size(), 2);  // value_float is not the tensor form: still a node
  passes::fold_constants(m);
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(m.graph().node(0).op_type(), "Mul");
  EXPECT_EQ(initializer(m, "k").to_vector<float>(), (std::vector<float>{2.5f}));
  EXPECT_NO_THROW(check_onnx(m, "after fold-constants"));
  const Tensor x = random_tensor({2, 3}, -1, 1, 3);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 0.0f);
}

TEST(FoldConstants, KeepsWhatTheExecutorCannotRunAndGraphOutputs) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3}).output("k", {3});
  b.init("a", Tensor::from_vector<float>({3}, {1, 2, 3}));
  b.init("m", Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4}));
  b.node("Det", {"m"}, {"det"});  // not an operator of the reference executor
  b.node("Add", {"x", "det"}, {"y"});
  b.node("Relu", {"a"}, {"k"});  // constant, but a graph output
  onnx::ModelProto m = b.model();
  passes::fold_constants(m);
  EXPECT_EQ(m.graph().node_size(), 3);
}

TEST(Optimize, RunsThePipelineInOrder) {
  std::vector<std::string> names;
  for (const auto& p : passes::pipeline()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"upgrade-opset", "constants-to-initializers", "fold-constants", "remove-identity", "fold-batchnorm",
                                             "remove-dead-initializers", "infer-shapes"}));
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y", {3, 4, 4});
  b.init("w", random_tensor({3, 2, 1, 1}, -1.0f, 1.0f, 4));
  b.node("Identity", {"x"}, {"xi"});
  b.node("Conv", {"xi", "w"}, {"c"});
  add_bn(b, "c", "y", 3, 20);
  const onnx::ModelProto m = optimize(b.model());
  ASSERT_EQ(m.graph().node_size(), 1);
  EXPECT_EQ(m.graph().initializer_size(), 2);
  const Tensor x = random_tensor({2, 2, 4, 4}, -2.0f, 2.0f, 5);
  EXPECT_LE(max_abs_diff(run1(b.model(), x), run1(m, x)), 1e-5f);
}
