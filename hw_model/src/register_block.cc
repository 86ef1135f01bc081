#include "register_block.h"

#include <cstring>

namespace anvil::hw {

RegisterBlock::RegisterBlock() : values_(isa::kBarBytes / 4, 0), descs_(isa::kBarBytes / 4, nullptr) {
  for (const auto& r : isa::register_map()) descs_[r.offset / 4] = &r;
  reset();
}

void RegisterBlock::reset() {
  std::fill(values_.begin(), values_.end(), 0);
  for (const auto& r : isa::register_map()) values_[r.offset / 4] = r.reset;
}

const isa::RegisterDesc* RegisterBlock::desc(uint32_t offset) const {
  if (offset >= isa::kBarBytes || offset % 4 != 0) return nullptr;
  return descs_[offset / 4];
}

uint32_t RegisterBlock::get(uint32_t offset) const {
  return desc(offset) ? values_[offset / 4] : 0;
}

void RegisterBlock::put(uint32_t offset, uint32_t value) {
  if (desc(offset)) values_[offset / 4] = value;
}

void RegisterBlock::transport(tlm::tlm_generic_payload& gp) {
  const uint64_t addr = gp.get_address();
  if (gp.get_byte_enable_ptr() != nullptr) {
    gp.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    return;
  }
  if (gp.get_data_length() != 4 || gp.get_streaming_width() != 4) {
    gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
    return;
  }
  const isa::RegisterDesc* r = addr < isa::kBarBytes ? desc(static_cast<uint32_t>(addr)) : nullptr;
  if (r == nullptr) {
    gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return;
  }
  uint32_t& stored = values_[r->offset / 4];
  if (gp.is_read()) {
    const uint32_t v = on_host_read ? on_host_read(r->offset, stored) : stored;
    std::memcpy(gp.get_data_ptr(), &v, 4);
  } else if (gp.is_write()) {
    uint32_t v;
    std::memcpy(&v, gp.get_data_ptr(), 4);
    switch (r->access) {
      case isa::RegAccess::kRO: gp.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE); return;
      case isa::RegAccess::kRW: stored = v; break;
      case isa::RegAccess::kW1C: stored &= ~v; break;
    }
    if (on_host_write) on_host_write(r->offset, stored);
  }
  gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

}  // namespace anvil::hw
