#include "attributes.h"

namespace anvil::ref {

std::string node_label(const onnx::NodeProto& node) {
  const std::string& name = node.name().empty() && node.output_size() ? node.output(0) : node.name();
  return "node '" + name + "' (" + node.op_type() + ")";
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

namespace {
const onnx::AttributeProto* typed(const onnx::NodeProto& node, const std::string& name,
                                  onnx::AttributeProto::AttributeType type) {
  const onnx::AttributeProto* a = find_attribute(node, name);
  if (a && a->type() != type && a->type() != onnx::AttributeProto::UNDEFINED)
    fail(ErrorCode::kInvalidArgument, "attribute '" + name + "' has the wrong type");
  return a;
}
}  // namespace

int64_t attr_int(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  const auto* a = typed(node, name, onnx::AttributeProto::INT);
  return a ? a->i() : fallback;
}

float attr_float(const onnx::NodeProto& node, const std::string& name, float fallback) {
  const auto* a = typed(node, name, onnx::AttributeProto::FLOAT);
  return a ? a->f() : fallback;
}

std::string attr_string(const onnx::NodeProto& node, const std::string& name, const std::string& fallback) {
  const auto* a = typed(node, name, onnx::AttributeProto::STRING);
  return a ? a->s() : fallback;
}

std::vector<int64_t> attr_ints(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<int64_t>& fallback) {
  const auto* a = typed(node, name, onnx::AttributeProto::INTS);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

std::vector<float> attr_floats(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<float>& fallback) {
  const auto* a = typed(node, name, onnx::AttributeProto::FLOATS);
  return a ? std::vector<float>(a->floats().begin(), a->floats().end()) : fallback;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const char* what) {
  if (axis < -rank || axis >= rank)
    fail(ErrorCode::kInvalidArgument, std::string(what) + " " + std::to_string(axis) + " is out of range for rank " +
                                          std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> int_values(const Tensor& t, const char* what) {
  if (t.rank() > 1)
    fail(ErrorCode::kInvalidArgument, std::string(what) + " must be 1-D, got shape " + shape_str(t.shape()));
  if (t.dtype() == DType::kInt64) return t.to_vector<int64_t>();
  if (t.dtype() == DType::kInt32) {
    std::vector<int64_t> v;
    for (int32_t x : t.to_vector<int32_t>()) v.push_back(x);
    return v;
  }
  fail(ErrorCode::kInvalidArgument, std::string(what) + " must be int64 or int32, got " + dtype_name(t.dtype()));
}

float float_scalar(const Tensor& t, const char* what) {
  if (t.numel() != 1 || t.dtype() != DType::kFloat32)
    fail(ErrorCode::kInvalidArgument, std::string(what) + " must be one float32 value, got " +
                                          dtype_name(t.dtype()) + " " + shape_str(t.shape()));
  return t.data<float>()[0];
}

}  // namespace anvil::ref
