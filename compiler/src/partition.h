#pragma once
/// Host fallback: splits an integer graph into NPU and host segments (docs/compiler.md).
#include "anvil/compiler/compiler.h"

namespace anvil::compiler {

/// Appends a node's placement. A node lowered to several integer ops (a batched-rows MatMul is a
/// kReshape, a kConv and a kReshape) is listed once per segment and side, under its compute op.
void add_placement(std::vector<NodePlacement>& placement, NodePlacement p);

/// Lowers the whole graph to one NPU program. Throws kUnsupported naming the node it cannot lower.
CompileResult compile_unpartitioned(const ref::Int8Graph& graph, const CompileOptions& options);

/// The whole graph as one NPU program when it lowers as a whole and has no kHost op (the same
/// program compile_unpartitioned gives); otherwise a partitioned program: maximal runs of ops the
/// NPU lowers become NPU segments, kHost ops and every op the NPU refuses (kUnsupported, whose
/// message becomes the op's reason) become host segments run by ref::run_int8 on the host.
CompileResult compile_partitioned(const ref::Int8Graph& graph, const CompileOptions& options);

}  // namespace anvil::compiler
