#include <onnx/shape_inference/implementation.h>

#include "anvil/common/status.h"
#include "passes.h"

namespace anvil::quant::passes {

/// Recomputes value_info with ONNX shape inference (stale entries from before the rewrites are
/// dropped first, so they cannot contradict the new graph). Quantization uses the element types
/// to tell float activations from index tensors.
void infer_shapes(onnx::ModelProto& model) {
  model.mutable_graph()->clear_value_info();
  try {
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception& e) {
    fail(ErrorCode::kInvalidArgument, std::string("shape inference failed: ") + e.what());
  }
}

}  // namespace anvil::quant::passes
