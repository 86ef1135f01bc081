#include "command_processor.h"

#include "anvil/firmware/firmware.h"

namespace anvil::hw {

using sc_core::sc_time;

CommandProcessor::CommandProcessor(sc_core::sc_module_name name, ChipContext& ctx, PcieHostInterface& pcie,
                                   std::array<Sequencer*, 2> sequencers)
    : sc_module(name), dram_socket("dram_socket"), ctx_(ctx), pcie_(pcie), seq_(sequencers) {
  SC_HAS_PROCESS(CommandProcessor);
  SC_THREAD(thread);
  set_stack_size(kThreadStackBytes);
}

void CommandProcessor::thread() {
  for (;;) {
    gen_ = ctx_.generation;
    doorbell_pending_ = false;
    active_ = {};
    command_ops_.clear();
    try {
      fw::Firmware firmware(*this);
      firmware.run();
    } catch (const PowerCycle&) {
      // Reset: boot the firmware again on the fresh chip.
    }
  }
}

void CommandProcessor::doorbell() {
  doorbell_pending_ = true;
  doorbell_event_.notify(sc_core::SC_ZERO_TIME);
}

uint32_t CommandProcessor::reg_read(uint32_t offset) {
  ctx_.check(gen_);
  return pcie_.regs().get(offset);
}

void CommandProcessor::reg_write(uint32_t offset, uint32_t value) {
  ctx_.check(gen_);
  pcie_.regs().put(offset, value);
}

void CommandProcessor::host_read(uint64_t host_addr, void* dst, uint64_t n) {
  const sc_time start = sc_core::sc_time_stamp();
  sc_time d = sc_core::SC_ZERO_TIME;
  const bool ok = pcie_.host_read(host_addr, dst, n, d);
  elapse(d);
  if (ctx_.trace.enabled() && ok) {
    trace_transfer("host_read", start, host_addr, n);
    trace_command(false, host_addr, dst, n);
  }
  if (!ok) throw fw::HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(host_addr)};
}

void CommandProcessor::host_write(uint64_t host_addr, const void* src, uint64_t n) {
  const sc_time start = sc_core::sc_time_stamp();
  sc_time d = sc_core::SC_ZERO_TIME;
  const bool ok = pcie_.host_write(host_addr, src, n, d);
  elapse(d);
  if (ctx_.trace.enabled() && ok) {
    trace_transfer("host_write", start, host_addr, n);
    trace_command(true, host_addr, src, n);
  }
  if (!ok) throw fw::HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(host_addr)};
}

void CommandProcessor::host_to_dram(uint64_t host_addr, uint64_t dram_addr, uint64_t n) {
  const sc_time start = sc_core::sc_time_stamp();
  sc_time d = sc_core::SC_ZERO_TIME;
  uint64_t fault = 0;
  const bool ok = pcie_.host_to_dram(host_addr, dram_addr, n, d, &fault);
  elapse(d);
  if (ctx_.trace.enabled() && ok) trace_transfer("host_to_dram", start, host_addr, n);
  if (!ok) throw fw::HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(fault)};
}

void CommandProcessor::dram_to_host(uint64_t dram_addr, uint64_t host_addr, uint64_t n) {
  const sc_time start = sc_core::sc_time_stamp();
  sc_time d = sc_core::SC_ZERO_TIME;
  uint64_t fault = 0;
  const bool ok = pcie_.dram_to_host(dram_addr, host_addr, n, d, &fault);
  elapse(d);
  if (ctx_.trace.enabled() && ok) trace_transfer("dram_to_host", start, host_addr, n);
  if (!ok) throw fw::HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(fault)};
}

void CommandProcessor::dram_read(uint64_t dram_addr, void* dst, uint64_t n) {
  tlm::tlm_generic_payload gp;
  gp.set_command(tlm::TLM_READ_COMMAND);
  gp.set_address(dram_addr);
  gp.set_data_ptr(static_cast<uint8_t*>(dst));
  gp.set_data_length(static_cast<unsigned int>(n));
  gp.set_streaming_width(static_cast<unsigned int>(n));
  gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  sc_time d = sc_core::SC_ZERO_TIME;
  dram_socket->b_transport(gp, d);
  elapse(d);
  if (!gp.is_response_ok()) throw fw::HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(dram_addr)};
}

void CommandProcessor::trace_transfer(const char* name, const sc_time& start, uint64_t host_addr, uint64_t n) {
  ctx_.trace.add({name, kTracePidChip, kTidPcie, start, sc_core::sc_time_stamp() - start,
                  {{"bytes", n}, {"host_addr", host_addr}}});
}

void CommandProcessor::trace_command(bool write, uint64_t host_addr, const void* data, uint64_t n) {
  if (!write && n == sizeof(isa::SubmissionEntry)) {
    const uint64_t sq = ring_base(isa::reg::SQ_BASE_LO);
    if (host_addr >= sq && host_addr < sq + static_cast<uint64_t>(reg_read(isa::reg::SQ_SIZE)) * n)
      command_ops_[static_cast<const isa::SubmissionEntry*>(data)->tag] = static_cast<const isa::SubmissionEntry*>(data)->opcode;
    return;
  }
  if (!write || n != sizeof(isa::CompletionEntry)) return;
  const uint64_t cq = ring_base(isa::reg::CQ_BASE_LO);
  if (host_addr < cq || host_addr >= cq + static_cast<uint64_t>(reg_read(isa::reg::CQ_SIZE)) * n) return;
  const auto& c = *static_cast<const isa::CompletionEntry*>(data);
  auto op = command_ops_.find(c.tag);
  const uint32_t command_op = op == command_ops_.end() ? static_cast<uint32_t>(isa::CommandOp::kNop) : op->second;
  if (op != command_ops_.end()) command_ops_.erase(op);
  const char* name = command_op == static_cast<uint32_t>(isa::CommandOp::kRun)    ? "run command"
                     : command_op == static_cast<uint32_t>(isa::CommandOp::kLoad) ? "load command"
                                                                                   : "command";
  ctx_.trace.add({name, kTracePidChip, kTidCommandProcessor, ctx_.epoch + ctx_.cycles(c.start_cycle),
                  ctx_.cycles(c.end_cycle - c.start_cycle),
                  {{"tag", c.tag},
                   {"status", isa::device_error_name(static_cast<isa::DeviceError>(c.status))},
                   {"cycles", c.end_cycle - c.start_cycle}}});
}

void CommandProcessor::send_msi(uint32_t bits) {
  if (pcie_.msi) pcie_.msi(bits);
}

fw::PeResult CommandProcessor::start_pes(const fw::PeRun& run) {
  // One bit: that PE. Both bits: the fused pair, which PE 0's sequencer drives with both PEs'
  // slices and SRAM (docs/warboy.md).
  if (run.pe_mask == 0 || run.pe_mask > 3 || (run.pe_mask >> ctx_.config.num_pes) != 0)
    return {isa::DeviceError::kPeMismatch, run.pe_mask};
  const int slot = run.pe_mask == 2 ? 1 : 0;
  Sequencer& seq = *seq_[slot];
  if (active_[slot].started) return {isa::DeviceError::kInternal, run.pe_mask};  // the firmware starts one run per PE
  PeLaunch launch;
  launch.instructions.assign(run.instructions, run.instructions + run.count);
  for (int r = 0; r < isa::kNumRegions; ++r) launch.regions[r] = {run.regions[r].base, run.regions[r].bytes};
  launch.fused_pes = run.pe_mask == 3 ? 2 : 1;
  launch.fault_mode = run.fault_mode;
  launch.fault_arg = run.fault_arg;
  // The configuration's fault knobs hit one run per power cycle (the register, when set, wins).
  const HwConfig& cfg = ctx_.config;
  if (launch.fault_mode == 0 && counters_.pe_runs + 1 == cfg.fault_run) {
    if (cfg.fault_dma_fail_at) launch.fault_mode = 1, launch.fault_arg = cfg.fault_dma_fail_at;
    if (cfg.fault_pe_hang_at) launch.fault_mode = 2, launch.fault_arg = cfg.fault_pe_hang_at;
  }
  if (!seq.load(std::move(launch))) return {isa::DeviceError::kBadProgram, static_cast<uint32_t>(run.count)};
  seq.start();
  counters_.pe_runs++;
  active_[slot] = {true, false, sc_core::sc_time_stamp() + ctx_.cycles(cfg.watchdog_cycles)};
  return {};
}

bool CommandProcessor::pes_finished(uint32_t pe_mask, fw::PeResult* result) {
  ActiveRun& a = active_[pe_mask == 2 ? 1 : 0];
  const Sequencer& seq = *seq_[pe_mask == 2 ? 1 : 0];
  if (!a.started || seq.running()) return false;
  a = ActiveRun{};
  elapse(sc_core::SC_ZERO_TIME);  // back on a clock edge
  *result = {seq.error(), seq.error_info(), seq.last_run_cycles()};
  return true;
}

bool CommandProcessor::run_ended() const {
  for (size_t i = 0; i < active_.size(); ++i)
    if (active_[i].started && !seq_[i]->running()) return true;
  return false;
}

void CommandProcessor::wait_event() {
  while (!doorbell_pending_ && !run_ended()) {
    // Sleep until a doorbell, the end of a run, or the earliest watchdog deadline.
    sc_time deadline = sc_core::SC_ZERO_TIME;
    for (const ActiveRun& a : active_)
      if (a.started && !a.aborted && (deadline == sc_core::SC_ZERO_TIME || a.deadline < deadline)) deadline = a.deadline;
    const sc_core::sc_event_or_list events =
        doorbell_event_ | seq_[0]->done_event() | seq_[1]->done_event() | ctx_.reset_event;
    if (deadline == sc_core::SC_ZERO_TIME) sc_core::wait(events);
    else if (deadline > sc_core::sc_time_stamp()) sc_core::wait(deadline - sc_core::sc_time_stamp(), events);
    ctx_.check(gen_);
    // The watchdog: a run past its deadline is stopped (its units leave; it ends with kTimeout).
    for (size_t i = 0; i < active_.size(); ++i) {
      ActiveRun& a = active_[i];
      if (a.started && !a.aborted && seq_[i]->running() && sc_core::sc_time_stamp() >= a.deadline) {
        counters_.watchdog_timeouts++;
        seq_[i]->abort(isa::DeviceError::kTimeout, 0);
        a.aborted = true;
      }
    }
  }
  doorbell_pending_ = false;
}

}  // namespace anvil::hw
