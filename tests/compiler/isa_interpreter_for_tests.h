#pragma once
/// TEST-ONLY functional interpreter of anvil programs. The real executor is the hardware model
/// (hw_model/); this exists so the compiler's tests can run a compiled program on flat byte arrays
/// and compare it with ref::run_int8 without a SystemC simulation.
///
/// Instructions run one at a time in program order (waits are not needed for that order; the
/// dependency checker below verifies that they would make every concurrent order equivalent).
/// Arithmetic goes through common/requant.h. Every instruction's actual byte accesses are logged.
#include <cstdint>
#include <vector>

#include "anvil/common/tensor.h"
#include "anvil/isa/program.h"

namespace anvil::testing {

/// A byte range [begin, end) of one memory space: 0..2 the DRAM regions (isa::Region), 3 SRAM.
struct TouchedRange {
  int space;
  uint64_t begin, end;
};
struct TouchedBytes {
  std::vector<TouchedRange> reads, writes;
};

struct InterpreterRun {
  std::vector<uint8_t> io;                  ///< the IO region after the run
  std::vector<TouchedBytes> accesses;       ///< per instruction, what it actually touched
};

/// Runs `program` with the IO region `io` (io_bytes long; inputs filled in). Throws anvil::Error
/// (kDeviceError) when an instruction touches memory outside its region, outside
/// program.sram_bytes, or has bad arguments.
InterpreterRun interpret_for_tests(const isa::Program& program, std::vector<uint8_t> io);

/// Places int8 inputs (by descriptor name) in a fresh IO region, runs the program and returns the
/// outputs by descriptor name. `run` (optional) receives the whole run.
TensorMap run_program_for_tests(const isa::Program& program, const TensorMap& inputs, InterpreterRun* run = nullptr);

/// Checks that the program's waits order every pair of conflicting accesses (write/write,
/// write/read, read/write of a common byte) between instructions of the run, assuming each unit
/// completes its instructions in order. Returns one line per violation (empty: race-free).
std::vector<std::string> find_unordered_conflicts(const isa::Program& program, const InterpreterRun& run);

}  // namespace anvil::testing
