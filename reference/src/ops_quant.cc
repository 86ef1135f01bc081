// QuantizeLinear / DequantizeLinear (opsets 10-17), per-tensor and per-axis. The arithmetic is
// math::quantize_float / math::dequantize of common/requant.h, the same as the integer graph's.
#include <tbb/parallel_for.h>

#include "anvil/common/requant.h"
#include "attributes.h"
#include "kernels.h"

namespace anvil::ref {

namespace {

/// Scale and zero point of each slice along the quantization axis (one slice when per-tensor).
struct AxisParams {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int64_t inner = 1;  ///< elements per slice run (product of the dims after the axis)
  int64_t channels = 1;
  DType zp_dtype = DType::kUInt8;  ///< the zero point's type (the quantized type), uint8 when omitted
};

AxisParams axis_params(const KernelContext& ctx, const Shape& x_shape) {
  AxisParams p;
  const Tensor& scale = ctx.input(1);
  if (scale.dtype() != DType::kFloat32 || scale.rank() > 1)
    fail(ErrorCode::kInvalidArgument, "scale must be a float32 scalar or 1-D tensor, got " +
                                          std::string(dtype_name(scale.dtype())) + " " + shape_str(scale.shape()));
  p.scale = scale.to_vector<float>();
  const int64_t count = scale.numel();
  if (ctx.has_input(2)) {
    const Tensor& zp = ctx.input(2);
    if (zp.numel() != count)
      fail(ErrorCode::kInvalidArgument, "zero point has " + std::to_string(zp.numel()) + " values, scale has " +
                                            std::to_string(count));
    p.zp_dtype = zp.dtype();
    switch (zp.dtype()) {
      case DType::kInt8: for (int8_t v : zp.to_vector<int8_t>()) p.zero_point.push_back(v); break;
      case DType::kUInt8: for (uint8_t v : zp.to_vector<uint8_t>()) p.zero_point.push_back(v); break;
      case DType::kInt32: p.zero_point = zp.to_vector<int32_t>(); break;
      default: fail(ErrorCode::kUnsupported, std::string("zero point type ") + dtype_name(zp.dtype()) + " is not supported");
    }
  } else {
    p.zero_point.assign(static_cast<size_t>(count), 0);
  }
  if (count != 1) {
    if (ctx.opset < 13) fail(ErrorCode::kInvalidArgument, "per-axis quantization needs opset 13");
    const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", 1), static_cast<int64_t>(x_shape.size()), "axis");
    if (x_shape[axis] != count)
      fail(ErrorCode::kInvalidArgument, "scale has " + std::to_string(count) + " values but axis " +
                                            std::to_string(axis) + " of " + shape_str(x_shape) + " has " +
                                            std::to_string(x_shape[axis]));
    p.channels = count;
    for (size_t i = axis + 1; i < x_shape.size(); ++i) p.inner *= x_shape[i];
  } else {
    p.inner = shape_numel(x_shape);
  }
  return p;
}

/// Calls f(i, channel) for every element i of a tensor of `numel` elements, in parallel.
template <typename F>
void for_each_element(int64_t numel, const AxisParams& p, F f) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, numel, 4096), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) f(i, p.inner ? (i / p.inner) % p.channels : 0);
  });
}

}  // namespace

void quantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string("input must be float32, got ") + dtype_name(x.dtype()));
  const AxisParams p = axis_params(ctx, x.shape());
  const float* xd = x.data<float>();
  Tensor y(p.zp_dtype, x.shape());
  if (p.zp_dtype == DType::kInt8) {
    int8_t* yd = y.data<int8_t>();
    for_each_element(x.numel(), p, [&](int64_t i, int64_t c) {
      yd[i] = math::quantize_float(xd[i], p.scale[c], p.zero_point[c]);
    });
  } else if (p.zp_dtype == DType::kUInt8) {
    // uint8 = int8 shifted by 128: clamp(r + zp, 0, 255) == clamp(r + (zp - 128), -128, 127) + 128
    // for the integral r = round_half_to_even(x / scale), so quantize_float does the rounding.
    uint8_t* yd = y.data<uint8_t>();
    for_each_element(x.numel(), p, [&](int64_t i, int64_t c) {
      yd[i] = static_cast<uint8_t>(math::quantize_float(xd[i], p.scale[c], p.zero_point[c] - 128) + 128);
    });
  } else {
    fail(ErrorCode::kUnsupported, std::string("output type ") + dtype_name(p.zp_dtype) + " is not supported");
  }
  ctx.outputs[0] = std::move(y);
}

void dequantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const AxisParams p = axis_params(ctx, x.shape());
  if (ctx.has_input(2) && p.zp_dtype != x.dtype())
    fail(ErrorCode::kInvalidArgument, std::string("zero point type ") + dtype_name(p.zp_dtype) +
                                          " differs from input type " + dtype_name(x.dtype()));
  Tensor y(DType::kFloat32, x.shape());
  float* yd = y.data<float>();
  auto run = [&](const auto* xd) {
    for_each_element(x.numel(), p, [&](int64_t i, int64_t c) {
      yd[i] = math::dequantize(static_cast<int32_t>(xd[i]), p.scale[c], p.zero_point[c]);
    });
  };
  switch (x.dtype()) {
    case DType::kInt8: run(x.data<int8_t>()); break;
    case DType::kUInt8: run(x.data<uint8_t>()); break;
    case DType::kInt32:
      for (int32_t zp : p.zero_point)
        if (zp != 0) fail(ErrorCode::kInvalidArgument, "int32 input needs zero point 0");
      run(x.data<int32_t>());
      break;
    default: fail(ErrorCode::kUnsupported, std::string("input type ") + dtype_name(x.dtype()) + " is not supported");
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
