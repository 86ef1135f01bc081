#pragma once
/// Node patterns the reference executor recognises, for the stages that must treat them as one
/// operator too (the quantizer keeps a LayerNorm's interior in float, as the executor runs it as
/// one kernel). One matcher, so the two can never disagree on what a pattern is.
#include <onnx/onnx_pb.h>

#include <vector>

namespace anvil::ref {

/// The LayerNorms written out as nine nodes (torch's export of nn.LayerNorm below opset 17:
/// ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul scale, Add bias over the last axis),
/// each as the indices of its nodes in `graph`, in that order. The rules are the executor's
/// (reference/src/layer_norm_pattern.h): every intermediate is read only inside the pattern and is
/// not a graph output; scale and bias are float initializers of rank <= 1.
std::vector<std::vector<int>> layer_norm_nodes(const onnx::GraphProto& graph);

}  // namespace anvil::ref
