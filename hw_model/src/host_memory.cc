#include "host_memory.h"

#include <cstring>

namespace anvil::hw {

HostMemory::HostMemory(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
  socket.register_b_transport(this, &HostMemory::b_transport);
  socket.register_get_direct_mem_ptr(this, &HostMemory::get_direct_mem_ptr);
  socket.register_transport_dbg(this, &HostMemory::transport_dbg);
}

HostMemory::Buffer HostMemory::allocate(uint64_t bytes) {
  Storage s;
  s.size = bytes ? bytes : 1;
  s.owned = std::make_unique<uint8_t[]>(s.size);  // value-initialised: zeroed
  s.data = s.owned.get();
  std::lock_guard<std::mutex> lock(mutex_);
  return add(std::move(s), bytes);
}

HostMemory::Buffer HostMemory::attach(uint8_t* data, uint64_t bytes) {
  Storage s;
  s.data = data;
  s.size = bytes ? bytes : 1;
  std::lock_guard<std::mutex> lock(mutex_);
  return add(std::move(s), bytes);
}

HostMemory::Buffer HostMemory::add(Storage storage, uint64_t bytes) {
  Buffer b;
  b.bus_addr = next_addr_;
  b.bytes = bytes;
  b.data = storage.data;
  next_addr_ += (storage.size + 0xFFF) & ~uint64_t{0xFFF};
  next_addr_ += 0x1000;  // a guard page between buffers: overruns fault instead of corrupting
  buffers_[b.bus_addr] = std::move(storage);
  return b;
}

void HostMemory::release(uint64_t bus_addr) {
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_.erase(bus_addr);
}

void HostMemory::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_.clear();
}

std::pair<const uint64_t, HostMemory::Storage>* HostMemory::find(uint64_t addr, uint64_t n) {
  auto it = buffers_.upper_bound(addr);
  if (it == buffers_.begin()) return nullptr;
  --it;
  const uint64_t size = it->second.size;
  if (addr - it->first > size || n > size - (addr - it->first)) return nullptr;
  return &*it;
}

void HostMemory::b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
  transport_dbg(gp);  // host RAM latency is part of the PCIe link's latency
}

unsigned int HostMemory::transport_dbg(tlm::tlm_generic_payload& gp) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t addr = gp.get_address(), n = gp.get_data_length();
  auto* buf = find(addr, n);
  if (buf == nullptr || gp.get_byte_enable_ptr() != nullptr || gp.get_streaming_width() < n) {
    gp.set_response_status(buf == nullptr ? tlm::TLM_ADDRESS_ERROR_RESPONSE : tlm::TLM_BURST_ERROR_RESPONSE);
    return 0;
  }
  uint8_t* p = buf->second.data + (addr - buf->first);
  if (gp.is_read()) std::memcpy(gp.get_data_ptr(), p, n);
  else if (gp.is_write()) std::memcpy(p, gp.get_data_ptr(), n);
  gp.set_dmi_allowed(true);
  gp.set_response_status(tlm::TLM_OK_RESPONSE);
  return static_cast<unsigned int>(n);
}

bool HostMemory::get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto* buf = find(gp.get_address(), 1);
  if (buf == nullptr) return false;
  dmi.set_dmi_ptr(buf->second.data);
  dmi.set_start_address(buf->first);
  dmi.set_end_address(buf->first + buf->second.size - 1);
  dmi.allow_read_write();
  dmi.set_read_latency(sc_core::SC_ZERO_TIME);
  dmi.set_write_latency(sc_core::SC_ZERO_TIME);
  return true;
}

}  // namespace anvil::hw
