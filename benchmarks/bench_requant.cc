// The requantizing epilogue of the MAC array (hw::requantize_row in hw_model/src/requant_rows.cc,
// the loop the hardware model runs for every output element), against the same loop with the
// two-rounding arithmetic ISA versions 1-4 used (TFLite's default MultiplyByQuantizedMultiplier,
// kept here only as the baseline of this measurement). Never run by CI; numbers in
// docs/performance.md ("Requantization with one rounding") with the command that produced them:
//   build/benchmarks/bench_requant --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "anvil/common/requant.h"
#include "requant_rows.h"

using namespace anvil;

namespace {

// ---- the ISA 1-4 arithmetic: a rounding doubling high multiply, then a rounding right shift ----
namespace two_roundings {

inline int32_t high_mul(int32_t a, int32_t b) {
  if (a == std::numeric_limits<int32_t>::min() && b == std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::max();
  const int64_t ab = static_cast<int64_t>(a) * b;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return static_cast<int32_t>((ab + nudge) / (1LL << 31));
}

inline int32_t divide_by_pot(int32_t x, int e) {
  if (e <= 0) return x;
  const int32_t mask = static_cast<int32_t>((1LL << e) - 1);
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + ((x & mask) > threshold ? 1 : 0);
}

inline int8_t requantize_isa4(int32_t acc, math::QuantizedMultiplier q, int32_t zp, int32_t lo, int32_t hi) {
  const int left = q.shift > 0 ? q.shift : 0, right = q.shift > 0 ? 0 : -q.shift;
  const int64_t s = std::clamp<int64_t>(static_cast<int64_t>(acc) * (int64_t{1} << left),
                                        std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  return static_cast<int8_t>(std::clamp(divide_by_pot(high_mul(static_cast<int32_t>(s), q.multiplier), right) + zp, lo, hi));
}

// Built twice and picked at run time, as hw_model/src/requant_rows.cc builds the real loop.
__attribute__((always_inline)) inline void row_body(const int32_t* acc, int8_t* out, int64_t n,
                                                    math::QuantizedMultiplier q, int32_t zp, int32_t lo, int32_t hi) {
  for (int64_t i = 0; i < n; ++i) out[i] = requantize_isa4(acc[i], q, zp, lo, hi);
}
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi2"))) void row_avx512(
    const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q, int32_t zp, int32_t lo, int32_t hi) {
  row_body(acc, out, n, q, zp, lo, hi);
}
void row_baseline(const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q, int32_t zp, int32_t lo,
                  int32_t hi) {
  row_body(acc, out, n, q, zp, lo, hi);
}
void row(const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q, int32_t zp, int32_t lo, int32_t hi) {
  (hw::host_has_avx512() ? row_avx512 : row_baseline)(acc, out, n, q, zp, lo, hi);
}

}  // namespace two_roundings

constexpr int64_t kRow = 4096;  // one MAC-array epilogue row of accumulators

std::vector<int32_t> accumulators() {
  std::mt19937 rng(3);
  std::normal_distribution<double> gauss(0.0, 20000.0);  // a conv's int32 accumulators
  std::vector<int32_t> v(kRow);
  for (int32_t& x : v) x = static_cast<int32_t>(gauss(rng));
  return v;
}

const math::QuantizedMultiplier kM = math::quantize_multiplier(0.0027);  // shift -8, as a typical conv

using RowLoop = void (*)(const int32_t*, int8_t*, int64_t, math::QuantizedMultiplier, int32_t, int32_t, int32_t);

void BM_RequantizeRow(benchmark::State& state, RowLoop row) {
  const std::vector<int32_t> acc = accumulators();
  std::vector<int8_t> out(kRow);
  for (auto _ : state) {
    row(acc.data(), out.data(), kRow, kM, 3, -128, 127);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kRow);
}
BENCHMARK_CAPTURE(BM_RequantizeRow, OneRounding, &hw::requantize_row);
BENCHMARK_CAPTURE(BM_RequantizeRow, TwoRoundingsIsa4, &two_roundings::row);

// Not a timing: the share of accumulators (uniform in +-200,000) whose x * M the two roundings put one
// unit away from the one rounding, per shift (the argument), beside the 2^(shift - 1) that
// docs/isa.md and docs/quantization.md give for it.
void BM_TwoRoundingsShareOneUnitOff(benchmark::State& state) {
  const auto shift = static_cast<int32_t>(state.range(0));
  const math::QuantizedMultiplier q{1518500250, shift};
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> d(-200000, 200000);
  std::vector<int32_t> acc(1 << 16);
  for (int32_t& x : acc) x = d(rng);
  int64_t off = 0;
  for (auto _ : state) {
    off = 0;
    for (const int32_t x : acc)
      off += math::multiply_by_quantized_multiplier(x, q) !=
             two_roundings::divide_by_pot(two_roundings::high_mul(x, q.multiplier), -shift);
  }
  state.counters["share_off"] = static_cast<double>(off) / static_cast<double>(acc.size());
  state.counters["2^(shift-1)"] = std::ldexp(1.0, shift - 1);
}
BENCHMARK(BM_TwoRoundingsShareOneUnitOff)->DenseRange(-10, -4, 3)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
