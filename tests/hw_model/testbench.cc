#include "testbench.h"

#include <cstdlib>

namespace anvil::hw::testing {

Bench::Bench() {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  host.socket.bind(chip.pcie.bar);
  sc_core::sc_start(sc_core::SC_ZERO_TIME);
}

void Bench::power(const HwConfig& config) {
  chip.power_on(config);
  run();
}

void Bench::run() {
  while (sc_core::sc_pending_activity()) {
    sc_core::sc_start(sc_core::sc_pending_activity_at_current_time() ? sc_core::SC_ZERO_TIME
                                                                     : sc_core::sc_time_to_pending_activity());
  }
}

tlm::tlm_response_status Bench::bar(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len, unsigned char* be) {
  tlm::tlm_generic_payload gp;
  gp.set_command(cmd);
  gp.set_address(addr);
  gp.set_data_ptr(static_cast<unsigned char*>(data));
  gp.set_data_length(len);
  gp.set_streaming_width(len);
  gp.set_byte_enable_ptr(be);
  gp.set_byte_enable_length(be ? len : 0);
  gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  host.socket->b_transport(gp, delay);
  return gp.get_response_status();
}

uint32_t Bench::read(uint32_t offset) {
  uint32_t v = 0xDEADBEEF;
  if (bar(tlm::TLM_READ_COMMAND, offset, &v, 4) != tlm::TLM_OK_RESPONSE) ADD_FAILURE_AT(__FILE__, __LINE__);
  return v;
}

tlm::tlm_response_status Bench::write(uint32_t offset, uint32_t value) {
  return bar(tlm::TLM_WRITE_COMMAND, offset, &value, 4);
}

Bench& bench() {
  static Bench* b = new Bench();  // SystemC modules are never destroyed before exit
  return *b;
}

}  // namespace anvil::hw::testing
