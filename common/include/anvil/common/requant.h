#pragma once
/// Integer requantization: the one implementation of the int32 -> int8 arithmetic of anvil.
///
/// The reference executor, the compiler (which precomputes multipliers) and the hardware model's
/// vector engine all call these functions, so their int8 results are equal bit for bit.
///
/// A real multiplier M (for example input_scale * weight_scale / output_scale) is represented as a
/// Q31 fixed-point mantissa `multiplier` in [2^30, 2^31) and a power-of-two `shift`:
///     M ~= multiplier * 2^(shift - 31).
/// Applying it to an int32 accumulator x is one exact 64-bit product and one rounding:
///     x * M = round(x * multiplier / 2^(31 - shift)),  to nearest, ties to even,
/// saturated to int32 (ISA version 5). This is the arithmetic of TOSA's RESCALE without double
/// rounding and of TFLite's TFLITE_SINGLE_ROUNDING except at exact ties, which both of those round
/// up (toward +infinity). Ties to even is ONNX QuantizeLinear's rule, so the
/// int8 result is QuantizeLinear of the exact real x * M: it can differ from a float32 computation
/// only where that value lies within float error of a rounding boundary, or through M's 31-bit
/// mantissa. (ISA versions 1-4 rounded twice, TFLite's default MultiplyByQuantizedMultiplier:
/// a rounding doubling high multiply, then a rounding right shift, both ties away from zero; the
/// first rounding moved about 2^(shift - 1) of the results one unit off the exact one.)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

namespace anvil::math {

/// A quantized multiplier: M ~= multiplier * 2^(shift - 31). multiplier == 0 means M == 0.
struct QuantizedMultiplier {
  int32_t multiplier = 0;
  int32_t shift = 0;
};

/// Splits a non-negative real multiplier into Q31 mantissa and shift. M must be finite and >= 0;
/// multipliers below 2^-31 become 0 (they cannot change any int32 value by a full unit).
inline QuantizedMultiplier quantize_multiplier(double m) {
  QuantizedMultiplier q;
  if (!(m > 0.0) || !std::isfinite(m)) return q;
  int exponent = 0;
  const double mantissa = std::frexp(m, &exponent);  // m = mantissa * 2^exponent, mantissa in [0.5, 1)
  int64_t fixed = static_cast<int64_t>(std::llround(mantissa * (1LL << 31)));
  if (fixed == (1LL << 31)) {  // rounding carried into the next power of two
    fixed /= 2;
    ++exponent;
  }
  if (exponent < -31) return q;
  if (exponent > 30) exponent = 30, fixed = std::numeric_limits<int32_t>::max();  // saturate absurdly large M
  q.multiplier = static_cast<int32_t>(fixed);
  q.shift = exponent;
  return q;
}

/// p / 2^n rounded to nearest, ties to even, for |p| < 2^62 (n >= 63 gives 0; n <= 0 returns p).
inline int64_t rounding_shift_right(int64_t p, int n) {
  if (n <= 0) return p;
  if (n >= 63) return 0;
  const int64_t mask = (int64_t{1} << n) - 1;
  const int64_t half = int64_t{1} << (n - 1);
  const int64_t floor = p >> n;  // arithmetic shift (GCC and Clang define it; C++20 requires it): floor(p / 2^n)
  const int64_t rem = p & mask;  // p mod 2^n, in [0, 2^n)
  return floor + ((rem > half || (rem == half && (floor & 1) != 0)) ? 1 : 0);
}

/// x * M with the one rounding stated at the top of this file, saturated to int32.
inline int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier q) {
  if (q.multiplier == 0) return 0;
  // |x * multiplier| < 2^62 and 31 - shift is in [1, 62] for shift in [-31, 30]: exact in int64.
  const int64_t r = rounding_shift_right(static_cast<int64_t>(x) * q.multiplier, 31 - q.shift);
  return static_cast<int32_t>(
      std::clamp<int64_t>(r, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

/// Requantizes an int32 accumulator to int8: clamp(x * M + zero_point, act_min, act_max).
/// act_min/act_max carry a fused activation (ReLU: act_min = zero_point) and default to int8's range.
inline int8_t requantize(int32_t acc, QuantizedMultiplier q, int32_t zero_point, int32_t act_min = -128,
                         int32_t act_max = 127) {
  const int64_t v = static_cast<int64_t>(multiply_by_quantized_multiplier(acc, q)) + zero_point;
  return static_cast<int8_t>(std::clamp<int64_t>(v, act_min, act_max));
}

/// Elementwise addition of two int8 tensors with their own scales (TFLite's quantized ADD).
/// Both inputs are moved to a common scale 2*max(s_a, s_b) with 20 bits of headroom, added in
/// int32 and requantized to the output scale.
struct AddParams {
  int32_t a_zero_point = 0, b_zero_point = 0, out_zero_point = 0;
  QuantizedMultiplier a, b, out;
  int32_t act_min = -128, act_max = 127;
};
constexpr int kAddLeftShift = 20;

inline AddParams make_add_params(double a_scale, int32_t a_zp, double b_scale, int32_t b_zp, double out_scale,
                                 int32_t out_zp, int32_t act_min = -128, int32_t act_max = 127) {
  AddParams p;
  const double twice_max = 2.0 * std::max(a_scale, b_scale);
  p.a_zero_point = a_zp;
  p.b_zero_point = b_zp;
  p.out_zero_point = out_zp;
  p.a = quantize_multiplier(a_scale / twice_max);
  p.b = quantize_multiplier(b_scale / twice_max);
  p.out = quantize_multiplier(twice_max / (static_cast<double>(1 << kAddLeftShift) * out_scale));
  p.act_min = act_min;
  p.act_max = act_max;
  return p;
}

/// One element of the quantized ADD. |a - zp| <= 255, so (a - zp) << 20 stays below 2^28: no overflow.
inline int8_t add_int8(int8_t a, int8_t b, const AddParams& p) {
  const int32_t sa = multiply_by_quantized_multiplier((a - p.a_zero_point) * (1 << kAddLeftShift), p.a);
  const int32_t sb = multiply_by_quantized_multiplier((b - p.b_zero_point) * (1 << kAddLeftShift), p.b);
  return requantize(sa + sb, p.out, p.out_zero_point, p.act_min, p.act_max);
}

/// Elementwise subtraction a - b with the AddParams of make_add_params (the same scales as an
/// add): add_int8 with the b term negated. multiply_by_quantized_multiplier is odd (rounding to
/// nearest with ties to even is symmetric about zero, and p.b < 1 cannot saturate), so this equals
/// add_int8 of a and a b whose (b - zp) is negated: the same rounding as the add, no second
/// rounding routine.
inline int8_t sub_int8(int8_t a, int8_t b, const AddParams& p) {
  const int32_t sa = multiply_by_quantized_multiplier((a - p.a_zero_point) * (1 << kAddLeftShift), p.a);
  const int32_t sb = multiply_by_quantized_multiplier((p.b_zero_point - b) * (1 << kAddLeftShift), p.b);
  return requantize(sa + sb, p.out, p.out_zero_point, p.act_min, p.act_max);
}

/// Elementwise multiplication of two int8 tensors with their own scales (TFLite's quantized MUL):
/// out = requantize((a - a_zp) * (b - b_zp), M = a_scale * b_scale / out_scale). |a - zp| <= 255
/// for int8 values and zero points, so |product| <= 65025: the int32 product cannot overflow, and
/// the only rounding is requantize's (one unit at most from exact real arithmetic on ties and
/// from M's 31-bit mantissa).
struct MulParams {
  int32_t a_zero_point = 0, b_zero_point = 0, out_zero_point = 0;
  QuantizedMultiplier out;
  int32_t act_min = -128, act_max = 127;
};

inline MulParams make_mul_params(double a_scale, int32_t a_zp, double b_scale, int32_t b_zp, double out_scale,
                                 int32_t out_zp, int32_t act_min = -128, int32_t act_max = 127) {
  MulParams p;
  p.a_zero_point = a_zp;
  p.b_zero_point = b_zp;
  p.out_zero_point = out_zp;
  p.out = quantize_multiplier(a_scale * b_scale / out_scale);
  p.act_min = act_min;
  p.act_max = act_max;
  return p;
}

inline int8_t mul_int8(int8_t a, int8_t b, const MulParams& p) {
  return requantize((a - p.a_zero_point) * (b - p.b_zero_point), p.out, p.out_zero_point, p.act_min, p.act_max);
}

/// Average over `count` int8 values (pooling): the int32 sum of (x - in_zp) is requantized with
/// M = in_scale / (out_scale * count), so a scale change and the division share one rounding.
inline QuantizedMultiplier average_multiplier(double in_scale, double out_scale, int64_t count) {
  return quantize_multiplier(in_scale / (out_scale * static_cast<double>(count)));
}

/// ONNX QuantizeLinear for one float: saturate(round_half_to_even(x / scale) + zero_point) to int8.
/// The division is done in float32, as ONNX Runtime does.
inline int8_t quantize_float(float x, float scale, int32_t zero_point) {
  // Round half to even without a libm call (nearbyintf is one on baseline x86-64, and the range
  // searches quantize millions of bin centres): for |t| < 2^22, t + 1.5 * 2^23 lies in
  // [2^23, 2^24), where floats are the integers, so the addition rounds t to the nearest integer,
  // ties to even (1.5 * 2^23 is even), and the subtraction is exact. A larger |t| saturates below.
  // Equal to std::nearbyint in the default rounding mode (tests/common: QuantizeFloat.*).
  const float t = x / scale;
  constexpr float kRound = 0x1.8p23f;
  const float r = std::fabs(t) < 0x1p22f ? (t + kRound) - kRound : t;
  const float v = r + static_cast<float>(zero_point);
  return static_cast<int8_t>(std::clamp(v, -128.0f, 127.0f));
}

/// Bias of a Conv/Gemm/MatMul for int32 accumulation (TFLite's and ONNX Runtime's rule):
/// saturate_int32(round_half_to_even(b / scale)), scale = input_scale * weight_scale[c] as stored
/// (float32) in the model. The division is done in double so no float rounding precedes the round.
inline int32_t quantize_bias(float b, float scale) {
  const double r = std::nearbyint(static_cast<double>(b) / static_cast<double>(scale));
  return static_cast<int32_t>(std::clamp(r, static_cast<double>(std::numeric_limits<int32_t>::min()),
                                         static_cast<double>(std::numeric_limits<int32_t>::max())));
}

/// ONNX DequantizeLinear for one int8.
inline float dequantize(int32_t q, float scale, int32_t zero_point) {
  return static_cast<float>(q - zero_point) * scale;
}

/// Integer softmax (ONNX Softmax between int8 values): the one implementation run_int8, the
/// hardware model's vector engine and the test interpreter all call. Softmax is invariant to a
/// shift of its inputs, so with d_i = max_j q_j - q_i in [0, 255] (q the int8 inputs, in_scale
/// their scale) p_i = exp(-in_scale * d_i) / sum_j exp(-in_scale * d_j). The exponentials come
/// from a 256-entry table computed once, when the graph is lowered (the compiler copies its bytes;
/// nothing after lowering evaluates exp):
///   table[d] = round(exp(-in_scale * d) * 2^30)            (int32, table[0] = 2^30)
/// and each row is then exact integer arithmetic:
///   e_i = table[d_i] <= 2^30;  s = sum_i e_i in int64 (>= 2^30, < 2^62 for rows below 2^32)
///   p_i = floor((e_i * 2^30 + s / 2) / s)                  (e_i * 2^30 < 2^61: no overflow;
///                                                            p_i in [0, 2^30], round half up)
///   out_i = requantize(p_i, M = 2^-30 / out_scale, out_zp) (int8 clamp)
/// The quantizer's output scale 1/256 makes M = 2^-22 exact. Against the float graph's
/// DQ -> Softmax -> Q the result differs only where p_i / out_scale lies within about 1e-6 of a
/// rounding boundary (the table's and p_i's rounding): never by more than one output step (tests/common, tests/reference).
constexpr int kSoftmaxFractionBits = 30;
using SoftmaxTable = std::array<int32_t, 256>;

inline SoftmaxTable make_softmax_table(double in_scale) {
  SoftmaxTable t{};
  for (int d = 0; d < 256; ++d)
    t[d] = static_cast<int32_t>(std::llround(std::exp(-in_scale * d) * static_cast<double>(1 << kSoftmaxFractionBits)));
  return t;
}

/// M = 2^-30 / out_scale, the requantization of a softmax probability in Q30 to the output.
inline QuantizedMultiplier softmax_output_multiplier(double out_scale) {
  return quantize_multiplier(std::ldexp(1.0, -kSoftmaxFractionBits) / out_scale);
}

/// Softmax of one row of n int8 values, x[i * stride] -> y[i * stride] (stride > 1: an axis that
/// is not the innermost). y may alias x. table entries must be in [0, 2^30] with table[0] > 0.
inline void softmax_row(const int8_t* x, int8_t* y, int64_t n, int64_t stride, const SoftmaxTable& table,
                        QuantizedMultiplier out, int32_t out_zero_point) {
  if (n <= 0) return;
  int32_t max = -128;
  for (int64_t i = 0; i < n; ++i) max = std::max<int32_t>(max, x[i * stride]);
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += table[max - x[i * stride]];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t e = table[max - x[i * stride]];
    const int64_t p = ((e << kSoftmaxFractionBits) + sum / 2) / sum;
    y[i * stride] = requantize(static_cast<int32_t>(p), out, out_zero_point);
  }
}

/// Integer resize (ONNX Resize between int8 values, nearest and bilinear): the one implementation
/// run_int8, the hardware model's vector engine and the test interpreter all call. Each output row
/// and column reads two source indices `first`, `second` of its axis with the Q11 weight `weight`
/// of `second` (first's is 2^11 - weight); nearest has first == second and weight 0. The taps come
/// from the float Resize's own (ops_resize.cc, computed once when the graph is lowered; nothing
/// after lowering evaluates a coordinate). With d = x - in_zp (|d| <= 255):
///   top    = (2^11 - wc) * d[r0][c0] + wc * d[r0][c1]          |top| <= 255 * 2^11
///   bottom = (2^11 - wc) * d[r1][c0] + wc * d[r1][c1]
///   acc    = (2^11 - wr) * top + wr * bottom                   |acc| <= 255 * 2^22 < 2^30: no overflow
///   out    = requantize(acc, M = in_scale / out_scale * 2^-22, out_zp)   (the one rounding)
/// A weight differs from the float one by at most 2^-12, so acc / 2^22 differs from the float
/// interpolation by at most 255 * 2 * 2^-12 < 0.125 of an input step; with the rounding (ties to
/// even, as QuantizeLinear) the result is within one output step of the float
/// QDQ graph's (tests/reference). Nearest with equal scales is exact: acc = d * 2^22, M = 2^-22.
constexpr int kResizeWeightBits = 11;
struct ResizeTap {
  int32_t first = 0, second = 0;  ///< source indices along the axis
  int32_t weight = 0;             ///< Q11 weight of `second`, in [0, 2^11]
};

/// The tap of two source indices with the real weight of the second (rounded to Q11, clamped to [0, 1]).
inline ResizeTap make_resize_tap(int64_t first, int64_t second, double second_weight) {
  const int64_t w = std::llround(second_weight * (1 << kResizeWeightBits));
  return {static_cast<int32_t>(first), static_cast<int32_t>(second),
          static_cast<int32_t>(std::clamp<int64_t>(w, 0, 1 << kResizeWeightBits))};
}

/// True when every tap of an axis of `in` elements reads inside it with a weight in [0, 2^11].
inline bool resize_taps_valid(const ResizeTap* taps, int64_t n, int64_t in) {
  for (int64_t i = 0; i < n; ++i)
    if (taps[i].first < 0 || taps[i].first >= in || taps[i].second < 0 || taps[i].second >= in ||
        taps[i].weight < 0 || taps[i].weight > (1 << kResizeWeightBits))
      return false;
  return true;
}

/// M = in_scale / out_scale * 2^-22: the requantization of the Q22 interpolation to the output.
inline QuantizedMultiplier resize_multiplier(double in_scale, double out_scale) {
  return quantize_multiplier(std::ldexp(in_scale / out_scale, -2 * kResizeWeightBits));
}

/// One output element from the plane `in` (rows of in_w int8) at taps `row`, `col`.
inline int8_t resize_point(const int8_t* in, int64_t in_w, ResizeTap row, ResizeTap col, int32_t in_zero_point,
                           QuantizedMultiplier m, int32_t out_zero_point) {
  constexpr int32_t kOne = 1 << kResizeWeightBits;
  const auto d = [&](int32_t r, int32_t c) { return static_cast<int32_t>(in[r * in_w + c]) - in_zero_point; };
  const int32_t top = (kOne - col.weight) * d(row.first, col.first) + col.weight * d(row.first, col.second);
  const int32_t bottom = (kOne - col.weight) * d(row.second, col.first) + col.weight * d(row.second, col.second);
  return requantize((kOne - row.weight) * top + row.weight * bottom, m, out_zero_point);
}

/// A plane of out_h x out_w from a plane of in_h x in_w (the taps must be valid for them: see
/// resize_taps_valid). out must not overlap in.
inline void resize_plane(const int8_t* in, int64_t in_w, int8_t* out, const ResizeTap* rows, int64_t out_h,
                         const ResizeTap* cols, int64_t out_w, int32_t in_zero_point, QuantizedMultiplier m,
                         int32_t out_zero_point) {
  for (int64_t r = 0; r < out_h; ++r)
    for (int64_t c = 0; c < out_w; ++c)
      out[r * out_w + c] = resize_point(in, in_w, rows[r], cols[c], in_zero_point, m, out_zero_point);
}

}  // namespace anvil::math
