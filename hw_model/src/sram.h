#pragma once
/// A PE's on-chip SRAM: slices x sram_per_slice bytes (slice i at i * sram_per_slice), sized at each
/// power cycle. The execution units reach it through DMI; b_transport serves tests and debug.
#include <cstdint>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <vector>

namespace anvil::hw {

class Sram : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<Sram> socket;

  explicit Sram(sc_core::sc_module_name name);
  /// Power cycle: `bytes` of zeroed storage; outstanding DMI pointers are invalidated.
  void reset(uint64_t bytes);
  uint64_t size() const { return storage_.size(); }

 private:
  void b_transport(int id, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
  unsigned int transport_dbg(int id, tlm::tlm_generic_payload& gp);
  bool get_direct_mem_ptr(int id, tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi);
  std::vector<uint8_t> storage_;
};

/// An execution unit's DMI window on its SRAM, with bounds checks and a high-water mark.
struct SramView {
  uint8_t* base = nullptr;
  uint64_t bytes = 0;
  uint64_t high_water = 0;  ///< highest end address written (bytes)
  /// True when [addr, addr + n) lies in the SRAM.
  bool contains(uint64_t addr, uint64_t n) const { return addr <= bytes && n <= bytes - addr; }
  uint8_t* write_ptr(uint64_t addr, uint64_t n) {
    if (addr + n > high_water) high_water = addr + n;
    return base + addr;
  }
  const uint8_t* read_ptr(uint64_t addr) const { return base + addr; }
};

/// Requests the DMI window of `socket`'s SRAM (which always grants it).
template <typename Socket>
SramView acquire_sram(Socket& socket) {
  tlm::tlm_generic_payload gp;
  gp.set_address(0);
  gp.set_command(tlm::TLM_READ_COMMAND);
  tlm::tlm_dmi dmi;
  SramView v;
  if (socket->get_direct_mem_ptr(gp, dmi)) {
    v.base = dmi.get_dmi_ptr();
    v.bytes = dmi.get_end_address() - dmi.get_start_address() + 1;
  }
  return v;
}

}  // namespace anvil::hw
