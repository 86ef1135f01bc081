#include "warboy_chip.h"

#include <tlm_utils/tlm_quantumkeeper.h>

/// libsystemc's own main() refers to sc_main; anvil executables have their own main(), so this is
/// never called. It lives in the object every user of the chip links, only to satisfy the link.
int sc_main(int, char**) { return 1; }

namespace anvil::hw {

WarboyChip::Pe::Pe(const std::string& p, ChipContext& ctx, int index)
    : sram((p + "_sram").c_str()),
      seq((p + "_sequencer").c_str(), ctx, index),
      dma((p + "_dma_engine").c_str(), ctx, seq),
      mac((p + "_mac_array").c_str(), ctx, seq),
      vector((p + "_vector_engine").c_str(), ctx, seq) {
  dma.sram_socket.bind(sram.socket);
  mac.sram_socket.bind(sram.socket);
  vector.sram_socket.bind(sram.socket);
}

namespace {
std::array<std::unique_ptr<WarboyChip::Pe>, WarboyChip::kMaxPes> make_pes(ChipContext& ctx) {
  std::array<std::unique_ptr<WarboyChip::Pe>, WarboyChip::kMaxPes> pes;
  for (int i = 0; i < WarboyChip::kMaxPes; ++i) pes[i] = std::make_unique<WarboyChip::Pe>("pe" + std::to_string(i), ctx, i);
  return pes;
}
}  // namespace

WarboyChip::WarboyChip(sc_core::sc_module_name name)
    : sc_module(name),
      host_memory("host_memory"),
      dram("dram", ctx),
      pcie("pcie_host_interface", ctx),
      pes(make_pes(ctx)),
      command_processor("command_processor", ctx, pcie, {&pes[0]->seq, &pes[1]->seq}) {
  pcie.host_socket.bind(host_memory.socket);
  pcie.dram_socket.bind(dram.socket);
  command_processor.dram_socket.bind(dram.socket);
  for (auto& pe : pes) pe->dma.dram_socket.bind(dram.socket);
  pcie.regs().on_host_write = [this](uint32_t offset, uint32_t value) {
    if (offset == isa::reg::SQ_TAIL || offset == isa::reg::CQ_HEAD) command_processor.doorbell();
    if (offset == isa::reg::CONTROL && (value & isa::field::CONTROL_RESET_MASK)) soft_reset();
  };
  pcie.regs().on_host_read = [this](uint32_t offset, uint32_t stored) -> uint32_t {
    if (offset == isa::reg::CYCLE_LO) return static_cast<uint32_t>(ctx.now_cycles());
    if (offset == isa::reg::CYCLE_HI) return static_cast<uint32_t>(ctx.now_cycles() >> 32);
    return stored;
  };
}

void WarboyChip::restart_processes() {
  ctx.generation++;
  ctx.reset_event.notify(sc_core::SC_ZERO_TIME);  // sleeping processes wake, see the new generation and restart
  for (auto& pe : pes) pe->seq.reset();
  pcie.reset();
  pcie.regs().put(isa::reg::NUM_PES, ctx.config.num_pes);
}

void WarboyChip::power_on(const HwConfig& config) {
  ctx.config = config;
  ctx.epoch = sc_core::sc_time_stamp();
  tlm_utils::tlm_quantumkeeper::set_global_quantum(ctx.quantum());
  restart_processes();
  dram.reset();
  host_memory.clear();
  command_processor.reset_counters();
  ctx.trace.clear();
  ctx.trace.set_enabled(false);
  const uint64_t sram = config.sram_bytes_per_pe();
  for (int i = 0; i < kMaxPes; ++i) {
    // PE 0 holds the fused pair's whole SRAM address space (docs/warboy.md); PE 1 exists only on 2-PE devices.
    const uint64_t bytes = i == 0 ? sram * config.num_pes : (i < static_cast<int>(config.num_pes) ? sram : 0);
    pes[i]->sram.reset(bytes);
    pes[i]->dma.reset_counters();
    pes[i]->mac.reset_counters();
    pes[i]->vector.reset_counters();
  }
}

void WarboyChip::soft_reset() { restart_processes(); }

nlohmann::json WarboyChip::counters() const {
  nlohmann::json j;
  j["cycle"] = ctx.now_cycles();
  j["clock_ghz"] = ctx.config.clock_ghz;
  for (int i = 0; i < static_cast<int>(ctx.config.num_pes); ++i) {
    const Pe& pe = *pes[i];
    nlohmann::json p;
    const auto& dc = pe.dma.counters();
    p["dma"] = {{"busy_cycles", pe.dma.unit_counters().busy_cycles},
                {"instructions", pe.dma.unit_counters().instructions},
                {"bytes_loaded", dc.bytes_loaded},
                {"bytes_stored", dc.bytes_stored},
                {"descriptors", dc.descriptors},
                {"avg_latency_cycles", dc.descriptors ? static_cast<double>(dc.latency_cycles) / dc.descriptors : 0.0}};
    auto direction = [](uint64_t issued, uint64_t completed, uint64_t bytes, uint64_t latency) {
      return nlohmann::json{{"issued", issued},
                            {"completed", completed},
                            {"bytes", bytes},
                            {"avg_latency_cycles", completed ? static_cast<double>(latency) / completed : 0.0}};
    };
    p["dma"]["dram_to_sram"] = direction(dc.loads_issued, dc.loads_completed, dc.bytes_loaded, dc.load_latency_cycles);
    p["dma"]["sram_to_dram"] = direction(dc.stores_issued, dc.stores_completed, dc.bytes_stored, dc.store_latency_cycles);
    // MAC utilisation over every run this sequencer drove: MACs / (run cycles x PEs used x peak
    // MACs per cycle of one PE); a fused run drives both PEs' arrays from PE 0.
    const uint64_t run_cycles = pe.seq.total_run_cycles(), pe_cycles = pe.seq.total_pe_cycles();
    const double peak = static_cast<double>(ctx.config.mac_rows) * ctx.config.mac_cols * ctx.config.slices_per_pe;
    p["mac"] = {{"busy_cycles", pe.mac.unit_counters().busy_cycles},
                {"instructions", pe.mac.unit_counters().instructions},
                {"macs", pe.mac.macs()},
                {"peak_macs_per_cycle", peak},
                {"utilization", pe_cycles ? static_cast<double>(pe.mac.macs()) / (static_cast<double>(pe_cycles) * peak) : 0.0}};
    p["run_cycles"] = run_cycles;
    p["instructions"] = pe.dma.unit_counters().instructions + pe.mac.unit_counters().instructions +
                        pe.vector.unit_counters().instructions;
    p["vector"] = {{"busy_cycles", pe.vector.unit_counters().busy_cycles},
                   {"instructions", pe.vector.unit_counters().instructions}};
    p["sram_high_water_bytes"] =
        std::max({pe.dma.sram_high_water(), pe.mac.sram_high_water(), pe.vector.sram_high_water()});
    p["runs"] = pe.seq.runs();
    p["last_run_cycles"] = pe.seq.last_run_cycles();
    j["pe" + std::to_string(i)] = p;
  }
  const auto& dr = dram.counters();
  j["dram"] = {{"bytes_read", dr.bytes_read},
               {"bytes_written", dr.bytes_written},
               {"transactions", dr.transactions},
               {"contention_stall_cycles", ctx.to_cycles(sc_core::sc_time(static_cast<double>(dr.stall_ps), sc_core::SC_PS))}};
  const auto& pc = pcie.counters();
  j["pcie"] = {{"bytes_to_device", pc.bytes_to_device},
               {"bytes_to_host", pc.bytes_to_host},
               {"transfers", pc.transfers},
               {"register_accesses", pc.register_accesses}};
  const auto& cc = command_processor.counters();
  j["command_processor"] = {{"pe_runs", cc.pe_runs}, {"watchdog_timeouts", cc.watchdog_timeouts}};
  return j;
}

}  // namespace anvil::hw
