#pragma once
// One chip elaborated in the test process, driven directly through its modules' sockets and
// interfaces (the platform's simulation thread is not used here).
#include <gtest/gtest.h>

#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>

#include "warboy_chip.h"

namespace anvil::hw::testing {

struct HostPort : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<HostPort> socket;
  explicit HostPort(sc_core::sc_module_name n) : sc_module(n), socket("socket") {}
};

struct Bench {
  WarboyChip chip{"chip"};
  HostPort host{"host"};
  Bench();
  /// Power cycle with `config` and run until the firmware has booted.
  void power(const HwConfig& config);
  /// Runs the simulation until nothing is pending.
  void run();
  /// A BAR access as the host makes it; returns the TLM response.
  tlm::tlm_response_status bar(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len,
                               unsigned char* byte_enable = nullptr);
  uint32_t read(uint32_t offset);
  tlm::tlm_response_status write(uint32_t offset, uint32_t value);
};

/// The process's testbench, elaborated on first use.
Bench& bench();

}  // namespace anvil::hw::testing
