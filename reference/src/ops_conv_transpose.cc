// ConvTranspose (opsets 1-17), float32, 1-D to 3-D, with every attribute: strides, pads,
// dilations, group, output_padding, output_shape and auto_pad.
//
// Each input element scatters x * W into the output window it maps to:
//   y[n, g*M/g + m, o] += x[n, g*C/g + c, i] * W[g*C/g + c, m, k]  where o = i*stride + k*dilation - pad_begin,
// with W of shape C x M/group x k1 [x k2 [x k3]]. Positions outside [0, out) are dropped, so
// negative pads (an output_shape smaller than the full output) and output_padding need no
// special case. The full (unpadded) output length is stride*(in-1) + output_padding + (k-1)*dilation + 1.
#include <tbb/parallel_for.h>

#include <array>

#include "attributes.h"
#include "kernels_ext.h"

namespace anvil::ref {

namespace {

/// One value per spatial dimension of attribute `name`, or `fallback` repeated when it is absent.
std::vector<int64_t> per_dim(const onnx::NodeProto& node, const char* name, size_t rank, int64_t fallback,
                             int64_t min_value) {
  const std::vector<int64_t> v = attr_ints(node, name, std::vector<int64_t>(rank, fallback));
  if (v.size() != rank)
    fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must have " + std::to_string(rank) +
                                          " values");
  for (int64_t x : v)
    if (x < min_value)
      fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must be >= " +
                                            std::to_string(min_value));
  return v;
}

}  // namespace

TransposeShape transpose_shape(const onnx::NodeProto& node, const Shape& x, const Shape& w) {
  if (x.size() < 3 || x.size() > 5)
    fail(ErrorCode::kInvalidArgument, "X must be N x C x D1 [x D2 [x D3]] (1-D to 3-D), got " + shape_str(x));
  if (w.size() != x.size())
    fail(ErrorCode::kInvalidArgument, "W " + shape_str(w) + " must have the rank of X " + shape_str(x));
  const size_t rank = x.size() - 2;
  TransposeShape s;
  s.batch = x[0];
  s.channels = x[1];
  s.group = attr_int(node, "group", 1);
  if (s.group < 1 || w[0] != s.channels || s.channels % s.group != 0)
    fail(ErrorCode::kInvalidArgument, "W " + shape_str(w) + " does not match X " + shape_str(x) +
                                          " with group " + std::to_string(s.group));
  s.maps = w[1] * s.group;
  const std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (attr_ints(node, "kernel_shape", kernel) != kernel)
    fail(ErrorCode::kInvalidArgument, "attribute 'kernel_shape' differs from W " + shape_str(w));
  const auto strides = per_dim(node, "strides", rank, 1, 1);
  const auto dilations = per_dim(node, "dilations", rank, 1, 1);
  const auto output_padding = per_dim(node, "output_padding", rank, 0, 0);
  std::vector<int64_t> pads = attr_ints(node, "pads", std::vector<int64_t>(2 * rank, 0));
  if (pads.size() != 2 * rank)
    fail(ErrorCode::kInvalidArgument, "attribute 'pads' must have " + std::to_string(2 * rank) + " values");
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  std::vector<int64_t> output_shape = attr_ints(node, "output_shape");
  if (output_shape.size() == rank + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && output_shape.size() != rank)
    fail(ErrorCode::kInvalidArgument, "attribute 'output_shape' must have " + std::to_string(rank) + " values");
  s.out_shape = {s.batch, s.maps};
  const size_t lift = 3 - rank;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t in = x[i + 2];
    const int64_t full = strides[i] * (in - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1;
    int64_t out = 0, begin = 0;
    if (!output_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // The spec's total padding, split with floor division (a negative total, from an
      // output_shape larger than the full output, leaves the extra positions at the end).
      out = output_shape.empty() ? in * strides[i] : output_shape[i];
      const int64_t total = full - out;
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor(total / 2)
      begin = auto_pad == "SAME_UPPER" ? half : total - half;
    } else if (auto_pad == "NOTSET" || auto_pad == "VALID") {
      if (auto_pad == "NOTSET") begin = pads[i];
      const int64_t end = auto_pad == "NOTSET" ? pads[i + rank] : 0;
      if (pads[i] < 0 || pads[i + rank] < 0) fail(ErrorCode::kInvalidArgument, "attribute 'pads' must be >= 0");
      out = full - begin - end;
    } else {
      fail(ErrorCode::kInvalidArgument, "attribute 'auto_pad' has unknown value '" + auto_pad + "'");
    }
    if (out < 1)
      fail(ErrorCode::kInvalidArgument, "output size " + std::to_string(out) + " of spatial dimension " +
                                            std::to_string(i) + " is not positive");
    s.out_shape.push_back(out);
    s.in[lift + i] = in;
    s.kernel[lift + i] = kernel[i];
    s.out[lift + i] = out;
    s.strides[lift + i] = strides[i];
    s.dilations[lift + i] = dilations[i];
    s.pad_begin[lift + i] = begin;
  }
  return s;
}

void conv_transpose_check(const onnx::NodeProto& node, int64_t) {
  if (attr_int(node, "group", 1) < 1) fail(ErrorCode::kInvalidArgument, "attribute 'group' must be >= 1");
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    fail(ErrorCode::kInvalidArgument, "attribute 'auto_pad' has unknown value '" + auto_pad + "'");
}

void conv_transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  for (const Tensor* t : {&x, &w})
    if (t->dtype() != DType::kFloat32)
      fail(ErrorCode::kUnsupported, std::string("X and W must be float32, got ") + dtype_name(t->dtype()));
  const TransposeShape s = transpose_shape(ctx.node, x.shape(), w.shape());
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor& b = ctx.input(2);
    if (b.dtype() != DType::kFloat32 || b.rank() != 1 || b.dim(0) != s.maps)
      fail(ErrorCode::kInvalidArgument, "B must be float32 with " + std::to_string(s.maps) + " values, got " +
                                            dtype_name(b.dtype()) + " " + shape_str(b.shape()));
    bias = b.data<float>();
  }
  Tensor y(DType::kFloat32, s.out_shape);
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* yd = y.data<float>();
  const int64_t cg = s.channels / s.group, mg = s.maps / s.group;
  const int64_t in_size = s.in[0] * s.in[1] * s.in[2], k_size = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const int64_t out_size = s.out[0] * s.out[1] * s.out[2];
  // One task per output plane (image, map): it gathers the scatter of every input channel of its group.
  tbb::parallel_for(int64_t{0}, s.batch * s.maps, [&](int64_t nm) {
    const int64_t n = nm / s.maps, m = nm % s.maps, g = m / mg;
    float* yp = yd + nm * out_size;
    std::fill(yp, yp + out_size, bias ? bias[m] : 0.0f);
    for (int64_t c = 0; c < cg; ++c) {
      const float* xc = xd + (n * s.channels + g * cg + c) * in_size;
      const float* wc = wd + ((g * cg + c) * mg + (m - g * mg)) * k_size;
      for (int64_t i0 = 0; i0 < s.in[0]; ++i0)
        for (int64_t k0 = 0; k0 < s.kernel[0]; ++k0) {
          const int64_t o0 = i0 * s.strides[0] + k0 * s.dilations[0] - s.pad_begin[0];
          if (o0 < 0 || o0 >= s.out[0]) continue;
          for (int64_t i1 = 0; i1 < s.in[1]; ++i1)
            for (int64_t k1 = 0; k1 < s.kernel[1]; ++k1) {
              const int64_t o1 = i1 * s.strides[1] + k1 * s.dilations[1] - s.pad_begin[1];
              if (o1 < 0 || o1 >= s.out[1]) continue;
              for (int64_t i2 = 0; i2 < s.in[2]; ++i2) {
                const float v = xc[(i0 * s.in[1] + i1) * s.in[2] + i2];
                for (int64_t k2 = 0; k2 < s.kernel[2]; ++k2) {
                  const int64_t o2 = i2 * s.strides[2] + k2 * s.dilations[2] - s.pad_begin[2];
                  if (o2 < 0 || o2 >= s.out[2]) continue;
                  yp[(o0 * s.out[1] + o1) * s.out[2] + o2] += v * wc[(k0 * s.kernel[1] + k1) * s.kernel[2] + k2];
                }
              }
            }
        }
    }
  });
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
