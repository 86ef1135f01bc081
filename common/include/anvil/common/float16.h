#pragma once
/// 16-bit floating-point element types (ONNX FLOAT16 and BFLOAT16) and their conversions.
/// Tensors store them as their bit patterns; arithmetic is done after conversion to float.
#include <cstdint>

namespace anvil {

/// IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
struct Float16 {
  uint16_t bits;
};
/// bfloat16: the upper 16 bits of an IEEE 754 binary32 (1 sign, 8 exponent, 7 mantissa bits).
struct BFloat16 {
  uint16_t bits;
};

/// x rounded to binary16, to nearest with ties to even (numpy's astype(float16), from double as
/// from float: every float is a double, so one rounding either way). |x| >= 65520 gives +-inf,
/// values below 2^-14 become subnormals (steps of 2^-24), NaN stays NaN with its top payload
/// bits (a quiet NaN 0x7e00 for the default NaN).
Float16 float16_from_double(double x);
/// The exact float value of a binary16 (every binary16 is a float).
float float16_to_float(Float16 h);

/// x truncated to bfloat16: the low 16 bits of the float are dropped (rounding toward zero).
/// This is what ONNX 1.12's reference implementation and its backend test data do for
/// Cast(float -> bfloat16); later ONNX versions round to nearest even instead. NaN keeps its top
/// payload bits; a NaN whose payload lies only in the dropped bits becomes a quiet NaN.
BFloat16 bfloat16_from_float(float x);
/// The exact float value of a bfloat16.
float bfloat16_to_float(BFloat16 b);

}  // namespace anvil
