#include "int8_gemm.h"

#include <dnnl.h>
#include <omp.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <string>

#include "anvil/common/status.h"

namespace anvil::hw {

namespace {

/// Products smaller than this many multiply-adds run on the calling thread (splitting costs more).
constexpr int64_t kParallelMacs = int64_t{1} << 18;

/// One piece: rows [r0, r1) x columns [c0, c1) of acc, over the whole reduction in exact chunks.
/// oneDNN runs on OpenMP; each piece calls it with this thread's OpenMP count at 1, so only the
/// TBB pool's workers run (and spin) on the cores.
void piece(int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, int32_t* acc, float* chunk) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const int64_t chunks = (k + kExactChunk - 1) / kExactChunk, step = (k + chunks - 1) / chunks;
  for (int64_t k0 = 0; k0 < k; k0 += step) {
    const int64_t kc = std::min(step, k - k0);
    const dnnl_status_t s = dnnl_sgemm('N', 'N', r1 - r0, c1 - c0, kc, 1.0f, a + r0 * lda + k0, lda,
                                       b + k0 * ldb + c0, ldb, 0.0f, chunk + r0 * n + c0, n);
    if (s != dnnl_success) {
      omp_set_num_threads(saved);
      fail(ErrorCode::kInternal, "MAC array: oneDNN sgemm failed for " + std::to_string(r1 - r0) + " x " +
                                     std::to_string(c1 - c0) + " x " + std::to_string(kc));
    }
    for (int64_t i = r0; i < r1; ++i) {
      int32_t* row = acc + i * n;
      const float* f = chunk + i * n;
      for (int64_t j = c0; j < c1; ++j) row[j] += static_cast<int32_t>(f[j]);  // exact integers
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace

void int8_range_gemm_accumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                int64_t ldb, int32_t* acc, GemmScratch& scratch) {
  if (m == 0 || n == 0 || k == 0) return;
  if (scratch.chunk.size() < static_cast<size_t>(m * n)) scratch.chunk.resize(static_cast<size_t>(m * n));
  float* chunk = scratch.chunk.data();
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  if (threads == 1 || m * n * k < kParallelMacs) return piece(0, m, 0, n, n, k, a, lda, b, ldb, acc, chunk);
  // Split the larger side of the output; every element is still one sum over the whole reduction.
  const bool by_columns = n >= m;
  const int64_t total = by_columns ? n : m, pieces = std::min(total, threads * 2);
  tbb::parallel_for(int64_t{0}, pieces, [&](int64_t p) {
    const int64_t begin = total * p / pieces, end = total * (p + 1) / pieces;
    if (by_columns)
      piece(0, m, begin, end, n, k, a, lda, b, ldb, acc, chunk);
    else
      piece(begin, end, 0, n, n, k, a, lda, b, ldb, acc, chunk);
  });
}

}  // namespace anvil::hw
