#pragma once
/// Row loops of the requant.h math for the MAC array's epilogue and the vector engine, compiled
/// twice from one body: for the host's AVX-512 (picked at run time when the CPU has it; the
/// compiler vectorises the 64-bit products there) and for the baseline x86-64. The arithmetic is
/// math::requantize / math::add_int8 themselves, inlined, so both builds give the same bits.
/// Internal to the hardware model.
#include <cstdint>

#include "anvil/common/requant.h"

namespace anvil::hw {

/// True when the host CPU runs the AVX-512 build of the loops below (the choice they make per call).
bool host_has_avx512();

/// out[i] = math::requantize(acc[i], q, zero_point, act_min, act_max) for i < n.
void requantize_row(const int32_t* acc, int8_t* out, int64_t n, math::QuantizedMultiplier q,
                    int32_t zero_point, int32_t act_min, int32_t act_max);

/// out[i] = math::add_int8(a[i], b[i], p) for i < n.
void add_int8_row(const int8_t* a, const int8_t* b, int8_t* out, int64_t n, const math::AddParams& p);

}  // namespace anvil::hw
