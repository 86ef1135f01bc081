// Malformed models: Executor::create rejects each with one kInvalidArgument/kNotFound error naming
// the node and the tensor (missing initializer, undefined input, type mismatch, wrong rank, cycle),
// and accepts the same graphs when what it cannot know (an input's rank) is left open.
#include <gtest/gtest.h>

#include "anvil/reference/executor.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

Error create_error(const onnx::ModelProto& m) {
  auto e = ref::Executor::create(m);
  EXPECT_FALSE(e.ok()) << "create() accepted a malformed model";
  return e.ok() ? Error(ErrorCode::kInternal, "accepted") : e.error();
}

/// x [N, 1, 8, 8] -> Relu -> Conv(w) -> y, with w of `w_shape` as an initializer unless empty.
ModelBuilder conv_model(const Shape& x_shape, const Shape& w_shape) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, x_shape).output("y");
  if (!w_shape.empty()) b.initializer("w", Tensor(DType::kFloat32, w_shape));
  b.node("Relu", {"x"}, {"r"}, "relu");
  b.node("Conv", {"r", "w"}, {"y"}, "conv");
  return b;
}

}  // namespace

TEST(MalformedModels, MissingInitializerNamesNodeAndTensor) {
  const Error e = create_error(conv_model({-1, 1, 8, 8}, {}).model());
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(e.what(),
               "node 'conv' (Conv): input 'w' is not a graph input, an initializer or the output of any node");
}

TEST(MalformedModels, UndefinedGraphOutput) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2}).output("y").output("z");
  b.node("Relu", {"x"}, {"y"}, "relu");
  const Error e = create_error(b.model());
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(e.what(), "graph output 'z' is not produced by any node");
}

TEST(MalformedModels, TypeMismatchFoundThroughTheGraph) {
  // float32 x and int64 c = Cast(x) meet in one Add; the types are known only by propagation.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3}).output("y");
  b.node("Relu", {"x"}, {"r"}, "relu");
  ModelBuilder::attr(b.node("Cast", {"x"}, {"c"}, "cast"), "to", int64_t{7});
  b.node("Add", {"r", "c"}, {"y"}, "adder");
  const Error e = create_error(b.model());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "node 'adder' (Add): input 'c' is int64 but input 'r' is float32; Add needs one element type");
  // An initializer of the wrong type in Gemm's C.
  ModelBuilder g;
  g.input("a", DType::kFloat32, {-1, 4}).output("y");
  g.initializer("b", Tensor(DType::kFloat32, {4, 2})).initializer("c", Tensor(DType::kInt64, {2}));
  g.node("Gemm", {"a", "b", "c"}, {"y"}, "fc");
  EXPECT_STREQ(create_error(g.model()).what(),
               "node 'fc' (Gemm): input 'c' is int64 but input 'a' is float32; Gemm needs one element type");
}

TEST(MalformedModels, WrongRankNamesNodeAndTensor) {
  // X of rank 3 reaches Conv through Relu, W has rank 4.
  EXPECT_STREQ(create_error(conv_model({-1, 8, 8}, {1, 8, 3, 3}).model()).what(),
               "node 'conv' (Conv): W 'w' has rank 4 but X 'r' has rank 3");
  EXPECT_STREQ(create_error(conv_model({-1, 8}, {1, 8}).model()).what(),
               "node 'conv' (Conv): X 'r' has rank 2, expected 3 to 5");
  ModelBuilder gemm;
  gemm.input("a", DType::kFloat32, {-1, 3, 4}).output("y");
  gemm.initializer("b", Tensor(DType::kFloat32, {4, 2}));
  gemm.node("Gemm", {"a", "b"}, {"y"}, "fc");
  EXPECT_STREQ(create_error(gemm.model()).what(), "node 'fc' (Gemm): A 'a' has rank 3, expected 2");
  ModelBuilder pool;
  pool.input("x", DType::kFloat32, {-1, 1, 8}).output("y");
  ModelBuilder::attr(pool.node("MaxPool", {"x"}, {"y"}, "pool"), "kernel_shape", std::vector<int64_t>{2, 2});
  EXPECT_STREQ(create_error(pool.model()).what(),
               "node 'pool' (MaxPool): attribute 'kernel_shape' has 2 values, input 'x' of rank 3 needs 1");
  ModelBuilder global;
  global.input("x", DType::kFloat32, {-1, 8}).output("y");
  global.node("GlobalAveragePool", {"x"}, {"y"}, "gap");
  EXPECT_STREQ(create_error(global.model()).what(),
               "node 'gap' (GlobalAveragePool): X 'x' has rank 2, expected at least 3");
  // Four spatial dimensions are valid ONNX but beyond the executor: declared unsupported.
  const Error wide = create_error(conv_model({-1, 1, 2, 2, 2, 2}, {1, 1, 1, 1, 1, 1}).model());
  EXPECT_EQ(wide.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(wide.what(),
               "node 'conv' (Conv): X 'r' has rank 6; windows of more than 3 spatial dimensions are not supported");
}

TEST(MalformedModels, UnknownRankIsNotRejected) {
  // The same Conv with an input of unknown shape: nothing to contradict, so create() succeeds and
  // a wrong rank is reported by the kernel at run time, still naming the node.
  onnx::ModelProto m = conv_model({-1, 1, 8, 8}, {1, 1, 3, 3}).model();
  m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto e = ref::Executor::create(m);
  ASSERT_TRUE(e.ok()) << e.error().what();
  auto good = e->run({{"x", Tensor(DType::kFloat32, {1, 1, 8, 8})}});
  ASSERT_TRUE(good.ok()) << good.error().what();
  EXPECT_EQ(good->at("y").shape(), (Shape{1, 1, 6, 6}));
  auto bad = e->run({{"x", Tensor(DType::kFloat32, {1, 8})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.error().what()).rfind("node 'conv' (Conv): ", 0), 0u) << bad.error().what();
}

TEST(MalformedModels, CycleNamesANodeOnIt) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2}).output("y");
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Relu", {"a"}, {"b"}, "second");
  b.node("Identity", {"a"}, {"y"}, "out");
  const Error e = create_error(b.model());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "node 'first' (Add): is part of a cycle");
  // A node reading its own output.
  ModelBuilder self;
  self.input("x", DType::kFloat32, {2}).output("y");
  self.node("Add", {"x", "y"}, {"y"}, "loop");
  EXPECT_STREQ(create_error(self.model()).what(), "node 'loop' (Add): is part of a cycle");
}

TEST(MalformedModels, ShapeArithmeticIsNotAMismatch) {
  // The flatten pattern of exported models: Shape (int64) -> Gather -> Unsqueeze -> Concat with
  // an int64 Constant -> Reshape of the float input. Every propagated type agrees: create() succeeds.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3, 4}).output("y");
  b.initializer("zero", Tensor::scalar<int64_t>(0)).initializer("axes", Tensor::from_vector<int64_t>({1}, {0}));
  b.node("Shape", {"x"}, {"s"}, "shape");
  b.node("Gather", {"s", "zero"}, {"n"}, "batch");
  b.node("Unsqueeze", {"n", "axes"}, {"n1"}, "unsqueeze");
  auto& rest = b.node("Constant", {}, {"rest"}, "rest");
  auto* value = rest.add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = tensor_to_proto(Tensor::from_vector<int64_t>({1}, {-1}), "rest");
  ModelBuilder::attr(b.node("Concat", {"n1", "rest"}, {"shape_out"}, "concat"), "axis", int64_t{0});
  b.node("Reshape", {"x", "shape_out"}, {"y"}, "reshape");
  auto e = ref::Executor::create(b.model());
  ASSERT_TRUE(e.ok()) << e.error().what();
  auto out = e->run({{"x", Tensor(DType::kFloat32, {2, 3, 4})}});
  ASSERT_TRUE(out.ok()) << out.error().what();
  EXPECT_EQ(out->at("y").shape(), (Shape{2, 12}));
  // The same chain feeding the float input into Concat instead is a mismatch, named at create().
  ModelBuilder bad;
  bad.input("x", DType::kFloat32, {-1, 3, 4}).output("y");
  bad.node("Shape", {"x"}, {"s"}, "shape");
  ModelBuilder::attr(bad.node("Concat", {"s", "x"}, {"y"}, "concat"), "axis", int64_t{0});
  EXPECT_STREQ(create_error(bad.model()).what(),
               "node 'concat' (Concat): input 'x' is float32 but input 's' is int64; Concat needs one element type");
}
