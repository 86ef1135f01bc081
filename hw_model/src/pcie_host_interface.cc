#include "pcie_host_interface.h"

#include <algorithm>
#include <vector>

namespace anvil::hw {

using sc_core::sc_time;

namespace {
constexpr uint64_t kChunkBytes = 64 * 1024;  ///< DMA staging buffer of the endpoint
}

PcieHostInterface::PcieHostInterface(sc_core::sc_module_name name, ChipContext& ctx)
    : sc_module(name), bar("bar"), host_socket("host_socket"), dram_socket("dram_socket"), ctx_(ctx) {
  bar.register_b_transport(this, &PcieHostInterface::bar_transport);
  bar.register_transport_dbg(this, &PcieHostInterface::bar_debug);
}

void PcieHostInterface::reset() {
  regs_.reset();
  counters_ = Counters{};
}

void PcieHostInterface::bar_transport(tlm::tlm_generic_payload& gp, sc_time&) {
  counters_.register_accesses++;
  regs_.transport(gp);
}

unsigned int PcieHostInterface::bar_debug(tlm::tlm_generic_payload& gp) {
  regs_.transport(gp);
  return gp.is_response_ok() ? gp.get_data_length() : 0;
}

sc_time PcieHostInterface::link_time(uint64_t n) const {
  return sc_time(ctx_.config.pcie_latency_ns, sc_core::SC_NS) +
         sc_time(static_cast<double>(n) * 1000.0 / ctx_.config.pcie_gbps, sc_core::SC_PS);
}

template <typename Socket>
bool PcieHostInterface::transact(Socket& socket, tlm::tlm_command cmd, uint64_t addr, uint8_t* data, uint64_t n,
                                 sc_time& delay) {
  tlm::tlm_generic_payload gp;
  gp.set_command(cmd);
  gp.set_address(addr);
  gp.set_data_ptr(data);
  gp.set_data_length(static_cast<unsigned int>(n));
  gp.set_streaming_width(static_cast<unsigned int>(n));
  gp.set_byte_enable_ptr(nullptr);
  gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  socket->b_transport(gp, delay);
  return gp.is_response_ok();
}

bool PcieHostInterface::host_read(uint64_t host_addr, void* dst, uint64_t n, sc_time& delay) {
  sc_time d = delay;
  if (!transact(host_socket, tlm::TLM_READ_COMMAND, host_addr, static_cast<uint8_t*>(dst), n, d)) return false;
  delay += link_time(n);
  counters_.bytes_to_device += n;
  counters_.transfers++;
  return true;
}

bool PcieHostInterface::host_write(uint64_t host_addr, const void* src, uint64_t n, sc_time& delay) {
  sc_time d = delay;
  if (!transact(host_socket, tlm::TLM_WRITE_COMMAND, host_addr, static_cast<uint8_t*>(const_cast<void*>(src)), n, d))
    return false;
  delay += link_time(n);
  counters_.bytes_to_host += n;
  counters_.transfers++;
  return true;
}

bool PcieHostInterface::copy_with_dram(bool to_dram, uint64_t host_addr, uint64_t dram_addr, uint64_t n, sc_time& delay,
                                       uint64_t* fault_addr) {
  // Chunks go source -> buffer -> destination; the PCIe link and the DRAM side stream
  // concurrently, so the transfer ends when the slower of the two is done.
  std::vector<uint8_t> chunk(std::min(n, kChunkBytes));
  const sc_time start = delay;
  sc_time dram_end = start;
  for (uint64_t done = 0; done < n;) {
    const uint64_t len = std::min(n - done, kChunkBytes);
    sc_time host_d = start, dram_d = start;
    auto step = [&](auto& socket, tlm::tlm_command cmd, uint64_t addr, sc_time& d) {
      if (transact(socket, cmd, addr, chunk.data(), len, d)) return true;
      *fault_addr = addr;
      return false;
    };
    const bool ok = to_dram ? step(host_socket, tlm::TLM_READ_COMMAND, host_addr + done, host_d) &&
                                  step(dram_socket, tlm::TLM_WRITE_COMMAND, dram_addr + done, dram_d)
                            : step(dram_socket, tlm::TLM_READ_COMMAND, dram_addr + done, dram_d) &&
                                  step(host_socket, tlm::TLM_WRITE_COMMAND, host_addr + done, host_d);
    if (!ok) return false;
    dram_end = std::max(dram_end, dram_d);
    done += len;
  }
  delay = std::max(start + link_time(n), dram_end);
  (to_dram ? counters_.bytes_to_device : counters_.bytes_to_host) += n;
  counters_.transfers++;
  return true;
}

bool PcieHostInterface::host_to_dram(uint64_t host_addr, uint64_t dram_addr, uint64_t n, sc_time& delay,
                                     uint64_t* fault_addr) {
  return copy_with_dram(true, host_addr, dram_addr, n, delay, fault_addr);
}

bool PcieHostInterface::dram_to_host(uint64_t dram_addr, uint64_t host_addr, uint64_t n, sc_time& delay,
                                     uint64_t* fault_addr) {
  return copy_with_dram(false, host_addr, dram_addr, n, delay, fault_addr);
}

}  // namespace anvil::hw
