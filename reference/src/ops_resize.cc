// Resize (opsets 10, 11 and 13), float32: modes nearest (every nearest_mode), linear and cubic
// (cubic_coeff_a, exclude_outside), every coordinate_transformation_mode including
// tf_crop_and_resize with roi and extrapolation_value; output size from scales or from sizes.
//
// The interpolation is separable (the ONNX reference interpolates one axis after the other), so
// each axis gets a table of taps: for output index o, the input indices and weights it reads.
// With x the input coordinate of o (the coordinate transformation) and f = ceil(x) - 1, the
// ratio r = x - f lies in (0, 1], and the taps are, as in the ONNX reference implementation:
//   nearest: f or f + 1 by nearest_mode (an integral x is itself);
//   linear:  f, f + 1 with weights 1 - r, r;
//   cubic:   f - 1 .. f + 2 with the Keys kernel of coefficient A at distances 1 + r, r, 1 - r, 2 - r.
// Taps outside the input read the edge value, unless exclude_outside drops them and renormalises
// the others. With tf_crop_and_resize, an output whose coordinate falls outside [0, in - 1] on any
// axis is extrapolation_value. Sums are taken in double and rounded to float32 once.
// Opset 10 has no coordinate transformation attribute: it is "asymmetric" (x = o / scale), and its
// nearest rounds down when upsampling and up when downsampling, as ONNX Runtime does.
#include <tbb/parallel_for.h>

#include <cmath>

#include "attributes.h"
#include "kernels_ext.h"

namespace anvil::ref {

namespace {

struct ResizeAttributes {
  std::string mode, transform, nearest_mode;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  float extrapolation = 0.0f;
};

ResizeAttributes resize_attributes(const onnx::NodeProto& node, int64_t opset) {
  ResizeAttributes a;
  a.mode = attr_string(node, "mode", "nearest");
  if (opset < 11) {
    if (a.mode != "nearest" && a.mode != "linear")
      fail(ErrorCode::kInvalidArgument, "attribute 'mode' has unknown value '" + a.mode + "' (opset 10)");
    a.transform = "asymmetric";
    a.nearest_mode = "opset10";
    return a;
  }
  if (a.mode != "nearest" && a.mode != "linear" && a.mode != "cubic")
    fail(ErrorCode::kInvalidArgument, "attribute 'mode' has unknown value '" + a.mode + "'");
  a.transform = attr_string(node, "coordinate_transformation_mode", "half_pixel");
  static const char* const kTransforms[] = {"half_pixel",          "pytorch_half_pixel", "align_corners",
                                            "asymmetric",          "tf_half_pixel_for_nn", "tf_crop_and_resize"};
  if (std::find(std::begin(kTransforms), std::end(kTransforms), a.transform) == std::end(kTransforms))
    fail(ErrorCode::kInvalidArgument, "attribute 'coordinate_transformation_mode' has unknown value '" +
                                          a.transform + "'");
  a.nearest_mode = attr_string(node, "nearest_mode", "round_prefer_floor");
  static const char* const kNearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  if (std::find(std::begin(kNearest), std::end(kNearest), a.nearest_mode) == std::end(kNearest))
    fail(ErrorCode::kInvalidArgument, "attribute 'nearest_mode' has unknown value '" + a.nearest_mode + "'");
  a.cubic_a = attr_float(node, "cubic_coeff_a", -0.75f);
  a.exclude_outside = attr_int(node, "exclude_outside", 0) != 0;
  a.extrapolation = attr_float(node, "extrapolation_value", 0.0f);
  return a;
}

/// Input coordinate of output index o (the spec's coordinate transformations). `length` is
/// scale * in, as in the ONNX reference (it equals the output size when sizes are given).
double input_coordinate(const ResizeAttributes& a, int64_t o, double scale, int64_t in, double roi_start,
                        double roi_end) {
  const double x = static_cast<double>(o), length = scale * static_cast<double>(in);
  const std::string& t = a.transform;
  if (t == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return length > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  if (t == "align_corners") return length == 1 ? 0.0 : x * static_cast<double>(in - 1) / (length - 1);
  if (t == "asymmetric") return x / scale;
  if (t == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  // tf_crop_and_resize
  const double span = (roi_end - roi_start) * static_cast<double>(in - 1);
  return roi_start * static_cast<double>(in - 1) + (length == 1 ? span / 2 : x * span / (length - 1));
}

std::array<double, 4> cubic_weights(double r, double a) {
  // Keys' cubic convolution kernel at distances 1 + r, r, 1 - r, 2 - r.
  auto near = [&](double d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };              // |d| <= 1
  auto far = [&](double d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };          // 1 < |d| < 2
  return {far(1 + r), near(r), near(1 - r), far(2 - r)};
}

AxisTaps axis_taps(const ResizeAttributes& a, int64_t in, int64_t out, double scale, double roi_start,
                   double roi_end, bool downsampling) {
  AxisTaps t;
  t.in = in;
  t.out = out;
  t.taps = a.mode == "nearest" ? 1 : a.mode == "linear" ? 2 : 4;
  t.index.resize(out * t.taps);
  t.weight.resize(out * t.taps);
  for (int64_t o = 0; o < out; ++o) {
    const double x = input_coordinate(a, o, scale, in, roi_start, roi_end);
    if (a.transform == "tf_crop_and_resize" && (x < 0 || x > static_cast<double>(in - 1))) t.outside.push_back(o);
    const double f = std::ceil(x) - 1, r = x - f;  // r in (0, 1]
    int64_t* idx = &t.index[o * t.taps];
    double* w = &t.weight[o * t.taps];
    if (a.mode == "nearest") {
      bool up;  // take f + 1
      if (r == 1.0) up = true;
      else if (a.nearest_mode == "round_prefer_floor") up = r > 0.5;
      else if (a.nearest_mode == "round_prefer_ceil") up = r >= 0.5;
      else if (a.nearest_mode == "floor") up = false;
      else if (a.nearest_mode == "ceil") up = true;
      else up = downsampling;  // opset 10
      idx[0] = static_cast<int64_t>(f) + (up ? 1 : 0);
      w[0] = 1.0;
    } else if (a.mode == "linear") {
      idx[0] = static_cast<int64_t>(f);
      idx[1] = idx[0] + 1;
      w[0] = 1 - r;
      w[1] = r;
    } else {
      const auto c = cubic_weights(r, a.cubic_a);
      for (int k = 0; k < 4; ++k) {
        idx[k] = static_cast<int64_t>(f) - 1 + k;
        w[k] = c[k];
      }
    }
    if (a.exclude_outside && t.taps > 1) {
      double sum = 0;
      for (int k = 0; k < t.taps; ++k) {
        if (idx[k] < 0 || idx[k] >= in) w[k] = 0;
        sum += w[k];
      }
      if (sum != 0)
        for (int k = 0; k < t.taps; ++k) w[k] /= sum;
    }
    for (int k = 0; k < t.taps; ++k) {
      idx[k] = std::clamp<int64_t>(idx[k], 0, in - 1);
      if (w[k] != 0 && (idx[k] != o || w[k] != 1.0)) t.identity = false;
    }
  }
  if (out != in || !t.outside.empty()) t.identity = false;
  return t;
}

/// Interpolates `src` (shape `shape`) along `axis` with its taps; shape[axis] becomes taps.out.
std::vector<double> apply_axis(const std::vector<double>& src, Shape& shape, size_t axis, const AxisTaps& t) {
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= shape[i];
  for (size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
  std::vector<double> dst(static_cast<size_t>(outer * t.out * inner), 0.0);
  tbb::parallel_for(int64_t{0}, outer * t.out, [&](int64_t po) {
    const int64_t p = po / t.out, o = po % t.out;
    double* d = dst.data() + po * inner;
    for (int k = 0; k < t.taps; ++k) {
      const double w = t.weight[o * t.taps + k];
      if (w == 0) continue;
      const double* s = src.data() + (p * t.in + t.index[o * t.taps + k]) * inner;
      for (int64_t j = 0; j < inner; ++j) d[j] += w * s[j];
    }
  });
  shape[axis] = t.out;
  return dst;
}

}  // namespace

void resize_check(const onnx::NodeProto& node, int64_t opset) { resize_attributes(node, opset); }

ResizePlan resize_plan(const onnx::NodeProto& node, int64_t opset, const Shape& in, const Tensor* roi_tensor,
                       const Tensor* scales_tensor, const Tensor* sizes_tensor) {
  const ResizeAttributes a = resize_attributes(node, opset);
  const size_t rank = in.size();
  std::vector<double> scale(rank);
  Shape out(rank);
  if (scales_tensor && scales_tensor->numel() > 0) {
    const Tensor& s = *scales_tensor;
    if (s.dtype() != DType::kFloat32 || s.rank() != 1 || s.numel() != static_cast<int64_t>(rank))
      fail(ErrorCode::kInvalidArgument, "scales must be float32 with " + std::to_string(rank) + " values, got " +
                                            dtype_name(s.dtype()) + " " + shape_str(s.shape()));
    if (opset >= 11 && sizes_tensor && sizes_tensor->numel() > 0)
      fail(ErrorCode::kInvalidArgument, "only one of scales and sizes may be given");
    for (size_t i = 0; i < rank; ++i) {
      scale[i] = s.data<float>()[i];
      if (!(scale[i] > 0) || !std::isfinite(scale[i]))
        fail(ErrorCode::kInvalidArgument, "scales must be positive, got " + std::to_string(scale[i]));
      out[i] = static_cast<int64_t>(std::floor(scale[i] * static_cast<double>(in[i])));
    }
  } else if (opset >= 11 && sizes_tensor) {
    const std::vector<int64_t> sizes = int_values(*sizes_tensor, "sizes");
    if (sizes.size() != rank)
      fail(ErrorCode::kInvalidArgument, "sizes must have " + std::to_string(rank) + " values, got " +
                                            std::to_string(sizes.size()));
    for (size_t i = 0; i < rank; ++i) {
      if (sizes[i] < 1) fail(ErrorCode::kInvalidArgument, "sizes must be >= 1");
      out[i] = sizes[i];
      scale[i] = static_cast<double>(sizes[i]) / static_cast<double>(in[i]);
    }
  } else {
    fail(ErrorCode::kInvalidArgument, "needs scales or sizes");
  }
  std::vector<double> roi;
  if (a.transform == "tf_crop_and_resize") {
    if (!roi_tensor) fail(ErrorCode::kInvalidArgument, "tf_crop_and_resize needs the roi input");
    const Tensor& r = *roi_tensor;
    if (r.dtype() != DType::kFloat32 || r.numel() != static_cast<int64_t>(2 * rank))
      fail(ErrorCode::kInvalidArgument, "roi must be float32 with " + std::to_string(2 * rank) + " values, got " +
                                            dtype_name(r.dtype()) + " " + shape_str(r.shape()));
    for (float v : r.to_vector<float>()) roi.push_back(v);
  }
  for (size_t i = 0; i < rank; ++i)
    if (in[i] == 0 || out[i] == 0)
      fail(ErrorCode::kInvalidArgument, "cannot resize " + shape_str(in) + " to " + shape_str(out));
  ResizePlan plan;
  plan.mode = a.mode;
  plan.transform = a.transform;
  plan.exclude_outside = a.exclude_outside;
  plan.extrapolation = a.extrapolation;
  plan.out = out;
  for (size_t i = 0; i < rank; ++i)
    plan.axes.push_back(axis_taps(a, in[i], out[i], scale[i], roi.empty() ? 0.0 : roi[i],
                                  roi.empty() ? 1.0 : roi[i + rank], scale[i] < 1.0));
  return plan;
}

void resize_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string("X must be float32, got ") + dtype_name(x.dtype()));
  const size_t rank = x.rank();
  // Opset 10: (X, scales). Opset 11+: (X, roi, scales, sizes), one of scales and sizes non-empty.
  const size_t scales_in = ctx.opset < 11 ? 1 : 2, sizes_in = 3, roi_in = 1;
  const ResizePlan plan = resize_plan(
      ctx.node, ctx.opset, x.shape(), ctx.opset >= 11 && ctx.has_input(roi_in) ? &ctx.input(roi_in) : nullptr,
      ctx.has_input(scales_in) ? &ctx.input(scales_in) : nullptr,
      ctx.opset >= 11 && ctx.has_input(sizes_in) ? &ctx.input(sizes_in) : nullptr);
  const Shape& out = plan.out;
  const std::vector<AxisTaps>& taps = plan.axes;
  Shape shape = x.shape();
  std::vector<double> values(x.data<float>(), x.data<float>() + x.numel());
  for (size_t i = rank; i-- > 0;)  // innermost axis first, as the ONNX reference nests them
    if (!taps[i].identity) values = apply_axis(values, shape, i, taps[i]);
  Tensor y(DType::kFloat32, out);
  float* yd = y.data<float>();
  for (size_t i = 0; i < values.size(); ++i) yd[i] = static_cast<float>(values[i]);
  // tf_crop_and_resize: outputs outside the input on any axis take extrapolation_value.
  for (size_t axis = 0; axis < rank; ++axis) {
    if (taps[axis].outside.empty()) continue;
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < axis; ++i) outer *= out[i];
    for (size_t i = axis + 1; i < rank; ++i) inner *= out[i];
    for (int64_t p = 0; p < outer; ++p)
      for (int64_t o : taps[axis].outside)
        std::fill_n(yd + (p * out[axis] + o) * inner, inner, plan.extrapolation);
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
