// Gemm and MatMul, float32, on OpenBLAS sgemm.
#include <cblas.h>

#include <cstring>

#include "attributes.h"
#include "broadcast.h"
#include "kernels.h"

namespace anvil::ref {

namespace {
const Tensor& float_input(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string(what) + " must be float32, got " + dtype_name(t.dtype()));
  return t;
}

/// Row-major C[m x n] = A[m x k] * B[k x n] (+ beta * C).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
           float beta, float* c) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(trans_a ? m : k), b, static_cast<int>(trans_b ? k : n), beta, c, static_cast<int>(n));
}
}  // namespace

void gemm_kernel(KernelContext& ctx) {
  const Tensor& a = float_input(ctx, 0, "A");
  const Tensor& b = float_input(ctx, 1, "B");
  if (a.rank() != 2 || b.rank() != 2)
    fail(ErrorCode::kInvalidArgument, "A and B must be 2-D, got " + shape_str(a.shape()) + " and " +
                                          shape_str(b.shape()));
  const bool ta = attr_int(ctx.node, "transA", 0) != 0, tb = attr_int(ctx.node, "transB", 0) != 0;
  const float alpha = attr_float(ctx.node, "alpha", 1.0f), beta = attr_float(ctx.node, "beta", 1.0f);
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
  if (k != kb)
    fail(ErrorCode::kInvalidArgument, "A " + shape_str(a.shape()) + " and B " + shape_str(b.shape()) +
                                          " have different inner dimensions");
  Tensor y(DType::kFloat32, {m, n});
  float* yd = y.data<float>();
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
    for_each_broadcast<2>(batch, {stride_a, stride_b}, [&](int64_t i, int64_t oa, int64_t ob) {
      sgemm(false, false, m, n, k, 1.0f, ad + oa * m * k, bd + ob * k * n, 0.0f, yd + i * m * n);
    });
  }
  ctx.outputs[0] = std::move(y);
}

}  // namespace anvil::ref
