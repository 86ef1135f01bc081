// run_int8: the integer golden model. Plain loops over int8 tensors; every rounding step is a
// call into common/requant.h, so the compiler and the hardware model can match it bit for bit.
#include <tbb/parallel_for.h>

#include <algorithm>

#include "anvil/reference/int8_graph.h"
#include "broadcast.h"

namespace anvil::ref {

namespace {

/// Spatial view of an int8 value: N x C x H x W, with 2-D N x C values seen as N x C x 1 x 1.
struct Dims {
  int64_t n, c, h, w;
};
Dims nchw(const Shape& s) {
  if (s.size() == 4) return {s[0], s[1], s[2], s[3]};
  if (s.size() == 2) return {s[0], s[1], 1, 1};
  fail(ErrorCode::kInvalidArgument, "expected an N x C x H x W or N x C value, got " + shape_str(s));
}

/// acc[r] = bias[r] + sum_i x[i] * w[r * k + i] for the `rows` weight rows: the dot products of one
/// conv window with every output channel of its group. Four rows per pass over x, so each x[i] is
/// loaded once for four products (resnet's integer run on 2,000 images: 7.1-8.2 -> 6.1-7.5 s; an
/// AVX2 build of the same loop was no faster). Integer sums, so the order does not change them.
void dot_rows(const int16_t* x, const int16_t* w, const int32_t* bias, int64_t rows, int64_t k, int32_t* acc) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const int16_t *w0 = w + r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    int32_t a0 = bias[r], a1 = bias[r + 1], a2 = bias[r + 2], a3 = bias[r + 3];
    for (int64_t i = 0; i < k; ++i) {
      const int32_t v = x[i];
      a0 += v * w0[i], a1 += v * w1[i], a2 += v * w2[i], a3 += v * w3[i];
    }
    acc[r] = a0, acc[r + 1] = a1, acc[r + 2] = a2, acc[r + 3] = a3;
  }
  for (; r < rows; ++r) {
    const int16_t* wr = w + r * k;
    int32_t a = bias[r];
    for (int64_t i = 0; i < k; ++i) a += static_cast<int32_t>(x[i]) * wr[i];
    acc[r] = a;
  }
}

/// Conv: acc = bias[o] + sum over the window of (x - in_zp) * w, with padding contributing 0;
/// out = requantize(acc, multipliers[o], out_zp, act_min, act_max). lower_qdq checked that
/// |bias| + K * 255 * 128 fits in int32, so acc cannot overflow.
///
/// For each output pixel the window is gathered into `patch` (x - in_zp, in the weight's
/// I x KH x KW order), then every output channel of the group is one dot product with its weight
/// row (dot_rows). |x - in_zp| <= 255 and |w| <= 128 fit in int16, which lets the compiler
/// vectorise the dot products; the products and the sum are int32.
void conv(const Int8Op& op, const Int8Value& in_v, const Int8Value& out_v, const Tensor& in, Tensor& out) {
  const Dims x = nchw(in_v.shape), y = nchw(out_v.shape);
  const int64_t groups = op.groups, cg = x.c / groups, og = y.c / groups;
  const int64_t kh = op.kernel[0], kw = op.kernel[1], k = cg * kh * kw;
  // Each image is first copied into a zero-padded plane holding x - in_zp, so gathering a window
  // needs no bounds checks and padding contributes exactly 0.
  const int64_t ph = x.h + op.pads[0] + op.pads[2], pw = x.w + op.pads[1] + op.pads[3];
  const std::vector<int16_t> w16(op.weight.data<int8_t>(), op.weight.data<int8_t>() + op.weight.numel());
  const int8_t* xd = in.data<int8_t>();
  const int32_t* bias = op.bias.data<int32_t>();
  int8_t* yd = out.data<int8_t>();
  tbb::parallel_for(int64_t{0}, x.n, [&](int64_t n) {
    std::vector<int16_t> padded(static_cast<size_t>(x.c * ph * pw), 0), patch(static_cast<size_t>(k));
    std::vector<int32_t> acc(static_cast<size_t>(og));
    for (int64_t c = 0; c < x.c; ++c)
      for (int64_t i = 0; i < x.h; ++i)
        for (int64_t j = 0; j < x.w; ++j)
          padded[(c * ph + i + op.pads[0]) * pw + j + op.pads[1]] =
              static_cast<int16_t>(xd[((n * x.c + c) * x.h + i) * x.w + j] - in_v.q.zero_point);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t oy = 0; oy < y.h; ++oy)
        for (int64_t ox = 0; ox < y.w; ++ox) {
          int16_t* p = patch.data();
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int16_t* row = padded.data() + ((g * cg + ci) * ph + oy * op.strides[0] + ky * op.dilations[0]) * pw +
                                   ox * op.strides[1];
              for (int64_t kx = 0; kx < kw; ++kx) *p++ = row[kx * op.dilations[1]];
            }
          dot_rows(patch.data(), w16.data() + g * og * k, bias + g * og, og, k, acc.data());
          for (int64_t j = 0; j < og; ++j) {
            const int64_t o = g * og + j;
            yd[((n * y.c + o) * y.h + oy) * y.w + ox] =
                math::requantize(acc[j], op.multipliers[o], out_v.q.zero_point, op.act_min, op.act_max);
          }
        }
  });
}

/// Max and average pooling over the valid (unpadded) part of each window. Average: the int32 sum of
/// (x - in_zp) (padding counts as 0, so with count_include_pad the divisor is the kernel area) is
/// requantized with op.multiplier = in_scale / (out_scale * kernel area). |sum| <= 255 * area.
void pool(const Int8Op& op, const Int8Value& in_v, const Int8Value& out_v, const Tensor& in, Tensor& out) {
  const Dims x = nchw(in_v.shape), y = nchw(out_v.shape);
  const bool is_max = op.kind == Int8OpKind::kMaxPool;
  const int8_t* xd = in.data<int8_t>();
  int8_t* yd = out.data<int8_t>();
  tbb::parallel_for(int64_t{0}, x.n * x.c, [&](int64_t plane) {
    const int8_t* src = xd + plane * x.h * x.w;
    for (int64_t oy = 0; oy < y.h; ++oy)
      for (int64_t ox = 0; ox < y.w; ++ox) {
        int32_t best = -128, sum = 0;
        for (int64_t ky = 0; ky < op.kernel[0]; ++ky) {
          const int64_t iy = oy * op.strides[0] - op.pads[0] + ky * op.dilations[0];
          if (iy < 0 || iy >= x.h) continue;
          for (int64_t kx = 0; kx < op.kernel[1]; ++kx) {
            const int64_t ix = ox * op.strides[1] - op.pads[1] + kx * op.dilations[1];
            if (ix < 0 || ix >= x.w) continue;
            best = std::max<int32_t>(best, src[iy * x.w + ix]);
            sum += src[iy * x.w + ix] - in_v.q.zero_point;
          }
        }
        yd[(plane * y.h + oy) * y.w + ox] =
            is_max ? static_cast<int8_t>(std::clamp(best, op.act_min, op.act_max))
                   : math::requantize(sum, op.multiplier, out_v.q.zero_point, op.act_min, op.act_max);
      }
  });
}

/// MatMul of two int8 activations: acc = sum_k (a - a_zp) * (b - b_zp), |acc| <= K * 255^2 < 2^31
/// (lower_qdq bounds K), out = requantize(acc, op.multiplier, out_zp, act_min, act_max).
void matmul(const Int8Op& op, const Int8Value& a_v, const Int8Value& b_v, const Int8Value& out_v, const Tensor& a,
            const Tensor& b, Tensor& out) {
  const MatMulDims d = matmul_dims(a_v.shape, b_v.shape);
  if (d.out != out_v.shape)
    fail(ErrorCode::kInvalidArgument, "matmul '" + op.node + "': output " + shape_str(out_v.shape) + " does not match " +
                                          shape_str(a_v.shape) + " x " + shape_str(b_v.shape));
  const int8_t *ad = a.data<int8_t>(), *bd = b.data<int8_t>();
  int8_t* yd = out.data<int8_t>();
  const int32_t za = a_v.q.zero_point, zb = b_v.q.zero_point;
  tbb::parallel_for(int64_t{0}, d.batch * d.m, [&](int64_t row) {
    const int64_t p = row / d.m, i = row % d.m;
    const int8_t* arow = ad + d.a_index[p] * d.m * d.k + i * d.k;
    const int8_t* bm = bd + d.b_index[p] * d.k * d.n;
    std::vector<int32_t> acc(static_cast<size_t>(d.n), 0);
    for (int64_t k = 0; k < d.k; ++k) {
      const int32_t x = arow[k] - za;
      const int8_t* brow = bm + k * d.n;
      for (int64_t j = 0; j < d.n; ++j) acc[j] += x * (brow[j] - zb);
    }
    for (int64_t j = 0; j < d.n; ++j)
      yd[row * d.n + j] = math::requantize(acc[j], op.multiplier, out_v.q.zero_point, op.act_min, op.act_max);
  });
}

/// Softmax over op.axis: math::softmax_row on every line along the axis.
void softmax(const Int8Op& op, const Int8Value& in_v, const Int8Value& out_v, const Tensor& in, Tensor& out) {
  const Shape& s = in_v.shape;
  if (op.axis < 0 || op.axis >= static_cast<int>(s.size()) || s != out_v.shape)
    fail(ErrorCode::kInvalidArgument, "softmax '" + op.node + "': axis " + std::to_string(op.axis) + " of input " +
                                          shape_str(s) + " -> output " + shape_str(out_v.shape));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < op.axis; ++i) outer *= s[i];
  for (size_t i = op.axis + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t len = s[op.axis];
  const int8_t* xd = in.data<int8_t>();
  int8_t* yd = out.data<int8_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i)
      math::softmax_row(xd + o * len * inner + i, yd + o * len * inner + i, len, inner, op.softmax_table,
                        op.multiplier, out_v.q.zero_point);
}

/// kResize: math::resize_plane on every plane of the leading axes.
void resize(const Int8Op& op, const Int8Value& in_v, const Int8Value& out_v, const Tensor& in, Tensor& out) {
  const ResizeDims d = resize_dims(op, in_v.shape, out_v.shape);
  const int8_t* xd = in.data<int8_t>();
  int8_t* yd = out.data<int8_t>();
  tbb::parallel_for(int64_t{0}, d.planes, [&](int64_t p) {
    math::resize_plane(xd + p * d.in_h * d.in_w, d.in_w, yd + p * d.out_h * d.out_w, op.resize_rows.data(), d.out_h,
                       op.resize_cols.data(), d.out_w, in_v.q.zero_point, op.multiplier, out_v.q.zero_point);
  });
}

/// kAdd, kSub, kMul: each output element from the two operands' elements at its broadcast
/// position (numpy rules); with one input, the op's constant is the second operand, or the first
/// for a kSub with constant_first (constant - x).
void binary(const Int8Op& op, const Int8Graph& g, const std::vector<Tensor>& values, Tensor& out) {
  if (op.constant_first && (op.kind != Int8OpKind::kSub || op.inputs.size() != 1))
    fail(ErrorCode::kInvalidArgument, "op '" + op.node + "': only a sub of one value takes its constant first");
  const Tensor& a = op.constant_first ? op.weight : values[op.inputs[0]];
  const Tensor& b = op.constant_first ? values[op.inputs[0]] : op.inputs.size() > 1 ? values[op.inputs[1]] : op.weight;
  if (a.empty() || a.dtype() != DType::kInt8 || b.empty() || b.dtype() != DType::kInt8)
    fail(ErrorCode::kInvalidArgument, "op '" + op.node + "' has no int8 constant operand");
  const Shape& y = g.values[op.output].shape;
  const auto broadcasts = [&] {
    try {
      return broadcast_shapes(broadcast_shapes(a.shape(), b.shape()), y) == y;
    } catch (const Error&) {
      return false;
    }
  };
  if (!broadcasts())
    fail(ErrorCode::kInvalidArgument, "op '" + op.node + "': operands " + shape_str(a.shape()) + " and " +
                                          shape_str(b.shape()) + " do not broadcast to " + shape_str(y));
  const std::array<std::vector<int64_t>, 2> strides{broadcast_strides(a.shape(), y), broadcast_strides(b.shape(), y)};
  const int8_t *ad = a.data<int8_t>(), *bd = b.data<int8_t>();
  int8_t* yd = out.data<int8_t>();
  const auto each = [&](auto f) {
    if (a.shape() == y && b.shape() == y) {  // no broadcasting: one pass
      for (int64_t i = 0; i < out.numel(); ++i) yd[i] = f(ad[i], bd[i]);
      return;
    }
    for_each_broadcast(y, strides, [&](int64_t i, int64_t ia, int64_t ib) { yd[i] = f(ad[ia], bd[ib]); });
  };
  switch (op.kind) {
    case Int8OpKind::kMul: each([&](int8_t u, int8_t v) { return math::mul_int8(u, v, op.mul); }); break;
    case Int8OpKind::kSub: each([&](int8_t u, int8_t v) { return math::sub_int8(u, v, op.add); }); break;
    default: each([&](int8_t u, int8_t v) { return math::add_int8(u, v, op.add); });
  }
}

/// A kHost op: its inputs through the float reference executor (its own DequantizeLinear and
/// QuantizeLinear nodes convert), its outputs (int8 values and host values) by value name.
void run_host(const Int8Graph& g, const Int8Op& op, std::vector<Tensor>& values) {
  ANVIL_CHECK(op.host != nullptr, "host op '" + op.node + "' is not prepared");
  TensorMap feeds;
  for (int in : op.inputs) feeds[g.values[in].name] = values[in];
  Expected<TensorMap> ran = op.host->run(feeds);
  if (!ran.ok()) fail(ran.error().code(), "host op of node '" + op.node + "': " + ran.error().what());
  for (int out : op.host_outputs) {
    const Int8Value& v = g.values[out];
    auto it = ran.value().find(v.name);
    if (it == ran.value().end() || it->second.dtype() != v.dtype || it->second.shape() != v.shape)
      fail(ErrorCode::kInvalidArgument, "host op of node '" + op.node + "' did not produce " + dtype_name(v.dtype) +
                                            " " + shape_str(v.shape) + " '" + v.name + "'");
    values[out] = it->second;
  }
}

// ---- data movement --------------------------------------------------------------------------
// Written from the ONNX definitions with multi-indices, not from the strided form the compiler
// emits (kCopy), so the compiled program is checked against an independent statement.

/// Calls f(index) for every multi-index of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F&& f) {
  std::vector<int64_t> idx(shape.size(), 0);
  if (shape_numel(shape) == 0) return;
  for (;;) {
    f(idx);
    int64_t d = static_cast<int64_t>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/// Row-major offset of a multi-index.
int64_t offset_of(const Shape& shape, const std::vector<int64_t>& idx) {
  int64_t o = 0;
  for (size_t d = 0; d < shape.size(); ++d) o = o * shape[d] + idx[d];
  return o;
}

/// An element of input i as the output holds it: unchanged when the quantization parameters are
/// equal (then requantizing would be the identity), else requantized with multipliers[i].
struct Mover {
  const Int8Op& op;
  const Int8Graph& g;
  int8_t operator()(int8_t x, size_t input) const {
    const QuantParams& in = g.values[op.inputs[input]].q;
    const QuantParams& out = g.values[op.output].q;
    if (in.scale == out.scale && in.zero_point == out.zero_point) return x;
    return math::requantize(x - in.zero_point, op.multipliers.at(input), out.zero_point, -128, 127);
  }
};

void move_data(const Int8Graph& g, const Int8Op& op, const std::vector<Tensor>& values, Tensor& out) {
  const Mover move{op, g};
  const Shape& y_shape = out.shape();
  const Shape& x_shape = values[op.inputs[0]].shape();
  const int8_t* x = values[op.inputs[0]].data<int8_t>();
  int8_t* y = out.data<int8_t>();
  const size_t rank = y_shape.size();
  std::vector<int64_t> j(rank);
  switch (op.kind) {
    case Int8OpKind::kTranspose:  // output axis k is input axis perm[k]
      for_each_index(y_shape, [&](const std::vector<int64_t>& i) {
        for (size_t k = 0; k < rank; ++k) j[op.perm[k]] = i[k];
        y[offset_of(y_shape, i)] = move(x[offset_of(x_shape, j)], 0);
      });
      break;
    case Int8OpKind::kSlice:
      for_each_index(y_shape, [&](const std::vector<int64_t>& i) {
        for (size_t k = 0; k < rank; ++k) j[k] = op.starts[k] + i[k] * op.steps[k];
        y[offset_of(y_shape, i)] = move(x[offset_of(x_shape, j)], 0);
      });
      break;
    case Int8OpKind::kConcat: {
      int64_t at = 0;  // where the current input starts along the axis
      for (size_t in = 0; in < op.inputs.size(); ++in) {
        const Tensor& t = values[op.inputs[in]];
        const int8_t* src = t.data<int8_t>();
        for_each_index(t.shape(), [&](const std::vector<int64_t>& i) {
          j = i;
          j[op.axis] += at;
          y[offset_of(y_shape, j)] = move(src[offset_of(t.shape(), i)], in);
        });
        at += t.shape()[op.axis];
      }
      break;
    }
    case Int8OpKind::kPad:
      if (op.pad_mode != PadMode::kConstant) {  // every output element is an input element
        for_each_index(y_shape, [&](const std::vector<int64_t>& i) {
          for (size_t k = 0; k < rank; ++k) {
            const int64_t t = i[k] - op.pad_begin[k], last = x_shape[k] - 1;
            j[k] = op.pad_mode == PadMode::kEdge ? std::clamp<int64_t>(t, 0, last)
                   : t < 0                       ? -t
                   : t > last                    ? 2 * last - t
                                                 : t;
          }
          y[offset_of(y_shape, i)] = move(x[offset_of(x_shape, j)], 0);
        });
        break;
      }
      std::fill(y, y + out.numel(), static_cast<int8_t>(op.pad_value));
      for_each_index(x_shape, [&](const std::vector<int64_t>& i) {
        for (size_t k = 0; k < rank; ++k)
          j[k] = op.pad_begin[k] + i[k] * (op.pad_interior.empty() ? 1 : op.pad_interior[k] + 1);
        y[offset_of(y_shape, j)] = move(x[offset_of(x_shape, i)], 0);
      });
      break;
    default: ANVIL_CHECK(false, "move_data of a non data-movement op");
  }
}

/// The parameters run_int8 indexes with, checked against the shapes (a parsed graph may be corrupt).
void check_movement(const Int8Graph& g, const Int8Op& op, const std::vector<Tensor>& values) {
  const Shape& y = g.values[op.output].shape;
  const size_t rank = y.size();
  auto bad = [&](const std::string& why) {
    fail(ErrorCode::kInvalidArgument, std::string(int8_op_name(op.kind)) + " op '" + op.node + "': " + why);
  };
  if (op.multipliers.size() != op.inputs.size()) bad("needs one multiplier per input");
  for (int v : op.inputs)
    if (values[v].rank() != rank) bad("input rank differs from the output's " + shape_str(y));
  const Shape& x = values[op.inputs[0]].shape();
  switch (op.kind) {
    case Int8OpKind::kTranspose: {
      std::vector<bool> seen(rank, false);
      if (op.perm.size() != rank) bad("perm has the wrong length");
      for (size_t k = 0; k < rank; ++k) {
        if (op.perm[k] < 0 || op.perm[k] >= static_cast<int64_t>(rank) || seen[op.perm[k]] || x[op.perm[k]] != y[k])
          bad("perm does not map " + shape_str(x) + " to " + shape_str(y));
        seen[op.perm[k]] = true;
      }
      break;
    }
    case Int8OpKind::kSlice:
      if (op.starts.size() != rank || op.steps.size() != rank) bad("starts/steps have the wrong length");
      for (size_t k = 0; k < rank; ++k) {
        const int64_t last = op.starts[k] + (y[k] - 1) * op.steps[k];
        if (op.steps[k] == 0 || op.starts[k] < 0 || op.starts[k] >= x[k] || last < 0 || last >= x[k])
          bad("slice of " + shape_str(y) + " leaves the input " + shape_str(x));
      }
      break;
    case Int8OpKind::kConcat: {
      if (op.axis < 0 || op.axis >= static_cast<int64_t>(rank)) bad("axis out of range");
      int64_t total = 0;
      for (int v : op.inputs) {
        for (size_t k = 0; k < rank; ++k)
          if (static_cast<int64_t>(k) != op.axis && values[v].shape()[k] != y[k]) bad("inputs do not match the output");
        total += values[v].shape()[op.axis];
      }
      if (total != y[op.axis]) bad("inputs do not add up to the output along the axis");
      break;
    }
    case Int8OpKind::kPad:
      if (op.pad_begin.size() != rank) bad("pad_begin has the wrong length");
      if (!op.pad_interior.empty() && op.pad_interior.size() != rank) bad("pad_interior has the wrong length");
      if (!op.pad_interior.empty() && op.pad_mode != PadMode::kConstant) bad("interior padding needs constant mode");
      if (op.pad_mode != PadMode::kConstant && op.pad_mode != PadMode::kEdge && op.pad_mode != PadMode::kReflect)
        bad("unknown pad mode " + std::to_string(static_cast<int>(op.pad_mode)));
      for (size_t k = 0; k < rank; ++k) {
        const int64_t interior = op.pad_interior.empty() ? 0 : op.pad_interior[k];
        if (interior < 0 || op.pad_begin[k] < 0 || op.pad_begin[k] + (x[k] - 1) * (interior + 1) + 1 > y[k])
          bad("padding does not fit the output");
        if (op.pad_mode != PadMode::kConstant && x[k] < 1) bad("edge or reflect padding of an empty axis");
        if (op.pad_mode == PadMode::kReflect && (op.pad_begin[k] >= x[k] || y[k] - x[k] - op.pad_begin[k] >= x[k]) &&
            y[k] != x[k])
          bad("reflect padding of axis " + std::to_string(k) + " is not smaller than the axis");
      }
      if (op.pad_value < -128 || op.pad_value > 127) bad("pad value is not int8");
      break;
    default: break;
  }
}

void run_op(const Int8Graph& g, const Int8Op& op, std::vector<Tensor>& values) {
  if (op.kind == Int8OpKind::kHost) return run_host(g, op, values);
  const Int8Value& out_v = g.values[op.output];
  const Int8Value& in_v = g.values[op.inputs.at(0)];
  const Tensor& in = values[op.inputs[0]];
  if (op.kind == Int8OpKind::kReshape) {
    values[op.output] = in.reshaped(out_v.shape);
    return;
  }
  Tensor out(DType::kInt8, out_v.shape);
  int8_t* yd = out.data<int8_t>();
  const int8_t* xd = in.data<int8_t>();
  switch (op.kind) {
    case Int8OpKind::kConv: conv(op, in_v, out_v, in, out); break;
    case Int8OpKind::kMaxPool:
    case Int8OpKind::kAvgPool: pool(op, in_v, out_v, in, out); break;
    case Int8OpKind::kAdd:
    case Int8OpKind::kSub:
    case Int8OpKind::kMul: binary(op, g, values, out); break;
    case Int8OpKind::kRequant:
      for (int64_t i = 0; i < out.numel(); ++i)
        yd[i] = math::requantize(xd[i] - in_v.q.zero_point, op.multiplier, out_v.q.zero_point, op.act_min,
                                 op.act_max);
      break;
    case Int8OpKind::kLut:
      for (int64_t i = 0; i < out.numel(); ++i) yd[i] = op.lut[xd[i] + 128];
      break;
    case Int8OpKind::kTranspose:
    case Int8OpKind::kSlice:
    case Int8OpKind::kConcat:
    case Int8OpKind::kPad:
      check_movement(g, op, values);
      move_data(g, op, values, out);
      break;
    case Int8OpKind::kMatMul:
      matmul(op, in_v, g.values[op.inputs.at(1)], out_v, in, values[op.inputs[1]], out);
      break;
    case Int8OpKind::kSoftmax: softmax(op, in_v, out_v, in, out); break;
    case Int8OpKind::kResize: resize(op, in_v, out_v, in, out); break;
    case Int8OpKind::kReshape:
    case Int8OpKind::kHost: break;
  }
  values[op.output] = std::move(out);
}

}  // namespace

ResizeDims resize_dims(const Int8Op& op, const Shape& in, const Shape& out) {
  const size_t rank = in.size();
  const auto bad = [&](const std::string& why) {
    fail(ErrorCode::kInvalidArgument, "resize '" + op.node + "': " + why + " (input " + shape_str(in) + ", output " +
                                          shape_str(out) + ")");
  };
  if (rank < 2 || out.size() != rank) bad("needs equal ranks >= 2");
  ResizeDims d;
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (in[i] != out[i]) bad("resizes a leading axis");
    d.planes *= in[i];
  }
  d.in_h = in[rank - 2], d.in_w = in[rank - 1], d.out_h = out[rank - 2], d.out_w = out[rank - 1];
  if (static_cast<int64_t>(op.resize_rows.size()) != d.out_h || static_cast<int64_t>(op.resize_cols.size()) != d.out_w)
    bad(std::to_string(op.resize_rows.size()) + " row and " + std::to_string(op.resize_cols.size()) + " column taps");
  if (!math::resize_taps_valid(op.resize_rows.data(), d.out_h, d.in_h) ||
      !math::resize_taps_valid(op.resize_cols.data(), d.out_w, d.in_w))
    bad("a tap reads outside the input or has a weight outside [0, 2^11]");
  return d;
}

Expected<TensorMap> run_int8(const Int8Graph& graph, const TensorMap& int8_inputs) {
  return capture([&] {
    std::vector<Tensor> values(graph.values.size());
    for (size_t i = 0; i < graph.inputs.size(); ++i) {
      const std::string& name = graph.input_names.at(i);
      const Int8Value& v = graph.values.at(graph.inputs[i]);
      auto it = int8_inputs.find(name);
      if (it == int8_inputs.end()) fail(ErrorCode::kNotFound, "input '" + name + "' was not given");
      if (it->second.dtype() != v.dtype || it->second.shape() != v.shape)
        fail(ErrorCode::kInvalidArgument, "input '" + name + "': expected " + dtype_name(v.dtype) + " " +
                                              shape_str(v.shape) + ", got " +
                                              dtype_name(it->second.dtype()) + " " + shape_str(it->second.shape()));
      values[graph.inputs[i]] = it->second;
    }
    for (const Int8Op& op : graph.ops) {
      for (int in : op.inputs)
        ANVIL_CHECK(in >= 0 && in < static_cast<int>(values.size()) && !values[in].empty(),
                    "op '" + op.node + "' reads a value that is not computed yet");
      run_op(graph, op, values);
    }
    TensorMap out;
    for (size_t i = 0; i < graph.outputs.size(); ++i) out[graph.output_names.at(i)] = values.at(graph.outputs[i]);
    return out;
  });
}

std::array<int8_t, 256> make_lut(const std::function<float(float)>& f, QuantParams in, QuantParams out) {
  std::array<int8_t, 256> lut{};
  for (int q = -128; q <= 127; ++q)
    lut[q + 128] = math::quantize_float(f(math::dequantize(q, in.scale, in.zero_point)), out.scale, out.zero_point);
  return lut;
}

MatMulDims matmul_dims(const Shape& a, const Shape& b) {
  if (a.size() < 2 || b.size() < 2)
    fail(ErrorCode::kUnsupported, "MatMul operands " + shape_str(a) + " x " + shape_str(b) +
                                      ": both must have rank >= 2 on the NPU");
  MatMulDims d;
  d.m = a[a.size() - 2], d.k = a.back(), d.n = b.back();
  if (b[b.size() - 2] != d.k)
    fail(ErrorCode::kInvalidArgument, "MatMul operands " + shape_str(a) + " x " + shape_str(b) + ": inner dimensions differ");
  const Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  const size_t rank = std::max(ab.size(), bb.size());
  Shape batch(rank);
  auto dim = [rank](const Shape& s, size_t i) { return i + s.size() < rank ? int64_t{1} : s[i + s.size() - rank]; };
  for (size_t i = 0; i < rank; ++i) {
    const int64_t x = dim(ab, i), y = dim(bb, i);
    if (x != y && x != 1 && y != 1)
      fail(ErrorCode::kInvalidArgument, "MatMul operands " + shape_str(a) + " x " + shape_str(b) +
                                            ": batch dimensions do not broadcast");
    batch[i] = x == 1 ? y : x;
  }
  d.batch = shape_numel(batch);
  // An operand is either the full batch or one matrix for all of it (stride 0), unless `cross`.
  auto step = [&](const Shape& s, int64_t matrix) -> int64_t {
    if (shape_numel(s) == 1) return 0;
    for (size_t i = 0; i < rank; ++i) d.cross |= dim(s, i) != batch[i];
    return matrix;
  };
  d.a_step = step(ab, d.m * d.k);
  d.b_step = step(bb, d.k * d.n);
  // Each operand's matrix of product p: p's batch multi-index with the operand's broadcast
  // (size-1) dimensions at 0, row-major over the operand's own batch dimensions.
  d.a_index.resize(static_cast<size_t>(d.batch));
  d.b_index.resize(static_cast<size_t>(d.batch));
  for (int64_t p = 0; p < d.batch; ++p) {
    int64_t rest = p, ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t i = rank; i-- > 0;) {
      const int64_t j = rest % batch[i];
      rest /= batch[i];
      if (dim(ab, i) != 1) ia += j * sa;
      if (dim(bb, i) != 1) ib += j * sb;
      sa *= dim(ab, i), sb *= dim(bb, i);
    }
    d.a_index[p] = ia, d.b_index[p] = ib;
  }
  d.out = batch;
  d.out.push_back(d.m);
  d.out.push_back(d.n);
  return d;
}

std::vector<int> op_outputs(const Int8Op& op) {
  return op.kind == Int8OpKind::kHost ? op.host_outputs : std::vector<int>{op.output};
}

Tensor quantize_tensor(const Tensor& f32, QuantParams q) {
  Tensor out(DType::kInt8, f32.shape());
  const float* x = f32.data<float>();
  int8_t* y = out.data<int8_t>();
  for (int64_t i = 0; i < f32.numel(); ++i) y[i] = math::quantize_float(x[i], q.scale, q.zero_point);
  return out;
}

Tensor dequantize_tensor(const Tensor& i8, QuantParams q) {
  Tensor out(DType::kFloat32, i8.shape());
  const int8_t* x = i8.data<int8_t>();
  float* y = out.data<float>();
  for (int64_t i = 0; i < i8.numel(); ++i) y[i] = math::dequantize(x[i], q.scale, q.zero_point);
  return out;
}

}  // namespace anvil::ref
