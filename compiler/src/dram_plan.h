#pragma once
/// Where every value of the integer graph lives in DRAM.
///
///   kIo      graph inputs (from offset 0, each 64-byte aligned, in graph order), then graph
///            outputs; the program's tensor descriptors say where.
///   kScratch intermediate values, placed by first_fit over their lifetimes.
/// A Reshape output is the same bytes as its input: both share one home.
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::compiler {

constexpr uint64_t kDramAlignment = 64;  ///< bytes; every tensor and constant block starts aligned

struct ValueHome {
  isa::Region region = isa::Region::kScratch;
  uint64_t offset = 0;
};

/// A graph output whose bytes are those of a graph input or of an earlier graph output (the same
/// value under a second name, or a reshape of it): it gets an IO tensor of its own, which the
/// program fills by copying `bytes` from IO offset `from` to IO offset `to` after every op has run.
struct IoCopy {
  uint64_t from = 0, to = 0, bytes = 0;
  std::string output;  ///< the graph output's name (reports)
};

struct DramPlan {
  std::vector<ValueHome> home;  ///< per value index
  std::vector<isa::TensorDesc> inputs, outputs;
  uint64_t io_bytes = 0, scratch_bytes = 0;
  std::vector<IoCopy> io_copies;  ///< in graph output order; `home` keeps the shared bytes' home
};

/// Validates the graph's structure (indices, topological order, single producers, reshape sizes)
/// and plans its DRAM. Throws kInvalidArgument naming the node or value. A graph output holding the
/// bytes of a graph input or of an earlier graph output gets its own IO tensor and an IoCopy.
DramPlan plan_dram(const ref::Int8Graph& graph);

}  // namespace anvil::compiler
