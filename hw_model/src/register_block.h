#pragma once
/// A register file built from the register map as data (isa::register_map()): one generic block
/// that enforces access types and answers bad accesses with TLM error responses.
#include <cstdint>
#include <functional>
#include <tlm>
#include <vector>

#include "anvil/isa/device.h"

namespace anvil::hw {

class RegisterBlock {
 public:
  RegisterBlock();
  /// Every register back to its reset value.
  void reset();
  /// A host access through the BAR. Accepted: 32-bit reads and writes at a 4-byte aligned offset
  /// of a defined register, no byte enables. Responses: TLM_ADDRESS_ERROR_RESPONSE for an offset
  /// outside the BAR, misaligned or with no register; TLM_BURST_ERROR_RESPONSE for a length or
  /// streaming width other than 4; TLM_BYTE_ENABLE_ERROR_RESPONSE with byte enables;
  /// TLM_COMMAND_ERROR_RESPONSE for a write to a read-only register. Writes to W1C registers clear
  /// the bits written as 1. Never throws.
  void transport(tlm::tlm_generic_payload& gp);

  /// Device-side access (firmware, hardware): ignores the host access type.
  uint32_t get(uint32_t offset) const;
  void put(uint32_t offset, uint32_t value);
  void set_bits(uint32_t offset, uint32_t mask) { put(offset, get(offset) | mask); }
  void clear_bits(uint32_t offset, uint32_t mask) { put(offset, get(offset) & ~mask); }

  /// Called after a host write took effect, with the register's new value.
  std::function<void(uint32_t offset, uint32_t value)> on_host_write;
  /// Called on a host read; returns the value to deliver (default: the stored value).
  std::function<uint32_t(uint32_t offset, uint32_t stored)> on_host_read;

 private:
  const isa::RegisterDesc* desc(uint32_t offset) const;
  std::vector<uint32_t> values_;                  ///< indexed by offset / 4
  std::vector<const isa::RegisterDesc*> descs_;   ///< indexed by offset / 4, nullptr: no register
};

}  // namespace anvil::hw
