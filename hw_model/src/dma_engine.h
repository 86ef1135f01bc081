#pragma once
/// A PE's DMA engine: executes kDmaLoad (DRAM -> SRAM) and kDmaStore (SRAM -> DRAM) descriptors of
/// `rows` rows of `row_bytes`, relocated into the run's DRAM regions. Each row is one TLM
/// transaction to the DRAM, all issued at the descriptor's start (pipelined), so a descriptor of
/// B bytes takes dram_latency + B / dram bandwidth, plus waiting for the other PE's transfers.
/// An access outside its region or the DRAM (TLM error response) ends the run with kDmaFault.
#include "exec_unit.h"

namespace anvil::hw {

class DmaEngine : public ExecUnit {
 public:
  tlm_utils::simple_initiator_socket<DmaEngine> dram_socket;

  DmaEngine(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq);

  struct Counters {
    uint64_t bytes_loaded = 0, bytes_stored = 0, descriptors = 0, latency_cycles = 0;
    /// Per direction (kDmaLoad = DRAM -> SRAM, kDmaStore = SRAM -> DRAM): descriptors issued to
    /// DRAM (passed their checks), completed without an error, and the completed ones' latency.
    uint64_t loads_issued = 0, loads_completed = 0, load_latency_cycles = 0;
    uint64_t stores_issued = 0, stores_completed = 0, store_latency_cycles = 0;
  };
  const Counters& counters() const { return counters_; }
  void reset_counters() override { ExecUnit::reset_counters(); counters_ = Counters{}; }

 private:
  sc_core::sc_time execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time& local) override;
  nlohmann::json trace_args(const isa::Instruction& inst) const override;
  Counters counters_;
};

}  // namespace anvil::hw
