#include "dma_engine.h"

#include <algorithm>

namespace anvil::hw {

using sc_core::sc_time;

DmaEngine::DmaEngine(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq)
    : ExecUnit(name, ctx, seq, isa::Unit::kDma), dram_socket("dram_socket") {}

sc_time DmaEngine::execute(const isa::Instruction& inst, uint32_t index, const sc_time& local) {
  const isa::DmaArgs& a = inst.dma;
  const bool load = inst.opcode == isa::Opcode::kDmaLoad;
  if (a.region >= isa::kNumRegions || a.rows == 0 || a.row_bytes == 0)
    throw PeFault{isa::DeviceError::kBadProgram, index};
  const RegionWindow& region = seq_.region(a.region);
  const uint64_t dram_extent = static_cast<uint64_t>(a.rows - 1) * a.dram_stride + a.row_bytes;
  const uint64_t sram_extent = static_cast<uint64_t>(a.rows - 1) * a.sram_stride + a.row_bytes;
  const uint64_t first = region.base + a.dram_offset;
  if (seq_.inject_dma_fault() || a.dram_offset > region.bytes || dram_extent > region.bytes - a.dram_offset)
    throw PeFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(first)};
  check_sram(a.sram_addr, sram_extent, index, "dma");

  (load ? counters_.loads_issued : counters_.stores_issued)++;
  tlm::tlm_generic_payload gp;
  gp.set_command(load ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
  sc_time end = local;
  for (uint32_t r = 0; r < a.rows; ++r) {
    const uint64_t sram_addr = a.sram_addr + static_cast<uint64_t>(r) * a.sram_stride;
    const uint64_t dram_addr = first + static_cast<uint64_t>(r) * a.dram_stride;
    uint8_t* p = load ? sram_.write_ptr(sram_addr, a.row_bytes) : const_cast<uint8_t*>(sram_.read_ptr(sram_addr));
    gp.set_address(dram_addr);
    gp.set_data_ptr(p);
    gp.set_data_length(a.row_bytes);
    gp.set_streaming_width(a.row_bytes);
    gp.set_byte_enable_ptr(nullptr);
    gp.set_dmi_allowed(false);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_time delay = local;  // every row issued at the descriptor's start: the DRAM pipelines them
    dram_socket->b_transport(gp, delay);
    if (!gp.is_response_ok()) throw PeFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(dram_addr)};
    end = std::max(end, delay);
  }
  const uint64_t bytes = static_cast<uint64_t>(a.rows) * a.row_bytes;
  (load ? counters_.bytes_loaded : counters_.bytes_stored) += bytes;
  counters_.descriptors++;
  const uint64_t latency = ctx_.to_cycles(end - local);
  counters_.latency_cycles += latency;
  (load ? counters_.loads_completed : counters_.stores_completed)++;
  (load ? counters_.load_latency_cycles : counters_.store_latency_cycles) += latency;
  return end - local;
}

nlohmann::json DmaEngine::trace_args(const isa::Instruction& inst) const {
  const isa::DmaArgs& a = inst.dma;
  return {{"direction", inst.opcode == isa::Opcode::kDmaLoad ? "dram->sram" : "sram->dram"},
          {"bytes", static_cast<uint64_t>(a.rows) * a.row_bytes},
          {"region", a.region},
          {"dram_offset", a.dram_offset},
          {"sram_addr", a.sram_addr},
          {"rows", a.rows},
          {"row_bytes", a.row_bytes}};
}

}  // namespace anvil::hw
