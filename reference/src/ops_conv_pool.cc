// Conv (im2col + OpenBLAS sgemm), pooling and BatchNormalization, float32, NCHW.
#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "attributes.h"
#include "geometry.h"
#include "kernels.h"

namespace anvil::ref {

namespace {

const Tensor& float_nchw(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string(what) + " must be float32, got " + dtype_name(t.dtype()));
  if (t.rank() != 4)
    fail(ErrorCode::kUnsupported, std::string(what) + " must be N x C x L or N x C x H x W (1-D and 2-D windows), "
                                  "got " + shape_str(t.shape()));
  return t;
}

std::array<int64_t, 2> kernel_attr(const onnx::NodeProto& node) {
  const auto k = attr_ints(node, "kernel_shape");
  if (k.size() != 2)
    fail(ErrorCode::kUnsupported, "attribute 'kernel_shape' must have 1 or 2 values (1-D and 2-D windows)");
  return {k[0], k[1]};
}

/// A 1-D window node as the equivalent 2-D one over a height-1 input: kernel_shape, strides and
/// dilations get a leading 1, pads [begin, end] become [0, begin, 0, end]. 2-D nodes are unchanged.
onnx::NodeProto as_2d(const onnx::NodeProto& node) {
  onnx::NodeProto n = node;
  for (auto& a : *n.mutable_attribute()) {
    const bool window = a.name() == "kernel_shape" || a.name() == "strides" || a.name() == "dilations";
    if (window && a.ints_size() == 1) {
      const int64_t v = a.ints(0);
      a.clear_ints();
      a.add_ints(1);
      a.add_ints(v);
    } else if (a.name() == "pads" && a.ints_size() == 2) {
      const int64_t begin = a.ints(0), end = a.ints(1);
      a.clear_ints();
      for (int64_t v : {int64_t{0}, begin, int64_t{0}, end}) a.add_ints(v);
    }
  }
  return n;
}

/// Runs a 2-D window kernel on a 1-D node: rank-3 inputs (X, and Conv's W) get a height-1 axis,
/// which the output loses again.
void run_as_2d(KernelContext& ctx, Kernel kernel) {
  const onnx::NodeProto node = as_2d(ctx.node);
  std::vector<Tensor> lifted(ctx.num_inputs());
  std::vector<const Tensor*> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor* t = ctx.inputs[i];
    if (t && t->rank() == 3) {
      lifted[i] = t->reshaped({t->dim(0), t->dim(1), 1, t->dim(2)});
      t = &lifted[i];
    }
    inputs.push_back(t);
  }
  KernelContext inner{node, ctx.opset, inputs, ctx.outputs};
  kernel(inner);
  const Tensor& y = ctx.outputs[0];
  ctx.outputs[0] = y.reshaped({y.dim(0), y.dim(1), y.dim(3)});
}

/// Validates strides, dilations, pads and auto_pad by computing the geometry of a large input
/// (the input's real size is known only at run time).
void check_window(const onnx::NodeProto& node, std::array<int64_t, 2> kernel) {
  constexpr int64_t kLarge = int64_t{1} << 20;
  window_geometry(node, kLarge, kLarge, kernel, false);
}

/// Depthwise convolution (one input and one output channel per group) as a direct loop: an
/// im2col GEMM with a 1-row weight matrix would only add copies.
void depthwise_conv(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c, int64_t h,
                    int64_t wd, const Window2d& g) {
  const int64_t oh = g.out[0], ow = g.out[1], kh = g.kernel[0], kw = g.kernel[1];
  tbb::parallel_for(int64_t{0}, n * c, [&](int64_t plane) {
    const int64_t ch = plane % c;
    const float* xp = x + plane * h * wd;
    const float* wp = w + ch * kh * kw;
    float* yp = y + plane * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float acc = bias ? bias[ch] : 0.0f;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * g.strides[0] - g.pads[0] + ky * g.dilations[0];
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t ix = ox * g.strides[1] - g.pads[1] + kx * g.dilations[1];
            if (ix >= 0 && ix < wd) acc += xp[iy * wd + ix] * wp[ky * kw + kx];
          }
        }
        yp[oy * ow + ox] = acc;
      }
  });
}

}  // namespace

void conv_check(const onnx::NodeProto& node_1d_or_2d, int64_t) {
  const onnx::NodeProto node = as_2d(node_1d_or_2d);
  if (attr_int(node, "group", 1) < 1) fail(ErrorCode::kInvalidArgument, "attribute 'group' must be >= 1");
  check_window(node, find_attribute(node, "kernel_shape") ? kernel_attr(node) : std::array<int64_t, 2>{1, 1});
}

void max_pool_check(const onnx::NodeProto& node_1d_or_2d, int64_t) {
  const onnx::NodeProto node = as_2d(node_1d_or_2d);
  if (node.output_size() > 1 && !node.output(1).empty())
    fail(ErrorCode::kUnsupported, "the Indices output is not supported");
  if (attr_int(node, "storage_order", 0) != 0) fail(ErrorCode::kUnsupported, "storage_order 1 is not supported");
  check_window(node, kernel_attr(node));
}

void average_pool_check(const onnx::NodeProto& node_1d_or_2d, int64_t) {
  const onnx::NodeProto node = as_2d(node_1d_or_2d);
  // AveragePool has dilations only from opset 19.
  if (find_attribute(node, "dilations"))
    fail(ErrorCode::kUnsupported, "attribute 'dilations' is not part of AveragePool up to opset 17");
  check_window(node, kernel_attr(node));
}

void batch_norm_check(const onnx::NodeProto& node, int64_t) {
  if (attr_int(node, "training_mode", 0) != 0)
    fail(ErrorCode::kUnsupported, "training_mode 1 is not supported (inference only)");
}

void conv_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, conv_kernel);
  const Tensor& x = float_nchw(ctx, 0, "input X");
  const Tensor& w = float_nchw(ctx, 1, "weight W");
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t m = w.dim(0), group = attr_int(ctx.node, "group", 1);
  if (group < 1 || c % group || m % group || w.dim(1) != c / group)
    fail(ErrorCode::kInvalidArgument, "weight " + shape_str(w.shape()) + " does not match input " +
                                          shape_str(x.shape()) + " with group " + std::to_string(group));
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor& b = ctx.input(2);
    if (b.dtype() != DType::kFloat32 || b.numel() != m)
      fail(ErrorCode::kInvalidArgument, "bias must be float32 [" + std::to_string(m) + "]");
    bias = b.data<float>();
  }
  std::array<int64_t, 2> kernel{w.dim(2), w.dim(3)};
  if (find_attribute(ctx.node, "kernel_shape") && kernel_attr(ctx.node) != kernel)
    fail(ErrorCode::kInvalidArgument, "attribute 'kernel_shape' does not match the weight shape");
  const Window2d g = window_geometry(ctx.node, h, wd, kernel, false);
  const int64_t oh = g.out[0], ow = g.out[1], pixels = oh * ow;
  Tensor y(DType::kFloat32, {n, m, oh, ow});
  const float* xd = x.data<float>();
  const float* wdata = w.data<float>();
  float* yd = y.data<float>();
  if (w.dim(1) == 1 && m == group) {
    depthwise_conv(xd, wdata, bias, yd, n, c, h, wd, g);
    ctx.outputs[0] = std::move(y);
    return;
  }
  // im2col over a chunk of images: col is K x (images * pixels), K = C/group * KH * KW, so one
  // sgemm per group and chunk computes every output pixel of the chunk. Chunks bound the buffer.
  const int64_t cg = c / group, mg = m / group, k = cg * kernel[0] * kernel[1];
  const int64_t budget = int64_t{1} << 22;  // floats (16 MiB) per im2col buffer
  const int64_t chunk = std::clamp<int64_t>(budget / std::max<int64_t>(1, k * pixels), 1, n);
  std::vector<float> col(static_cast<size_t>(k * chunk * pixels)), prod(static_cast<size_t>(mg * chunk * pixels));
  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t nb = std::min(chunk, n - n0), cols = nb * pixels;
    for (int64_t gi = 0; gi < group; ++gi) {
      tbb::parallel_for(int64_t{0}, k, [&](int64_t row) {
        const int64_t ci = row / (kernel[0] * kernel[1]), ky = row / kernel[1] % kernel[0], kx = row % kernel[1];
        float* dst = col.data() + row * cols;
        for (int64_t i = 0; i < nb; ++i) {
          const float* plane = xd + ((n0 + i) * c + gi * cg + ci) * h * wd;
          for (int64_t oy = 0; oy < oh; ++oy) {
            const int64_t iy = oy * g.strides[0] - g.pads[0] + ky * g.dilations[0];
            for (int64_t ox = 0; ox < ow; ++ox) {
              const int64_t ix = ox * g.strides[1] - g.pads[1] + kx * g.dilations[1];
              *dst++ = (iy >= 0 && iy < h && ix >= 0 && ix < wd) ? plane[iy * wd + ix] : 0.0f;
            }
          }
        }
      });
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(mg), static_cast<int>(cols),
                  static_cast<int>(k), 1.0f, wdata + gi * mg * k, static_cast<int>(k), col.data(),
                  static_cast<int>(cols), 0.0f, prod.data(), static_cast<int>(cols));
      tbb::parallel_for(int64_t{0}, nb * mg, [&](int64_t idx) {
        const int64_t i = idx / mg, mo = idx % mg, oc = gi * mg + mo;
        const float* src = prod.data() + mo * cols + i * pixels;
        float* dst = yd + ((n0 + i) * m + oc) * pixels;
        const float b = bias ? bias[oc] : 0.0f;
        for (int64_t p = 0; p < pixels; ++p) dst[p] = src[p] + b;
      });
    }
  }
  ctx.outputs[0] = std::move(y);
}

namespace {

/// Shared loop of MaxPool and AveragePool: `reduce(plane, y0, x0)` computes one output from the
/// window whose top-left corner (in unpadded input coordinates) is (y0, x0).
template <typename Reduce>
Tensor pool(const Tensor& x, const Window2d& g, Reduce reduce) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), oh = g.out[0], ow = g.out[1];
  Tensor y(DType::kFloat32, {n, c, oh, ow});
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, n * c, [&](int64_t plane) {
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        yd[(plane * oh + oy) * ow + ox] =
            reduce(xd + plane * h * w, oy * g.strides[0] - g.pads[0], ox * g.strides[1] - g.pads[1]);
  });
  return y;
}

}  // namespace

void max_pool_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, max_pool_kernel);
  const Tensor& x = float_nchw(ctx, 0, "input X");
  const int64_t h = x.dim(2), w = x.dim(3);
  const Window2d g = window_geometry(ctx.node, h, w, kernel_attr(ctx.node), attr_int(ctx.node, "ceil_mode", 0));
  ctx.outputs[0] = pool(x, g, [&](const float* plane, int64_t y0, int64_t x0) {
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t ky = 0; ky < g.kernel[0]; ++ky) {
      const int64_t iy = y0 + ky * g.dilations[0];
      if (iy < 0 || iy >= h) continue;
      for (int64_t kx = 0; kx < g.kernel[1]; ++kx) {
        const int64_t ix = x0 + kx * g.dilations[1];
        if (ix >= 0 && ix < w) best = std::max(best, plane[iy * w + ix]);
      }
    }
    return best;
  });
}

void average_pool_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, average_pool_kernel);
  const Tensor& x = float_nchw(ctx, 0, "input X");
  const int64_t h = x.dim(2), w = x.dim(3);
  const Window2d g = window_geometry(ctx.node, h, w, kernel_attr(ctx.node), attr_int(ctx.node, "ceil_mode", 0));
  const bool include_pad = attr_int(ctx.node, "count_include_pad", 0) != 0;
  ctx.outputs[0] = pool(x, g, [&](const float* plane, int64_t y0, int64_t x0) {
    float sum = 0.0f;
    int64_t count = 0;
    for (int64_t iy = y0; iy < y0 + g.kernel[0]; ++iy)
      for (int64_t ix = x0; ix < x0 + g.kernel[1]; ++ix) {
        const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        // With count_include_pad the divisor counts padding, but not the part of a ceil_mode
        // window that hangs beyond the end padding (as ONNX Runtime does).
        const bool in_padded = iy < h + g.pads[2] && ix < w + g.pads[3];
        if (inside) sum += plane[iy * w + ix];
        if (inside || (include_pad && in_padded)) ++count;
      }
    return count ? sum / static_cast<float>(count) : 0.0f;
  });
}

void global_average_pool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32 || x.rank() < 3)
    fail(ErrorCode::kInvalidArgument, "input must be float32 N x C x spatial..., got " + shape_str(x.shape()));
  Shape out_shape = {x.dim(0), x.dim(1)};
  int64_t spatial = 1;
  for (size_t i = 2; i < x.rank(); ++i) spatial *= x.dim(i), out_shape.push_back(1);
  Tensor y(DType::kFloat32, out_shape);
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, x.dim(0) * x.dim(1), [&](int64_t plane) {
    float sum = 0.0f;
    for (int64_t i = 0; i < spatial; ++i) sum += xd[plane * spatial + i];
    yd[plane] = sum / static_cast<float>(spatial);
  });
  ctx.outputs[0] = std::move(y);
}

void batch_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32 || x.rank() < 2)
    fail(ErrorCode::kInvalidArgument, "input must be float32 N x C x ..., got " + shape_str(x.shape()));
  const int64_t c = x.dim(1);
  std::vector<const float*> p;
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  for (int i = 1; i <= 4; ++i) {
    const Tensor& t = ctx.input(i);
    if (t.dtype() != DType::kFloat32 || t.numel() != c)
      fail(ErrorCode::kInvalidArgument, std::string(names[i - 1]) + " must be float32 [" + std::to_string(c) + "]");
    p.push_back(t.data<float>());
  }
  const float eps = attr_float(ctx.node, "epsilon", 1e-5f);
  int64_t inner = 1;
  for (size_t i = 2; i < x.rank(); ++i) inner *= x.dim(i);
  Tensor y(DType::kFloat32, x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, x.dim(0) * c, [&](int64_t plane) {
    const int64_t ch = plane % c;
    const float a = p[0][ch] / std::sqrt(p[3][ch] + eps);
    const float b = p[1][ch] - p[2][ch] * a;
    for (int64_t i = 0; i < inner; ++i) yd[plane * inner + i] = xd[plane * inner + i] * a + b;
  });
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
