#include "anvil/compiler/compiler.h"

namespace anvil::compiler {

// Kept apart from compile_graph so that users of the integer-graph entry point do not link the
// QDQ lowering.
Expected<CompileResult> compile(const onnx::ModelProto& quantized, const CompileOptions& options) {
  ref::LowerOptions lower;
  lower.host_fallback = options.host_fallback;
  lower.fold_shapes = options.fold_shapes;
  Expected<ref::Int8Graph> graph = ref::lower_qdq(quantized, options.batch, lower);
  if (!graph) return graph.error();
  return compile_graph(graph.value(), options);
}

}  // namespace anvil::compiler
