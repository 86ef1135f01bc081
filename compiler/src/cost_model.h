#pragma once
/// The closed-form timing of docs/warboy.md ("Timing"), the same formulas the hardware model
/// implements (hw_model/src/{dma_engine,mac_array,vector_engine}.cc), in core cycles. This is the
/// compiler's only copy of them; the configuration values are Target fields.
#include <cstdint>
#include <vector>

#include "anvil/compiler/compiler.h"
#include "anvil/isa/program.h"

namespace anvil::compiler {

/// Cycles one instruction occupies its unit:
///   DMA of B bytes:  ceil(dram_latency_ns * clock_ghz + B / (dram_gbps / clock_ghz))
///   kConv:           conv_fill_cycles + ceil(N*OH*OW / S) * ceil((OC/G) / mac_rows) * ceil(K / mac_cols) * G,
///                    K = (IC/G) * KH * KW, S = slices_per_pe * num_pes
///   kMatMul:         conv_fill_cycles + ceil(batch*M / S) * ceil(N / mac_rows) * ceil(K / mac_cols)
///   vector:          vector_fill_cycles + ceil(elements / (lanes * num_pes)), elements =
///                    count (add, requant, lut), the output elements (binary: each reads one a and one b),
///                    N*C*OH*OW*KH*KW (pooling: every window element read)
///                    or 3 * outer*length*inner (softmax: max, exponential sum, normalise passes),
///                    lanes = lut_lanes for kLut, vector_lanes otherwise
uint64_t instruction_cycles(const isa::Instruction& inst, const Target& target);

/// Completion cycle of every instruction when each unit runs its instructions in order, one at a
/// time, and an instruction starts once its wait[] counts are met (isa.h). DRAM contention with
/// another PE is not modelled. Returns one value per instruction (0 for kNop).
std::vector<uint64_t> schedule_cycles(const isa::Program& program, const Target& target);

}  // namespace anvil::compiler
