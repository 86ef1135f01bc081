// Operators that move or describe data without arithmetic: Constant, Flatten, Reshape, ...
#include <algorithm>

#include "anvil/common/onnx_model.h"
#include "attributes.h"
#include "kernels.h"

namespace anvil::ref {

void constant_kernel(KernelContext& ctx) {
  const onnx::NodeProto& node = ctx.node;
  if (node.attribute_size() != 1) fail(ErrorCode::kInvalidArgument, "exactly one value attribute is required");
  const onnx::AttributeProto& a = node.attribute(0);
  const std::string& name = a.name();
  if (name == "value") {
    ctx.outputs[0] = tensor_from_proto(a.t());
  } else if (name == "value_float") {
    ctx.outputs[0] = Tensor::scalar<float>(a.f());
  } else if (name == "value_floats") {
    ctx.outputs[0] = Tensor::from_vector<float>({a.floats_size()}, {a.floats().begin(), a.floats().end()});
  } else if (name == "value_int") {
    ctx.outputs[0] = Tensor::scalar<int64_t>(a.i());
  } else if (name == "value_ints") {
    ctx.outputs[0] = Tensor::from_vector<int64_t>({a.ints_size()}, {a.ints().begin(), a.ints().end()});
  } else {
    fail(ErrorCode::kUnsupported, "attribute '" + name + "' is not supported");
  }
}

Shape flatten_shape(const Shape& in, int64_t axis) {
  const int64_t rank = static_cast<int64_t>(in.size());
  // Flatten accepts axis == rank (everything in the first dimension).
  axis = axis == rank ? rank : normalize_axis(axis, rank, "axis");
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= in[i];
  const int64_t numel = shape_numel(in);
  return {outer, outer ? numel / outer : 0};
}

Shape reshape_shape(const Shape& in, std::vector<int64_t> shape, bool allow_zero) {
  const int64_t numel = shape_numel(in);
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allow_zero) {
      if (i >= in.size())
        fail(ErrorCode::kInvalidArgument, "shape entry " + std::to_string(i) + " is 0 but the input has rank " +
                                              std::to_string(in.size()));
      shape[i] = in[i];  // 0 copies the input's dimension
    }
    if (shape[i] == -1) {
      if (infer >= 0) fail(ErrorCode::kInvalidArgument, "shape has more than one -1");
      if (allow_zero && std::count(shape.begin(), shape.end(), 0))
        fail(ErrorCode::kInvalidArgument, "shape with allowzero cannot have both 0 and -1");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      fail(ErrorCode::kInvalidArgument, "shape entry " + std::to_string(shape[i]) + " is negative");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known)
      fail(ErrorCode::kInvalidArgument, "cannot infer -1 reshaping " + shape_str(in));
    shape[infer] = numel / known;
  }
  if (shape_numel(shape) != numel)
    fail(ErrorCode::kInvalidArgument, "cannot reshape " + shape_str(in) + " to " + shape_str(shape));
  return shape;
}

void flatten_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.outputs[0] = x.reshaped(flatten_shape(x.shape(), attr_int(ctx.node, "axis", 1)));
}

void reshape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool allow_zero = attr_int(ctx.node, "allowzero", 0) != 0;
  ctx.outputs[0] = x.reshaped(reshape_shape(x.shape(), int_values(ctx.input(1), "shape"), allow_zero));
}

}  // namespace anvil::ref
