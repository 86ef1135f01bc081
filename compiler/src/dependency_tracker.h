#pragma once
/// Derives the cross-unit waits of instructions from the memory they touch.
///
/// isa.h: an instruction starts only when, for every unit u, at least wait[u] instructions of unit u
/// have completed. The tracker remembers, for every byte range of SRAM and of each DRAM region,
/// the instructions that last wrote it and those that read it since. A new instruction waits for
///   - the last writer of every byte it reads (read after write),
///   - the last writer and all later readers of every byte it writes (write after write/read).
/// Instructions of the same unit also wait for each other this way: the ISA does not promise that
/// a unit finishes one instruction before it starts the next.
#include <array>
#include <cstdint>
#include <vector>

#include "anvil/isa/isa.h"

namespace anvil::compiler {

/// A byte range [begin, end) in one memory space: a DRAM region (isa::Region) or the SRAM.
struct MemRange {
  enum Space : uint8_t { kDramConst = 0, kDramScratch = 1, kDramIo = 2, kSram = 3 };
  uint8_t space;
  uint64_t begin, end;
};

/// The bytes an instruction reads and writes, from its arguments (whole tensors: an envelope).
struct MemAccess {
  std::vector<MemRange> reads, writes;
};
MemAccess instruction_access(const isa::Instruction& inst);

class DependencyTracker {
 public:
  /// Sets inst.wait[] from the instruction's accesses and records it as issued on its unit.
  /// Returns its 0-based index among its unit's instructions.
  uint32_t schedule(isa::Instruction& inst);
  /// Instructions issued so far on each unit.
  const std::array<uint32_t, isa::kNumUnits>& issued() const { return issued_; }

 private:
  struct Record {
    MemRange range;
    isa::Unit unit;
    uint32_t index;
    bool write;
  };
  std::vector<Record> records_;
  std::array<uint32_t, isa::kNumUnits> issued_{};
};

}  // namespace anvil::compiler
