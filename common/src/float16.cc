#include "anvil/common/float16.h"

#include <cmath>
#include <cstring>

namespace anvil {

Float16 float16_from_double(double x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  if (std::isnan(x)) {
    uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    const auto payload = static_cast<uint16_t>((bits >> 42) & 0x3ff);  // top 10 of the 52 mantissa bits
    return {static_cast<uint16_t>(sign | 0x7c00 | (payload ? payload : 0x200))};
  }
  const double a = std::fabs(x);
  // 65504 is the largest binary16; the midpoint to the next step (65536) rounds to even, i.e. up.
  if (a >= 65520.0) return {static_cast<uint16_t>(sign | 0x7c00)};
  if (a < 0x1p-14) {
    // Subnormal: a / 2^-24 is exact in double; rounding it may give 1024, the smallest normal's
    // bit pattern, so the sum below needs no special case.
    const double m = std::nearbyint(a * 0x1p24);  // default rounding mode: to nearest, ties to even
    return {static_cast<uint16_t>(sign | static_cast<uint16_t>(m))};
  }
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): the binary16 exponent is e - 1, in [-14, 15]
  const int exponent = e - 1;
  const double m = std::nearbyint(std::ldexp(a, 10 - exponent));  // in [1024, 2048]; exact before rounding
  // A mantissa that rounds up to 2048 carries into the exponent field, as the addition does.
  const int bits = ((exponent + 15) << 10) + static_cast<int>(m) - 1024;
  return {static_cast<uint16_t>(sign | bits)};
}

float float16_to_float(Float16 h) {
  const bool negative = h.bits & 0x8000;
  const uint32_t exponent = (h.bits >> 10) & 0x1f, mantissa = h.bits & 0x3ff;
  uint32_t bits = negative ? 0x80000000u : 0;
  if (exponent == 0x1f) {
    bits |= 0x7f800000u | (mantissa << 13);  // inf, or NaN with its payload
  } else if (exponent == 0) {
    const float v = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal, exact
    return negative ? -v : v;
  } else {
    bits |= ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

BFloat16 bfloat16_from_float(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  auto b = static_cast<uint16_t>(bits >> 16);
  if (std::isnan(x) && (b & 0x7f) == 0) b |= 0x40;  // keep it a NaN, not an infinity
  return {b};
}

float bfloat16_to_float(BFloat16 b) {
  const uint32_t bits = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace anvil
