#pragma once
/// Static checks of a model's graph at Executor::create, before any input is known: the element
/// types and ranks the operators need, propagated from the graph inputs and initializers, so a
/// malformed model fails once with a message naming the node and the tensor instead of deep in a
/// kernel (or with a misleading geometry error) at run time.
#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// What is known of a value before the model runs; kUndefined / -1 when unknown.
struct ValueFacts {
  DType dtype = DType::kUndefined;
  int64_t rank = -1;
};

/// Checks `nodes` (in topological order) against the facts of the values they read, adding the
/// facts of the values they produce. Only rules the ONNX spec states without exception are
/// checked, and only where the facts are known: operands that must share one type (Add, MatMul,
/// Gemm, Conv, Concat, ...), and the ranks of Conv/ConvTranspose/ConvInteger/QLinearConv X and W,
/// pooling inputs and kernel_shape, Gemm's A and B. Throws kInvalidArgument
/// "node 'name' (Op): ..." naming the tensor.
void check_types_and_ranks(const std::vector<const onnx::NodeProto*>& nodes, std::map<std::string, ValueFacts> facts);

}  // namespace anvil::ref
