#pragma once
/// First-fit placement of buffers with known lifetimes in one linear memory (the DRAM scratch
/// region): two buffers may share bytes only when their lifetimes do not overlap.
#include <cstdint>
#include <vector>

namespace anvil::compiler {

struct LiveBuffer {
  uint64_t bytes = 0;
  int first = 0, last = 0;  ///< op indices of the first write and of the last read, inclusive
};

struct ScratchLayout {
  std::vector<uint64_t> offsets;  ///< per buffer, in input order
  uint64_t peak = 0;              ///< bytes the region needs
};

/// Places buffers in input order, each at the lowest `alignment`-aligned offset that does not
/// overlap a placed buffer whose lifetime intersects its own. Deterministic.
ScratchLayout first_fit(const std::vector<LiveBuffer>& buffers, uint64_t alignment);

}  // namespace anvil::compiler
