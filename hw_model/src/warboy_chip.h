#pragma once
/// The top of the chip: wires the PCIe endpoint, host memory, command processor, DRAM and the PEs
/// (each: SRAM, sequencer, DMA engine, MAC array, vector engine). Elaborated once with the maximum
/// structure (2 PEs); a power cycle applies a new HwConfig to the same modules.
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <systemc>

#include "chip_context.h"
#include "command_processor.h"
#include "dma_engine.h"
#include "dram.h"
#include "host_memory.h"
#include "mac_array.h"
#include "pcie_host_interface.h"
#include "sequencer.h"
#include "sram.h"
#include "vector_engine.h"

namespace anvil::hw {

class WarboyChip : public sc_core::sc_module {
 public:
  static constexpr int kMaxPes = 2;

  struct Pe {
    Sram sram;
    Sequencer seq;
    DmaEngine dma;
    MacArray mac;
    VectorEngine vector;
    Pe(const std::string& prefix, ChipContext& ctx, int index);
  };

  explicit WarboyChip(sc_core::sc_module_name name);

  /// Power cycle with new parameters (config must be valid): memories cleared and resized, host
  /// buffers freed, registers and counters reset, every process restarted, the firmware reboots.
  /// Call from outside any SystemC process, between sc_start calls.
  void power_on(const HwConfig& config);
  /// CONTROL.RESET: PEs, queues, registers and error state reset, firmware reboots; DRAM kept.
  void soft_reset();
  nlohmann::json counters() const;

  ChipContext ctx;
  HostMemory host_memory;
  Dram dram;
  PcieHostInterface pcie;
  std::array<std::unique_ptr<Pe>, kMaxPes> pes;
  CommandProcessor command_processor;

 private:
  void restart_processes();
};

}  // namespace anvil::hw
