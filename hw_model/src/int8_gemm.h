#pragma once
/// The MAC array's functional kernel: an exact integer GEMM of int8-range operands on the host's
/// float GEMM (oneDNN's sgemm), so one tile of a kConv costs one fast library call instead of a
/// loop per MAC. Internal to the hardware model.
///
/// Exactness: the operands are integers with |a| <= 128 (weights) and |b| <= 255 (inputs minus
/// their zero point), so each product is at most 32 640 in magnitude and any sum of at most
/// kExactChunk = 512 products is at most 16 711 680 < 2^24. Every partial sum the GEMM forms over
/// a chunk of at most 512 reduction elements, in whatever order and with or without FMA, is
/// therefore an integer below 2^24 and exactly representable in float32: the chunk's float
/// result is its exact integer sum. Chunks are added in int32 (the ISA's accumulator;
/// mac_array.h shows it cannot overflow).
#include <cstdint>
#include <vector>

namespace anvil::hw {

/// Reduction elements per float GEMM call that keep every partial sum exact (see above).
constexpr int64_t kExactChunk = 512;

/// Scratch buffers reused across calls (one per MAC array), so tiles do not fault in fresh pages.
struct GemmScratch {
  std::vector<float> chunk;  ///< m x n float result of one reduction chunk
};

/// acc[m x n] (row major, leading dimension n) += A[m x k] * B[k x n], with A row major (leading
/// dimension lda) and B row major (leading dimension ldb), both holding integers within
/// |A| <= 128 and |B| <= 255. Work is split over the TBB pool by columns; oneDNN runs serially in
/// each piece. Throws anvil::Error kInternal if oneDNN fails.
void int8_range_gemm_accumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                int64_t ldb, int32_t* acc, GemmScratch& scratch);

}  // namespace anvil::hw
