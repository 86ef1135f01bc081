// Conv (oneDNN), pooling and BatchNormalization, float32 (MaxPool also int8/uint8), NC + 1-3 spatial axes.
#include <dnnl.hpp>
#include <omp.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <unordered_map>

#include "attributes.h"
#include "dnnl_util.h"
#include "geometry.h"
#include "kernels.h"

namespace anvil::ref {

SerialDnnl::SerialDnnl() : saved_threads_(omp_get_max_threads()) { omp_set_num_threads(1); }
SerialDnnl::~SerialDnnl() { omp_set_num_threads(saved_threads_); }

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::primitive_attr user_scratchpad_with_clamp(bool clamp, float lo, float hi) {
  dnnl::primitive_attr attr = user_scratchpad();
  if (!clamp) return attr;
  dnnl::post_ops po;
  if (lo == 0.0f && std::isinf(hi) && hi > 0)
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  else
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, lo, hi);
  attr.set_post_ops(po);
  return attr;
}

dnnl::memory::dims dnnl_dilations(const std::vector<int64_t>& onnx_dilations) {
  dnnl::memory::dims gaps(onnx_dilations.begin(), onnx_dilations.end());
  for (auto& d : gaps) d -= 1;
  return gaps;
}

dnnl::memory scratchpad(const dnnl::memory::desc& desc) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Free> buffer;
  thread_local size_t capacity = 0;
  const size_t need = (desc.get_size() + 63) / 64 * 64;
  if (need > capacity) {
    buffer.reset(std::aligned_alloc(64, need));
    if (!buffer) fail(ErrorCode::kInternal, "out of memory for a oneDNN scratchpad");
    capacity = need;
  }
  return dnnl::memory(desc, cpu_engine(), buffer.get());
}

void reorder(const dnnl::memory& from, const dnnl::memory& to, dnnl::stream& stream) {
  const dnnl::reorder::primitive_desc pd(from, to, user_scratchpad());
  dnnl::reorder(pd).execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}});
}

namespace {

/// Input i of a 2-D or 3-D window node (1-D ones arrive lifted to 2-D by run_as_2d), of one of
/// `types`.
const Tensor& window_input(const KernelContext& ctx, size_t i, const char* what,
                           std::initializer_list<DType> types = {DType::kFloat32}) {
  const Tensor& t = ctx.input(i);
  if (std::find(types.begin(), types.end(), t.dtype()) == types.end())
    fail(ErrorCode::kUnsupported, std::string(what) + " has unsupported type " + dtype_name(t.dtype()));
  if (t.rank() != 4 && t.rank() != 5)
    fail(ErrorCode::kUnsupported, std::string(what) + " must be N x C x L, N x C x H x W or N x C x D x H x W "
                                  "(1-D, 2-D and 3-D windows), got " + shape_str(t.shape()));
  return t;
}

std::vector<int64_t> kernel_attr(const onnx::NodeProto& node) {
  const auto k = attr_ints(node, "kernel_shape");
  if (k.size() != 2 && k.size() != 3)
    fail(ErrorCode::kUnsupported, "attribute 'kernel_shape' must have 1, 2 or 3 values (1-D, 2-D and 3-D windows)");
  return k;
}

/// The spatial sizes of an N x C x spatial... tensor.
std::vector<int64_t> spatial_dims(const Tensor& t) { return {t.shape().begin() + 2, t.shape().end()}; }

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
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
/// which the outputs (Y, and MaxPool's Indices, whose flat values a height-1 axis leaves unchanged)
/// lose again.
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
  KernelContext inner{node, ctx.opset, inputs, ctx.outputs, ctx.cache, ctx.constant_inputs};
  inner.activation = ctx.activation;
  kernel(inner);
  for (size_t i = 0; i < ctx.outputs.size(); ++i)
    if (ctx.wants_output(i)) {
      const Tensor& y = ctx.outputs[i];
      ctx.outputs[i] = y.reshaped({y.dim(0), y.dim(1), y.dim(3)});
    }
}

/// Validates strides, dilations, pads and auto_pad by computing the geometry of a large input
/// (the input's real size is known only at run time).
void check_window(const onnx::NodeProto& node, const std::vector<int64_t>& kernel) {
  constexpr int64_t kLarge = int64_t{1} << 20;
  window_geometry_nd(node, std::vector<int64_t>(kernel.size(), kLarge), kernel, false);
}

/// Splits [0, total) into at most `pieces` ranges of multiples of `align` (the last takes the rest).
std::vector<std::pair<int64_t, int64_t>> split_range(int64_t total, int64_t pieces, int64_t align) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const int64_t units = (total + align - 1) / align;
  pieces = std::max<int64_t>(1, std::min(pieces, units));
  int64_t begin = 0;
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t end = p + 1 == pieces ? total : std::min(total, (units * (p + 1) / pieces) * align);
    if (end > begin) out.emplace_back(begin, end - begin);
    begin = end;
  }
  return out;
}

/// reorder() of an N x C x spatial... tensor split over the TBB pool by ranges of 16 channels (whole
/// blocks of every blocked layout oneDNN picks for float32); one call when C is not a multiple of
/// 16 (the last block would be padded, and the padding is written only by a whole-tensor reorder).
void parallel_reorder(const dnnl::memory& from, const dnnl::memory& to, int64_t threads) {
  const dnnl::memory::dims dims = from.get_desc().dims();
  if (threads == 1 || dims[1] % 16 != 0 || dims[1] == 16) {
    SerialDnnl serial;
    dnnl::stream stream(cpu_engine());
    reorder(from, to, stream);
    stream.wait();
    return;
  }
  const std::vector<std::pair<int64_t, int64_t>> ranges = split_range(dims[1], threads, 16);
  tbb::parallel_for(size_t{0}, ranges.size(), [&](size_t i) {
    SerialDnnl serial;
    dnnl::stream stream(cpu_engine());
    dnnl::memory::dims sub = dims, offsets(dims.size(), 0);
    sub[1] = ranges[i].second;
    offsets[1] = ranges[i].first;
    const dnnl::memory sub_from(from.get_desc().submemory_desc(sub, offsets), cpu_engine(), from.get_data_handle());
    const dnnl::memory sub_to(to.get_desc().submemory_desc(sub, offsets), cpu_engine(), to.get_data_handle());
    reorder(sub_from, sub_to, stream);
    stream.wait();
  });
}

/// {a, b, rest...}: oneDNN dims of an N x C x spatial... tensor (or O x I x kernel... weights).
dnnl::memory::dims join(std::initializer_list<int64_t> head, const std::vector<int64_t>& rest) {
  dnnl::memory::dims d(head);
  d.insert(d.end(), rest.begin(), rest.end());
  return d;
}

/// A float32 N x C x spatial... slice of a tensor with `c` channels: plain layout with that
/// tensor's strides.
dnnl::memory::desc nc_slice_desc(int64_t n, int64_t slice_c, int64_t c, const std::vector<int64_t>& spatial) {
  dnnl::memory::dims strides(spatial.size() + 2, 1);
  for (size_t i = spatial.size(); i-- > 0;) strides[i + 1] = strides[i + 2] * spatial[i];
  strides[0] = c * strides[1];
  return dnnl::memory::desc(join({n, slice_c}, spatial), dnnl::memory::data_type::f32, strides);
}

/// One oneDNN convolution over a slice of the work: images [n0, n0 + n) and output channels
/// [m0, m0 + m) (for grouped convolutions whole groups, whose input channels are [c0, c0 + c)).
/// Its primitive picks the fastest layouts for one thread (format_tag::any); `weights` holds the
/// slice's weights already reordered into that layout (empty when W is not an initializer).
struct ConvPart {
  int64_t n0 = 0, n = 0, m0 = 0, m = 0, c0 = 0, c = 0, groups = 1;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  dnnl::memory weights;
};

/// True when two parts convolve the same channels of the same number of images.
bool same_slice(const ConvPart& a, const ConvPart& b) {
  return a.n == b.n && a.m0 == b.m0 && a.m == b.m && a.c0 == b.c0 && a.c == b.c && a.groups == b.groups;
}

/// Input plus output bytes of the images one part converts and convolves at a time (about half
/// of a core's L2 cache on the machines we measure).
constexpr int64_t kChunkBytes = int64_t{512} << 10;

/// A Conv node's plan for one input shape: its parts run side by side on the TBB pool, each on one
/// thread (see SerialDnnl).
struct ConvPlan {
  std::vector<ConvPart> parts;
  /// All parts read the whole input in the same layout (a split by output channels): it is
  /// reordered once, before the parts run, instead of once per part.
  bool shared_src = false;
};

/// Conv on oneDNN. Output y = bias + sum over the window of x * w, accumulated in float32 by
/// oneDNN's kernels (the summation order differs from a naive loop, within float rounding).
///
/// Threads: Debian's oneDNN runs on OpenMP, the executor on TBB; two pools of spinning workers on
/// the same cores slow each other down several times (docs/performance.md). So every oneDNN call
/// runs single-threaded on a TBB worker (SerialDnnl), and the Conv is split across the TBB pool:
/// by images when the batch has at least as many images as there are threads, else by output
/// channels (by groups for grouped and depthwise convolutions). Each part is a complete
/// convolution of its slice, so the result does not depend on the split.
void dnnl_conv(KernelContext& ctx, const Tensor& x, const Tensor& w, const float* bias, int64_t group,
               const WindowNd& g, Tensor& y) {
  using dnnl::memory;
  using tag = memory::format_tag;
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0);
  const std::vector<int64_t> in = spatial_dims(x), k = spatial_dims(w), out = g.out;
  const int64_t in_size = product(in), k_size = product(k), out_size = product(out);
  const bool three_d = in.size() == 3;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  const bool constant_w = ctx.cache && ctx.is_constant(1);
  const float* wdata = w.data<float>();

  // The part's weights in OI(D)HW (group 1) or GOI(D)HW, as stored in W: a contiguous slice.
  auto user_weights = [&](const ConvPart& p) {
    const memory::dims dims = group == 1 ? join({p.m, c}, k) : join({p.groups, m / group, c / group}, k);
    const float* base = wdata + p.m0 * (c / group) * k_size;
    const tag layout = group == 1 ? (three_d ? tag::oidhw : tag::oihw) : (three_d ? tag::goidhw : tag::goihw);
    return memory(memory::desc(dims, memory::data_type::f32, layout), cpu_engine(), const_cast<float*>(base));
  };
  auto make_plan = [&] {
    SerialDnnl serial;
    auto plan = std::make_shared<ConvPlan>();
    std::vector<ConvPart> parts;
    auto add = [&](int64_t n0, int64_t nn, int64_t m0, int64_t mm, int64_t c0, int64_t cc, int64_t groups) {
      ConvPart p;
      p.n0 = n0, p.n = nn, p.m0 = m0, p.m = mm, p.c0 = c0, p.c = cc, p.groups = groups;
      parts.push_back(std::move(p));
    };
    if (n >= threads || (group == 1 && m < 32) || (group > 1 && group < threads)) {
      // Chunks of images small enough that a chunk's input and output stay in a core's cache
      // between the layout reorders and the convolution; at least one chunk per thread.
      const int64_t image_bytes = (c * in_size + m * out_size) * static_cast<int64_t>(sizeof(float));
      const int64_t per_chunk = std::max<int64_t>(1, std::min((n + threads - 1) / threads, kChunkBytes / image_bytes));
      for (auto [n0, nn] : split_range(n, (n + per_chunk - 1) / per_chunk, 1)) add(n0, nn, 0, m, 0, c, group);
    } else if (group == 1) {
      for (auto [m0, mm] : split_range(m, threads, 16)) add(0, n, m0, mm, 0, c, 1);
    } else {
      const int64_t mg = m / group, cg = c / group;
      for (auto [g0, gg] : split_range(group, threads, std::max<int64_t>(1, 16 / mg)))
        add(0, n, g0 * mg, gg * mg, g0 * cg, gg * cg, gg);
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      ConvPart& p = parts[i];
      if (i > 0 && same_slice(p, parts[i - 1])) {  // chunks of equal size share one primitive
        p.pd = parts[i - 1].pd;
        p.conv = parts[i - 1].conv;
        continue;
      }
      const memory::dims w_dims =
          group == 1 ? join({p.m, p.c}, k) : join({p.groups, p.m / p.groups, p.c / p.groups}, k);
      const memory::desc any_src(join({p.n, p.c}, in), memory::data_type::f32, tag::any);
      const memory::desc any_w(w_dims, memory::data_type::f32, tag::any);
      const memory::desc any_dst(join({p.n, p.m}, out), memory::data_type::f32, tag::any);
      const memory::dims gaps = dnnl_dilations(g.dilations);
      const memory::desc bias_md = bias ? memory::desc({p.m}, memory::data_type::f32, tag::x) : memory::desc();
      // oneDNN's dilation counts the gaps (ONNX dilation - 1); its padding is the begin and the
      // end pads, the latter consistent with the output size ONNX computes.
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                              dnnl::algorithm::convolution_direct, any_src, any_w, bias_md, any_dst,
                                              g.strides, gaps, g.pads_begin, g.pads_end);
      // A fused Relu/Clip as oneDNN post-op.
      const dnnl::primitive_attr attr =
          user_scratchpad_with_clamp(ctx.activation.on, ctx.activation.lo, ctx.activation.hi);
      p.pd = dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
      p.conv = dnnl::convolution_forward(p.pd);
    }
    plan->shared_src = parts.size() > 1 && std::all_of(parts.begin(), parts.end(), [&](const ConvPart& p) {
      return p.n == n && p.c == c && p.pd.src_desc() == parts[0].pd.src_desc();
    });
    plan->parts = std::move(parts);
    return plan;
  };
  std::shared_ptr<const ConvPlan> plan;
  if (ctx.cache) {
    // Cache the plan (and the reordered weights, when they are an initializer) per input shape.
    plan = ctx.cache->get<ConvPlan>(
        "conv " + shape_str(x.shape()) + " threads " + std::to_string(threads) + (constant_w ? " w" : "") +
            (ctx.activation.on ? " act " + std::to_string(ctx.activation.lo) + " " + std::to_string(ctx.activation.hi)
                               : std::string()),
        [&] {
          std::shared_ptr<ConvPlan> made = make_plan();
          if (constant_w) {
            // Parts with the same weights (chunks of images) share one reordered copy.
            std::vector<size_t> owners;
            for (size_t i = 0; i < made->parts.size(); ++i)
              if (i == 0 || made->parts[i].m0 != made->parts[0].m0 || made->parts[i].m != made->parts[0].m ||
                  made->parts[i].pd.weights_desc() != made->parts[0].pd.weights_desc())
                owners.push_back(i);
            tbb::parallel_for(size_t{0}, owners.size(), [&](size_t k) {
              SerialDnnl serial;
              ConvPart& p = made->parts[owners[k]];
              p.weights = memory(p.pd.weights_desc(), cpu_engine());
              dnnl::stream stream(cpu_engine());
              memory user = user_weights(p);
              reorder(user, p.weights, stream);
              stream.wait();
            });
            for (ConvPart& p : made->parts)
              if (!p.weights) p.weights = made->parts[0].weights;
          }
          return std::shared_ptr<const ConvPlan>(std::move(made));
        });
  } else {
    plan = make_plan();
  }
  float* ydata = y.data<float>();
  const float* xdata = x.data<float>();
  memory shared_src;
  if (plan->shared_src) {
    const memory user(memory::desc(join({n, c}, in), memory::data_type::f32, three_d ? tag::ncdhw : tag::nchw),
                      cpu_engine(), const_cast<float*>(xdata));
    shared_src = user;
    if (plan->parts[0].pd.src_desc() != user.get_desc()) {
      shared_src = memory(plan->parts[0].pd.src_desc(), cpu_engine());
      parallel_reorder(user, shared_src, threads);
    }
  }
  tbb::parallel_for(size_t{0}, plan->parts.size(), [&](size_t i) {
    SerialDnnl serial;
    const ConvPart& p = plan->parts[i];
    dnnl::stream stream(cpu_engine());
    // The part's slices of X and Y, NC(D)HW with the whole tensor's strides.
    const memory user_src(nc_slice_desc(p.n, p.c, c, in), cpu_engine(),
                          const_cast<float*>(xdata + (p.n0 * c + p.c0) * in_size));
    const memory user_dst(nc_slice_desc(p.n, p.m, m, out), cpu_engine(), ydata + (p.n0 * m + p.m0) * out_size);
    memory src = plan->shared_src ? shared_src : user_src, dst = user_dst, weights = p.weights;
    if (!plan->shared_src && p.pd.src_desc() != user_src.get_desc()) {
      src = memory(p.pd.src_desc(), cpu_engine());
      reorder(user_src, src, stream);
    }
    if (!constant_w) {
      memory user = user_weights(p);
      weights = user;
      if (p.pd.weights_desc() != user.get_desc()) {
        weights = memory(p.pd.weights_desc(), cpu_engine());
        reorder(user, weights, stream);
      }
    }
    if (p.pd.dst_desc() != user_dst.get_desc()) dst = memory(p.pd.dst_desc(), cpu_engine());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad(p.pd.scratchpad_desc()));
    if (bias)
      args.emplace(DNNL_ARG_BIAS, memory(memory::desc({p.m}, memory::data_type::f32, tag::x), cpu_engine(),
                                         const_cast<float*>(bias + p.m0)));
    p.conv.execute(stream, args);
    if (dst.get_data_handle() != user_dst.get_data_handle())
      reorder(dst, user_dst, stream);
    stream.wait();
  });
}

}  // namespace

void conv_check(const onnx::NodeProto& node_any_d, int64_t) {
  const onnx::NodeProto node = as_2d(node_any_d);
  if (attr_int(node, "group", 1) < 1) fail(ErrorCode::kInvalidArgument, "attribute 'group' must be >= 1");
  if (find_attribute(node, "kernel_shape")) return check_window(node, kernel_attr(node));
  // Without kernel_shape W gives the number of spatial dimensions at run time; here the first of
  // strides, dilations and pads that is present gives it (2 when none is).
  size_t spatial = 2;
  if (find_attribute(node, "strides")) spatial = attr_ints(node, "strides").size();
  else if (find_attribute(node, "dilations")) spatial = attr_ints(node, "dilations").size();
  else if (find_attribute(node, "pads")) spatial = attr_ints(node, "pads").size() / 2;
  check_window(node, std::vector<int64_t>(spatial, 1));
}

void max_pool_check(const onnx::NodeProto& node_1d_or_2d, int64_t) {
  const onnx::NodeProto node = as_2d(node_1d_or_2d);
  const int64_t storage_order = attr_int(node, "storage_order", 0);
  if (storage_order != 0 && storage_order != 1)
    fail(ErrorCode::kInvalidArgument, "attribute 'storage_order' must be 0 or 1, got " + std::to_string(storage_order));
  check_window(node, kernel_attr(node));
}

void average_pool_check(const onnx::NodeProto& node_1d_or_2d, int64_t) {
  const onnx::NodeProto node = as_2d(node_1d_or_2d);
  // AveragePool has dilations only from opset 19.
  if (find_attribute(node, "dilations"))
    fail(ErrorCode::kUnsupported, "attribute 'dilations' is not part of AveragePool up to opset 17");
  check_window(node, kernel_attr(node));
}

void batch_norm_check(const onnx::NodeProto& node, int64_t opset) {
  // Opset 14+ training mode has outputs Y, running_mean, running_var. Opsets 9-13 define training
  // by the presence of extra outputs (Y, mean, var, saved_mean, saved_var): not supported.
  const bool training = attr_int(node, "training_mode", 0) != 0;
  if (training && opset < 14)
    fail(ErrorCode::kUnsupported, "attribute 'training_mode' exists from opset 14, the model has opset " +
                                      std::to_string(opset));
  if (!training && node.output_size() > 1)
    fail(ErrorCode::kUnsupported, "has " + std::to_string(node.output_size()) +
                                      " outputs: the statistics outputs exist only in training mode (opset 14+)");
}

void conv_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, conv_kernel);
  const Tensor& x = window_input(ctx, 0, "input X");
  const Tensor& w = window_input(ctx, 1, "weight W");
  const int64_t n = x.dim(0), c = x.dim(1);
  const int64_t m = w.dim(0), group = attr_int(ctx.node, "group", 1);
  if (group < 1 || c % group || m % group || w.dim(1) != c / group || w.rank() != x.rank())
    fail(ErrorCode::kInvalidArgument, "weight " + shape_str(w.shape()) + " does not match input " +
                                          shape_str(x.shape()) + " with group " + std::to_string(group));
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor& b = ctx.input(2);
    if (b.dtype() != DType::kFloat32 || b.numel() != m)
      fail(ErrorCode::kInvalidArgument, "bias must be float32 [" + std::to_string(m) + "]");
    bias = b.data<float>();
  }
  const std::vector<int64_t> kernel = spatial_dims(w);
  if (find_attribute(ctx.node, "kernel_shape") && kernel_attr(ctx.node) != kernel)
    fail(ErrorCode::kInvalidArgument, "attribute 'kernel_shape' does not match the weight shape");
  const WindowNd g = window_geometry_nd(ctx.node, spatial_dims(x), kernel, false);
  Tensor y(DType::kFloat32, join({n, m}, g.out));
  if (y.numel() > 0) dnnl_conv(ctx, x, w, bias, group, g, y);
  ctx.outputs[0] = std::move(y);
}

namespace {

/// One output position's window along one spatial axis: kernel taps [first, last) fall inside the
/// input, `origin` is the input coordinate of tap 0, `padded` counts the taps inside the padded
/// input (AveragePool's count_include_pad divisor; the part of a ceil_mode window that hangs beyond
/// the end padding is not counted, as ONNX Runtime does).
struct AxisWindow {
  int64_t first = 0, last = 0, origin = 0, padded = 0;
};

/// AxisWindow of every output position along every spatial axis, computed once per node so the
/// loop over the planes needs no bounds checks.
std::vector<std::vector<AxisWindow>> axis_windows(const WindowNd& g, const std::vector<int64_t>& in) {
  std::vector<std::vector<AxisWindow>> axes(in.size());
  for (size_t a = 0; a < in.size(); ++a) {
    const int64_t k = g.kernel[a], d = g.dilations[a];
    for (int64_t o = 0; o < g.out[a]; ++o) {
      AxisWindow w;
      w.origin = o * g.strides[a] - g.pads_begin[a];
      w.last = k;
      while (w.first < k && w.origin + w.first * d < 0) ++w.first;
      while (w.last > w.first && w.origin + (w.last - 1) * d >= in[a]) --w.last;
      for (int64_t t = 0; t < k; ++t) w.padded += w.origin + t * d < in[a] + g.pads_end[a];
      axes[a].push_back(w);
    }
  }
  return axes;
}

/// Shared loop of the N-D pooling kernels: for every plane (image and channel) and output position,
/// calls visit(plane, output offset within the plane, windows), `windows` holding one AxisWindow
/// per spatial axis.
template <typename Visit>
void for_each_window(int64_t planes, const std::vector<std::vector<AxisWindow>>& axes, Visit visit) {
  std::vector<int64_t> out;
  for (const auto& a : axes) out.push_back(static_cast<int64_t>(a.size()));
  const int64_t out_size = product(out);
  tbb::parallel_for(int64_t{0}, planes, [&](int64_t plane) {
    std::vector<int64_t> at(out.size(), 0);  // output coordinates, row-major odometer
    std::vector<const AxisWindow*> windows(out.size());
    for (int64_t o = 0; o < out_size; ++o) {
      for (size_t a = 0; a < out.size(); ++a) windows[a] = &axes[a][at[a]];
      visit(plane, o, windows);
      for (size_t a = out.size(); a-- > 0;) {
        if (++at[a] < out[a]) break;
        at[a] = 0;
      }
    }
  });
}

/// Calls tap(input coordinates) for every tap of one window inside the input, in row-major order.
template <typename Tap>
void for_each_tap(const std::vector<const AxisWindow*>& windows, const std::vector<int64_t>& dilations, Tap tap) {
  const size_t rank = windows.size();
  for (const AxisWindow* w : windows)
    if (w->first >= w->last) return;
  std::vector<int64_t> k(rank), at(rank);
  for (size_t a = 0; a < rank; ++a) k[a] = windows[a]->first;
  while (true) {
    for (size_t a = 0; a < rank; ++a) at[a] = windows[a]->origin + k[a] * dilations[a];
    tap(at);
    size_t a = rank;
    while (a-- > 0) {
      if (++k[a] < windows[a]->last) break;
      k[a] = windows[a]->first;
    }
    if (a == static_cast<size_t>(-1)) return;
  }
}

/// MaxPool over any number of spatial axes and any element type, with the optional Indices output:
/// the flat index into X of the (first) largest value, the spatial part row-major
/// (storage_order 0) or column-major (storage_order 1), as ONNX Runtime computes it.
template <typename T>
void max_pool_nd(KernelContext& ctx, const Tensor& x, const WindowNd& g) {
  const std::vector<int64_t> in = spatial_dims(x);
  const int64_t in_size = product(in), out_size = product(g.out);
  const bool column_major = attr_int(ctx.node, "storage_order", 0) != 0;
  std::vector<int64_t> row_stride(in.size(), 1), col_stride(in.size(), 1);
  for (size_t a = in.size() - 1; a-- > 0;) row_stride[a] = row_stride[a + 1] * in[a + 1];
  for (size_t a = 1; a < in.size(); ++a) col_stride[a] = col_stride[a - 1] * in[a - 1];
  const bool want_indices = ctx.wants_output(1);
  Tensor y(x.dtype(), join({x.dim(0), x.dim(1)}, g.out));
  Tensor indices(DType::kInt64, want_indices ? y.shape() : Shape{0});
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
  int64_t* id = indices.data<int64_t>();
  const auto axes = axis_windows(g, in);
  for_each_window(x.dim(0) * x.dim(1), axes, [&](int64_t plane, int64_t o, const auto& windows) {
    // -inf for float (a window with no tap inside the input yields it), else the type's minimum.
    T best = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                  : std::numeric_limits<T>::lowest();
    int64_t best_at = -1;
    for_each_tap(windows, g.dilations, [&](const std::vector<int64_t>& at) {
      int64_t row = 0, col = 0;
      for (size_t a = 0; a < at.size(); ++a) row += at[a] * row_stride[a], col += at[a] * col_stride[a];
      const T v = xd[plane * in_size + row];
      if (best_at < 0 || v > best) best = v, best_at = column_major ? col : row;
    });
    yd[plane * out_size + o] = best;
    if (want_indices) id[plane * out_size + o] = plane * in_size + best_at;
  });
  ctx.outputs[0] = std::move(y);
  if (want_indices) ctx.outputs[1] = std::move(indices);
}

}  // namespace

void max_pool_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, max_pool_kernel);
  const Tensor& x = window_input(ctx, 0, "input X", {DType::kFloat32, DType::kUInt8, DType::kInt8});
  const WindowNd g =
      window_geometry_nd(ctx.node, spatial_dims(x), kernel_attr(ctx.node), attr_int(ctx.node, "ceil_mode", 0));
  if (x.rank() != 4 || x.dtype() != DType::kFloat32 || ctx.wants_output(1)) {
    if (x.dtype() == DType::kFloat32) return max_pool_nd<float>(ctx, x, g);
    if (x.dtype() == DType::kUInt8) return max_pool_nd<uint8_t>(ctx, x, g);
    return max_pool_nd<int8_t>(ctx, x, g);
  }
  // The common float32 2-D case without Indices (every CNN's stem) runs a loop specialised for two
  // axes: taps by row and column, no per-tap coordinate arithmetic.
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t oh = g.out[0], ow = g.out[1];
  const int64_t dy = g.dilations[0], dx = g.dilations[1];
  const auto axes = axis_windows(g, {h, w});
  const std::vector<AxisWindow>&rows = axes[0], &cols = axes[1];
  Tensor y(DType::kFloat32, {n, c, oh, ow});
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n * c), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t plane = r.begin(); plane < r.end(); ++plane) {
      const float* in = xd + plane * h * w;
      float* out = yd + plane * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t ky0 = rows[oy].first, ky1 = rows[oy].last, y0 = rows[oy].origin;
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t kx0 = cols[ox].first, kx1 = cols[ox].last, x0 = cols[ox].origin;
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t ky = ky0; ky < ky1; ++ky) {
            const float* line = in + (y0 + ky * dy) * w + x0;
            for (int64_t kx = kx0; kx < kx1; ++kx) best = std::max(best, line[kx * dx]);
          }
          out[oy * ow + ox] = best;
        }
      }
    }
  });
  ctx.outputs[0] = std::move(y);
}

void average_pool_kernel(KernelContext& ctx) {
  if (ctx.input(0).rank() == 3) return run_as_2d(ctx, average_pool_kernel);
  const Tensor& x = window_input(ctx, 0, "input X");
  const std::vector<int64_t> in = spatial_dims(x);
  const WindowNd g = window_geometry_nd(ctx.node, in, kernel_attr(ctx.node), attr_int(ctx.node, "ceil_mode", 0));
  const bool include_pad = attr_int(ctx.node, "count_include_pad", 0) != 0;
  const int64_t in_size = product(in), out_size = product(g.out);
  std::vector<int64_t> row_stride(in.size(), 1);
  for (size_t a = in.size() - 1; a-- > 0;) row_stride[a] = row_stride[a + 1] * in[a + 1];
  Tensor y(DType::kFloat32, join({x.dim(0), x.dim(1)}, g.out));
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  for_each_window(x.dim(0) * x.dim(1), axis_windows(g, in), [&](int64_t plane, int64_t o, const auto& windows) {
    // The window is a box: its taps inside the input (or the padded input) are the product of
    // the counts along each axis. Sums in row-major order over the taps inside the input.
    int64_t count = 1;
    for (const AxisWindow* w : windows) count *= include_pad ? w->padded : w->last - w->first;
    float sum = 0.0f;
    for_each_tap(windows, g.dilations, [&](const std::vector<int64_t>& at) {
      int64_t row = 0;
      for (size_t a = 0; a < at.size(); ++a) row += at[a] * row_stride[a];
      sum += xd[plane * in_size + row];
    });
    yd[plane * out_size + o] = count ? sum / static_cast<float>(count) : 0.0f;
  });
  ctx.outputs[0] = std::move(y);
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
  const float* xd = x.data<float>();
  const int64_t planes = x.dim(0) * c;
  // Training mode (opset 14): normalise with this batch's per-channel mean and population
  // variance, and output the running statistics
  //   running = input_stat * momentum + batch_stat * (1 - momentum).
  std::vector<float> batch_mean, batch_var;
  if (attr_int(ctx.node, "training_mode", 0) != 0) {
    const double momentum = attr_float(ctx.node, "momentum", 0.9f);
    const int64_t count = x.dim(0) * inner;
    batch_mean.resize(static_cast<size_t>(c));
    batch_var.resize(static_cast<size_t>(c));
    Tensor running_mean(DType::kFloat32, {c}), running_var(DType::kFloat32, {c});
    tbb::parallel_for(int64_t{0}, c, [&](int64_t ch) {
      double sum = 0, sq = 0;
      for (int64_t n = 0; n < x.dim(0); ++n)
        for (int64_t i = 0; i < inner; ++i) sum += xd[(n * c + ch) * inner + i];
      const double mean = count ? sum / static_cast<double>(count) : 0.0;
      for (int64_t n = 0; n < x.dim(0); ++n)
        for (int64_t i = 0; i < inner; ++i) {
          const double d = xd[(n * c + ch) * inner + i] - mean;
          sq += d * d;
        }
      const double var = count ? sq / static_cast<double>(count) : 0.0;
      batch_mean[ch] = static_cast<float>(mean);
      batch_var[ch] = static_cast<float>(var);
      running_mean.data<float>()[ch] = static_cast<float>(p[2][ch] * momentum + mean * (1.0 - momentum));
      running_var.data<float>()[ch] = static_cast<float>(p[3][ch] * momentum + var * (1.0 - momentum));
    });
    p[2] = batch_mean.data();
    p[3] = batch_var.data();
    if (ctx.wants_output(1)) ctx.outputs[1] = std::move(running_mean);
    if (ctx.wants_output(2)) ctx.outputs[2] = std::move(running_var);
  }
  // In place when X is not read again (x refers to the moved-from value after this).
  Tensor y = ctx.reusable(0) ? std::move(*ctx.reusable(0)) : Tensor(DType::kFloat32, x.shape());
  float* yd = y.data<float>();
  tbb::parallel_for(int64_t{0}, planes, [&](int64_t plane) {
    const int64_t ch = plane % c;
    const float a = p[0][ch] / std::sqrt(p[3][ch] + eps);
    const float b = p[1][ch] - p[2][ch] * a;
    for (int64_t i = 0; i < inner; ++i) yd[plane * inner + i] = xd[plane * inner + i] * a + b;
  });
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
