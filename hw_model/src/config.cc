#include "anvil/hw/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "anvil/common/status.h"

namespace anvil::hw {

// Every parameter once: name, member. set(), from_json_file() and to_json() iterate this list.
#define ANVIL_HW_PARAMS(X)                                                                        \
  X(clock_ghz) X(num_pes) X(slices_per_pe) X(sram_per_slice) X(mac_rows) X(mac_cols) X(vector_lanes) \
  X(lut_lanes) X(instr_mem_bytes) X(conv_fill_cycles) X(vector_fill_cycles) X(dram_bytes) X(dram_gbps)          \
  X(dram_latency_ns) X(pcie_gbps) X(pcie_latency_ns) X(quantum_ns) X(watchdog_cycles)    \
  X(fault_run) X(fault_dma_fail_at) X(fault_pe_hang_at)

namespace {

template <typename T>
void parse_value(const std::string& key, const std::string& text, T& out) {
  std::istringstream is(text);
  T v{};
  if constexpr (std::is_unsigned_v<T>) {
    if (!text.empty() && text[0] == '-')
      fail(ErrorCode::kInvalidArgument, "hw config: '" + key + "' must be non-negative, got '" + text + "'");
  }
  is >> v;
  if (is.fail() || !(is >> std::ws).eof())
    fail(ErrorCode::kInvalidArgument, "hw config: '" + key + "' is not a number: '" + text + "'");
  out = v;
}

template <typename T>
void json_value(const std::string& key, const nlohmann::json& j, T& out) {
  if (!j.is_number() || (std::is_unsigned_v<T> && !j.is_number_unsigned()))
    fail(ErrorCode::kInvalidArgument, "hw config: '" + key + "' must be a " +
                                          (std::is_unsigned_v<T> ? "non-negative integer" : "number") +
                                          ", got " + j.dump());
  if constexpr (std::is_integral_v<T>) {
    if (j.get<uint64_t>() > std::numeric_limits<T>::max())
      fail(ErrorCode::kInvalidArgument, "hw config: '" + key + "' must be at most " +
                                            std::to_string(std::numeric_limits<T>::max()) + ", got " + j.dump());
  }
  out = j.get<T>();
}

}  // namespace

HwConfig HwConfig::preset(const std::string& name) {
  HwConfig c;
  if (name == "warboy") return c;
  if (name == "warboy-2pe") {
    c.num_pes = 2;
    return c;
  }
  fail(ErrorCode::kInvalidArgument, "hw config: unknown preset '" + name + "' (known: warboy, warboy-2pe)");
}

void HwConfig::set(const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    fail(ErrorCode::kInvalidArgument, "hw config: expected key=value, got '" + kv + "'");
  const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
#define X(name)                           \
  if (key == #name) {                     \
    parse_value(key, value, name);        \
    return;                               \
  }
  ANVIL_HW_PARAMS(X)
#undef X
  fail(ErrorCode::kInvalidArgument, "hw config: unknown key '" + key + "'");
}

HwConfig HwConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorCode::kNotFound, path + ": cannot open hw config");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    fail(ErrorCode::kParseError, path + ": not JSON: " + e.what());
  }
  if (!j.is_object()) fail(ErrorCode::kParseError, path + ": hw config must be a JSON object");
  if (j.contains("preset") && !j["preset"].is_string())
    fail(ErrorCode::kParseError, path + ": 'preset' must be a string, got " + j["preset"].dump());
  HwConfig c = preset(j.contains("preset") ? j["preset"].get<std::string>() : "warboy");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "preset") continue;
    bool known = false;
#define X(name)                          \
  if (key == #name) {                    \
    json_value(path + ": " + key, it.value(), c.name); \
    known = true;                        \
  }
    ANVIL_HW_PARAMS(X)
#undef X
    if (!known) fail(ErrorCode::kInvalidArgument, path + ": unknown hw config key '" + key + "'");
  }
  c.validate();
  return c;
}

nlohmann::json HwConfig::to_json() const {
  nlohmann::json j;
#define X(name) j[#name] = name;
  ANVIL_HW_PARAMS(X)
#undef X
  return j;
}

void HwConfig::validate() const {
  auto bad = [](const char* key, const std::string& why) {
    fail(ErrorCode::kInvalidArgument, std::string("hw config: '") + key + "' " + why);
  };
  // Times and rates are bounded so that no single transfer, DMA or watchdog period exceeds about
  // 10^6 s of simulated time: SystemC's 64-bit picosecond clock would otherwise overflow (or the
  // simulation run for days), and nothing beyond these models a real part.
  if (!(clock_ghz >= 0.001 && clock_ghz <= 10.0)) bad("clock_ghz", "must be in [0.001, 10]");
  if (num_pes < 1 || num_pes > 2) bad("num_pes", "must be 1 or 2 (the platform has at most 2 PEs)");
  if (slices_per_pe < 1 || slices_per_pe > 1024) bad("slices_per_pe", "must be in [1, 1024]");
  if (sram_per_slice < 1024 || sram_per_slice > (16u << 20)) bad("sram_per_slice", "must be in [1 KiB, 16 MiB]");
  if (sram_bytes_per_pe() * 2 > 0xFFFFFFFFull) bad("sram_per_slice", "times slices_per_pe exceeds the 32-bit SRAM address space");
  if (mac_rows < 1 || mac_rows > 4096) bad("mac_rows", "must be in [1, 4096]");
  if (mac_cols < 1 || mac_cols > 4096) bad("mac_cols", "must be in [1, 4096]");
  if (vector_lanes < 1) bad("vector_lanes", "must be >= 1");
  // A lookup consumes an element the vector engine read, so the lookup rate cannot exceed the lanes.
  if (lut_lanes < 1 || lut_lanes > vector_lanes)
    bad("lut_lanes", "must be in [1, vector_lanes = " + std::to_string(vector_lanes) + "], got " +
                         std::to_string(lut_lanes) + " (set lut_lanes with vector_lanes)");
  if (instr_mem_bytes < 128) bad("instr_mem_bytes", "must hold at least one 128-byte instruction");
  if (dram_bytes < (1u << 20) || dram_bytes > (1ull << 40)) bad("dram_bytes", "must be in [1 MiB, 1 TiB]");
  if (!(dram_gbps >= 0.001 && dram_gbps <= 1e6)) bad("dram_gbps", "must be in [0.001, 1e6]");
  if (!(dram_latency_ns >= 0.0 && dram_latency_ns <= 1e9)) bad("dram_latency_ns", "must be in [0, 1e9]");
  if (!(pcie_gbps >= 0.001 && pcie_gbps <= 1e6)) bad("pcie_gbps", "must be in [0.001, 1e6]");
  if (!(pcie_latency_ns >= 0.0 && pcie_latency_ns <= 1e9)) bad("pcie_latency_ns", "must be in [0, 1e9]");
  if (!(quantum_ns > 0.0 && quantum_ns <= 1e9)) bad("quantum_ns", "must be in (0, 1e9]");
  if (watchdog_cycles < 1000) bad("watchdog_cycles", "must be >= 1000");
  if (static_cast<double>(watchdog_cycles) / clock_ghz > 1e15)
    bad("watchdog_cycles", "must last at most 10^6 s (10^15 ns) at clock_ghz " + std::to_string(clock_ghz));
  if (fault_run < 1) bad("fault_run", "must be >= 1 (runs are counted from 1)");
  if (fault_dma_fail_at && fault_pe_hang_at) bad("fault_pe_hang_at", "cannot be set together with fault_dma_fail_at");
}

}  // namespace anvil::hw
