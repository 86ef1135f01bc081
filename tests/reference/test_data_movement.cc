// lower_qdq + run_int8 for the data-movement ops (kTranspose, kSlice, kConcat, kPad; Split as
// kSlices; Squeeze/Unsqueeze as kReshape) against the float Executor on random QDQ models, their
// serialization, and the refusals that send a node to the host.
#include <gtest/gtest.h>

#include "movement_models_for_tests.h"

using namespace anvil;
using anvil::test::MovementCase;

namespace {

/// Largest |int8 difference| between run_int8 and the float Executor's outputs re-quantized with
/// the output parameters (exact: the float graph output is DQ of an int8).
int64_t max_diff_vs_float(const onnx::ModelProto& model, const TensorMap& inputs, const std::string& what) {
  auto exec = ref::Executor::create(model);
  EXPECT_TRUE(exec.ok()) << what << ": " << exec.error().what();
  const TensorMap fl = exec->run(inputs).value();
  auto graph = ref::lower_qdq(model, inputs.begin()->second.dim(0));
  EXPECT_TRUE(graph.ok()) << what << ": " << graph.error().what();
  if (!graph.ok()) return 1000;
  TensorMap q;
  for (size_t i = 0; i < graph->inputs.size(); ++i)
    q[graph->input_names[i]] = ref::quantize_tensor(inputs.at(graph->input_names[i]), graph->values[graph->inputs[i]].q);
  auto got = ref::run_int8(*graph, q);
  EXPECT_TRUE(got.ok()) << what << ": " << got.error().what();
  if (!got.ok()) return 1000;
  int64_t worst = 0;
  for (size_t i = 0; i < graph->outputs.size(); ++i) {
    const std::string& name = graph->output_names[i];
    const Tensor want = ref::quantize_tensor(fl.at(name), graph->values[graph->outputs[i]].q);
    const Tensor& have = got->at(name);
    EXPECT_EQ(have.shape(), want.shape()) << what;
    if (have.shape() != want.shape()) return 1000;
    for (int64_t j = 0; j < have.numel(); ++j)
      worst = std::max<int64_t>(worst, std::abs(int64_t{have.data<int8_t>()[j]} - want.data<int8_t>()[j]));
  }
  return worst;
}

ref::Int8Graph lower(const onnx::ModelProto& m, int64_t batch) {
  auto g = ref::lower_qdq(m, batch);
  EXPECT_TRUE(g.ok()) << g.error().what();
  return g.ok() ? std::move(g.value()) : ref::Int8Graph{};
}

TEST(DataMovement, RandomCasesMatchTheFloatExecutor) {
  std::mt19937 rng(2026);
  for (const auto& generate : test::movement_generators())
    for (int k = 0; k < 16; ++k) {
      MovementCase c = generate(rng);
      c.shared_scale = k % 2 == 0;
      const std::string what = c.describe + (c.shared_scale ? " (shared scale)" : " (own output scale)");
      const onnx::ModelProto model = test::movement_model(c);
      const ref::Int8Graph g = lower(model, c.inputs[0][0]);
      ASSERT_FALSE(g.ops.empty()) << what;
      for (const ref::Int8Op& op : g.ops)
        EXPECT_STREQ(ref::int8_op_name(op.kind),
                     c.op == "Split" ? "slice" : c.op == "Transpose" ? "transpose" : c.op == "Slice" ? "slice"
                                                                     : c.op == "Concat" ? "concat" : "pad")
            << what;
      EXPECT_EQ(g.ops.size(), static_cast<size_t>(c.outputs)) << what;
      // Moving int8 values with the same parameters is exact. With different parameters (and for
      // Concat, whose inputs have scales of their own, always) math::requantize's fixed-point
      // multiplier and the float graph's division may round a tie differently: one step.
      const bool requantizes = !c.shared_scale || c.op == "Concat";
      const int64_t diff = max_diff_vs_float(model, test::movement_inputs(c, 7 + k), what);
      EXPECT_LE(diff, requantizes ? 1 : 0) << what;
    }
}

TEST(DataMovement, SqueezeAndUnsqueezeAreReshapes) {
  test::ActParams p{{"x", {0.02f, 3}}, {"u", {0.02f, 3}}, {"s", {0.02f, 3}}};
  test::QdqBuilder q(p, 13);
  q.b.input("x", DType::kFloat32, {2, 3, 1, 5});
  q.b.initializer("ax_u", Tensor::from_vector<int64_t>({2}, {0, -1}));
  q.b.initializer("ax_s", Tensor::from_vector<int64_t>({2}, {3, -1}));
  q.b.node("Unsqueeze", {q.qdq("x"), "ax_u"}, {"u"}, "unsq");
  q.b.node("Squeeze", {q.qdq("u"), "ax_s"}, {"s"}, "sq");  // [1, 2, 3, 1, 5, 1] -> [1, 2, 3, 5]
  q.qdq("s");
  q.b.output("s_dq");
  const ref::Int8Graph g = lower(q.b.model(), 2);
  ASSERT_EQ(g.ops.size(), 2u);
  EXPECT_EQ(g.ops[0].kind, ref::Int8OpKind::kReshape);
  EXPECT_EQ(g.values[g.ops[0].output].shape, (Shape{1, 2, 3, 1, 5, 1}));
  EXPECT_EQ(g.values[g.ops[1].output].shape, (Shape{1, 2, 3, 5}));
  EXPECT_EQ(max_diff_vs_float(q.b.model(), {{"x", test::random_tensor({2, 3, 1, 5}, -2.0f, 2.0f, 3)}}, "squeeze"), 0);
}

TEST(DataMovement, SerializedGraphRunsTheSame) {
  std::mt19937 rng(77);
  for (const auto& generate : test::movement_generators()) {
    MovementCase c = generate(rng);
    c.shared_scale = false;
    const ref::Int8Graph g = lower(test::movement_model(c), c.inputs[0][0]);
    auto back = ref::parse_int8_graph(ref::serialize_int8_graph(g), "test");
    ASSERT_TRUE(back.ok()) << back.error().what();
    EXPECT_EQ(ref::serialize_int8_graph(back.value()), ref::serialize_int8_graph(g)) << c.describe;
    TensorMap in;
    for (size_t i = 0; i < g.inputs.size(); ++i)
      in[g.input_names[i]] = ref::quantize_tensor(test::movement_inputs(c, 5).at(g.input_names[i]), g.values[g.inputs[i]].q);
    const TensorMap want = ref::run_int8(g, in).value(), got = ref::run_int8(back.value(), in).value();
    for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << c.describe;
  }
}

/// A one-node model x -> DQ -> `op` -> Q with the given extra initializers and attributes.
onnx::ModelProto one_node(const std::string& op, const std::vector<std::pair<std::string, Tensor>>& extra,
                          const std::function<void(onnx::NodeProto&)>& attrs = nullptr) {
  static const test::ActParams p{{"x", {0.02f, 3}}, {"y", {0.02f, 3}}};
  test::QdqBuilder q(p, 13);
  q.b.input("x", DType::kFloat32, {1, 3, 4, 4});
  std::vector<std::string> in{q.qdq("x")};
  for (const auto& [name, t] : extra) {
    if (!name.empty()) q.b.initializer(name, t);
    in.push_back(name);
  }
  auto& n = q.b.node(op, in, {"y"}, "odd");
  if (attrs) attrs(n);
  q.qdq("y");
  q.b.output("y_dq");
  return q.b.model();
}

/// lower_qdq refuses the node with `code`; for kUnsupported (a valid node the NPU cannot run), host
/// fallback runs it on the host instead. A malformed node fails the float Executor too.
void expect_refused(const onnx::ModelProto& m, ErrorCode code, const std::string& words) {
  auto g = ref::lower_qdq(m, 1);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), code) << g.error().what();
  EXPECT_NE(std::string(g.error().what()).find("odd"), std::string::npos) << g.error().what();
  EXPECT_NE(std::string(g.error().what()).find(words), std::string::npos) << g.error().what();
  if (code != ErrorCode::kUnsupported) return;
  ref::LowerOptions o;
  o.host_fallback = true;
  auto h = ref::lower_qdq(m, 1, o);
  ASSERT_TRUE(h.ok()) << h.error().what();
  ASSERT_EQ(h->ops.size(), 1u);
  EXPECT_EQ(h->ops[0].kind, ref::Int8OpKind::kHost);
}

TEST(DataMovement, RefusalsNameTheNode) {
  expect_refused(one_node("Pad", {{"pads", Tensor::from_vector<int64_t>({8}, {0, 0, -1, 1, 0, 0, 1, 1})}}),
                 ErrorCode::kUnsupported, "negative pads");
  expect_refused(one_node("Pad", {{"pads", Tensor::from_vector<int64_t>({3}, {0, 0, 1})}}), ErrorCode::kInvalidArgument,
                 "pads must have 8 values");
  // Slice to nothing, and a slice whose starts are not constants (the graph input itself).
  expect_refused(one_node("Slice", {{"s", Tensor::from_vector<int64_t>({1}, {3})}, {"e", Tensor::from_vector<int64_t>({1}, {1})}}),
                 ErrorCode::kUnsupported, "empty output");
  expect_refused(one_node("Slice", {{"s", Tensor::from_vector<int64_t>({1}, {0})}, {"e", Tensor::from_vector<int64_t>({1}, {1})},
                                    {"a", Tensor::from_vector<int64_t>({1}, {0})}, {"st", Tensor::from_vector<int64_t>({1}, {0})}}),
                 ErrorCode::kInvalidArgument, "step cannot be 0");
  expect_refused(one_node("Transpose", {}, [](onnx::NodeProto& n) { test::ModelBuilder::attr(n, "perm", std::vector<int64_t>{0, 1, 1, 2}); }),
                 ErrorCode::kInvalidArgument, "not a permutation");
}

TEST(DataMovement, CorruptParametersAreRejectedByRunInt8) {
  std::mt19937 rng(5);
  MovementCase c = test::random_transpose(rng);
  ref::Int8Graph g = lower(test::movement_model(c), c.inputs[0][0]);
  TensorMap in;
  in["x0"] = Tensor(DType::kInt8, c.inputs[0]);
  g.ops[0].perm.assign(g.ops[0].perm.size(), 0);  // not a permutation
  auto r = ref::run_int8(g, in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("move"), std::string::npos) << r.error().what();

  c = test::random_slice(rng);
  g = lower(test::movement_model(c), c.inputs[0][0]);
  in["x0"] = Tensor(DType::kInt8, c.inputs[0]);
  g.ops[0].starts[0] = c.inputs[0][0];  // one past the end
  r = ref::run_int8(g, in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
