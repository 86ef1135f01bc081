#pragma once
/// The shared LPDDR4X: sparse storage of config.dram_bytes, and a timing model in which every
/// transfer reserves the bus for bytes / dram_gbps and completes dram_latency_ns after its data
/// has moved. Reservations are taken in arrival order, so two PEs streaming at once each get
/// about half of the bandwidth. A burst of back-to-back requests issued at the same local time
/// (a DMA descriptor's rows) pays the latency once: its requests are pipelined.
#include <cstdint>
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <unordered_map>

#include "chip_context.h"

namespace anvil::hw {

class Dram : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<Dram> socket;

  Dram(sc_core::sc_module_name name, ChipContext& ctx);
  /// Power cycle: contents are lost, the bus is idle.
  void reset();
  /// Untimed access for loaders and tests; false when outside the device's DRAM.
  bool read(uint64_t addr, void* dst, uint64_t n);
  bool write(uint64_t addr, const void* src, uint64_t n);

  struct Counters {
    uint64_t bytes_read = 0, bytes_written = 0, transactions = 0;
    uint64_t stall_ps = 0;  ///< time requests waited for the bus (contention)
  };
  const Counters& counters() const { return counters_; }

 private:
  static constexpr uint64_t kPageBytes = 1ull << 20;  ///< storage granule, allocated on first touch
  void b_transport(int id, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
  unsigned int transport_dbg(int id, tlm::tlm_generic_payload& gp);
  bool get_direct_mem_ptr(int id, tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi);
  bool access(bool is_write, uint64_t addr, uint8_t* data, uint64_t n);
  uint8_t* page(uint64_t index);

  ChipContext& ctx_;
  std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> pages_;
  sc_core::sc_time bus_free_;  ///< absolute time the data bus becomes free
  Counters counters_;
};

}  // namespace anvil::hw
