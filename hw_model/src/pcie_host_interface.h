#pragma once
/// The PCIe endpoint: BAR0 (the register block, a TLM target the host driver accesses) and the
/// host <-> device DMA the command processor uses. A PCIe transfer of B bytes takes
/// pcie_latency + B / pcie_gbps; when it also moves DRAM data the two stream concurrently, so it
/// ends when the slower of the two is done. Interrupts go to the host as an MSI callback.
#include <cstdint>
#include <functional>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "chip_context.h"
#include "register_block.h"

namespace anvil::hw {

class PcieHostInterface : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<PcieHostInterface> bar;              ///< host -> registers
  tlm_utils::simple_initiator_socket<PcieHostInterface> host_socket;   ///< device -> host memory
  tlm_utils::simple_initiator_socket<PcieHostInterface> dram_socket;   ///< DMA engine's DRAM port

  PcieHostInterface(sc_core::sc_module_name name, ChipContext& ctx);
  RegisterBlock& regs() { return regs_; }
  /// Called with the INT_STATUS bits of an MSI (from the simulation thread).
  std::function<void(uint32_t bits)> msi;

  /// Timed transfers for the command processor; `delay` is the caller's local time offset and is
  /// advanced to the transfer's end. Return false on an error response (nothing more is moved).
  bool host_read(uint64_t host_addr, void* dst, uint64_t n, sc_core::sc_time& delay);
  bool host_write(uint64_t host_addr, const void* src, uint64_t n, sc_core::sc_time& delay);
  bool host_to_dram(uint64_t host_addr, uint64_t dram_addr, uint64_t n, sc_core::sc_time& delay, uint64_t* fault_addr);
  bool dram_to_host(uint64_t dram_addr, uint64_t host_addr, uint64_t n, sc_core::sc_time& delay, uint64_t* fault_addr);

  struct Counters {
    uint64_t bytes_to_device = 0, bytes_to_host = 0, transfers = 0, register_accesses = 0;
  };
  const Counters& counters() const { return counters_; }
  void reset();

 private:
  void bar_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
  unsigned int bar_debug(tlm::tlm_generic_payload& gp);
  sc_core::sc_time link_time(uint64_t n) const;
  /// host -> DRAM (to_dram) or DRAM -> host in chunks; on an error response *fault_addr names the
  /// failing address and nothing more is moved.
  bool copy_with_dram(bool to_dram, uint64_t host_addr, uint64_t dram_addr, uint64_t n, sc_core::sc_time& delay,
                      uint64_t* fault_addr);
  /// One untimed-data TLM transaction on `socket`; false on an error response.
  template <typename Socket>
  bool transact(Socket& socket, tlm::tlm_command cmd, uint64_t addr, uint8_t* data, uint64_t n, sc_core::sc_time& delay);

  ChipContext& ctx_;
  RegisterBlock regs_;
  Counters counters_;
};

}  // namespace anvil::hw
