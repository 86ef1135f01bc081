#pragma once
/// Node patterns the reference executor recognises, for the stages that must treat them as one
/// operator too (the quantizer keeps a LayerNorm's interior in float, as the executor runs it as
/// one kernel). One matcher, so the two can never disagree on what a pattern is.
#include <onnx/onnx_pb.h>

#include <functional>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// The LayerNorms written out as nine nodes (torch's export of nn.LayerNorm below opset 17:
/// ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul scale, Add bias over the last axis),
/// each as the indices of its nodes in `graph`, in that order. The rules are the executor's
/// (reference/src/layer_norm_pattern.h): every intermediate is read only inside the pattern and is
/// not a graph output; scale and bias are float initializers of rank <= 1.
std::vector<std::vector<int>> layer_norm_nodes(const onnx::GraphProto& graph);

/// A constant input's tensor by value name, or nullptr when the value is not a constant.
using ConstantLookup = std::function<const Tensor*(const std::string& name)>;

/// The nodes that compute a function of the one value `x`, starting at node `first` (which must
/// read x): `first` and each later node (the ONNX order is topological) that reads an output of
/// the nodes found so far, where every such node is an Add, Sub, Mul, Div, Pow, Sqrt or Erf with
/// one output whose inputs are x, outputs of the nodes found so far, and float constants of one
/// element (rank <= `x_rank` when that is >= 0, so every value keeps x's shape). In graph order;
/// empty when `first` is not such a node. GELU as torch exports it, x * (1 + erf(x / sqrt 2)) * 0.5,
/// is one from its Div: the quantizer keeps such a function float as one operator, and the integer
/// lowering runs it as one lookup table.
std::vector<int> unary_function_nodes(const onnx::GraphProto& graph, int first, const std::string& x,
                                      const ConstantLookup& constant, int x_rank);

/// The outputs of `nodes` read outside them: by another node, or as graph outputs.
std::vector<std::string> values_leaving(const onnx::GraphProto& graph, const std::vector<int>& nodes);

}  // namespace anvil::ref
