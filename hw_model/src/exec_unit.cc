#include "exec_unit.h"

namespace anvil::hw {

using sc_core::sc_time;

ExecUnit::ExecUnit(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq, isa::Unit unit)
    : sc_module(name), sram_socket("sram_socket"), ctx_(ctx), seq_(seq), unit_(unit) {
  sram_socket.register_invalidate_direct_mem_ptr(this, &ExecUnit::invalidate);
  SC_HAS_PROCESS(ExecUnit);
  SC_THREAD(thread);
  set_stack_size(kThreadStackBytes);
}

void ExecUnit::check_sram(uint64_t addr, uint64_t n, uint32_t index, const char* what) const {
  if (!sram_.contains(addr, n)) throw PeFault{isa::DeviceError::kBadProgram, index};
}

void ExecUnit::thread() {
  for (;;) {
    sc_core::wait(seq_.start_event());
    try {
      run();
    } catch (const PowerCycle&) {
      // The chip was reset mid-run: the sequencer was reset too; go back to idle.
    }
  }
}

void ExecUnit::sync(uint64_t gen) {
  const sc_time local = qk_.get_local_time();
  if (local > sc_core::SC_ZERO_TIME) sc_core::wait(local, ctx_.reset_event | seq_.abort_event());
  ctx_.check(gen);
  qk_.reset();
}

void ExecUnit::run() {
  const uint64_t gen = ctx_.generation;
  const SramView fresh = acquire_sram(sram_socket);
  sram_.base = fresh.base;
  sram_.bytes = std::min(fresh.bytes, seq_.sram_bytes());
  qk_.reset();
  uint32_t index = 0;
  while (const isa::Instruction* inst = seq_.next(unit_, &index)) {
    while (!seq_.ready(*inst) && !seq_.aborted()) {
      if (qk_.get_local_time() > sc_core::SC_ZERO_TIME) {
        sync(gen);  // catch up first; progress may be made meanwhile, so check again before sleeping
        continue;
      }
      ctx_.wait_event(gen, seq_.progress_event());
    }
    if (seq_.aborted()) break;
    const sc_time ready = seq_.ready_time(*inst), now = sc_core::sc_time_stamp() + qk_.get_local_time();
    if (ready > now) qk_.set(ready - sc_core::sc_time_stamp());
    if (seq_.inject_hang(index)) {  // fault injection: this unit stops until the watchdog aborts the run
      sync(gen);
      while (!seq_.aborted()) ctx_.wait_event(gen, seq_.progress_event());
      break;
    }
    try {
      const sc_time start = qk_.get_local_time();
      const sc_time d = execute(*inst, index, start);
      qk_.inc(d);
      const uint64_t cycles = ctx_.to_cycles(d);
      counters_.busy_cycles += cycles;
      counters_.instructions++;
      if (ctx_.trace.enabled()) {
        nlohmann::json args = trace_args(*inst);
        args["index"] = index;
        args["cycles"] = cycles;
        ctx_.trace.add({isa::opcode_name(inst->opcode), trace_pid_pe(seq_.pe()), 1 + static_cast<int>(unit_),
                        sc_core::sc_time_stamp() + start, d, std::move(args)});
      }
    } catch (const PeFault& f) {
      sync(gen);
      seq_.fault(f);
      break;
    }
    seq_.complete(unit_, sc_core::sc_time_stamp() + qk_.get_local_time());
    if (qk_.need_sync()) sync(gen);
  }
  sync(gen);
  seq_.unit_finished(unit_);
}

}  // namespace anvil::hw
