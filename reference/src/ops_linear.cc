// Gemm and MatMul, float32, on oneDNN's sgemm split over the TBB pool.
#include <dnnl.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>

#include <cstring>
#include <memory>
#include <unordered_map>

#include "attributes.h"
#include "broadcast.h"
#include "dnnl_util.h"
#include "kernels.h"

namespace anvil::ref {

namespace {
const Tensor& float_input(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string(what) + " must be float32, got " + dtype_name(t.dtype()));
  return t;
}

/// Row-major C[m x n] = alpha * A[m x k] * B[k x n] + beta * C (A and B optionally transposed,
/// with leading dimensions lda, ldb, ldc), on oneDNN's sgemm, single-threaded on this thread.
void sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  SerialDnnl serial;
  if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) !=
      dnnl_success)
    fail(ErrorCode::kInternal, "oneDNN sgemm failed for " + std::to_string(m) + " x " + std::to_string(n) + " x " +
                                   std::to_string(k));
}

/// Products smaller than this many multiply-adds run on one thread: splitting them cost more than
/// it saved (measured: mlp's 100 x 784 x 256 Gemm and vit's products ran faster unsplit on the
/// loaded 2-core machine, docs/performance.md).
constexpr int64_t kParallelGemmMacs = int64_t{1} << 25;

/// Row-major C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, split over the TBB pool by
/// rows of C (by columns when C has fewer rows than threads). Every element of C is computed by
/// one sgemm call over the whole of K, so the split does not change the result.
/// Why not OpenBLAS: its pthread pool spins beside TBB's and oneDNN's (docs/performance.md).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
           float beta, float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: C = beta * C
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == 0.0f ? 0.0f : beta * c[i];
    return;
  }
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  if (threads == 1 || m * n * k < kParallelGemmMacs) return sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
  const bool by_rows = m >= threads * 4 || m >= n;
  const int64_t total = by_rows ? m : n, pieces = std::min(total, threads);
  tbb::parallel_for(int64_t{0}, pieces, [&](int64_t p) {
    const int64_t begin = total * p / pieces, end = total * (p + 1) / pieces;
    if (by_rows)
      sgemm_serial(trans_a, trans_b, end - begin, n, k, alpha, trans_a ? a + begin : a + begin * k, lda, b, ldb, beta,
                   c + begin * n, n);
    else
      sgemm_serial(trans_a, trans_b, m, end - begin, k, alpha, a, lda, trans_b ? b + begin * k : b + begin, ldb,
                   beta, c + begin, n);
  });
}
/// A Gemm whose B (and C) are initializers, as one oneDNN inner product with B reordered once
/// into the primitive's preferred layout and C as its bias (cached per A shape in the node cache).
struct PrepackedGemm {
  dnnl::inner_product_forward::primitive_desc pd;
  dnnl::inner_product_forward prim;
  dnnl::memory weights, bias;  ///< bias empty without C
};

/// A Gemm's attributes and dimensions: op(A) is [m, k], op(B) is [kb, n] (k == kb when valid).
struct GemmDims {
  bool ta, tb;
  float alpha, beta;
  int64_t m, n, k, kb;
};

GemmDims gemm_dims(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  GemmDims d;
  d.ta = attr_int(ctx.node, "transA", 0) != 0;
  d.tb = attr_int(ctx.node, "transB", 0) != 0;
  d.alpha = attr_float(ctx.node, "alpha", 1.0f);
  d.beta = attr_float(ctx.node, "beta", 1.0f);
  d.m = d.ta ? a.dim(1) : a.dim(0);
  d.k = d.ta ? a.dim(0) : a.dim(1);
  d.kb = d.tb ? b.dim(1) : b.dim(0);
  d.n = d.tb ? b.dim(0) : b.dim(1);
  return d;
}

/// The prepacked path applies: float32 A with transA=0 and alpha=1, B constant, C absent (or
/// beta=0) or constant with beta=1 and one value per column ([N], [1, N], or a single value),
/// and a product small enough to run on one thread (larger ones split over the pool below).
/// `c` is set to the C that becomes the bias, or nullptr.
bool prepackable(const KernelContext& ctx, const GemmDims& d, const Tensor** c) {
  *c = nullptr;
  if (!ctx.cache || d.ta || d.alpha != 1.0f || !ctx.is_constant(1) || ctx.input(0).dtype() != DType::kFloat32 ||
      ctx.input(1).dtype() != DType::kFloat32 || d.m == 0 || d.n == 0 || d.k == 0)
    return false;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  if (threads > 1 && d.m * d.n * d.k >= kParallelGemmMacs) return false;
  if (!ctx.has_input(2) || d.beta == 0.0f) return true;
  if (d.beta != 1.0f || !ctx.is_constant(2)) return false;
  const Tensor& t = ctx.input(2);
  if (t.dtype() != DType::kFloat32) return false;
  const Shape& s = t.shape();
  const bool per_column = (t.numel() == 1 && s.size() <= 2) || (s.size() == 1 && s[0] == d.n) ||
                          (s.size() == 2 && s[0] == 1 && s[1] == d.n);
  if (!per_column) return false;
  *c = &t;
  return true;
}

/// y = A B (+ c, one value per column), on the node's cached plan; the plan (B reordered, c
/// expanded to the bias) is built on the first run of each A shape.
void prepacked_gemm(KernelContext& ctx, const GemmDims& d, const Tensor* c, const float* a, const float* b, float* y) {
  const int64_t m = d.m, n = d.n, k = d.k;
  const bool tb = d.tb;
  using dnnl::memory;
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  SerialDnnl serial;
  const std::string key = "gemm " + std::to_string(m) + " " + std::to_string(n) + " " + std::to_string(k) +
                          (tb ? " tb" : "") + (c ? " c" : "");
  auto plan = ctx.cache->get<PrepackedGemm>(key, [&] {
    auto made = std::make_shared<PrepackedGemm>();
    const memory::desc src_md({m, k}, f32, tag::nc), dst_md({m, n}, f32, tag::nc),
        any_w({n, k}, f32, tag::any), bias_md = c ? memory::desc({n}, f32, tag::x) : memory::desc();
    const dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, any_w, bias_md, dst_md);
    made->pd = dnnl::inner_product_forward::primitive_desc(d, user_scratchpad(), cpu_engine());
    made->prim = dnnl::inner_product_forward(made->pd);
    // B is [N, K] (oi) with transB, else [K, N] (io).
    memory user(memory::desc({n, k}, f32, tb ? tag::oi : tag::io), cpu_engine(), const_cast<float*>(b));
    made->weights = memory(made->pd.weights_desc(), cpu_engine());
    dnnl::stream stream(cpu_engine());
    reorder(user, made->weights, stream);
    stream.wait();
    if (c) {  // a single value repeats over the N columns
      made->bias = memory(bias_md, cpu_engine());
      float* bias = static_cast<float*>(made->bias.get_data_handle());
      const float* cd = c->data<float>();
      for (int64_t j = 0; j < n; ++j) bias[j] = cd[c->numel() == 1 ? 0 : j];
    }
    return std::shared_ptr<const PrepackedGemm>(std::move(made));
  });
  dnnl::stream stream(cpu_engine());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan->pd.src_desc(), cpu_engine(), const_cast<float*>(a))},
      {DNNL_ARG_WEIGHTS, plan->weights},
      {DNNL_ARG_DST, memory(plan->pd.dst_desc(), cpu_engine(), y)},
      {DNNL_ARG_SCRATCHPAD, scratchpad(plan->pd.scratchpad_desc())}};
  if (plan->bias) args.emplace(DNNL_ARG_BIAS, plan->bias);
  plan->prim.execute(stream, args);
  stream.wait();
}
}  // namespace

bool gemm_prepacked(const KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.rank() != 2 || b.rank() != 2) return false;
  const GemmDims d = gemm_dims(ctx, a, b);
  const Tensor* c = nullptr;
  return d.k == d.kb && prepackable(ctx, d, &c);
}

void gemm_kernel(KernelContext& ctx) {
  const Tensor& a = float_input(ctx, 0, "A");
  const Tensor& b = float_input(ctx, 1, "B");
  if (a.rank() != 2 || b.rank() != 2)
    fail(ErrorCode::kInvalidArgument, "A and B must be 2-D, got " + shape_str(a.shape()) + " and " +
                                          shape_str(b.shape()));
  const GemmDims d = gemm_dims(ctx, a, b);
  const bool ta = d.ta, tb = d.tb;
  const float alpha = d.alpha, beta = d.beta;
  const int64_t m = d.m, n = d.n, k = d.k;
  if (k != d.kb)
    fail(ErrorCode::kInvalidArgument, "A " + shape_str(a.shape()) + " and B " + shape_str(b.shape()) +
                                          " have different inner dimensions");
  Tensor y(DType::kFloat32, {m, n});
  float* yd = y.data<float>();
  const Tensor* c = nullptr;
  if (prepackable(ctx, d, &c)) {
    prepacked_gemm(ctx, d, c, a.data<float>(), b.data<float>(), yd);
    ctx.outputs[0] = std::move(y);
    return;
  }
  float c_scale = 0.0f;
  if (ctx.has_input(2) && beta != 0.0f) {
    // C broadcasts unidirectionally to [M, N].
    const Tensor& c = float_input(ctx, 2, "C");
    const Shape mn{m, n};
    if (c.rank() > 2 || broadcast_shapes(c.shape(), mn) != mn)
      fail(ErrorCode::kInvalidArgument, "C " + shape_str(c.shape()) + " does not broadcast to " + shape_str(mn));
    const float* cd = c.data<float>();
    for_each_broadcast<1>(mn, {broadcast_strides(c.shape(), mn)}, [&](int64_t i, int64_t o) { yd[i] = cd[o]; });
    c_scale = beta;
  }
  sgemm(ta, tb, m, n, k, alpha, a.data<float>(), b.data<float>(), c_scale, yd);
  ctx.outputs[0] = std::move(y);
}

void matmul_kernel(KernelContext& ctx) {
  const Tensor& a = float_input(ctx, 0, "A");
  const Tensor& b = float_input(ctx, 1, "B");
  if (a.rank() == 0 || b.rank() == 0) fail(ErrorCode::kInvalidArgument, "MatMul inputs must have rank >= 1");
  // numpy.matmul: a 1-D A is [1, K] and a 1-D B is [K, 1]; the added dimension is removed after.
  Shape sa = a.shape(), sb = b.shape();
  if (sa.size() == 1) sa.insert(sa.begin(), 1);
  if (sb.size() == 1) sb.push_back(1);
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  if (sb[sb.size() - 2] != k)
    fail(ErrorCode::kInvalidArgument, "A " + shape_str(a.shape()) + " and B " + shape_str(b.shape()) +
                                          " have different inner dimensions");
  const Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b);
  Shape out = batch;
  if (a.rank() > 1) out.push_back(m);
  if (b.rank() > 1) out.push_back(n);
  Tensor y(DType::kFloat32, out);
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  if (shape_numel(batch_b) == 1) {
    // B is one matrix: all of A's rows form one [batch*M x K] operand.
    sgemm(false, false, shape_numel(batch) * m, n, k, 1.0f, ad, bd, 0.0f, yd);
  } else {
    const auto stride_a = broadcast_strides(batch_a, batch), stride_b = broadcast_strides(batch_b, batch);
    // One product per batch entry, side by side on the TBB pool.
    std::vector<std::array<int64_t, 3>> offsets;
    for_each_broadcast<2>(batch, {stride_a, stride_b},
                          [&](int64_t i, int64_t oa, int64_t ob) { offsets.push_back({i, oa, ob}); });
    tbb::parallel_for(size_t{0}, offsets.size(), [&](size_t j) {
      const auto [i, oa, ob] = offsets[j];
      sgemm_serial(false, false, m, n, k, 1.0f, ad + oa * m * k, k, bd + ob * k * n, n, 0.0f, yd + i * m * n, n);
    });
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
