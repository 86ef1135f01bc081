#include "cost_model.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace anvil::compiler {

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

uint64_t dma_bytes(const isa::DmaArgs& d) { return static_cast<uint64_t>(d.rows) * d.row_bytes; }

}  // namespace

uint64_t instruction_cycles(const isa::Instruction& inst, const Target& t) {
  if (inst.opcode == isa::Opcode::kNop) return 0;
  switch (isa::opcode_unit(inst.opcode)) {
    case isa::Unit::kDma: {
      const double cycles = t.dram_latency_ns * t.clock_ghz + dma_bytes(inst.dma) / (t.dram_gbps / t.clock_ghz);
      return static_cast<uint64_t>(std::ceil(cycles));
    }
    case isa::Unit::kMac: {
      const uint64_t slices = static_cast<uint64_t>(t.slices_per_pe) * t.num_pes;
      if (inst.opcode == isa::Opcode::kMatMul) {  // rows of batch*M over the slices, N over mac_rows, K over mac_cols
        const isa::MatMulArgs& m = inst.matmul;
        return t.conv_fill_cycles + ceil_div(static_cast<uint64_t>(m.batch) * m.m, slices) * ceil_div(m.n, t.mac_rows) *
                                        ceil_div(m.k, t.mac_cols);
      }
      const isa::ConvArgs& c = inst.conv;
      const uint64_t groups = std::max<uint16_t>(c.groups, 1);
      const uint64_t k = static_cast<uint64_t>(c.in_c / groups) * c.kernel_h * c.kernel_w;
      return t.conv_fill_cycles + ceil_div(static_cast<uint64_t>(c.n) * c.out_h * c.out_w, slices) *
                                      ceil_div(c.out_c / groups, t.mac_rows) * ceil_div(k, t.mac_cols) * groups;
    }
    case isa::Unit::kVector: {
      const uint64_t lanes = inst.opcode == isa::Opcode::kLut ? t.lut_lanes : t.vector_lanes;
      return t.vector_fill_cycles + ceil_div(isa::vector_elements(inst), lanes * t.num_pes);
    }
  }
  return 0;
}

std::vector<uint64_t> schedule_cycles(const isa::Program& program, const Target& target) {
  std::array<std::vector<uint64_t>, isa::kNumUnits> done;  // per unit: completion cycle, in order
  std::vector<uint64_t> finish(program.instructions.size(), 0);
  for (size_t i = 0; i < program.instructions.size(); ++i) {
    const isa::Instruction& inst = program.instructions[i];
    if (inst.opcode == isa::Opcode::kNop) continue;  // the sequencer does not queue nops
    const int unit = static_cast<int>(isa::opcode_unit(inst.opcode));
    uint64_t start = done[unit].empty() ? 0 : done[unit].back();
    for (int u = 0; u < isa::kNumUnits; ++u)
      if (inst.wait[u] > 0 && inst.wait[u] <= done[u].size()) start = std::max(start, done[u][inst.wait[u] - 1]);
    finish[i] = start + instruction_cycles(inst, target);
    done[unit].push_back(finish[i]);
  }
  return finish;
}

}  // namespace anvil::compiler
