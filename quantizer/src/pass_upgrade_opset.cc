#include <onnx/version_converter/convert.h>

#include "anvil/common/onnx_model.h"
#include "passes.h"

namespace anvil::quant::passes {

/// QuantizeLinear/DequantizeLinear with per-axis scales need opset 13. Older models are converted
/// by ONNX's version converter (which rewrites e.g. Clip/Squeeze attributes into inputs), not just
/// relabelled, so their operators keep their meaning.
void upgrade_opset(onnx::ModelProto& model) {
  const int64_t opset = onnx_opset(model);
  if (opset >= 13) return;
  if (opset == 0) fail(ErrorCode::kInvalidArgument, "model has no opset import for the default ONNX domain");
  try {
    model = onnx::version_conversion::ConvertVersion(model, 13);
  } catch (const std::exception& e) {
    fail(ErrorCode::kUnsupported, "cannot convert the model from opset " + std::to_string(opset) +
                                      " to 13: " + e.what());
  }
}

}  // namespace anvil::quant::passes
