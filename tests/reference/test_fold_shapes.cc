// Constant folding of static shape arithmetic (ref::LowerOptions::fold_shapes) on vit's attention
// shape arithmetic (host_values_model.h): the Shape -> Gather -> Unsqueeze -> Concat nodes make no
// op, the Reshape of a quantized value with the folded shape becomes a kReshape, a host op that
// reads a folded shape holds it as an initializer, results equal the unfolded lowering, each
// batch folds to its own shapes, and a fold that fails names the node.
#include <gtest/gtest.h>

#include "anvil/common/onnx_model.h"
#include "host_values_model.h"

using namespace anvil;
using anvil::test::random_tensor;

namespace {

ref::LowerOptions fallback(bool fold) {
  ref::LowerOptions o;
  o.host_fallback = true;
  o.fold_shapes = fold;
  return o;
}

const onnx::ModelProto& model() {
  static const onnx::ModelProto m = anvil::test::calibrated_host_values_model(random_tensor({2, 8}, -1, 1, 7));
  return m;
}

const ref::Int8Op& op_of(const ref::Int8Graph& g, const std::string& node) {
  for (const auto& op : g.ops)
    if (op.node == node) return op;
  throw std::runtime_error("no op for node " + node);
}

/// The initializer `name` of a kHost op's sub-model.
Tensor host_initializer(const ref::Int8Op& op, const std::string& name) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(op.host_model));
  for (const auto& init : m.graph().initializer())
    if (init.name() == name) return tensor_from_proto(init);
  ADD_FAILURE() << op.node << " has no initializer " << name;
  return {};
}

}  // namespace

TEST(FoldShapes, ShapeArithmeticMakesNoOpsAndTheReshapeLowersToKReshape) {
  const ref::Int8Graph g = ref::lower_qdq(model(), 2, fallback(true)).value();
  std::vector<std::string> ops;
  for (const auto& op : g.ops) ops.push_back(op.node + ":" + ref::int8_op_name(op.kind));
  // shape, gather, unsqueeze, concat1, concat2 and dead_shape are folded away; reshape3 (a quantized
  // value with the folded shape s1) is an integer reshape. reshape1/reshape2 stay on the host only
  // because their data is an unquantized float (the Softmax between them has no Q/DQ pair).
  EXPECT_EQ(ops, (std::vector<std::string>{"matmul1:conv", "reshape1:host", "softmax1:host", "reshape2:host",
                                           "matmul2:conv", "reshape3:reshape", "softmax2:host"}));
  for (const auto& v : g.values) EXPECT_NE(v.dtype, DType::kInt64) << v.name;  // no int64 host value left
  EXPECT_EQ(g.values[op_of(g, "reshape3").output].shape, (Shape{2, 3, 4}));
  const ref::Int8Op& reshape1 = op_of(g, "reshape1");
  ASSERT_EQ(reshape1.inputs.size(), 1u);  // a_q only: the shape is part of the sub-model
  EXPECT_EQ(g.values[reshape1.inputs[0]].name, "a_q");
  EXPECT_TRUE(host_initializer(reshape1, "s1") == Tensor::from_vector<int64_t>({3}, {2, 3, 4}));
  EXPECT_TRUE(host_initializer(op_of(g, "reshape2"), "s2") == Tensor::from_vector<int64_t>({2}, {2, 12}));
}

TEST(FoldShapes, ResultsEqualTheUnfoldedLowering) {
  for (int64_t batch : {1, 2, 3}) {
    const ref::Int8Graph folded = ref::lower_qdq(model(), batch, fallback(true)).value();
    const ref::Int8Graph unfolded = ref::lower_qdq(model(), batch, fallback(false)).value();
    ASSERT_LT(folded.ops.size(), unfolded.ops.size());
    ASSERT_EQ(folded.output_names, unfolded.output_names);
    for (uint32_t seed : {21u, 22u, 23u}) {
      const Tensor x =
          ref::quantize_tensor(random_tensor({batch, 8}, -1, 1, seed), folded.values[folded.inputs[0]].q);
      const TensorMap got = ref::run_int8(folded, {{"x", x}}).value();
      const TensorMap want = ref::run_int8(unfolded, {{"x", x}}).value();
      for (const auto& name : folded.output_names)
        EXPECT_TRUE(got.at(name) == want.at(name)) << name << " batch " << batch << " seed " << seed;
    }
  }
}

TEST(FoldShapes, DynamicBatchFoldsToEachBatchsShapes) {
  for (int64_t batch : {1, 5}) {
    const ref::Int8Graph g = ref::lower_qdq(model(), batch, fallback(true)).value();
    EXPECT_EQ(op_of(g, "reshape3").kind, ref::Int8OpKind::kReshape);
    EXPECT_EQ(g.values[op_of(g, "reshape3").output].shape, (Shape{batch, 3, 4}));
    EXPECT_TRUE(host_initializer(op_of(g, "reshape1"), "s1") == Tensor::from_vector<int64_t>({3}, {batch, 3, 4}));
    EXPECT_EQ(g.values[g.outputs[1]].shape, (Shape{batch, 12}));
  }
}

TEST(FoldShapes, WithoutHostFallbackTheFoldedReshapeLowersAndTheRestIsRefused) {
  // The same folding applies to the NPU-only lowering: the first refusal is now reshape1's float
  // output (no QuantizeLinear), no longer "shape must be a constant".
  auto g = ref::lower_qdq(model(), 2);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(std::string(g.error().what()), "node 'reshape1' (Reshape): output must feed exactly one QuantizeLinear");
  ref::LowerOptions no_fold;
  no_fold.fold_shapes = false;
  auto h = ref::lower_qdq(model(), 2, no_fold);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.error().what()).find("node 'shape' (Shape)"), std::string::npos) << h.error().what();
}

TEST(FoldShapes, AFoldThatFailsNamesTheNode) {
  onnx::ModelProto m = model();
  for (auto& init : *m.mutable_graph()->mutable_initializer())
    if (init.name() == "zero") init = tensor_to_proto(Tensor::scalar<int64_t>(7), "zero");  // Gather index 7 of a rank-2 shape
  auto g = ref::lower_qdq(m, 2, fallback(true));
  ASSERT_FALSE(g.ok());
  const std::string what = g.error().what();
  EXPECT_NE(what.find("node 'gather' (Gather): folding its static value at batch 2: "), std::string::npos) << what;
}

TEST(FoldShapes, MathAndLogicOperatorsFold) {
  // A Reshape's shape computed from constants through Neg, Abs, Min, Max, Range, Size, Greater,
  // Where, Not, Or, Equal, Floor and Cast: every node folds (each runs on ref::Executor's kernels)
  // and the Reshape of the quantized value is a kReshape.
  test::ActParams p;
  p["x"] = {0.02f, 0};
  p["y"] = {0.02f, 0};
  test::QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 8});
  auto i64 = [](int64_t v) { return Tensor::from_vector<int64_t>({1}, {v}); };
  q.b.initializer("minus2", i64(-2));
  q.b.initializer("minus4", i64(-4));
  q.b.initializer("eight", i64(8));
  q.b.initializer("one", i64(1));
  q.b.initializer("zero", Tensor::scalar<int64_t>(0));
  q.b.initializer("three", Tensor::scalar<int64_t>(3));
  q.b.initializer("half", Tensor::from_vector<float>({1}, {2.5f}));
  q.b.node("Neg", {"minus2"}, {"two"}, "neg");                      // [2]
  q.b.node("Abs", {"minus4"}, {"four"}, "abs");                     // [4]
  q.b.node("Min", {"four", "eight"}, {"min4"}, "min");              // [4]
  q.b.node("Max", {"min4", "one", "one"}, {"max4"}, "max");         // [4]
  q.b.node("Range", {"zero", "three", "one_s"}, {"r"}, "range");    // [0, 1, 2]
  q.b.initializer("one_s", Tensor::scalar<int64_t>(1));
  q.b.node("Size", {"r"}, {"size3"}, "size");                       // 3
  q.b.node("Greater", {"two", "size3"}, {"gt"}, "greater");         // [false]
  q.b.node("Not", {"gt"}, {"ngt"}, "not");                          // [true]
  q.b.node("Equal", {"four", "max4"}, {"eq"}, "equal");             // [true]
  q.b.node("Or", {"ngt", "eq"}, {"either"}, "or");                  // [true]
  q.b.node("Where", {"either", "two", "size3"}, {"rows"}, "where"); // [2]
  q.b.node("Floor", {"half"}, {"fl"}, "floor");                     // [2.0]
  auto& cast = q.b.node("Cast", {"fl"}, {"fl64"}, "cast");          // [2]
  test::ModelBuilder::attr(cast, "to", int64_t{7});
  q.b.node("Mul", {"max4", "fl64"}, {"cols"}, "mul");               // [8]
  q.b.node("Div", {"cols", "rows"}, {"cols4"}, "div");              // [4]
  auto& concat = q.b.node("Concat", {"rows", "cols4"}, {"shape"}, "concat");  // [2, 4]
  test::ModelBuilder::attr(concat, "axis", int64_t{0});
  q.b.node("Reshape", {q.qdq("x"), "shape"}, {"y"}, "reshape");
  q.b.output(q.qdq("y"));
  auto g = ref::lower_qdq(q.b.model(), 1, fallback(true));
  ASSERT_TRUE(g.ok()) << g.error().what();
  ASSERT_EQ(g->ops.size(), 1u);
  EXPECT_EQ(g->ops[0].kind, ref::Int8OpKind::kReshape);
  EXPECT_EQ(g->values[g->ops[0].output].shape, (Shape{2, 4}));
}
