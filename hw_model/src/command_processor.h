#pragma once
/// The command processor: an SC_THREAD that runs the firmware (anvil_firmware) on a HAL made of
/// this chip's blocks. A reset makes the HAL throw PowerCycle out of the firmware, which then
/// reboots.
#include <array>
#include <map>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>

#include "anvil/firmware/hal.h"
#include "chip_context.h"
#include "pcie_host_interface.h"
#include "sequencer.h"

namespace anvil::hw {

class CommandProcessor : public sc_core::sc_module, public fw::Hal {
 public:
  /// The command processor's own DRAM port (program headers, instruction fetch).
  tlm_utils::simple_initiator_socket<CommandProcessor> dram_socket;

  CommandProcessor(sc_core::sc_module_name name, ChipContext& ctx, PcieHostInterface& pcie,
                   std::array<Sequencer*, 2> sequencers);
  /// The host rang a doorbell (SQ_TAIL or CQ_HEAD written).
  void doorbell();

  struct Counters {
    uint64_t commands_busy_cycles = 0, pe_runs = 0, watchdog_timeouts = 0;
  };
  const Counters& counters() const { return counters_; }
  void reset_counters() { counters_ = Counters{}; }

  // fw::Hal
  uint32_t reg_read(uint32_t offset) override;
  void reg_write(uint32_t offset, uint32_t value) override;
  void wait_event() override;
  void host_read(uint64_t host_addr, void* dst, uint64_t n) override;
  void host_write(uint64_t host_addr, const void* src, uint64_t n) override;
  void host_to_dram(uint64_t host_addr, uint64_t dram_addr, uint64_t n) override;
  void dram_to_host(uint64_t dram_addr, uint64_t host_addr, uint64_t n) override;
  void dram_read(uint64_t dram_addr, void* dst, uint64_t n) override;
  uint32_t num_pes() const override { return ctx_.config.num_pes; }
  uint64_t instr_mem_bytes() const override { return ctx_.config.instr_mem_bytes; }
  uint64_t sram_bytes_per_pe() const override { return ctx_.config.sram_bytes_per_pe(); }
  uint64_t dram_bytes() const override { return ctx_.config.dram_bytes; }
  fw::PeResult start_pes(const fw::PeRun& run) override;
  bool pes_finished(uint32_t pe_mask, fw::PeResult* result) override;
  uint64_t cycle() const override { return ctx_.now_cycles(); }
  void send_msi(uint32_t bits) override;

 private:
  void thread();
  /// Lets `t` pass, ending on a core clock edge.
  void elapse(const sc_core::sc_time& t) { ctx_.sleep(gen_, ctx_.to_clock_edge(t)); }
  /// Trace: one PCIe transfer that started at `start` and ended now.
  void trace_transfer(const char* name, const sc_core::sc_time& start, uint64_t host_addr, uint64_t n);
  /// Trace: a host command, seen on the link as the submission entry read from the SQ ring and
  /// its completion entry written to the CQ ring.
  void trace_command(bool write, uint64_t host_addr, const void* data, uint64_t n);
  uint64_t ring_base(uint32_t lo_reg) { return static_cast<uint64_t>(reg_read(lo_reg)) | static_cast<uint64_t>(reg_read(lo_reg + 4)) << 32; }

  /// A run started on a sequencer (index 0 also drives the fused pair) and its watchdog.
  struct ActiveRun {
    bool started = false, aborted = false;
    sc_core::sc_time deadline;  ///< absolute: the watchdog stops the run here
  };
  /// True when a started run has ended and the firmware has not collected it yet.
  bool run_ended() const;

  ChipContext& ctx_;
  PcieHostInterface& pcie_;
  std::array<ActiveRun, 2> active_{};
  std::array<Sequencer*, 2> seq_;
  uint64_t gen_ = 0;
  bool doorbell_pending_ = false;
  std::map<uint32_t, uint32_t> command_ops_;  ///< opcode of each fetched, not yet completed entry by tag (trace)
  sc_core::sc_event doorbell_event_;
  Counters counters_;
};

}  // namespace anvil::hw
