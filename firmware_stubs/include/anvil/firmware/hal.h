#pragma once
/// The hardware abstraction layer the firmware runs on. The hardware model's command_processor
/// implements it over TLM; tests implement it in plain memory. The firmware itself has no
/// SystemC dependency.
#include <array>
#include <cstdint>

#include "anvil/isa/device.h"
#include "anvil/isa/isa.h"

namespace anvil::fw {

/// A failed hardware operation (a DMA outside memory, a PCIe error). HAL calls throw it; the
/// firmware turns it into an error completion.
struct HalFault {
  isa::DeviceError code;
  uint32_t info;  ///< as ERROR_INFO, e.g. the low 32 bits of the faulting address
};

/// A DRAM region relocated for a request (isa::Region order).
struct RegionWindow {
  uint64_t base = 0, bytes = 0;
};

/// One program run on a PE or on the fused pair.
struct PeRun {
  uint32_t pe_mask = 0;  ///< one bit: that PE; 0b11: the fused pair
  const isa::Instruction* instructions = nullptr;
  size_t count = 0;
  std::array<RegionWindow, isa::kNumRegions> regions{};
  uint32_t fault_mode = 0, fault_arg = 0;  ///< FAULT_INJECT / FAULT_ARG, for tests
};

struct PeResult {
  isa::DeviceError error = isa::DeviceError::kOk;
  uint32_t info = 0;
  uint64_t cycles = 0;  ///< cycles of the run on the PE(s)
};

class Hal {
 public:
  virtual ~Hal() = default;
  /// Host-interface registers, device side: any register, whatever its host access type.
  virtual uint32_t reg_read(uint32_t offset) = 0;
  virtual void reg_write(uint32_t offset, uint32_t value) = 0;
  /// Returns when the host has rung a doorbell (SQ_TAIL or CQ_HEAD written) or a PE run started
  /// by start_pes ended since the last call.
  virtual void wait_event() = 0;
  /// Host memory over PCIe. Throw HalFault{kDmaFault} for an address the host did not map.
  virtual void host_read(uint64_t host_addr, void* dst, uint64_t n) = 0;
  virtual void host_write(uint64_t host_addr, const void* src, uint64_t n) = 0;
  /// PCIe DMA between host memory and device DRAM. Throw HalFault{kDmaFault}.
  virtual void host_to_dram(uint64_t host_addr, uint64_t dram_addr, uint64_t n) = 0;
  virtual void dram_to_host(uint64_t dram_addr, uint64_t host_addr, uint64_t n) = 0;
  /// Device DRAM read by the command processor. Throws HalFault{kDmaFault}.
  virtual void dram_read(uint64_t dram_addr, void* dst, uint64_t n) = 0;
  virtual uint32_t num_pes() const = 0;
  virtual uint64_t instr_mem_bytes() const = 0;   ///< per PE
  virtual uint64_t sram_bytes_per_pe() const = 0;
  virtual uint64_t dram_bytes() const = 0;
  /// Loads the instructions into the PE(s)' instruction memory and starts them; returns at once.
  /// An error result (kPeMismatch, kBadProgram) when the run cannot start.
  virtual PeResult start_pes(const PeRun& run) = 0;
  /// True once the run started on `pe_mask` finished, failed, or was stopped by the watchdog
  /// (kTimeout); *result is its outcome. False while it runs.
  virtual bool pes_finished(uint32_t pe_mask, PeResult* result) = 0;
  /// Device cycle counter.
  virtual uint64_t cycle() const = 0;
  /// Sends the MSI for INT_STATUS `bits` (called after INT_STATUS was updated, only for enabled bits).
  virtual void send_msi(uint32_t bits) = 0;
};

}  // namespace anvil::fw
