#pragma once
/// Parameters of the virtual Warboy-class chip. Every size and timing of the hardware model comes
/// from here; docs/warboy.md lists each parameter, its default and where the default comes from.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace anvil::hw {

struct HwConfig {
  // Core
  double clock_ghz = 2.0;             ///< core clock (GHz); one device cycle = 1/clock_ghz ns
  uint32_t num_pes = 1;               ///< PEs on the device (1: "warboy", 2: "warboy-2pe")
  uint32_t slices_per_pe = 64;        ///< compute slices per PE, each with SRAM and a MAC array
  uint64_t sram_per_slice = 256 * 1024;  ///< SRAM bytes per slice
  uint32_t mac_rows = 32;             ///< MAC array rows per slice: output channels per cycle
  uint32_t mac_cols = 4;              ///< MAC array columns per slice: reduction elements per cycle
  uint32_t vector_lanes = 256;        ///< vector engine throughput per PE (elements per cycle)
  uint32_t lut_lanes = 256;           ///< kLut table lookups per cycle per PE (<= vector_lanes)
  uint64_t instr_mem_bytes = 256 * 1024;  ///< sequencer instruction memory per PE (bytes)
  uint32_t conv_fill_cycles = 64;     ///< MAC pipeline fill/drain per kConv (cycles)
  uint32_t vector_fill_cycles = 16;   ///< vector pipeline fill/drain per vector instruction (cycles)
  // Memory system
  uint64_t dram_bytes = 16ull << 30;  ///< LPDDR4X capacity (bytes)
  double dram_gbps = 66.0;            ///< LPDDR4X bandwidth shared by all PEs (GB/s = bytes/ns)
  double dram_latency_ns = 100.0;     ///< DRAM access latency, paid once per DMA descriptor (ns)
  // Host link
  double pcie_gbps = 15.75;           ///< PCIe Gen4 x8 payload bandwidth (GB/s)
  double pcie_latency_ns = 1000.0;    ///< PCIe round trip per host transfer (ns)
  // Simulation
  double quantum_ns = 1000.0;         ///< TLM global quantum for temporal decoupling (ns)
  uint64_t watchdog_cycles = 4000000000ull;  ///< firmware's limit on one PE run before kTimeout (cycles)
  // Fault injection (tests of host software): hits one PE run per power cycle; 0 = off. The
  // FAULT_INJECT register, when set, takes precedence.
  uint32_t fault_run = 1;          ///< the PE run (1-based, counted since power-on) the fault hits
  uint32_t fault_dma_fail_at = 0;  ///< that run's Nth DMA instruction fails (device error kDmaFault)
  uint32_t fault_pe_hang_at = 0;   ///< that run's PE hangs at its Nth instruction (watchdog: kTimeout)

  /// Named presets: "warboy" (one PE) and "warboy-2pe" (the full chip, two PEs).
  /// Throws kInvalidArgument naming the preset when unknown.
  static HwConfig preset(const std::string& name);
  /// Starts from preset "warboy" and overrides the keys present in the JSON file (same keys as
  /// to_json(), an optional "preset" key first). Throws kNotFound / kParseError / kInvalidArgument.
  static HwConfig from_json_file(const std::string& path);
  /// Applies "key=value" (e.g. "dram_gbps=33"). Throws kInvalidArgument naming the key.
  void set(const std::string& key_equals_value);
  /// Checks ranges and consistency; throws kInvalidArgument naming the offending key.
  void validate() const;
  nlohmann::json to_json() const;

  // Derived quantities.
  uint64_t sram_bytes_per_pe() const { return static_cast<uint64_t>(slices_per_pe) * sram_per_slice; }
  /// Bytes DRAM moves per core cycle.
  double dram_bytes_per_cycle() const { return dram_gbps / clock_ghz; }
  double cycle_ns() const { return 1.0 / clock_ghz; }
};

}  // namespace anvil::hw
