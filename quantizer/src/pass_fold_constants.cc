#include <set>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/reference/executor.h"
#include "graph.h"
#include "passes.h"

namespace anvil::quant::passes {

namespace {
/// Nodes never folded: random generators (a new value per run) and Q/DQ (they carry the
/// quantization the later stages must see).
const std::set<std::string> kNeverFold = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                                          "Multinomial", "Bernoulli", "QuantizeLinear", "DequantizeLinear"};

/// Evaluates one node whose inputs are all initializers with the reference executor; false when
/// the executor cannot (unsupported operator): the node then stays.
bool evaluate(const onnx::ModelProto& model, const onnx::NodeProto& node, TensorMap* outputs) {
  onnx::ModelProto m;
  m.set_ir_version(model.ir_version());
  *m.mutable_opset_import() = model.opset_import();
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name("fold");
  *g.add_node() = node;
  for (const auto& in : node.input())
    if (!in.empty() && !graph::find_initializer(g, in)) *g.add_initializer() = *graph::find_initializer(model.graph(), in);
  for (const auto& out : node.output())
    if (!out.empty()) g.add_output()->set_name(out);
  auto exec = ref::Executor::create(m);
  if (!exec.ok()) {
    log().debug("quantizer: fold-constants: keeping {}: {}", graph::node_label(node), exec.error().what());
    return false;
  }
  auto result = exec->run({});
  if (!result.ok()) {
    log().debug("quantizer: fold-constants: keeping {}: {}", graph::node_label(node), result.error().what());
    return false;
  }
  *outputs = std::move(result.value());
  return true;
}
}  // namespace

/// Replaces every node whose inputs are all initializers (a node without inputs is a constant too)
/// by initializers holding its outputs, computed by the reference executor; repeated in graph
/// order, so whole constant subgraphs fold. Graph outputs are never folded away.
void fold_constants(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  for (int i = 0; i < g.node_size();) {
    const onnx::NodeProto& n = g.node(i);
    bool constant = !kNeverFold.count(n.op_type()) && (n.domain().empty() || n.domain() == "ai.onnx");
    for (const auto& in : n.input()) constant = constant && (in.empty() || graph::find_initializer(g, in));
    for (const auto& out : n.output()) constant = constant && !graph::is_graph_output(g, out);
    for (const auto& a : n.attribute()) constant = constant && !a.has_g() && a.graphs_size() == 0;
    TensorMap values;
    if (!constant || !evaluate(model, n, &values)) {
      ++i;
      continue;
    }
    for (const auto& out : n.output())
      if (!out.empty()) graph::set_initializer(g, values.at(out), out);
    g.mutable_node()->DeleteSubrange(i, 1);
  }
}

}  // namespace anvil::quant::passes
