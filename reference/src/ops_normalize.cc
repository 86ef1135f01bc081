// Operators that reduce along axes: Softmax, LogSoftmax, LayerNormalization, Reduce*, GlobalMaxPool.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "attributes.h"
#include "fast_exp.h"
#include "kernels.h"

namespace anvil::ref {

namespace {

const Tensor& float_input(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string("input must be float32, got ") + dtype_name(t.dtype()));
  return t;
}

/// Splits a shape at `axis` into outer x axis-length x inner.
struct Split3 {
  int64_t outer = 1, length = 1, inner = 1;
};
Split3 split_at(const Shape& s, int64_t axis) {
  Split3 r;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i)
    (i < axis ? r.outer : i == axis ? r.length : r.inner) *= s[i];
  return r;
}

void softmax(KernelContext& ctx, bool log) {
  const Tensor& x = float_input(ctx, 0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  Split3 d;
  if (ctx.opset >= 13) {
    d = split_at(x.shape(), normalize_axis(attr_int(ctx.node, "axis", -1), rank, "axis"));
  } else {
    // Opsets 1-12: the input is coerced to 2-D at `axis` and normalised over the trailing block.
    const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", 1), rank, "axis");
    for (int64_t i = 0; i < rank; ++i) (i < axis ? d.outer : d.length) *= x.dim(i);
  }
  Tensor y = Tensor::uninitialized(DType::kFloat32, x.shape());  // every row is written
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, d.outer * d.inner, [&](int64_t row) {
    const int64_t base = (row / d.inner) * d.length * d.inner + row % d.inner;
    // The maximum over 8 partial maxima, so the loop vectorises (a NaN anywhere makes the row NaN
    // below either way).
    float part_max[8];
    std::fill_n(part_max, 8, -std::numeric_limits<float>::infinity());
    int64_t m = 0;
    if (d.inner == 1)
      for (; m + 8 <= d.length; m += 8)
        for (int k = 0; k < 8; ++k) part_max[k] = std::max(part_max[k], xd[base + m + k]);
    for (; m < d.length; ++m) part_max[0] = std::max(part_max[0], xd[base + m * d.inner]);
    float mx = part_max[0];
    for (float v : part_max) mx = std::max(mx, v);
    // exp(x - max) is computed once per element and kept in y until the sum is known; the sum
    // runs in a separate loop over 8 partial sums so both loops vectorise.
    for (int64_t i = 0; i < d.length; ++i) yd[base + i * d.inner] = fast_exp_nonpositive(xd[base + i * d.inner] - mx);
    float partial[8] = {};
    int64_t j = 0;
    if (d.inner == 1)
      for (; j + 8 <= d.length; j += 8)
        for (int k = 0; k < 8; ++k) partial[k] += yd[base + j + k];
    for (; j < d.length; ++j) partial[0] += yd[base + j * d.inner];
    float sum = 0.0f;
    for (float p : partial) sum += p;
    if (log) {
      const float log_sum = std::log(sum);
      for (int64_t i = 0; i < d.length; ++i) yd[base + i * d.inner] = (xd[base + i * d.inner] - mx) - log_sum;
    } else {
      for (int64_t i = 0; i < d.length; ++i) yd[base + i * d.inner] /= sum;
    }
  });
  ctx.outputs[0] = std::move(y);
}

/// Reduction axes: from the `axes` input (ReduceSum from opset 13) or attribute; none means all
/// axes unless noop_with_empty_axes.
std::vector<bool> reduce_axes(const KernelContext& ctx, int64_t rank, bool axes_from_input) {
  std::vector<int64_t> axes;
  if (axes_from_input) {
    if (ctx.has_input(1)) axes = int_values(ctx.input(1), "axes");
  } else {
    axes = attr_ints(ctx.node, "axes");
  }
  std::vector<bool> reduce(static_cast<size_t>(rank), axes.empty());
  if (axes.empty() && attr_int(ctx.node, "noop_with_empty_axes", 0)) reduce.assign(static_cast<size_t>(rank), false);
  for (int64_t a : axes) reduce[normalize_axis(a, rank, "axis")] = true;
  return reduce;
}

template <typename Init, typename Combine, typename Finish>
void reduce(KernelContext& ctx, bool axes_from_input, Init init, Combine combine, Finish finish) {
  const Tensor& x = float_input(ctx, 0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const std::vector<bool> axes = reduce_axes(ctx, rank, axes_from_input);
  const bool keep = attr_int(ctx.node, "keepdims", 1) != 0;
  Shape out_shape, kept;  // kept: x's shape with reduced axes as 1
  int64_t count = 1;
  for (int64_t i = 0; i < rank; ++i) {
    kept.push_back(axes[i] ? 1 : x.dim(i));
    if (axes[i]) count *= x.dim(i);
    if (!axes[i] || keep) out_shape.push_back(axes[i] ? 1 : x.dim(i));
  }
  const int64_t out_n = shape_numel(kept);
  const float* xd = x.data<float>();
  Tensor y = Tensor::uninitialized(DType::kFloat32, out_shape);  // both paths write every output
  float* yd = y.data<float>();
  // Trailing axes reduced (LayerNorm-style ReduceMean over the last axis): each output is one
  // contiguous run of `count` inputs, summed in order as below, one row per task.
  int64_t first = rank;
  while (first > 0 && axes[first - 1]) --first;
  if (std::none_of(axes.begin(), axes.begin() + first, [](bool a) { return a; }) && count > 0) {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, out_n, std::max<int64_t>(1, 4096 / count)),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        for (int64_t o = r.begin(); o < r.end(); ++o) {
                          float a = init;
                          for (int64_t i = 0; i < count; ++i) a = combine(a, xd[o * count + i]);
                          yd[o] = finish(a, count);
                        }
                      });
    ctx.outputs[0] = std::move(y);
    return;
  }
  std::vector<float> acc(static_cast<size_t>(out_n), init);
  // Walk x in order, mapping each element to its output slot.
  std::vector<int64_t> out_strides(static_cast<size_t>(rank), 0);
  int64_t s = 1;
  for (int64_t i = rank - 1; i >= 0; --i) {
    out_strides[i] = axes[i] ? 0 : s;
    s *= kept[i];
  }
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  int64_t o = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    acc[o] = combine(acc[o], xd[i]);
    for (int64_t d = rank - 1; d >= 0; --d) {
      ++idx[d];
      o += out_strides[d];
      if (idx[d] < x.dim(d)) break;
      o -= out_strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < out_n; ++i) yd[i] = finish(acc[i], count);
  ctx.outputs[0] = std::move(y);
}

}  // namespace

void softmax_kernel(KernelContext& ctx) { softmax(ctx, false); }
void log_softmax_kernel(KernelContext& ctx) { softmax(ctx, true); }

void reduce_mean_kernel(KernelContext& ctx) {
  reduce(ctx, false, 0.0f, [](float a, float x) { return a + x; },
         [](float a, int64_t n) { return a / static_cast<float>(n); });
}
void reduce_sum_kernel(KernelContext& ctx) {
  reduce(ctx, ctx.opset >= 13, 0.0f, [](float a, float x) { return a + x; }, [](float a, int64_t) { return a; });
}
void reduce_max_kernel(KernelContext& ctx) {
  reduce(ctx, false, -std::numeric_limits<float>::infinity(), [](float a, float x) { return std::max(a, x); },
         [](float a, int64_t) { return a; });
}

void layer_norm_kernel(KernelContext& ctx) {
  const Tensor& x = float_input(ctx, 0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const int64_t axis = normalize_axis(attr_int(ctx.node, "axis", -1), rank, "axis");
  const float eps = attr_float(ctx.node, "epsilon", 1e-5f);
  int64_t outer = 1, inner = 1;  // normalised over the trailing `inner` elements from axis on
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= x.dim(i);
  const Tensor& scale = float_input(ctx, 1);
  const Tensor* bias = ctx.has_input(2) ? &float_input(ctx, 2) : nullptr;
  if (scale.numel() != inner || (bias && bias->numel() != inner))
    fail(ErrorCode::kInvalidArgument, "scale and B must have " + std::to_string(inner) + " elements");
  Tensor y = Tensor::uninitialized(DType::kFloat32, x.shape());  // every row is written
  // Optional outputs Mean and InvStdDev: X's shape with the normalised axes as 1.
  Shape stat_shape = x.shape();
  for (int64_t i = axis; i < rank; ++i) stat_shape[i] = 1;
  Tensor mean_out(DType::kFloat32, stat_shape), inv_out(DType::kFloat32, stat_shape);
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, outer, [&](int64_t r) {
    const float* row = xd + r * inner;
    float mean = 0.0f, var = 0.0f;
    for (int64_t i = 0; i < inner; ++i) mean += row[i];
    mean /= static_cast<float>(inner);
    for (int64_t i = 0; i < inner; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= static_cast<float>(inner);
    const float inv = 1.0f / std::sqrt(var + eps);
    mean_out.data<float>()[r] = mean;
    inv_out.data<float>()[r] = inv;
    for (int64_t i = 0; i < inner; ++i)
      yd[r * inner + i] = (row[i] - mean) * inv * scale.data<float>()[i] + (bias ? bias->data<float>()[i] : 0.0f);
  });
  ctx.outputs[0] = std::move(y);
  if (ctx.wants_output(1)) ctx.outputs[1] = std::move(mean_out);
  if (ctx.wants_output(2)) ctx.outputs[2] = std::move(inv_out);
}

void global_max_pool_kernel(KernelContext& ctx) {
  const Tensor& x = float_input(ctx, 0);
  if (x.rank() < 3) fail(ErrorCode::kInvalidArgument, "input must be N x C x spatial..., got " + shape_str(x.shape()));
  Shape out_shape = {x.dim(0), x.dim(1)};
  int64_t spatial = 1;
  for (size_t i = 2; i < x.rank(); ++i) spatial *= x.dim(i), out_shape.push_back(1);
  Tensor y(DType::kFloat32, out_shape);
  for (int64_t p = 0; p < x.dim(0) * x.dim(1); ++p) {
    const float* src = x.data<float>() + p * spatial;
    y.data<float>()[p] = *std::max_element(src, src + spatial);
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
