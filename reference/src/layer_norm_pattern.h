#pragma once
/// LayerNorm written out as nine nodes, as torch exports nn.LayerNorm below opset 17:
///   m = ReduceMean(x, axes=[-1]); d = Sub(x, m); p = Pow(d, 2); v = ReduceMean(p, axes=[-1]);
///   s = Sqrt(Add(v, eps)); n = Div(d, s); y = Add(Mul(n, scale), bias)
/// The executor runs a found pattern as one parallel kernel over the rows of x when nobody observes
/// intermediate values (RunOptions::observe unset). Its outputs are those of the nine nodes up
/// to float summation order (the sums run over 8 partial sums).
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

struct LayerNormPattern {
  /// Indices into the executor's nodes, in the order of the formula above (the first ReduceMean
  /// first; every other node depends on it, so it runs first).
  std::vector<size_t> nodes;
  std::string x, y;  ///< the input and the final Add's output
  float epsilon = 0.0f;
  Tensor scale, bias;  ///< float32, one element or one per element of x's last axis
};

/// The patterns among `nodes` (execution order): 2 and eps from initializers or Constant nodes
/// (one float each), scale and bias float32 initializers of rank <= 1 (either operand order of Mul
/// and the Adds), ReduceMean over axes [-1] with keepdims 1, every intermediate read only by the
/// next node(s) of the pattern and not a graph output.
std::vector<LayerNormPattern> find_layer_norm_patterns(const std::vector<const onnx::NodeProto*>& nodes,
                                                       const TensorMap& initializers,
                                                       const std::vector<std::string>& graph_outputs);

/// y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis of x (float32, rank >= 1),
/// rows split over the TBB pool. Throws kInvalidArgument when x is not float32 of rank >= 1 or
/// scale/bias do not broadcast to the last axis (one element or one per element).
Tensor run_layer_norm_pattern(const LayerNormPattern& p, const Tensor& x);

}  // namespace anvil::ref
