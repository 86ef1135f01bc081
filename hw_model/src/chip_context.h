#pragma once
/// State every module of the chip shares: the configuration of the current power cycle, the reset
/// generation and the time base. Internal to the hardware model.
#include <cmath>
#include <cstdint>
#include <systemc>

#include "anvil/hw/config.h"
#include "trace_buffer.h"

namespace anvil::hw {

/// Thrown out of a wait when the chip was reset while the process slept. Every SC_THREAD of the
/// model catches it at its top and goes back to its idle state.
struct PowerCycle {};

/// Stack of every SC_THREAD of the model (SystemC's default, 128 KiB on 64-bit hosts, is too
/// small for the firmware plus the trace's JSON building and corrupts the kernel when exceeded).
constexpr size_t kThreadStackBytes = 1 << 20;

struct ChipContext {
  HwConfig config;
  uint64_t generation = 0;                          ///< bumped by every reset
  sc_core::sc_time epoch = sc_core::SC_ZERO_TIME;   ///< simulation time of the last reset: cycle 0
  sc_core::sc_event reset_event;                    ///< wakes every sleeping process on reset
  TraceBuffer trace;                                ///< activity trace (off unless enabled)

  /// Duration of n core cycles.
  sc_core::sc_time cycles(uint64_t n) const {
    return sc_core::sc_time(static_cast<double>(n) * 1000.0 / config.clock_ghz, sc_core::SC_PS);
  }
  /// Whole cycles in a duration, rounded to nearest.
  uint64_t to_cycles(const sc_core::sc_time& t) const {
    return static_cast<uint64_t>(std::llround(t.to_seconds() * 1e9 * config.clock_ghz));
  }
  uint64_t now_cycles() const { return to_cycles(sc_core::sc_time_stamp() - epoch); }
  /// The duration from now until the first core-clock edge at or after now + t: processes that
  /// run at the core clock (the command processor) stay on cycle boundaries, so cycle counts do
  /// not depend on fractional picoseconds left by bandwidth arithmetic.
  sc_core::sc_time to_clock_edge(const sc_core::sc_time& t) const {
    const double period_ps = 1000.0 / config.clock_ghz;
    const double since_epoch_ps = (sc_core::sc_time_stamp() + t - epoch).to_seconds() * 1e12;
    const double edge_ps = std::ceil(since_epoch_ps / period_ps - 1e-9) * period_ps;
    const sc_core::sc_time edge = epoch + sc_core::sc_time(edge_ps, sc_core::SC_PS);
    return edge > sc_core::sc_time_stamp() ? edge - sc_core::sc_time_stamp() : sc_core::SC_ZERO_TIME;
  }
  sc_core::sc_time quantum() const { return sc_core::sc_time(config.quantum_ns, sc_core::SC_NS); }

  /// Throws PowerCycle when the chip was reset since `gen` was read.
  void check(uint64_t gen) const {
    if (gen != generation) throw PowerCycle{};
  }
  /// wait(t) that a reset interrupts (then throws PowerCycle).
  void sleep(uint64_t gen, const sc_core::sc_time& t) {
    if (t > sc_core::SC_ZERO_TIME) sc_core::wait(t, reset_event);
    check(gen);
  }
  /// wait(e) that a reset interrupts.
  void wait_event(uint64_t gen, const sc_core::sc_event& e) {
    sc_core::wait(e | reset_event);
    check(gen);
  }
  /// wait(e) with a timeout, interrupted by reset; returns false on timeout.
  bool wait_event_for(uint64_t gen, const sc_core::sc_event& e, const sc_core::sc_time& timeout) {
    const sc_core::sc_time start = sc_core::sc_time_stamp();
    sc_core::wait(timeout, e | reset_event);
    check(gen);
    return sc_core::sc_time_stamp() - start < timeout;
  }
};

}  // namespace anvil::hw
