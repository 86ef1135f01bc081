#include "requant_rows.h"

namespace anvil::hw {

namespace {

#define ANVIL_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi2")))

// The one body of each loop; always inlined into the two builds below.
__attribute__((always_inline)) inline void requantize_body(const int32_t* acc, int8_t* out, int64_t n,
                                                           math::QuantizedMultiplier q, int32_t zero_point,
                                                           int32_t act_min, int32_t act_max) {
  for (int64_t i = 0; i < n; ++i) out[i] = math::requantize(acc[i], q, zero_point, act_min, act_max);
}
__attribute__((always_inline)) inline void add_body(const int8_t* a, const int8_t* b, int8_t* out, int64_t n,
                                                    const math::AddParams& p) {
  for (int64_t i = 0; i < n; ++i) out[i] = math::add_int8(a[i], b[i], p);
}

ANVIL_AVX512 void requantize_avx512(const int32_t* acc, int8_t* out, int64_t n,
                                    math::QuantizedMultiplier q, int32_t zp, int32_t lo, int32_t hi) {
  requantize_body(acc, out, n, q, zp, lo, hi);
}
void requantize_baseline(const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q,
                         int32_t zp, int32_t lo, int32_t hi) {
  requantize_body(acc, out, n, q, zp, lo, hi);
}
ANVIL_AVX512 void add_avx512(const int8_t* a, const int8_t* b, int8_t* out, int64_t n, const math::AddParams& p) {
  add_body(a, b, out, n, p);
}
void add_baseline(const int8_t* a, const int8_t* b, int8_t* out, int64_t n, const math::AddParams& p) {
  add_body(a, b, out, n, p);
}

}  // namespace

bool host_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("bmi2");
  return has;
}

void requantize_row(const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q,
                    int32_t zero_point, int32_t act_min, int32_t act_max) {
  (host_has_avx512() ? requantize_avx512 : requantize_baseline)(acc, out, n, q, zero_point, act_min, act_max);
}

void add_int8_row(const int8_t* a, const int8_t* b, int8_t* out, int64_t n, const math::AddParams& p) {
  (host_has_avx512() ? add_avx512 : add_baseline)(a, b, out, n, p);
}

}  // namespace anvil::hw
