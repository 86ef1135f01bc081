#pragma once
/// The virtual platform: one simulated Warboy-class chip per process, seen from the host.
///
/// SystemC elaborates once per process and cannot add modules after sc_start, so the platform is
/// elaborated once, with the maximum structure (2 PEs), on first use. One dedicated simulation
/// thread owns every SystemC call; host threads talk to it only through the thread-safe calls
/// below, which it executes between simulation steps. The simulation advances only while there is
/// activity (sc_start until starvation), so an idle or hung device costs no CPU and never blocks
/// the process: a hang shows as idle() without a completion.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "anvil/hw/config.h"

namespace anvil::hw {

/// Outcome of a BAR access (the TLM response status of the transaction).
enum class BarResponse { kOk, kAddressError, kBurstError, kByteEnableError, kCommandError, kGenericError };
const char* bar_response_name(BarResponse r);

/// A buffer in host memory the device can reach over PCIe at `bus_addr`.
struct HostBuffer {
  uint64_t bus_addr = 0;
  uint8_t* data = nullptr;  ///< host pointer; stays valid until freed or the next reset()
  uint64_t bytes = 0;
};

class Platform {
 public:
  /// The process-wide platform, elaborated (and powered with preset "warboy") on first use.
  static Platform& instance();

  /// Power cycle with new parameters: fresh DRAM/SRAM/registers/counters, host buffers freed, the
  /// firmware reboots. Returns when the device is idle again (firmware booted). Throws
  /// kInvalidArgument for an invalid config (the chip keeps its previous state).
  void reset(const HwConfig& config);
  /// Bumped by every reset(): handles opened before a reset are stale.
  uint64_t generation() const;
  HwConfig config() const;

  /// A BAR0 access executed as a TLM transaction on the PCIe endpoint's target socket.
  BarResponse bar_access(bool write, uint64_t offset, void* data, unsigned length);
  /// 32-bit register access; throws kDeviceError naming the offset on an error response.
  uint32_t read32(uint32_t offset);
  void write32(uint32_t offset, uint32_t value);

  /// Host memory for the driver (zeroed). Throws kInvalidArgument for 0 bytes.
  HostBuffer host_alloc(uint64_t bytes);
  /// Makes caller-owned memory (e.g. a shared-memory mapping a runtime in another process also
  /// maps) reachable by the device as a host buffer. The caller keeps `data` mapped until
  /// host_free(bus_addr) or the next reset(), and frees it itself. Throws kInvalidArgument for 0 bytes.
  HostBuffer host_attach(void* data, uint64_t bytes);
  void host_free(uint64_t bus_addr);

  /// Called from the simulation thread with the INT_STATUS bits of each MSI. The handler must not
  /// call back into the platform (it should only wake a host thread). nullptr removes it.
  void set_interrupt_handler(std::function<void(uint32_t bits)> handler);

  /// True when the simulation has no pending activity and no host request is queued.
  bool idle();
  /// Blocks until idle().
  void wait_idle();

  /// Performance counters of every unit (see docs/warboy.md), a debug interface.
  nlohmann::json counters();
  /// Activity trace (docs/warboy.md "Trace"): while enabled, the model records one event per
  /// instruction, DMA descriptor, PE run, PCIe transfer and host command. A reset() clears the
  /// recorded events and turns recording off (a fresh device). Off by default; when off it costs one branch per event.
  void set_trace(bool enabled);
  /// The events recorded since the last reset() or clear_trace() as Chrome / Perfetto JSON:
  /// {"traceEvents": [...]}, complete events ("ph": "X") with ts/dur in microseconds of simulated
  /// time since the reset, pid 0 = chip (tid 0 command processor, 1 pcie), pid 1 + i = PE i
  /// (tid 0 sequencer, 1 dma, 2 mac, 3 vector); instruction events carry args index and cycles.
  nlohmann::json trace_json();
  void clear_trace();
  /// Untimed debug access to device DRAM (tests, debuggers). Throws kInvalidArgument out of range.
  void debug_dram_write(uint64_t addr, const void* src, uint64_t n);
  void debug_dram_read(uint64_t addr, void* dst, uint64_t n);

  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

 private:
  Platform();
  ~Platform();
  struct Impl;
  Impl* impl_;  ///< never freed: the simulation thread lives as long as the process
};

}  // namespace anvil::hw
