#include "sram.h"

#include <cstring>

namespace anvil::hw {

Sram::Sram(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
  socket.register_b_transport(this, &Sram::b_transport);
  socket.register_transport_dbg(this, &Sram::transport_dbg);
  socket.register_get_direct_mem_ptr(this, &Sram::get_direct_mem_ptr);
}

void Sram::reset(uint64_t bytes) {
  for (unsigned i = 0; i < socket.size(); ++i) socket[i]->invalidate_direct_mem_ptr(0, ~uint64_t{0});
  storage_.assign(bytes, 0);
}

unsigned int Sram::transport_dbg(int, tlm::tlm_generic_payload& gp) {
  const uint64_t addr = gp.get_address(), n = gp.get_data_length();
  if (addr > storage_.size() || n > storage_.size() - addr) {
    gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return 0;
  }
  if (gp.get_byte_enable_ptr() != nullptr || gp.get_streaming_width() < n) {
    gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
    return 0;
  }
  if (gp.is_read()) std::memcpy(gp.get_data_ptr(), storage_.data() + addr, n);
  else if (gp.is_write()) std::memcpy(storage_.data() + addr, gp.get_data_ptr(), n);
  gp.set_dmi_allowed(true);
  gp.set_response_status(tlm::TLM_OK_RESPONSE);
  return static_cast<unsigned int>(n);
}

void Sram::b_transport(int id, tlm::tlm_generic_payload& gp, sc_core::sc_time&) { transport_dbg(id, gp); }

bool Sram::get_direct_mem_ptr(int, tlm::tlm_generic_payload&, tlm::tlm_dmi& dmi) {
  if (storage_.empty()) return false;
  dmi.set_dmi_ptr(storage_.data());
  dmi.set_start_address(0);
  dmi.set_end_address(storage_.size() - 1);
  dmi.allow_read_write();
  return true;
}

}  // namespace anvil::hw
