#pragma once
/// Kernels of the quantized-integer operators, ConvTranspose and Resize. Declared apart from
/// kernels.h (which holds the float CNN kernels) so each family's header changes on its own;
/// op_registry.cc lists them all in its one table.
#include <array>

#include "kernels.h"

namespace anvil::ref {

// ops_integer.cc: ONNX's integer operators (opset 10+): int32 accumulation of (x - zero point)
// products, requantized through common/requant.h.
void matmul_integer_kernel(KernelContext& ctx);
void conv_integer_kernel(KernelContext& ctx);
void qlinear_matmul_kernel(KernelContext& ctx);
void qlinear_conv_kernel(KernelContext& ctx);
void dynamic_quantize_linear_kernel(KernelContext& ctx);
void conv_integer_check(const onnx::NodeProto& node, int64_t opset);

// ops_conv_transpose.cc: ConvTranspose, 1-D to 3-D, float32.
void conv_transpose_kernel(KernelContext& ctx);
void conv_transpose_check(const onnx::NodeProto& node, int64_t opset);
/// ConvTranspose geometry: spatial sizes lifted to three dimensions (missing leading ones are
/// 1 / 0), the output size and the effective begin padding of every attribute form (pads,
/// output_padding, auto_pad SAME_*, output_shape), computed once for the float kernel and for
/// lower_qdq's zero-insertion lowering. kInvalidArgument for shapes or attributes that do not fit.
struct TransposeShape {
  int64_t batch = 0, channels = 0, maps = 0, group = 1;
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1}, strides{1, 1, 1}, dilations{1, 1, 1},
      pad_begin{0, 0, 0};
  Shape out_shape;
};
TransposeShape transpose_shape(const onnx::NodeProto& node, const Shape& x, const Shape& w);

// ops_resize.cc: Resize (opsets 10, 11, 13), float32.
void resize_kernel(KernelContext& ctx);
void resize_check(const onnx::NodeProto& node, int64_t opset);

/// The taps of one axis of a Resize: output o reads index[o * taps + t] with weight[o * taps + t]
/// (indices clamped into the input).
struct AxisTaps {
  int64_t in = 0, out = 0;
  int taps = 1;
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<int64_t> outside;  ///< outputs whose coordinate is outside the input (tf_crop_and_resize)
  bool identity = true;          ///< every output copies the input at its own index
};
/// A Resize node's geometry for an input of shape `in`: the output shape and every axis' taps, from
/// the attributes and the roi / scales / sizes tensors (nullptr: omitted). The float kernel
/// interpolates with these taps and lower_qdq builds kResize's integer tables from them: one
/// computation of coordinates for both. Throws kInvalidArgument on malformed attributes or operands.
struct ResizePlan {
  std::string mode, transform;
  bool exclude_outside = false;
  float extrapolation = 0.0f;
  Shape out;
  std::vector<AxisTaps> axes;
};
ResizePlan resize_plan(const onnx::NodeProto& node, int64_t opset, const Shape& in, const Tensor* roi,
                       const Tensor* scales, const Tensor* sizes);

}  // namespace anvil::ref
