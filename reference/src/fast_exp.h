#pragma once
// exp(x) for x <= 0 in float32 as inline arithmetic the compiler can vectorise (libm's expf is an
// opaque call per element), for Softmax and LogSoftmax, whose exponents x - max(x) are never
// positive. Cody-Waite reduction x = n ln2 + r with |r| <= ln2 / 2 and Cephes' degree-6 minimax
// polynomial for e^r; tests/reference/test_fast_exp.cc checks it within 2 ulp of std::exp on a
// dense grid of [-87.3, 0]. Below -87.3365 (where e^x is no longer a normal float) the result is
// 0; NaN propagates.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace anvil::ref {

inline float fast_exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kMin = -87.3365402f;  // ln of the smallest normal float
  const float xc = std::min(0.0f, std::max(kMin, x));
  // Round to nearest by adding and subtracting 1.5 * 2^23 (exact for |t| < 2^22): plain float
  // arithmetic, so it vectorises without SSE4.1's roundps (the build targets baseline x86-64).
  constexpr float kRound = 12582912.0f;
  const float n = (xc * kLog2e + kRound) - kRound;  // in [-126, 0]
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, a normal float
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = p * scale;
  return x != x ? x : x < kMin ? 0.0f : y;
}

}  // namespace anvil::ref
