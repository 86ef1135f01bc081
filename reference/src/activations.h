#pragma once
// The float activations that both the float Executor's kernels and the int8 lowering's lookup
// tables (lower_qdq's kLut) evaluate, so a table entry is exactly what the float graph computes
// for that dequantized input. float32 throughout, as ONNX defines them.
#include <algorithm>
#include <cmath>

namespace anvil::ref::act {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float tanh(float x) { return std::tanh(x); }
/// ONNX LeakyRelu (alpha defaults to 0.01).
inline float leaky_relu(float x, float alpha) { return x < 0.0f ? alpha * x : x; }
/// ONNX HardSigmoid: max(0, min(1, alpha * x + beta)) (alpha 0.2, beta 0.5 by default).
inline float hard_sigmoid(float x, float alpha, float beta) { return std::max(0.0f, std::min(1.0f, alpha * x + beta)); }
/// ONNX HardSwish: x * max(0, min(1, x / 6 + 0.5)).
inline float hard_swish(float x) { return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f)); }

}  // namespace anvil::ref::act
