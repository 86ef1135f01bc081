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
/// A MatMul with a constant B of several matrices (batch dimensions) has one reordered copy each.
struct PrepackedGemm {
  dnnl::inner_product_forward::primitive_desc pd;
  dnnl::inner_product_forward prim;
  std::vector<dnnl::memory> weights;  ///< per matrix of B
  dnnl::memory bias;                  ///< empty without C
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

/// The node's cached plan for y[m x n] = A[m x k] B (+ c, one value per column) over `matrices`
/// matrices of B stored one after the other (each [K, N], or [N, K] with `tb`), built on the first
/// run of each shape: B reordered once per matrix, c expanded to the bias.
std::shared_ptr<const PrepackedGemm> prepacked_plan(KernelContext& ctx, int64_t m, int64_t n, int64_t k, bool tb,
                                                    const Tensor* c, const float* b, int64_t matrices,
                                                    KernelContext::Activation act = {}) {
  using dnnl::memory;
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  SerialDnnl serial;
  const std::string key = "gemm " + std::to_string(m) + " " + std::to_string(n) + " " + std::to_string(k) +
                          (tb ? " tb" : "") + (c ? " c" : "") + " x" + std::to_string(matrices) +
                          (act.on ? " act " + std::to_string(act.lo) + " " + std::to_string(act.hi) : std::string());
  return ctx.cache->get<PrepackedGemm>(key, [&] {
    auto made = std::make_shared<PrepackedGemm>();
    const memory::desc src_md({m, k}, f32, tag::nc), dst_md({m, n}, f32, tag::nc),
        any_w({n, k}, f32, tag::any), bias_md = c ? memory::desc({n}, f32, tag::x) : memory::desc();
    const dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, any_w, bias_md, dst_md);
    made->pd = dnnl::inner_product_forward::primitive_desc(d, user_scratchpad_with_clamp(act.on, act.lo, act.hi),
                                                           cpu_engine());
    made->prim = dnnl::inner_product_forward(made->pd);
    dnnl::stream stream(cpu_engine());
    for (int64_t i = 0; i < matrices; ++i) {
      // B is [N, K] (oi) with transB, else [K, N] (io).
      memory user(memory::desc({n, k}, f32, tb ? tag::oi : tag::io), cpu_engine(), const_cast<float*>(b + i * k * n));
      made->weights.emplace_back(made->pd.weights_desc(), cpu_engine());
      reorder(user, made->weights.back(), stream);
    }
    stream.wait();
    if (c) {  // a single value repeats over the N columns
      made->bias = memory(bias_md, cpu_engine());
      float* bias = static_cast<float*>(made->bias.get_data_handle());
      const float* cd = c->data<float>();
      for (int64_t j = 0; j < n; ++j) bias[j] = cd[c->numel() == 1 ? 0 : j];
    }
    return std::shared_ptr<const PrepackedGemm>(std::move(made));
  });
}

/// y = A B_matrix (+ bias) with `plan`, on this thread.
void run_prepacked(const PrepackedGemm& plan, size_t matrix, const float* a, float* y) {
  using dnnl::memory;
  SerialDnnl serial;
  dnnl::stream stream(cpu_engine());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan.pd.src_desc(), cpu_engine(), const_cast<float*>(a))},
      {DNNL_ARG_WEIGHTS, plan.weights[matrix]},
      {DNNL_ARG_DST, memory(plan.pd.dst_desc(), cpu_engine(), y)},
      {DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc())}};
  if (plan.bias) args.emplace(DNNL_ARG_BIAS, plan.bias);
  plan.prim.execute(stream, args);
  stream.wait();
}

/// y = A B (+ c, one value per column), then the fused activation, on the node's cached plan.
void prepacked_gemm(KernelContext& ctx, const GemmDims& d, const Tensor* c, const float* a, const float* b, float* y) {
  run_prepacked(*prepacked_plan(ctx, d.m, d.n, d.k, d.tb, c, b, 1, ctx.activation), 0, a, y);
}

/// A MatMul's operands as numpy.matmul sees them: [batch..., M, K] x [batch..., K, N].
struct MatMulDims {
  Shape batch_a, batch_b, batch, out;
  int64_t m = 0, n = 0, k = 0;
};

MatMulDims matmul_dims(const Tensor& a, const Tensor& b) {
  if (a.rank() == 0 || b.rank() == 0) fail(ErrorCode::kInvalidArgument, "MatMul inputs must have rank >= 1");
  // numpy.matmul: a 1-D A is [1, K] and a 1-D B is [K, 1]; the added dimension is removed after.
  Shape sa = a.shape(), sb = b.shape();
  if (sa.size() == 1) sa.insert(sa.begin(), 1);
  if (sb.size() == 1) sb.push_back(1);
  MatMulDims d;
  d.m = sa[sa.size() - 2], d.k = sa.back(), d.n = sb.back();
  if (sb[sb.size() - 2] != d.k)
    fail(ErrorCode::kInvalidArgument, "A " + shape_str(a.shape()) + " and B " + shape_str(b.shape()) +
                                          " have different inner dimensions");
  d.batch_a.assign(sa.begin(), sa.end() - 2);
  d.batch_b.assign(sb.begin(), sb.end() - 2);
  d.batch = broadcast_shapes(d.batch_a, d.batch_b);
  d.out = d.batch;
  if (a.rank() > 1) d.out.push_back(d.m);
  if (b.rank() > 1) d.out.push_back(d.n);
  return d;
}

/// The prepacked path of MatMul: float32 operands of rank 2 or more, B an initializer, no empty
/// dimension, and each product (all of A's rows at once when B is one matrix) small enough to run
/// on one thread, as for Gemm.
bool matmul_prepackable(const KernelContext& ctx, const MatMulDims& d) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (!ctx.cache || !ctx.is_constant(1) || a.dtype() != DType::kFloat32 || b.dtype() != DType::kFloat32 ||
      a.rank() < 2 || b.rank() < 2 || a.numel() == 0 || b.numel() == 0 || shape_numel(d.batch) == 0)
    return false;
  const int64_t rows = shape_numel(d.batch_b) == 1 ? shape_numel(d.batch) * d.m : d.m;
  return tbb::this_task_arena::max_concurrency() == 1 || rows * d.n * d.k < kParallelGemmMacs;
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
  // With k > 0 every element is written (C, the product, or both); k == 0 relies on zeros.
  Tensor y = k > 0 ? Tensor::uninitialized(DType::kFloat32, {m, n}) : Tensor(DType::kFloat32, {m, n});
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
  if (ctx.activation.on) {  // a Relu/Clip fused by the executor
    const float lo = ctx.activation.lo, hi = ctx.activation.hi;
    for (int64_t i = 0; i < m * n; ++i) yd[i] = std::min(std::max(yd[i], lo), hi);
  }
  ctx.outputs[0] = std::move(y);
}

bool matmul_prepacked(const KernelContext& ctx) {
  try {
    return matmul_prepackable(ctx, matmul_dims(ctx.input(0), ctx.input(1)));
  } catch (const Error&) {
    return false;
  }
}

void matmul_kernel(KernelContext& ctx) {
  const Tensor& a = float_input(ctx, 0, "A");
  const Tensor& b = float_input(ctx, 1, "B");
  const MatMulDims d = matmul_dims(a, b);
  const int64_t m = d.m, n = d.n, k = d.k;
  // sgemm and the prepacked product write every element when k > 0; k == 0 relies on zeros.
  Tensor y = k > 0 ? Tensor::uninitialized(DType::kFloat32, d.out) : Tensor(DType::kFloat32, d.out);
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  const bool prepacked = matmul_prepackable(ctx, d);
  if (shape_numel(d.batch_b) == 1) {
    // B is one matrix: all of A's rows form one [batch*M x K] operand.
    const int64_t rows = shape_numel(d.batch) * m;
    if (prepacked)
      run_prepacked(*prepacked_plan(ctx, rows, n, k, false, nullptr, bd, 1), 0, ad, yd);
    else
      sgemm(false, false, rows, n, k, 1.0f, ad, bd, 0.0f, yd);
  } else {
    const auto stride_a = broadcast_strides(d.batch_a, d.batch), stride_b = broadcast_strides(d.batch_b, d.batch);
    // One product per batch entry, side by side on the TBB pool.
    std::vector<std::array<int64_t, 3>> offsets;
    for_each_broadcast<2>(d.batch, {stride_a, stride_b},
                          [&](int64_t i, int64_t oa, int64_t ob) { offsets.push_back({i, oa, ob}); });
    std::shared_ptr<const PrepackedGemm> plan;
    if (prepacked) plan = prepacked_plan(ctx, m, n, k, false, nullptr, bd, shape_numel(d.batch_b));
    tbb::parallel_for(size_t{0}, offsets.size(), [&](size_t j) {
      const auto [i, oa, ob] = offsets[j];
      if (plan)
        run_prepacked(*plan, static_cast<size_t>(ob), ad + oa * m * k, yd + i * m * n);
      else
        sgemm_serial(false, false, m, n, k, 1.0f, ad + oa * m * k, k, bd + ob * k * n, n, 0.0f, yd + i * m * n, n);
    });
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
