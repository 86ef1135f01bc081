// ONNX's integer operators: MatMulInteger, ConvInteger (int32 outputs), QLinearMatMul,
// QLinearConv (8-bit outputs) and DynamicQuantizeLinear, for uint8 and int8 operands.
//
// Every product is (x - x_zero_point) * (w - w_zero_point), accumulated in int32 as the spec
// defines. |x - zp| <= 255 and |w - zp| <= 255, so one product is at most 65025 in magnitude and
// a sum of up to 33025 products (the reduction length: K, or C/group * kernel volume) cannot
// overflow int32; longer reductions are rejected rather than wrapped.
// Requantization (QLinear*) is math::requantize of common/requant.h with the real multiplier
// x_scale * w_scale / y_scale; DynamicQuantizeLinear rounds with math::quantize_float (half to
// even), so the arithmetic is the one shared by the whole of anvil.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "anvil/common/requant.h"
#include "attributes.h"
#include "broadcast.h"
#include "geometry.h"
#include "kernels_ext.h"

namespace anvil::ref {

namespace {

constexpr int64_t kMaxReduction = 33025;  // 33025 * 255 * 255 < 2^31

bool is_8bit(DType t) { return t == DType::kUInt8 || t == DType::kInt8; }

/// The values of a uint8/int8 tensor minus a zero point per slice: element i belongs to slice
/// (i / inner) % zp.size() (one slice when the zero point is per tensor).
std::vector<int32_t> centered(const Tensor& t, const std::vector<int32_t>& zp, int64_t inner, const char* what) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  const int64_t slices = static_cast<int64_t>(zp.size());
  auto fill = [&](const auto* d) {
    for (int64_t i = 0; i < t.numel(); ++i)
      v[i] = static_cast<int32_t>(d[i]) - zp[slices == 1 ? 0 : (i / inner) % slices];
  };
  if (t.dtype() == DType::kUInt8) fill(t.data<uint8_t>());
  else if (t.dtype() == DType::kInt8) fill(t.data<int8_t>());
  else fail(ErrorCode::kInvalidArgument, std::string(what) + " must be uint8 or int8, got " + dtype_name(t.dtype()));
  return v;
}

/// Zero point input i of the 8-bit tensor `of` (a scalar or `count` values); {0} when omitted.
std::vector<int32_t> zero_points(const KernelContext& ctx, size_t i, const Tensor& of, int64_t count,
                                 const char* what) {
  if (!ctx.has_input(i)) return {0};
  const Tensor& zp = ctx.input(i);
  if (zp.dtype() != of.dtype())
    fail(ErrorCode::kInvalidArgument, std::string(what) + " is " + dtype_name(zp.dtype()) + " but its tensor is " +
                                          dtype_name(of.dtype()));
  if (zp.rank() > 1 || (zp.numel() != 1 && zp.numel() != count))
    fail(ErrorCode::kInvalidArgument, std::string(what) + " must be a scalar or have " + std::to_string(count) +
                                          " values, got " + shape_str(zp.shape()));
  std::vector<int32_t> v;
  if (zp.dtype() == DType::kUInt8) for (uint8_t z : zp.to_vector<uint8_t>()) v.push_back(z);
  else for (int8_t z : zp.to_vector<int8_t>()) v.push_back(z);
  return v;
}

/// A float32 scale: a scalar or `count` values (per row / per channel).
std::vector<float> scales(const Tensor& s, int64_t count, const char* what) {
  if (s.dtype() != DType::kFloat32 || s.rank() > 1 || (s.numel() != 1 && s.numel() != count))
    fail(ErrorCode::kInvalidArgument, std::string(what) + " must be float32 with 1 or " + std::to_string(count) +
                                          " values, got " + dtype_name(s.dtype()) + " " + shape_str(s.shape()));
  for (float v : s.to_vector<float>())
    if (!(v > 0.0f) || !std::isfinite(v))
      fail(ErrorCode::kInvalidArgument, std::string(what) + " must be positive and finite");
  return s.to_vector<float>();
}

void check_reduction(int64_t length) {
  if (length > kMaxReduction)
    fail(ErrorCode::kUnsupported, "reduction over " + std::to_string(length) +
                                      " products could overflow the int32 accumulator (limit " +
                                      std::to_string(kMaxReduction) + ")");
}

/// Requantizes int32 accumulators to the type of the output zero point (uint8 or int8):
/// clamp(acc * M[slice] + zp, type range), slice = multiplier_index(i).
template <typename SliceOf>
Tensor requantize_all(const Tensor& acc, const std::vector<math::QuantizedMultiplier>& m, const Tensor& y_zp,
                      SliceOf slice_of) {
  if (!is_8bit(y_zp.dtype()) || y_zp.numel() != 1)
    fail(ErrorCode::kInvalidArgument, std::string("y_zero_point must be one uint8 or int8 value, got ") +
                                          dtype_name(y_zp.dtype()) + " " + shape_str(y_zp.shape()));
  Tensor y(y_zp.dtype(), acc.shape());
  const int32_t* a = acc.data<int32_t>();
  if (y_zp.dtype() == DType::kInt8) {
    const int32_t zp = y_zp.data<int8_t>()[0];
    int8_t* yd = y.data<int8_t>();
    for (int64_t i = 0; i < acc.numel(); ++i) yd[i] = math::requantize(a[i], m[slice_of(i)], zp);
  } else {
    // uint8 is int8 shifted by 128: clamp(v + zp, 0, 255) == clamp(v + zp - 128, -128, 127) + 128.
    const int32_t zp = y_zp.data<uint8_t>()[0];
    uint8_t* yd = y.data<uint8_t>();
    for (int64_t i = 0; i < acc.numel(); ++i)
      yd[i] = static_cast<uint8_t>(math::requantize(a[i], m[slice_of(i)], zp - 128) + 128);
  }
  return y;
}

// ---- MatMul ------------------------------------------------------------------------------------

struct MatMulShape {
  Shape batch_a, batch_b, batch, out;
  int64_t m = 0, k = 0, n = 0;
};

/// numpy.matmul shapes: a 1-D A is [1, K], a 1-D B is [K, 1]; the added dimension is dropped.
MatMulShape matmul_shape(const Tensor& a, const Tensor& b) {
  if (a.rank() == 0 || b.rank() == 0) fail(ErrorCode::kInvalidArgument, "A and B must have rank >= 1");
  Shape sa = a.shape(), sb = b.shape();
  if (sa.size() == 1) sa.insert(sa.begin(), 1);
  if (sb.size() == 1) sb.push_back(1);
  MatMulShape s;
  s.m = sa[sa.size() - 2];
  s.k = sa.back();
  s.n = sb.back();
  if (sb[sb.size() - 2] != s.k)
    fail(ErrorCode::kInvalidArgument, "A " + shape_str(a.shape()) + " and B " + shape_str(b.shape()) +
                                          " have different inner dimensions");
  s.batch_a.assign(sa.begin(), sa.end() - 2);
  s.batch_b.assign(sb.begin(), sb.end() - 2);
  s.batch = broadcast_shapes(s.batch_a, s.batch_b);
  s.out = s.batch;
  if (a.rank() > 1) s.out.push_back(s.m);
  if (b.rank() > 1) s.out.push_back(s.n);
  return s;
}

/// int32 sum over k of (A[.., m, k] - a_zp[m]) * (B[.., k, n] - b_zp[n]); a_zp is per tensor or
/// per row of A, b_zp per tensor or per column of B.
Tensor matmul_accumulate(const KernelContext& ctx, const Tensor& a, size_t a_zp_input, const Tensor& b,
                         size_t b_zp_input, const MatMulShape& s) {
  check_reduction(s.k);
  const std::vector<int32_t> az = zero_points(ctx, a_zp_input, a, s.m, "a_zero_point");
  const std::vector<int32_t> bz = zero_points(ctx, b_zp_input, b, s.n, "b_zero_point");
  // A's rows are slices of K elements; B's columns are every element with the same column index.
  const std::vector<int32_t> av = centered(a, az, s.k, "A");
  std::vector<int32_t> bv = centered(b, {0}, 1, "B");
  if (bz.size() == 1) {
    for (int32_t& v : bv) v -= bz[0];
  } else {
    for (size_t i = 0; i < bv.size(); ++i) bv[i] -= bz[i % s.n];
  }
  Tensor acc(DType::kInt32, s.out);
  int32_t* y = acc.data<int32_t>();
  const auto stride_a = broadcast_strides(s.batch_a, s.batch), stride_b = broadcast_strides(s.batch_b, s.batch);
  for_each_broadcast<2>(s.batch, {stride_a, stride_b}, [&](int64_t i, int64_t oa, int64_t ob) {
    const int32_t* ap = av.data() + oa * s.m * s.k;
    const int32_t* bp = bv.data() + ob * s.k * s.n;
    int32_t* yp = y + i * s.m * s.n;
    tbb::parallel_for(int64_t{0}, s.m, [&](int64_t r) {
      for (int64_t c = 0; c < s.n; ++c) {
        int32_t sum = 0;
        for (int64_t j = 0; j < s.k; ++j) sum += ap[r * s.k + j] * bp[j * s.n + c];
        yp[r * s.n + c] = sum;
      }
    });
  });
  return acc;
}

// ---- Conv --------------------------------------------------------------------------------------

/// Conv geometry with the spatial dimensions lifted to three (missing leading ones are 1).
struct ConvShape {
  int64_t batch = 0, channels = 0, maps = 0, group = 1;
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1}, strides{1, 1, 1}, dilations{1, 1, 1},
      pads{0, 0, 0};
  Shape out_shape;
};

ConvShape conv_shape(const onnx::NodeProto& node, const Tensor& x, const Tensor& w) {
  if (x.rank() < 3 || x.rank() > 5)
    fail(ErrorCode::kInvalidArgument, "X must be N x C x D1 [x D2 [x D3]] (1-D to 3-D), got " + shape_str(x.shape()));
  if (w.rank() != x.rank())
    fail(ErrorCode::kInvalidArgument, "W " + shape_str(w.shape()) + " must have the rank of X " + shape_str(x.shape()));
  ConvShape s;
  s.batch = x.dim(0);
  s.channels = x.dim(1);
  s.maps = w.dim(0);
  s.group = attr_int(node, "group", 1);
  if (s.group < 1 || s.channels % s.group != 0 || s.maps % s.group != 0 || w.dim(1) * s.group != s.channels)
    fail(ErrorCode::kInvalidArgument, "W " + shape_str(w.shape()) + " does not match X " + shape_str(x.shape()) +
                                          " with group " + std::to_string(s.group));
  const size_t rank = x.rank() - 2;
  const std::vector<int64_t> in(x.shape().begin() + 2, x.shape().end());
  const std::vector<int64_t> kernel(w.shape().begin() + 2, w.shape().end());
  const std::vector<int64_t> ks = attr_ints(node, "kernel_shape", kernel);
  if (ks != kernel)
    fail(ErrorCode::kInvalidArgument, "attribute 'kernel_shape' " + shape_str(ks) + " differs from W " +
                                          shape_str(w.shape()));
  const WindowNd g = window_geometry_nd(node, in, kernel, false);
  const size_t lift = 3 - rank;
  for (size_t i = 0; i < rank; ++i) {
    s.in[lift + i] = in[i];
    s.kernel[lift + i] = kernel[i];
    s.out[lift + i] = g.out[i];
    s.strides[lift + i] = g.strides[i];
    s.dilations[lift + i] = g.dilations[i];
    s.pads[lift + i] = g.pads_begin[i];  // the end pads only shape the output size
  }
  check_reduction(w.dim(1) * s.kernel[0] * s.kernel[1] * s.kernel[2]);
  s.out_shape = {s.batch, s.maps};
  s.out_shape.insert(s.out_shape.end(), g.out.begin(), g.out.end());
  return s;
}

/// int32 Conv of centered operands (padding contributes 0, i.e. the zero point, as the spec says).
Tensor conv_accumulate(const ConvShape& s, const std::vector<int32_t>& x, const std::vector<int32_t>& w) {
  Tensor acc(DType::kInt32, s.out_shape);
  int32_t* y = acc.data<int32_t>();
  const int64_t cg = s.channels / s.group, mg = s.maps / s.group;
  const int64_t in_size = s.in[0] * s.in[1] * s.in[2], k_size = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const int64_t out_size = s.out[0] * s.out[1] * s.out[2];
  tbb::parallel_for(int64_t{0}, s.batch * s.maps, [&](int64_t nm) {
    const int64_t n = nm / s.maps, m = nm % s.maps, g = m / mg;
    int32_t* yp = y + nm * out_size;
    for (int64_t o0 = 0; o0 < s.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < s.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < s.out[2]; ++o2) {
          int32_t sum = 0;
          for (int64_t c = 0; c < cg; ++c) {
            const int32_t* xc = x.data() + (n * s.channels + g * cg + c) * in_size;
            const int32_t* wc = w.data() + (m * cg + c) * k_size;
            for (int64_t k0 = 0; k0 < s.kernel[0]; ++k0) {
              const int64_t i0 = o0 * s.strides[0] - s.pads[0] + k0 * s.dilations[0];
              if (i0 < 0 || i0 >= s.in[0]) continue;
              for (int64_t k1 = 0; k1 < s.kernel[1]; ++k1) {
                const int64_t i1 = o1 * s.strides[1] - s.pads[1] + k1 * s.dilations[1];
                if (i1 < 0 || i1 >= s.in[1]) continue;
                for (int64_t k2 = 0; k2 < s.kernel[2]; ++k2) {
                  const int64_t i2 = o2 * s.strides[2] - s.pads[2] + k2 * s.dilations[2];
                  if (i2 < 0 || i2 >= s.in[2]) continue;
                  sum += xc[(i0 * s.in[1] + i1) * s.in[2] + i2] * wc[(k0 * s.kernel[1] + k1) * s.kernel[2] + k2];
                }
              }
            }
          }
          yp[(o0 * s.out[1] + o1) * s.out[2] + o2] = sum;
        }
  });
  return acc;
}

/// Conv accumulators for X (input x_in) and W (input w_in) with their zero points; W's zero point
/// is per tensor or per output channel.
Tensor conv_integer(const KernelContext& ctx, size_t x_in, size_t x_zp_in, size_t w_in, size_t w_zp_in,
                    ConvShape* shape) {
  const Tensor& x = ctx.input(x_in);
  const Tensor& w = ctx.input(w_in);
  *shape = conv_shape(ctx.node, x, w);
  const std::vector<int32_t> xz = zero_points(ctx, x_zp_in, x, 1, "x_zero_point");
  const std::vector<int32_t> wz = zero_points(ctx, w_zp_in, w, shape->maps, "w_zero_point");
  return conv_accumulate(*shape, centered(x, xz, 1, "X"), centered(w, wz, w.numel() / shape->maps, "W"));
}

}  // namespace

void conv_integer_check(const onnx::NodeProto& node, int64_t) {
  if (attr_int(node, "group", 1) < 1) fail(ErrorCode::kInvalidArgument, "attribute 'group' must be >= 1");
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    fail(ErrorCode::kInvalidArgument, "attribute 'auto_pad' has unknown value '" + auto_pad + "'");
}

void matmul_integer_kernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.outputs[0] = matmul_accumulate(ctx, a, 2, b, 3, matmul_shape(a, b));
}

void conv_integer_kernel(KernelContext& ctx) {
  ConvShape s;
  ctx.outputs[0] = conv_integer(ctx, 0, 2, 1, 3, &s);
}

// QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)
void qlinear_matmul_kernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  const MatMulShape s = matmul_shape(a, b);
  const Tensor acc = matmul_accumulate(ctx, a, 2, b, 5, s);
  // a_scale per tensor or per row, b_scale per tensor or per column: one multiplier per pair.
  const std::vector<float> as = scales(ctx.input(1), s.m, "a_scale");
  const std::vector<float> bs = scales(ctx.input(4), s.n, "b_scale");
  const float ys = scales(ctx.input(6), 1, "y_scale")[0];
  std::vector<math::QuantizedMultiplier> m;
  for (float sa : as)
    for (float sb : bs) m.push_back(math::quantize_multiplier(double{sa} * double{sb} / double{ys}));
  const int64_t cols = static_cast<int64_t>(bs.size());
  ctx.outputs[0] = requantize_all(acc, m, ctx.input(7), [&](int64_t i) {
    const int64_t row = as.size() == 1 ? 0 : (i / s.n) % s.m;
    const int64_t col = cols == 1 ? 0 : i % s.n;
    return row * cols + col;
  });
}

// QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B)
void qlinear_conv_kernel(KernelContext& ctx) {
  ConvShape s;
  Tensor acc = conv_integer(ctx, 0, 2, 3, 5, &s);
  const int64_t spatial = s.out[0] * s.out[1] * s.out[2];
  if (ctx.has_input(8)) {
    const Tensor& bias = ctx.input(8);
    if (bias.dtype() != DType::kInt32 || bias.rank() != 1 || bias.dim(0) != s.maps)
      fail(ErrorCode::kInvalidArgument, "B must be int32 with " + std::to_string(s.maps) + " values, got " +
                                            dtype_name(bias.dtype()) + " " + shape_str(bias.shape()));
    const int32_t* bd = bias.data<int32_t>();
    int32_t* a = acc.data<int32_t>();
    for (int64_t i = 0; i < acc.numel(); ++i) a[i] += bd[(i / spatial) % s.maps];
  }
  const float xs = scales(ctx.input(1), 1, "x_scale")[0];
  const std::vector<float> ws = scales(ctx.input(4), s.maps, "w_scale");
  const float ys = scales(ctx.input(6), 1, "y_scale")[0];
  std::vector<math::QuantizedMultiplier> m;
  for (float w : ws) m.push_back(math::quantize_multiplier(double{xs} * double{w} / double{ys}));
  ctx.outputs[0] = requantize_all(acc, m, ctx.input(7), [&](int64_t i) {
    return m.size() == 1 ? 0 : (i / spatial) % s.maps;
  });
}

// DynamicQuantizeLinear(x) -> y (uint8), y_scale, y_zero_point, as the spec defines them:
//   y_scale = (max(0, max(x)) - min(0, min(x))) / 255
//   y_zero_point = saturate(round_half_to_even(0 - min(0, min(x)) / y_scale))
//   y = saturate(round_half_to_even(x / y_scale) + y_zero_point)
// An all-zero x has y_scale 0; then y and y_zero_point are 0 (the spec leaves 0/0 undefined).
void dynamic_quantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    fail(ErrorCode::kInvalidArgument, std::string("x must be float32, got ") + dtype_name(x.dtype()));
  const float* xd = x.data<float>();
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(xd[i])) fail(ErrorCode::kInvalidArgument, "x contains NaN");
    lo = std::min(lo, xd[i]);
    hi = std::max(hi, xd[i]);
  }
  const float scale = (hi - lo) / 255.0f;
  // uint8 = int8 shifted by 128 (see ops_quant.cc): quantize_float(v, s, zp - 128) + 128.
  const int32_t zp = scale > 0.0f ? math::quantize_float(-lo, scale, -128) + 128 : 0;
  Tensor y(DType::kUInt8, x.shape());
  uint8_t* yd = y.data<uint8_t>();
  if (scale > 0.0f)
    for (int64_t i = 0; i < x.numel(); ++i)
      yd[i] = static_cast<uint8_t>(math::quantize_float(xd[i], scale, zp - 128) + 128);
  ctx.outputs[0] = std::move(y);
  if (ctx.outputs.size() > 1) ctx.outputs[1] = Tensor::scalar<float>(scale);
  if (ctx.outputs.size() > 2) ctx.outputs[2] = Tensor::scalar<uint8_t>(static_cast<uint8_t>(zp));
}

}  // namespace anvil::ref
