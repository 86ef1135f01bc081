#pragma once
/// What the three execution units share: an SC_THREAD that takes the unit's instructions from the
/// sequencer in order, waits for their wait[] dependencies, executes them and annotates their
/// duration on a tlm_quantumkeeper (loosely timed: the thread runs ahead of simulation time by up
/// to one global quantum; a dependency carries its completion time to the waiting unit).
#include <cstring>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "anvil/common/requant.h"
#include "chip_context.h"
#include "sequencer.h"
#include "sram.h"

namespace anvil::hw {

/// requant.h's domain: a non-negative Q31 mantissa and a shift in [-31, 30]; anything else in a
/// program is rejected (kBadProgram) rather than computed with undefined shifts.
inline bool multiplier_valid(const math::QuantizedMultiplier& q) {
  return q.multiplier >= 0 && q.shift >= -31 && q.shift <= 30;
}
/// Element i of an int32 vector at an unaligned SRAM address.
inline int32_t load_i32(const uint8_t* p, size_t i) {
  int32_t v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
}

class ExecUnit : public sc_core::sc_module {
 public:
  /// The unit's port to its PE's SRAM (DMI).
  tlm_utils::simple_initiator_socket<ExecUnit> sram_socket;

  struct Counters {
    uint64_t busy_cycles = 0, instructions = 0;
  };
  const Counters& unit_counters() const { return counters_; }
  uint64_t sram_high_water() const { return sram_.high_water; }
  virtual void reset_counters() { counters_ = Counters{}; sram_.high_water = 0; }

 protected:
  ExecUnit(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq, isa::Unit unit);
  /// Executes one instruction (functional effect now) and returns its duration from its start,
  /// given the local time offset at its start. Throws PeFault.
  virtual sc_core::sc_time execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time& local) = 0;
  /// Key fields of an instruction for its trace event (index and cycles are added by the caller).
  virtual nlohmann::json trace_args(const isa::Instruction& inst) const = 0;
  /// Fault for an SRAM range outside the run's SRAM (kBadProgram, info = instruction index).
  void check_sram(uint64_t addr, uint64_t n, uint32_t index, const char* what) const;

  ChipContext& ctx_;
  Sequencer& seq_;
  SramView sram_;

 private:
  void thread();
  void run();
  /// Waits until simulation time catches up with the local time (reset/abort interrupt it).
  void sync(uint64_t gen);
  void invalidate(sc_dt::uint64, sc_dt::uint64) { sram_.base = nullptr; }

  const isa::Unit unit_;
  tlm_utils::tlm_quantumkeeper qk_;
  Counters counters_;
};

}  // namespace anvil::hw
