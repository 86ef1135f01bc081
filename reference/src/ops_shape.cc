// Operators that move or describe data without arithmetic: Constant, Flatten, Reshape, ...
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "anvil/common/onnx_model.h"
#include "attributes.h"
#include "broadcast.h"
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

namespace {

/// Input 0 with a new shape (computed and checked by the caller): the executor's own value is
/// moved when no later node reads it (KernelContext::reusable), else copied.
Tensor with_shape(KernelContext& ctx, Shape shape) {
  if (Tensor* x = ctx.reusable(0)) {
    Tensor y = std::move(*x);
    y.reshape(std::move(shape));
    return y;
  }
  return ctx.input(0).reshaped(std::move(shape));
}

}  // namespace

void flatten_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.outputs[0] = with_shape(ctx, flatten_shape(x.shape(), attr_int(ctx.node, "axis", 1)));
}

void reshape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool allow_zero = attr_int(ctx.node, "allowzero", 0) != 0;
  ctx.outputs[0] = with_shape(ctx, reshape_shape(x.shape(), int_values(ctx.input(1), "shape"), allow_zero));
}

namespace {

/// Row-major element strides of a shape.
std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// Axes from the `axes` input (opset >= 13 for Squeeze/Unsqueeze) or the attribute (before).
std::vector<int64_t> axes_of(const KernelContext& ctx, size_t input) {
  if (ctx.opset >= 13) return ctx.has_input(input) ? int_values(ctx.input(input), "axes") : std::vector<int64_t>{};
  return attr_ints(ctx.node, "axes");
}

/// Copies `out`'s elements from `in` where element i of out reads in at offset(i) (in elements).
template <typename Offset>
Tensor gather_elements(const Tensor& in, const Shape& out_shape, Offset offset) {
  Tensor out(in.dtype(), out_shape);
  const size_t es = dtype_size(in.dtype());
  const int64_t rank = static_cast<int64_t>(out_shape.size());
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    std::memcpy(out.raw() + i * es, in.raw() + offset(idx) * es, es);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

void transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  std::vector<int64_t> perm = attr_ints(ctx.node, "perm");
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);  // default: reverse the axes
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < rank; ++i)
    if (static_cast<int64_t>(sorted.size()) != rank || sorted[i] != i)
      fail(ErrorCode::kInvalidArgument, "attribute 'perm' is not a permutation of " + std::to_string(rank) + " axes");
  Shape out;
  for (int64_t p : perm) out.push_back(x.dim(p));
  // The output as rows of its last axis, after dropping size-1 axes and merging output axes that
  // are also adjacent, in the same order, in the input (so [N, T, H, D] -> [N, H, T, D] becomes
  // rows of D contiguous elements). Rows are copied in parallel; the input offset of each row
  // follows an odometer over the outer axes.
  const auto st = strides_of(x.shape());
  std::vector<int64_t> dims, strides;  // merged output axes and their input strides
  int64_t prev = -2;
  for (int64_t p : perm) {
    if (x.dim(p) == 1) continue;
    if (p == prev + 1 && !dims.empty()) {
      dims.back() *= x.dim(p);
      strides.back() = st[p];
    } else {
      dims.push_back(x.dim(p));
      strides.push_back(st[p]);
    }
    prev = p;
  }
  Tensor y = Tensor::uninitialized(x.dtype(), out);  // every element is copied
  auto copy = [&](auto element) {
    using E = decltype(element);
    const E* src = reinterpret_cast<const E*>(x.raw());
    E* dst = reinterpret_cast<E*>(y.raw());
    if (y.numel() == 0) return;
    if (dims.empty()) {
      dst[0] = src[0];
      return;
    }
    const int64_t n = dims.back(), step = strides.back(), depth = static_cast<int64_t>(dims.size()) - 1;
    const int64_t rows = y.numel() / n;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, std::max<int64_t>(1, 4096 / n)),
                      [&](const tbb::blocked_range<int64_t>& range) {
                        std::vector<int64_t> idx(static_cast<size_t>(depth));
                        int64_t off = 0;
                        for (int64_t rest = range.begin(), k = depth - 1; k >= 0; --k) {
                          idx[k] = rest % dims[k];
                          rest /= dims[k];
                          off += idx[k] * strides[k];
                        }
                        for (int64_t row = range.begin(); row < range.end(); ++row) {
                          E* d = dst + row * n;
                          const E* s = src + off;
                          if (step == 1)
                            std::copy_n(s, n, d);
                          else
                            for (int64_t i = 0; i < n; ++i) d[i] = s[i * step];
                          for (int64_t k = depth - 1; k >= 0; --k) {
                            off += strides[k];
                            if (++idx[k] < dims[k]) break;
                            off -= strides[k] * idx[k];
                            idx[k] = 0;
                          }
                        }
                      });
  };
  switch (dtype_size(x.dtype())) {
    case 1: copy(uint8_t{}); break;
    case 2: copy(uint16_t{}); break;
    case 4: copy(uint32_t{}); break;
    case 8: copy(uint64_t{}); break;
    default: fail(ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
  }
  ctx.outputs[0] = std::move(y);
}

void concat_kernel(KernelContext& ctx) {
  const Tensor& first = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(first.rank());
  const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", 0), rank, "axis");
  Shape out = first.shape();
  out[axis] = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = ctx.input(i);
    bool ok = t.dtype() == first.dtype() && t.rank() == first.rank();
    for (int64_t d = 0; ok && d < rank; ++d) ok = d == axis || t.dim(d) == first.dim(d);
    if (!ok) fail(ErrorCode::kInvalidArgument, "input " + std::to_string(i) + " " + shape_str(t.shape()) +
                                                   " does not match " + shape_str(first.shape()));
    out[axis] += t.dim(axis);
  }
  Tensor y = Tensor::uninitialized(first.dtype(), out);  // every element is copied
  const size_t es = dtype_size(first.dtype());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  const int64_t out_block = shape_numel(out) / std::max<int64_t>(outer, 1);
  int64_t offset = 0;  // bytes into each output block
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = ctx.input(i);
    const int64_t block = outer ? t.numel() / outer : 0;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.raw() + (o * out_block) * es + offset, t.raw() + o * block * es, block * es);
    offset += block * es;
  }
  ctx.outputs[0] = std::move(y);
}

void split_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", 0), rank, "axis");
  const int64_t parts = static_cast<int64_t>(ctx.outputs.size());
  std::vector<int64_t> sizes = ctx.opset >= 13 ? (ctx.has_input(1) ? int_values(ctx.input(1), "split")
                                                                     : std::vector<int64_t>{})
                                               : attr_ints(ctx.node, "split");
  if (sizes.empty()) {
    if (x.dim(axis) % parts)
      fail(ErrorCode::kInvalidArgument, "axis of " + std::to_string(x.dim(axis)) + " does not split into " +
                                            std::to_string(parts) + " equal parts");
    sizes.assign(static_cast<size_t>(parts), x.dim(axis) / parts);
  }
  if (static_cast<int64_t>(sizes.size()) != parts ||
      std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) != x.dim(axis))
    fail(ErrorCode::kInvalidArgument, "split sizes do not add up to the axis length " + std::to_string(x.dim(axis)));
  const auto st = strides_of(x.shape());
  int64_t start = 0;
  for (int64_t p = 0; p < parts; ++p) {
    Shape out = x.shape();
    out[axis] = sizes[p];
    ctx.outputs[p] = gather_elements(x, out, [&](const std::vector<int64_t>& idx) {
      int64_t o = 0;
      for (int64_t d = 0; d < rank; ++d) o += (d == axis ? idx[d] + start : idx[d]) * st[d];
      return o;
    });
    start += sizes[p];
  }
}

void slice_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset >= 10) {
    starts = int_values(ctx.input(1), "starts");
    ends = int_values(ctx.input(2), "ends");
    if (ctx.has_input(3)) axes = int_values(ctx.input(3), "axes");
    if (ctx.has_input(4)) steps = int_values(ctx.input(4), "steps");
  } else {
    starts = attr_ints(ctx.node, "starts");
    ends = attr_ints(ctx.node, "ends");
    axes = attr_ints(ctx.node, "axes");
  }
  const SliceBox box = slice_box(x.shape(), starts, ends, std::move(axes), std::move(steps));
  const std::vector<int64_t>& begin = box.begin;
  const std::vector<int64_t>& step = box.step;
  const Shape& out = box.out;
  // Copy contiguous runs: the trailing axes taken whole, together with the step-1 range of the
  // axis before them, are one run in X and in Y; the axes before walk with stride * step.
  const auto st = strides_of(x.shape());
  int64_t run = 1, d = rank;
  while (d > 0 && step[d - 1] == 1 && out[d - 1] == x.dim(d - 1)) run *= out[--d];
  if (d > 0 && step[d - 1] == 1) run *= out[--d];
  int64_t base = 0;
  for (int64_t k = 0; k < rank; ++k) base += begin[k] * st[k];
  const Shape outer(out.begin(), out.begin() + d);
  std::vector<int64_t> outer_strides;
  for (int64_t k = 0; k < d; ++k) outer_strides.push_back(st[k] * step[k]);
  Tensor y = Tensor::uninitialized(x.dtype(), out);  // every element is copied
  const size_t es = dtype_size(x.dtype());
  if (y.numel() > 0)
    for_each_broadcast<1>(outer, {outer_strides}, [&](int64_t i, int64_t o) {
      std::memcpy(y.raw() + i * run * es, x.raw() + (base + o) * es, run * es);
    });
  ctx.outputs[0] = std::move(y);
}

SliceBox slice_box(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                   std::vector<int64_t> axes, std::vector<int64_t> steps) {
  const int64_t rank = static_cast<int64_t>(in.size());
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    fail(ErrorCode::kInvalidArgument, "starts, ends, axes and steps must have the same length");
  SliceBox box{std::vector<int64_t>(static_cast<size_t>(rank), 0), std::vector<int64_t>(static_cast<size_t>(rank), 1), in};
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = normalize_axis(axes[i], rank, "axis"), dim = in[a], s = steps[i];
    if (s == 0) fail(ErrorCode::kInvalidArgument, "slice step cannot be 0");
    // ONNX: negative indices count from the end; then clamp to [0, dim] (step > 0) or [-1, dim-1].
    int64_t b = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (s > 0) {
      b = std::clamp<int64_t>(b, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      box.out[a] = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = std::clamp<int64_t>(b, -1, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      box.out[a] = b > e ? (b - e - s - 1) / -s : 0;
    }
    box.begin[a] = b;
    box.step[a] = s;
  }
  return box;
}

Shape squeeze_shape(const Shape& in, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    const int64_t n = normalize_axis(a, rank, "axis");
    if (in[n] != 1) fail(ErrorCode::kInvalidArgument, "cannot squeeze axis " + std::to_string(a) + " of " + shape_str(in));
    drop[n] = true;
  }
  Shape out;
  for (int64_t d = 0; d < rank; ++d)
    if (!(axes.empty() ? in[d] == 1 : drop[d])) out.push_back(in[d]);
  return out;
}

Shape unsqueeze_shape(const Shape& in, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(in.size() + axes.size());
  std::vector<bool> inserted(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    const int64_t n = normalize_axis(a, rank, "axis");
    if (inserted[n]) fail(ErrorCode::kInvalidArgument, "axis " + std::to_string(a) + " is repeated");
    inserted[n] = true;
  }
  Shape out;
  size_t src = 0;
  for (int64_t d = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : in[src++]);
  return out;
}

void squeeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.outputs[0] = with_shape(ctx, squeeze_shape(x.shape(), axes_of(ctx, 1)));
}

void unsqueeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.outputs[0] = with_shape(ctx, unsqueeze_shape(x.shape(), axes_of(ctx, 1)));
}

void pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const std::string mode = attr_string(ctx.node, "mode", "constant");
  std::vector<int64_t> pads;
  Tensor value = Tensor(x.dtype(), {});
  if (ctx.opset >= 11) {
    pads = int_values(ctx.input(1), "pads");
    if (ctx.has_input(2) && ctx.input(2).numel() == 1) value = ctx.input(2).reshaped({});
  } else {
    pads = attr_ints(ctx.node, "pads");
    if (x.dtype() == DType::kFloat32) value = Tensor::scalar<float>(attr_float(ctx.node, "value", 0.0f));
  }
  if (static_cast<int64_t>(pads.size()) != 2 * rank)
    fail(ErrorCode::kInvalidArgument, "pads must have " + std::to_string(2 * rank) + " values");
  if (value.dtype() != x.dtype()) fail(ErrorCode::kInvalidArgument, "constant_value type differs from the input");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    fail(ErrorCode::kInvalidArgument, "mode '" + mode + "' is unknown");
  Shape out(x.shape());
  for (int64_t d = 0; d < rank; ++d) {
    out[d] += pads[d] + pads[d + rank];
    if (out[d] < 0) fail(ErrorCode::kInvalidArgument, "pads remove more than the whole axis");
    if (mode == "reflect" && (pads[d] >= x.dim(d) || pads[d + rank] >= x.dim(d)) && (pads[d] || pads[d + rank]))
      fail(ErrorCode::kInvalidArgument, "reflect padding must be smaller than the axis");
  }
  const auto st = strides_of(x.shape());
  // Offset -1 marks a padded element (constant mode); negative pads crop.
  Tensor y(x.dtype(), out);
  const size_t es = dtype_size(x.dtype());
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t o = 0;
    bool inside = true;
    for (int64_t d = 0; d < rank; ++d) {
      int64_t s = idx[d] - pads[d];
      const int64_t n = x.dim(d);
      if (s < 0 || s >= n) {
        if (mode == "constant") inside = false;
        else if (mode == "edge") s = std::clamp<int64_t>(s, 0, n - 1);
        else s = s < 0 ? -s : 2 * (n - 1) - s;  // reflect without repeating the edge
      }
      o += s * st[d];
    }
    std::memcpy(y.raw() + i * es, inside ? x.raw() + o * es : value.raw(), es);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  ctx.outputs[0] = std::move(y);
}

void gather_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const std::vector<int64_t> indices = [&] {
    const Tensor& t = ctx.input(1);
    return int_values(t.reshaped({t.numel()}), "indices");
  }();
  const Shape& ishape = ctx.input(1).shape();
  const int64_t rank = static_cast<int64_t>(x.rank());
  const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", 0), rank, "axis");
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), ishape.begin(), ishape.end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= d == axis ? 1 : x.dim(d);
  const int64_t n = x.dim(axis);
  Tensor y(x.dtype(), out);
  const size_t es = dtype_size(x.dtype());
  for (int64_t o = 0; o < outer; ++o)
    for (size_t j = 0; j < indices.size(); ++j) {
      int64_t k = indices[j] < 0 ? indices[j] + n : indices[j];
      if (k < 0 || k >= n)
        fail(ErrorCode::kInvalidArgument, "index " + std::to_string(indices[j]) + " is out of range for axis of " +
                                              std::to_string(n));
      std::memcpy(y.raw() + ((o * indices.size() + j) * inner) * es, x.raw() + ((o * n + k) * inner) * es,
                  inner * es);
    }
  ctx.outputs[0] = std::move(y);
}

void shape_kernel(KernelContext& ctx) {
  const Shape& s = ctx.input(0).shape();
  const int64_t rank = static_cast<int64_t>(s.size());
  // Opset 15: optional start/end (negative from the end, clamped).
  auto clampi = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  const int64_t start = clampi(attr_int(ctx.node, "start", 0)), end = clampi(attr_int(ctx.node, "end", rank));
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) dims.push_back(s[i]);
  ctx.outputs[0] = Tensor::from_vector<int64_t>({static_cast<int64_t>(dims.size())}, dims);
}

void size_kernel(KernelContext& ctx) { ctx.outputs[0] = Tensor::scalar<int64_t>(ctx.input(0).numel()); }

void cast_kernel(KernelContext& ctx) {
  const auto to = static_cast<DType>(attr_int(ctx.node, "to", 0));
  if (std::string(dtype_name(to)) == "undefined")  // complex, float8, ... or not a type at all
    fail(ErrorCode::kUnsupported, "attribute 'to': data type " + std::to_string(static_cast<int>(to)) +
                                      " is not supported");
  ctx.outputs[0] = ctx.input(0).cast(to);
}

void cast_like_kernel(KernelContext& ctx) { ctx.outputs[0] = ctx.input(0).cast(ctx.input(1).dtype()); }

void constant_of_shape_kernel(KernelContext& ctx) {
  const Shape shape = int_values(ctx.input(0), "shape");
  const onnx::AttributeProto* a = find_attribute(ctx.node, "value");
  const Tensor value = a ? tensor_from_proto(a->t()) : Tensor::scalar<float>(0.0f);
  if (value.numel() != 1) fail(ErrorCode::kInvalidArgument, "value must have one element");
  Tensor y(value.dtype(), shape);
  const size_t es = dtype_size(value.dtype());
  for (int64_t i = 0; i < y.numel(); ++i) std::memcpy(y.raw() + i * es, value.raw(), es);
  ctx.outputs[0] = std::move(y);
}

void expand_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Shape out = broadcast_shapes(x.shape(), int_values(ctx.input(1), "shape"));
  const auto st = broadcast_strides(x.shape(), out);
  ctx.outputs[0] = gather_elements(x, out, [&](const std::vector<int64_t>& idx) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * st[d];
    return o;
  });
}

}  // namespace anvil::ref
