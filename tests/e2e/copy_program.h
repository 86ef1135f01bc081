#pragma once
// The hand-assembled program the CLI tests run (they link anvil_isa; cli_harness.h does not need it).
#include <cstdint>

#include "anvil/isa/program.h"

namespace anvil::test {

/// A hand-assembled program: the int8 input x [1, n] copied through SRAM to the output y [1, n]
/// at IO offset 64 (n <= 64). Tests change it (no instructions, other metadata) before saving.
inline isa::Program copy_program(int64_t n) {
  isa::Program p;
  isa::TensorDesc in;
  in.name = "x";
  in.shape = {1, n};
  in.layout = isa::Layout::kNC;
  isa::TensorDesc out = in;
  out.name = "y";
  out.io_offset = 64;
  p.inputs = {in};
  p.outputs = {out};
  p.io_bytes = 128;
  p.sram_bytes = static_cast<uint64_t>(n);
  const auto bytes = static_cast<uint32_t>(n);
  isa::Instruction load, store;
  load.opcode = isa::Opcode::kDmaLoad;
  load.dma = {0, 0, bytes, 1, bytes, bytes, static_cast<uint8_t>(isa::Region::kIo), {}};
  store.opcode = isa::Opcode::kDmaStore;
  store.dma = {64, 0, bytes, 1, bytes, bytes, static_cast<uint8_t>(isa::Region::kIo), {}};
  store.wait[0] = 1;  // after the load completed
  p.instructions = {load, store};
  return p;
}

}  // namespace anvil::test
