#include "host_memory.h"

#include <cstring>

namespace anvil::hw {

HostMemory::HostMemory(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
  socket.register_b_transport(this, &HostMemory::b_transport);
  socket.register_get_direct_mem_ptr(this, &HostMemory::get_direct_mem_ptr);
  socket.register_transport_dbg(this, &HostMemory::transport_dbg);
}

HostMemory::Buffer HostMemory::allocate(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t size = bytes ? bytes : 1;
  Buffer b;
  b.bus_addr = next_addr_;
  b.bytes = bytes;
  auto storage = std::make_unique<uint8_t[]>(size);  // value-initialised: zeroed
  b.data = storage.get();
  buffers_[b.bus_addr] = std::move(storage);
  sizes_[b.bus_addr] = size;
  next_addr_ += (size + 0xFFF) & ~uint64_t{0xFFF};
  next_addr_ += 0x1000;  // a guard page between buffers: overruns fault instead of corrupting
  return b;
}

void HostMemory::release(uint64_t bus_addr) {
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_.erase(bus_addr);
  sizes_.erase(bus_addr);
}

void HostMemory::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_.clear();
  sizes_.clear();
}

std::pair<const uint64_t, std::unique_ptr<uint8_t[]>>* HostMemory::find(uint64_t addr, uint64_t n, uint64_t* bytes) {
  auto it = buffers_.upper_bound(addr);
  if (it == buffers_.begin()) return nullptr;
  --it;
  const uint64_t size = sizes_[it->first];
  if (addr - it->first > size || n > size - (addr - it->first)) return nullptr;
  *bytes = size;
  return &*it;
}

void HostMemory::b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
  transport_dbg(gp);  // host RAM latency is part of the PCIe link's latency
}

unsigned int HostMemory::transport_dbg(tlm::tlm_generic_payload& gp) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t addr = gp.get_address(), n = gp.get_data_length();
  uint64_t size = 0;
  auto* buf = find(addr, n, &size);
  if (buf == nullptr || gp.get_byte_enable_ptr() != nullptr || gp.get_streaming_width() < n) {
    gp.set_response_status(buf == nullptr ? tlm::TLM_ADDRESS_ERROR_RESPONSE : tlm::TLM_BURST_ERROR_RESPONSE);
    return 0;
  }
  uint8_t* p = buf->second.get() + (addr - buf->first);
  if (gp.is_read()) std::memcpy(gp.get_data_ptr(), p, n);
  else if (gp.is_write()) std::memcpy(p, gp.get_data_ptr(), n);
  gp.set_dmi_allowed(true);
  gp.set_response_status(tlm::TLM_OK_RESPONSE);
  return static_cast<unsigned int>(n);
}

bool HostMemory::get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t size = 0;
  auto* buf = find(gp.get_address(), 1, &size);
  if (buf == nullptr) return false;
  dmi.set_dmi_ptr(buf->second.get());
  dmi.set_start_address(buf->first);
  dmi.set_end_address(buf->first + size - 1);
  dmi.allow_read_write();
  dmi.set_read_latency(sc_core::SC_ZERO_TIME);
  dmi.set_write_latency(sc_core::SC_ZERO_TIME);
  return true;
}

}  // namespace anvil::hw
