#include "dram.h"

#include <algorithm>
#include <cstring>

namespace anvil::hw {

using sc_core::sc_time;

Dram::Dram(sc_core::sc_module_name name, ChipContext& ctx) : sc_module(name), socket("socket"), ctx_(ctx) {
  socket.register_b_transport(this, &Dram::b_transport);
  socket.register_transport_dbg(this, &Dram::transport_dbg);
  socket.register_get_direct_mem_ptr(this, &Dram::get_direct_mem_ptr);
}

void Dram::reset() {
  for (unsigned i = 0; i < socket.size(); ++i) socket[i]->invalidate_direct_mem_ptr(0, ~uint64_t{0});
  pages_.clear();
  bus_free_ = sc_core::SC_ZERO_TIME;
  counters_ = Counters{};
}

uint8_t* Dram::page(uint64_t index) {
  auto& p = pages_[index];
  if (!p) p = std::make_unique<uint8_t[]>(kPageBytes);  // zeroed
  return p.get();
}

bool Dram::access(bool is_write, uint64_t addr, uint8_t* data, uint64_t n) {
  if (addr > ctx_.config.dram_bytes || n > ctx_.config.dram_bytes - addr) return false;
  while (n > 0) {
    const uint64_t off = addr % kPageBytes, chunk = std::min(n, kPageBytes - off);
    uint8_t* p = page(addr / kPageBytes) + off;
    if (is_write) std::memcpy(p, data, chunk);
    else std::memcpy(data, p, chunk);
    addr += chunk, data += chunk, n -= chunk;
  }
  return true;
}

bool Dram::read(uint64_t addr, void* dst, uint64_t n) { return access(false, addr, static_cast<uint8_t*>(dst), n); }
bool Dram::write(uint64_t addr, const void* src, uint64_t n) {
  return access(true, addr, static_cast<uint8_t*>(const_cast<void*>(src)), n);
}

unsigned int Dram::transport_dbg(int, tlm::tlm_generic_payload& gp) {
  const uint64_t n = gp.get_data_length();
  if (gp.get_byte_enable_ptr() != nullptr || gp.get_streaming_width() < n) {
    gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
    return 0;
  }
  if (gp.is_read() || gp.is_write()) {
    if (!access(gp.is_write(), gp.get_address(), gp.get_data_ptr(), n)) {
      gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
      return 0;
    }
  }
  gp.set_response_status(tlm::TLM_OK_RESPONSE);
  return static_cast<unsigned int>(n);
}

void Dram::b_transport(int id, tlm::tlm_generic_payload& gp, sc_time& delay) {
  if (transport_dbg(id, gp) != gp.get_data_length() || !gp.is_response_ok()) return;
  const uint64_t n = gp.get_data_length();
  // Bandwidth reservation: the transfer occupies the bus for n / (bytes per ns) once it is free.
  const sc_time arrival = sc_core::sc_time_stamp() + delay;
  const sc_time start = std::max(arrival, bus_free_);
  bus_free_ = start + sc_time(static_cast<double>(n) * 1000.0 / ctx_.config.dram_gbps, sc_core::SC_PS);
  const sc_time done = bus_free_ + sc_time(ctx_.config.dram_latency_ns, sc_core::SC_NS);
  delay = done - sc_core::sc_time_stamp();
  counters_.stall_ps += static_cast<uint64_t>((start - arrival).to_seconds() * 1e12 + 0.5);
  counters_.transactions++;
  (gp.is_write() ? counters_.bytes_written : counters_.bytes_read) += n;
}

bool Dram::get_direct_mem_ptr(int, tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) {
  // DMI per storage page, for untimed debug/loader access; timed traffic uses b_transport.
  const uint64_t addr = gp.get_address();
  if (addr >= ctx_.config.dram_bytes) return false;
  const uint64_t index = addr / kPageBytes;
  dmi.set_dmi_ptr(page(index));
  dmi.set_start_address(index * kPageBytes);
  dmi.set_end_address(std::min((index + 1) * kPageBytes, ctx_.config.dram_bytes) - 1);
  dmi.allow_read_write();
  return true;
}

}  // namespace anvil::hw
