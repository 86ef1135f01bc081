#pragma once
/// Host RAM as the device sees it over PCIe: buffers the driver allocates, each at a bus address.
/// A TLM target with DMI per buffer; an access outside every buffer is an address error.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

namespace anvil::hw {

class HostMemory : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<HostMemory> socket;

  explicit HostMemory(sc_core::sc_module_name name);

  struct Buffer {
    uint64_t bus_addr = 0;
    uint8_t* data = nullptr;
    uint64_t bytes = 0;
  };
  /// Allocates a zeroed buffer (4 KiB aligned bus address). Thread-safe: the driver calls it.
  Buffer allocate(uint64_t bytes);
  /// Registers caller-owned storage (e.g. shared memory another process also maps) as a buffer
  /// at a fresh bus address; the caller keeps it valid until release() or clear(). Thread-safe.
  Buffer attach(uint8_t* data, uint64_t bytes);
  /// Frees the buffer at `bus_addr`; unknown addresses are ignored (thread-safe).
  void release(uint64_t bus_addr);
  /// Frees every buffer (power cycle).
  void clear();

 private:
  void b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
  bool get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi);
  unsigned int transport_dbg(tlm::tlm_generic_payload& gp);
  struct Storage {
    uint8_t* data = nullptr;
    uint64_t size = 0;
    std::unique_ptr<uint8_t[]> owned;  ///< empty for attached (caller-owned) storage
  };
  /// Registers storage at the next bus address (mutex_ held).
  Buffer add(Storage storage, uint64_t bytes);
  /// The buffer holding [addr, addr+n), or nullptr.
  std::pair<const uint64_t, Storage>* find(uint64_t addr, uint64_t n);

  std::mutex mutex_;
  std::map<uint64_t, Storage> buffers_;  ///< bus address -> storage
  uint64_t next_addr_ = 0x100000000ull;  ///< host bus addresses start at 4 GiB (never 0)
};

}  // namespace anvil::hw
