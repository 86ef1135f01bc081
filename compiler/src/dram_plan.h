#pragma once
/// Where every value of the integer graph lives in DRAM.
///
///   kIo      graph inputs (from offset 0, each 64-byte aligned, in graph order), then graph
///            outputs; the program's tensor descriptors say where.
///   kScratch intermediate values, placed by first_fit over their lifetimes.
/// A Reshape output is the same bytes as its input: both share one home.
#include <cstdint>
#include <vector>

#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::compiler {

constexpr uint64_t kDramAlignment = 64;  ///< bytes; every tensor and constant block starts aligned

struct ValueHome {
  isa::Region region = isa::Region::kScratch;
  uint64_t offset = 0;
};

struct DramPlan {
  std::vector<ValueHome> home;  ///< per value index
  std::vector<isa::TensorDesc> inputs, outputs;
  uint64_t io_bytes = 0, scratch_bytes = 0;
};

/// Validates the graph's structure (indices, topological order, single producers, reshape sizes)
/// and plans its DRAM. Throws kInvalidArgument naming the node or value; kUnsupported when a graph
/// output is another graph output or a graph input under a different name (no copy op yet).
DramPlan plan_dram(const ref::Int8Graph& graph);

}  // namespace anvil::compiler
