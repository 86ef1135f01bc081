#include "anvil/common/onnx_model.h"
#include "graph.h"
#include "passes.h"

namespace anvil::quant::passes {

namespace {
/// True when `name` is a constant (initializer) boolean scalar false.
bool is_constant_false(const onnx::GraphProto& g, const std::string& name) {
  const onnx::TensorProto* t = graph::find_initializer(g, name);
  if (!t || t->data_type() != onnx::TensorProto::BOOL) return false;
  const Tensor v = tensor_from_proto(*t);
  return v.numel() == 1 && !v.data<bool>()[0];
}

/// Identity always; Dropout when it is in inference mode (no training_mode input, or a constant
/// false one; opset >= 12) and its mask output is unused.
bool is_identity(const onnx::GraphProto& g, const onnx::NodeProto& n) {
  if (n.op_type() == "Identity") return n.input_size() == 1 && n.output_size() == 1;
  if (n.op_type() != "Dropout") return false;
  if (n.input_size() >= 3 && !n.input(2).empty() && !is_constant_false(g, n.input(2))) return false;
  return n.output_size() == 1 || n.output(1).empty() || graph::use_count(g, n.output(1)) == 0;
}
}  // namespace

/// Removes Identity and inference Dropout nodes. Readers of the output read the input instead.
/// When the output is a graph output, the producer of the input is renamed to write the output
/// name; when that is impossible (the input is a graph input or initializer, or itself a graph
/// output) the node stays.
void remove_identity(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  for (int i = 0; i < g.node_size();) {
    const onnx::NodeProto& n = g.node(i);
    if (!is_identity(g, n)) {
      ++i;
      continue;
    }
    const std::string in = n.input(0), out = n.output(0);
    if (!graph::is_graph_output(g, out)) {
      graph::rename_uses(g, out, in);
    } else {
      onnx::NodeProto* producer = nullptr;
      for (auto& p : *g.mutable_node())
        for (auto& o : *p.mutable_output())
          if (o == in) producer = &p;
      if (!producer || graph::is_graph_output(g, in)) {
        ++i;
        continue;
      }
      for (auto& o : *producer->mutable_output())
        if (o == in) o = out;
      graph::rename_uses(g, in, out);
    }
    g.mutable_node()->DeleteSubrange(i, 1);
  }
}

}  // namespace anvil::quant::passes
