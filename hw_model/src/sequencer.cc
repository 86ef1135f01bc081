#include "sequencer.h"

namespace anvil::hw {

using isa::Unit;

Sequencer::Sequencer(sc_core::sc_module_name name, ChipContext& ctx, int pe) : sc_module(name), ctx_(ctx), pe_(pe) {}

void Sequencer::reset() {
  launch_ = PeLaunch{};
  for (auto& q : queue_) q.clear();
  for (auto& d : done_) d.clear();
  units_running_ = dma_seen_ = 0;
  running_ = aborted_ = false;
  error_ = isa::DeviceError::kOk;
  error_info_ = 0;
  last_run_cycles_ = runs_ = total_run_cycles_ = total_pe_cycles_ = 0;
}

bool Sequencer::load(PeLaunch launch) {
  if (launch.instructions.size() * sizeof(isa::Instruction) > ctx_.config.instr_mem_bytes) return false;
  launch_ = std::move(launch);
  for (auto& q : queue_) q.clear();
  for (uint32_t i = 0; i < launch_.instructions.size(); ++i) {
    const isa::Opcode op = launch_.instructions[i].opcode;
    if (op != isa::Opcode::kNop) queue_[static_cast<int>(isa::opcode_unit(op))].push_back(i);
  }
  return true;
}

void Sequencer::start() {
  for (auto& d : done_) d.clear();
  units_running_ = isa::kNumUnits;
  dma_seen_ = 0;
  running_ = true;
  aborted_ = false;
  error_ = isa::DeviceError::kOk;
  error_info_ = 0;
  start_time_ = sc_core::sc_time_stamp();
  ++runs_;
  start_event_.notify(sc_core::SC_ZERO_TIME);
}

const isa::Instruction* Sequencer::next(Unit unit, uint32_t* index) const {
  const auto& q = queue_[static_cast<int>(unit)];
  const size_t k = done_[static_cast<int>(unit)].size();
  if (k >= q.size()) return nullptr;
  *index = q[k];
  return &launch_.instructions[q[k]];
}

bool Sequencer::ready(const isa::Instruction& inst) const {
  for (int u = 0; u < isa::kNumUnits; ++u)
    if (done_[u].size() < inst.wait[u]) return false;
  return true;
}

sc_core::sc_time Sequencer::ready_time(const isa::Instruction& inst) const {
  sc_core::sc_time t = start_time_;
  for (int u = 0; u < isa::kNumUnits; ++u)
    if (inst.wait[u] > 0) t = std::max(t, done_[u][inst.wait[u] - 1]);
  return t;
}

void Sequencer::complete(Unit unit, const sc_core::sc_time& done) {
  done_[static_cast<int>(unit)].push_back(done);
  progress_event_.notify(sc_core::SC_ZERO_TIME);
}

void Sequencer::fault(const PeFault& f) {
  if (error_ == isa::DeviceError::kOk) error_ = f.code, error_info_ = f.info;
  aborted_ = true;
  abort_event_.notify(sc_core::SC_ZERO_TIME);
  progress_event_.notify(sc_core::SC_ZERO_TIME);
}

void Sequencer::abort(isa::DeviceError code, uint32_t info) { fault(PeFault{code, info}); }

bool Sequencer::inject_dma_fault() {
  ++dma_seen_;
  return launch_.fault_mode == 1 && dma_seen_ == launch_.fault_arg;
}

void Sequencer::unit_finished(Unit) {
  if (units_running_ == 0 || --units_running_ > 0) return;
  running_ = false;
  last_run_cycles_ = ctx_.to_cycles(sc_core::sc_time_stamp() - start_time_);
  total_run_cycles_ += last_run_cycles_;
  total_pe_cycles_ += last_run_cycles_ * launch_.fused_pes;
  if (ctx_.trace.enabled())
    ctx_.trace.add({"run", trace_pid_pe(pe_), kTidSequencer, start_time_, sc_core::sc_time_stamp() - start_time_,
                    {{"instructions", launch_.instructions.size()},
                     {"cycles", last_run_cycles_},
                     {"fused_pes", launch_.fused_pes},
                     {"error", isa::device_error_name(error_)}}});
  done_event_.notify(sc_core::SC_ZERO_TIME);
}

}  // namespace anvil::hw
