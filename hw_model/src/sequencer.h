#pragma once
/// A PE's sequencer: instruction memory, the per-unit in-order queues and the wait[] dependency
/// rule of the ISA (an instruction starts when unit u has completed >= wait[u] instructions).
/// The execution units (dma_engine, mac_array, vector_engine) pull their instructions from it.
#include <array>
#include <cstdint>
#include <systemc>
#include <vector>

#include "anvil/isa/device.h"
#include "anvil/isa/isa.h"
#include "chip_context.h"

namespace anvil::hw {

/// A DRAM region relocated for the current request (isa::Region).
struct RegionWindow {
  uint64_t base = 0, bytes = 0;
};

/// What a PE run is given by the firmware.
struct PeLaunch {
  std::vector<isa::Instruction> instructions;
  std::array<RegionWindow, isa::kNumRegions> regions{};
  uint32_t fused_pes = 1;      ///< 2: this sequencer drives the fused pair (2x slices, SRAM, lanes)
  uint32_t fault_mode = 0;     ///< FAULT_INJECT: 1 fail the Nth DMA, 2 hang at the Nth instruction
  uint32_t fault_arg = 0;      ///< FAULT_ARG (1-based)
};

/// An execution error of one instruction; ends the run with this device error.
struct PeFault {
  isa::DeviceError code;
  uint32_t info;
};

class Sequencer : public sc_core::sc_module {
 public:
  Sequencer(sc_core::sc_module_name name, ChipContext& ctx, int pe);

  /// Power cycle: empty instruction memory, counters zeroed.
  void reset();
  /// Loads a run; false (and nothing loaded) when the instructions exceed instr_mem_bytes.
  bool load(PeLaunch launch);
  /// Starts every unit on the loaded instructions (notifies start_event at this delta).
  void start();
  /// Stops a run (watchdog): units leave at their next step; done_event fires when all have.
  void abort(isa::DeviceError code, uint32_t info);
  bool running() const { return running_; }
  isa::DeviceError error() const { return error_; }
  uint32_t error_info() const { return error_info_; }
  uint64_t last_run_cycles() const { return last_run_cycles_; }
  const sc_core::sc_event& done_event() const { return done_event_; }

  // ---- execution-unit side
  const sc_core::sc_event& start_event() const { return start_event_; }
  const sc_core::sc_event& progress_event() const { return progress_event_; }
  const sc_core::sc_event& abort_event() const { return abort_event_; }
  /// The next instruction of `unit` (and its index in the program), nullptr at the end.
  const isa::Instruction* next(isa::Unit unit, uint32_t* index) const;
  /// True when the instruction's wait[] counts are met.
  bool ready(const isa::Instruction& inst) const;
  /// Absolute time the last instruction it waits for completed (zero when none).
  sc_core::sc_time ready_time(const isa::Instruction& inst) const;
  /// The unit completed its current instruction at absolute time `done`.
  void complete(isa::Unit unit, const sc_core::sc_time& done);
  /// The unit's current instruction failed; ends the run.
  void fault(const PeFault& f);
  void unit_finished(isa::Unit unit);
  bool aborted() const { return aborted_; }
  /// Fault injection decisions for instruction `index` (0-based) of the run.
  bool inject_hang(uint32_t index) const { return launch_.fault_mode == 2 && index + 1 == launch_.fault_arg; }
  bool inject_dma_fault();  ///< counts DMA instructions; true for the FAULT_ARG-th
  const PeLaunch& launch() const { return launch_; }
  const RegionWindow& region(uint8_t r) const { return launch_.regions[r]; }
  /// Slices, SRAM and vector lanes this run has (x2 in fused mode).
  uint32_t slices() const { return ctx_.config.slices_per_pe * launch_.fused_pes; }
  uint64_t sram_bytes() const { return ctx_.config.sram_bytes_per_pe() * launch_.fused_pes; }
  uint32_t vector_lanes() const { return ctx_.config.vector_lanes * launch_.fused_pes; }
  int pe() const { return pe_; }
  uint64_t runs() const { return runs_; }
  /// Sum of the cycles of every completed run since the power cycle.
  uint64_t total_run_cycles() const { return total_run_cycles_; }
  /// The same weighted by the PEs each run used (a fused run counts twice): the denominator of
  /// MAC utilisation, with the peak of one PE.
  uint64_t total_pe_cycles() const { return total_pe_cycles_; }

 private:
  ChipContext& ctx_;
  const int pe_;
  PeLaunch launch_;
  std::array<std::vector<uint32_t>, isa::kNumUnits> queue_;        ///< instruction indices per unit
  std::array<std::vector<sc_core::sc_time>, isa::kNumUnits> done_;  ///< completion times per unit
  uint32_t units_running_ = 0, dma_seen_ = 0;
  bool running_ = false, aborted_ = false;
  isa::DeviceError error_ = isa::DeviceError::kOk;
  uint32_t error_info_ = 0;
  sc_core::sc_time start_time_;
  uint64_t last_run_cycles_ = 0, runs_ = 0, total_run_cycles_ = 0, total_pe_cycles_ = 0;
  sc_core::sc_event start_event_, progress_event_, abort_event_, done_event_;
};

}  // namespace anvil::hw
