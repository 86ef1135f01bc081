#include "graph.h"
#include "passes.h"

namespace anvil::quant::passes {

/// Turns Constant nodes holding a tensor ("value" attribute) into initializers, so later passes
/// and quantization see constant weights, shapes and Clip bounds as initializers (the version
/// converter, for one, emits Constant nodes). Constants of the other forms (value_float, ...) stay.
void constants_to_initializers(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  for (int i = 0; i < g.node_size();) {
    const onnx::NodeProto& n = g.node(i);
    const bool tensor_constant = n.op_type() == "Constant" && n.output_size() == 1 && n.attribute_size() == 1 &&
                                 n.attribute(0).name() == "value" && n.attribute(0).has_t() &&
                                 !graph::is_graph_output(g, n.output(0));
    if (!tensor_constant) {
      ++i;
      continue;
    }
    onnx::TensorProto t = n.attribute(0).t();
    t.set_name(n.output(0));
    *g.add_initializer() = std::move(t);
    g.mutable_node()->DeleteSubrange(i, 1);
  }
}

}  // namespace anvil::quant::passes
