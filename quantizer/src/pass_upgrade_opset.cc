#include <algorithm>

#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include "anvil/common/onnx_model.h"
#include "passes.h"

namespace anvil::quant::passes {

namespace {

constexpr int64_t kOpsetForQdq = 13;
constexpr int64_t kIrForOpset13 = 7;  ///< onnx/docs/Versioning.md: opset 13 came with IR version 7

/// What ONNX's version converter needs and an older model may leave out:
/// - the shapes of values (its Softmax/LogSoftmax 12 -> 13 adapter reshapes by the input's rank);
///   inferred here when the model has none, best effort, as the converter ran before without them;
/// - a Pad (opset < 11) without its optional `value` attribute, whose default 0 the adapter reads.
void prepare_for_converter(onnx::ModelProto& model, int64_t opset) {
  try {
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception&) {
    // The converter then runs as it would have; it names what it could not convert.
  }
  if (opset >= 11) return;
  for (onnx::NodeProto& n : *model.mutable_graph()->mutable_node()) {
    if (n.op_type() != "Pad" || !n.domain().empty()) continue;
    const bool has_value = std::any_of(n.attribute().begin(), n.attribute().end(),
                                       [](const onnx::AttributeProto& a) { return a.name() == "value"; });
    if (has_value) continue;
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(0.0f);
  }
}

}  // namespace

/// QuantizeLinear/DequantizeLinear with per-axis scales need opset 13. Older models are converted
/// by ONNX's version converter (which rewrites e.g. Clip/Squeeze attributes into inputs), not just
/// relabelled, so their operators keep their meaning. The IR version goes to at least 7, opset
/// 13's: under IR 3 every initializer had to be a graph input too, which the quantizer's new
/// scales and zero points are not.
void upgrade_opset(onnx::ModelProto& model) {
  const int64_t opset = onnx_opset(model);
  if (opset == 0) fail(ErrorCode::kInvalidArgument, "model has no opset import for the default ONNX domain");
  if (opset < kOpsetForQdq) {
    prepare_for_converter(model, opset);
    try {
      model = onnx::version_conversion::ConvertVersion(model, kOpsetForQdq);
    } catch (const std::exception& e) {
      fail(ErrorCode::kUnsupported, "cannot convert the model from opset " + std::to_string(opset) +
                                        " to 13: " + e.what());
    }
  }
  if (model.ir_version() < kIrForOpset13) model.set_ir_version(kIrForOpset13);
}

}  // namespace anvil::quant::passes
