#pragma once
/// Reading ONNX node attributes with defaults; errors name the attribute.
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// "node 'name' (OpType)": the prefix of every error about a node. Unnamed nodes are called by
/// their first output.
std::string node_label(const onnx::NodeProto& node);

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name);
int64_t attr_int(const onnx::NodeProto& node, const std::string& name, int64_t fallback);
float attr_float(const onnx::NodeProto& node, const std::string& name, float fallback);
std::string attr_string(const onnx::NodeProto& node, const std::string& name, const std::string& fallback);
std::vector<int64_t> attr_ints(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<int64_t>& fallback = {});
std::vector<float> attr_floats(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<float>& fallback = {});

/// Normalises a possibly negative axis against `rank`; throws kInvalidArgument when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const char* what);

/// Integer values of a 1-D (or scalar) int32/int64 tensor (shape, axes, pads inputs).
std::vector<int64_t> int_values(const Tensor& t, const char* what);
/// The one value of a float32 scalar or one-element tensor (Clip bounds, ...).
float float_scalar(const Tensor& t, const char* what);

}  // namespace anvil::ref
