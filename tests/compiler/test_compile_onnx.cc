// compile(): a QDQ ONNX model through ref::lower_qdq and the lowering, end to end on the test-only
// interpreter; lower_qdq's errors come back unchanged.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "anvil/common/onnx_model.h"
#include "anvil/compiler/compiler.h"
#include "isa_interpreter_for_tests.h"

using namespace anvil;

namespace {

/// x [N, 2, 6, 6] float -> Q -> DQ -> Conv 3x3 pad 1 stride 2 (int8 per-channel weight, int32
/// bias) -> Relu -> Q -> DQ -> GlobalAveragePool -> Q -> DQ -> Flatten -> Q -> DQ -> y [N, 3]
/// (or `middle_op` in place of the conv, to provoke an error).
onnx::ModelProto qdq_model(const std::string& middle_op = "Conv") {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("qdq");
  auto io = [](onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("N");
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  io(g->add_input(), "x", {2, 6, 6});
  io(g->add_output(), "y", {3});
  auto init = [&](const Tensor& t, const std::string& name) { *g->add_initializer() = tensor_to_proto(t, name); };
  init(Tensor::scalar<float>(0.04f), "x_s");
  init(Tensor::scalar<int8_t>(-4), "x_zp");
  std::vector<int8_t> w(3 * 2 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>((static_cast<int>(i) * 37) % 255 - 127);
  init(Tensor::from_vector<int8_t>({3, 2, 3, 3}, w), "w");
  init(Tensor::from_vector<float>({3}, {0.01f, 0.02f, 0.015f}), "w_s");
  init(Tensor::from_vector<int8_t>({3}, {0, 0, 0}), "w_zp");
  init(Tensor::from_vector<int32_t>({3}, {100, -250, 40}), "b");
  init(Tensor::from_vector<float>({3}, {0.04f * 0.01f, 0.04f * 0.02f, 0.04f * 0.015f}), "b_s");
  init(Tensor::from_vector<int32_t>({3}, {0, 0, 0}), "b_zp");
  init(Tensor::scalar<float>(0.05f), "c_s");
  init(Tensor::scalar<int8_t>(-128), "c_zp");
  init(Tensor::scalar<float>(0.02f), "p_s");
  init(Tensor::scalar<int8_t>(-100), "p_zp");
  auto node = [&](const std::string& op, const std::string& name, std::vector<std::string> in, const std::string& out) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  };
  auto ints = [](onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  };
  node("QuantizeLinear", "q_x", {"x", "x_s", "x_zp"}, "xq");
  node("DequantizeLinear", "dq_x", {"xq", "x_s", "x_zp"}, "xd");
  for (auto* dq : {node("DequantizeLinear", "dq_w", {"w", "w_s", "w_zp"}, "wd"),
                   node("DequantizeLinear", "dq_b", {"b", "b_s", "b_zp"}, "bd")}) {
    onnx::AttributeProto* axis = dq->add_attribute();  // per output channel
    axis->set_name("axis");
    axis->set_type(onnx::AttributeProto::INT);
    axis->set_i(0);
  }
  if (middle_op == "Conv") {
    onnx::NodeProto* conv = node("Conv", "conv0", {"xd", "wd", "bd"}, "c");
    ints(conv, "kernel_shape", {3, 3});
    ints(conv, "pads", {1, 1, 1, 1});
    ints(conv, "strides", {2, 2});
  } else {
    node(middle_op, "odd_node", {"xd"}, "c");
  }
  node("Relu", "relu0", {"c"}, "r");
  node("QuantizeLinear", "q_c", {"r", "c_s", "c_zp"}, "cq");
  node("DequantizeLinear", "dq_c", {"cq", "c_s", "c_zp"}, "cd");
  node("GlobalAveragePool", "gap0", {"cd"}, "p");
  node("QuantizeLinear", "q_p", {"p", "p_s", "p_zp"}, "pq");
  node("DequantizeLinear", "dq_p", {"pq", "p_s", "p_zp"}, "pd");
  node("Flatten", "flatten0", {"pd"}, "f");
  node("QuantizeLinear", "q_f", {"f", "p_s", "p_zp"}, "fq");
  node("DequantizeLinear", "dq_f", {"fq", "p_s", "p_zp"}, "y");
  return m;
}

}  // namespace

TEST(CompileOnnx, QdqModelMatchesRunInt8) {
  const onnx::ModelProto model = qdq_model();
  compiler::CompileOptions options;
  options.batch = 3;
  options.model_name = "qdq-test";
  const auto compiled = compiler::compile(model, options);
  ASSERT_TRUE(compiled.ok()) << compiled.error().what();
  const isa::Program& p = compiled.value().program;
  EXPECT_EQ(p.batch, 3u);
  ASSERT_EQ(p.inputs.size(), 1u);
  EXPECT_EQ(p.inputs[0].name, "x");
  EXPECT_EQ(p.inputs[0].shape, (Shape{3, 2, 6, 6}));
  EXPECT_FLOAT_EQ(p.inputs[0].scale, 0.04f);
  EXPECT_EQ(p.inputs[0].zero_point, -4);
  ASSERT_EQ(p.outputs.size(), 1u);
  EXPECT_EQ(p.outputs[0].name, "y");
  EXPECT_EQ(p.outputs[0].shape, (Shape{3, 3}));
  EXPECT_EQ(p.outputs[0].layout, isa::Layout::kNC);
  const std::vector<compiler::LayerReport>& layers = compiled.value().layers;
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].node, "conv0");
  EXPECT_EQ(layers[0].macs, uint64_t(3) * 3 * 3 * 3 * 2 * 3 * 3);

  const ref::Int8Graph graph = ref::lower_qdq(model, 3).value();
  Tensor x(DType::kInt8, {3, 2, 6, 6});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<int8_t>()[i] = static_cast<int8_t>((i * 73) % 256 - 128);
  const TensorMap inputs{{"x", x}};
  anvil::testing::InterpreterRun run;
  const TensorMap got = anvil::testing::run_program_for_tests(p, inputs, &run);
  const Tensor& y = got.at("y");
  EXPECT_TRUE(y == ref::run_int8(graph, inputs).value().at("y"));
  const std::vector<int8_t> values = y.to_vector<int8_t>();
  EXPECT_GT(std::set<int8_t>(values.begin(), values.end()).size(), 2u) << "a degenerate test model";
  EXPECT_TRUE(anvil::testing::find_unordered_conflicts(p, run).empty());
}

TEST(CompileOnnx, UnsupportedOperatorComesBackFromLowering) {
  compiler::CompileOptions strict;
  strict.host_fallback = false;
  const auto r = compiler::compile(qdq_model("Exp"), strict);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  const std::string m = r.error().what();
  EXPECT_NE(m.find("odd_node"), std::string::npos) << m;
  EXPECT_NE(m.find("Exp"), std::string::npos) << m;
}

TEST(CompileOnnx, BadBatchComesBackFromLowering) {
  compiler::CompileOptions options;
  options.batch = 0;
  const auto r = compiler::compile(qdq_model(), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("batch"), std::string::npos) << r.error().what();
}

TEST(CompileOnnx, UnsupportedOperatorRunsOnTheHost) {
  const auto r = compiler::compile(qdq_model("Exp"), compiler::CompileOptions{});
  ASSERT_TRUE(r.ok()) << r.error().what();
  const isa::Program& p = r.value().program;
  ASSERT_EQ(p.segments.size(), 2u);
  EXPECT_EQ(p.segments[0].kind, isa::SegmentKind::kHost);  // Exp and the Relu it feeds
  EXPECT_EQ(p.segments[1].kind, isa::SegmentKind::kNpu);   // pooling and flatten
  std::map<std::string, compiler::NodePlacement> where;
  for (const auto& n : r.value().placement) where[n.node] = n;
  ASSERT_TRUE(where.count("odd_node") && where.count("relu0") && where.count("gap0"));
  EXPECT_EQ(where["odd_node"].runs_on, "host");
  EXPECT_EQ(where["relu0"].runs_on, "host");
  EXPECT_EQ(where["gap0"].runs_on, "npu");
  EXPECT_EQ(where["odd_node"].reason, "node 'odd_node' (Exp): operator not supported on the NPU");
  const nlohmann::json report = nlohmann::json::parse(p.metadata);
  EXPECT_EQ(report.at("segments").size(), 2u);
  EXPECT_EQ(report.at("placement").size(), r.value().placement.size());
  EXPECT_NE(r.value().summary().find("host: odd_node (segment 0): node 'odd_node' (Exp)"), std::string::npos)
      << r.value().summary();
}
