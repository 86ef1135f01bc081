#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "anvil/common/status.h"
#include "anvil/hw/config.h"
#include "scratch_dir_for_tests.h"

namespace anvil::hw {
namespace {

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HwConfig, PresetsMatchThePublicWarboyFigures) {
  const HwConfig one = HwConfig::preset("warboy"), two = HwConfig::preset("warboy-2pe");
  EXPECT_EQ(one.num_pes, 1u);
  EXPECT_EQ(two.num_pes, 2u);
  // 32 MB SRAM on the chip: 2 PEs x 64 slices x 256 KiB.
  EXPECT_EQ(two.num_pes * two.sram_bytes_per_pe(), 32ull << 20);
  // 64 TOPS int8: 2 PEs x 64 slices x 32x4 MACs x 2 ops x 2 GHz.
  const double tops = 2.0 * two.num_pes * two.slices_per_pe * two.mac_rows * two.mac_cols * two.clock_ghz * 1e9 / 1e12;
  EXPECT_NEAR(tops, 65.5, 0.1);
  EXPECT_DOUBLE_EQ(one.dram_gbps, 66.0);
  EXPECT_DOUBLE_EQ(one.pcie_gbps, 15.75);
  one.validate();
  two.validate();
  EXPECT_NE(error_of([] { HwConfig::preset("warboy-3pe"); }).find("warboy-3pe"), std::string::npos);
}

TEST(HwConfig, SetParsesAndNamesBadKeys) {
  HwConfig c;
  c.set("dram_gbps=33.5");
  c.set("slices_per_pe=16");
  EXPECT_DOUBLE_EQ(c.dram_gbps, 33.5);
  EXPECT_EQ(c.slices_per_pe, 16u);
  EXPECT_NE(error_of([&] { c.set("dram_gbs=1"); }).find("'dram_gbs'"), std::string::npos);
  EXPECT_NE(error_of([&] { c.set("mac_rows=abc"); }).find("'mac_rows'"), std::string::npos);
  EXPECT_NE(error_of([&] { c.set("mac_rows=-3"); }).find("'mac_rows'"), std::string::npos);
  EXPECT_NE(error_of([&] { c.set("mac_rows"); }).find("key=value"), std::string::npos);
}

TEST(HwConfig, ValidateNamesTheKey) {
  for (const char* kv : {"clock_ghz=0", "num_pes=3", "slices_per_pe=0", "mac_cols=0", "vector_lanes=0",
                         "lut_lanes=0", "lut_lanes=257", "dram_gbps=0", "pcie_gbps=-1", "instr_mem_bytes=64", "quantum_ns=0", "sram_per_slice=10",
                         // Values that passed before and hung a run (simulated times beyond SystemC's 64-bit clock).
                         "dram_gbps=1e-9", "dram_gbps=1e-300", "pcie_gbps=1e-9", "dram_latency_ns=1e12",
                         "pcie_latency_ns=1e15", "clock_ghz=1e-12", "watchdog_cycles=18446744073709551615"}) {
    HwConfig c;
    c.set(kv);
    const std::string key = std::string(kv).substr(0, std::string(kv).find('='));
    EXPECT_NE(error_of([&] { c.validate(); }).find("'" + key + "'"), std::string::npos) << kv;
  }
}

TEST(HwConfig, AWatchdogOfMoreThanAMillionSecondsIsRefused) {
  HwConfig c;
  c.set("clock_ghz=0.001");
  c.set("watchdog_cycles=1100000000000");  // 1.1 x 10^12 cycles at 1 MHz: 1.1 x 10^6 s
  EXPECT_NE(error_of([&] { c.validate(); }).find("'watchdog_cycles'"), std::string::npos);
  c.set("clock_ghz=2");  // 550 s
  c.validate();
}

TEST(HwConfig, LutLanesCannotExceedVectorLanes) {
  // A lookup consumes an element the vector engine read: lowering vector_lanes alone leaves the
  // default lut_lanes (256) above it, and the error says which keys and values.
  HwConfig c = HwConfig::preset("warboy");
  EXPECT_EQ(c.lut_lanes, c.vector_lanes);
  c.set("vector_lanes=64");
  const std::string e = error_of([&] { c.validate(); });
  EXPECT_NE(e.find("'lut_lanes'"), std::string::npos) << e;
  EXPECT_NE(e.find("vector_lanes = 64"), std::string::npos) << e;
  EXPECT_NE(e.find("256"), std::string::npos) << e;
  c.set("lut_lanes=16");
  c.validate();
  EXPECT_EQ(c.to_json().at("lut_lanes"), 16u);
  EXPECT_NE(error_of([&] { c.set("lut_lanes=-1"); }).find("'lut_lanes'"), std::string::npos);
}

TEST(HwConfig, JsonRoundTripAndFileErrors) {
  const anvil::test::ScratchDir scratch("anvil_hw_config");
  HwConfig c = HwConfig::preset("warboy-2pe");
  c.set("dram_latency_ns=123");
  const std::string path = scratch.file("anvil_hw_config.json");
  {
    std::ofstream out(path);
    nlohmann::json j = c.to_json();
    j["preset"] = "warboy";
    out << j.dump();
  }
  const HwConfig back = HwConfig::from_json_file(path);
  EXPECT_EQ(back.to_json(), c.to_json());
  {
    std::ofstream out(path);
    out << R"({"preset": "warboy", "mac_rowz": 4})";
  }
  EXPECT_NE(error_of([&] { HwConfig::from_json_file(path); }).find("mac_rowz"), std::string::npos);
  {
    std::ofstream out(path);
    out << R"({"mac_rows": -4})";
  }
  EXPECT_NE(error_of([&] { HwConfig::from_json_file(path); }).find("mac_rows"), std::string::npos);
  {
    std::ofstream out(path);
    out << R"({"fault_run": 4294967297, "fault_pe_hang_at": 1})";  // 2^32 + 1: used to wrap to run 1
  }
  EXPECT_NE(error_of([&] { HwConfig::from_json_file(path); }).find("fault_run' must be at most 4294967295"),
            std::string::npos) << error_of([&] { HwConfig::from_json_file(path); });
  {
    std::ofstream out(path);
    out << R"({"preset": 5})";
  }
  EXPECT_NE(error_of([&] { HwConfig::from_json_file(path); }).find("'preset' must be a string"), std::string::npos);
  {
    std::ofstream out(path);
    out << "{ not json";
  }
  EXPECT_NE(error_of([&] { HwConfig::from_json_file(path); }).find("not JSON"), std::string::npos);
  EXPECT_NE(error_of([] { HwConfig::from_json_file("/nonexistent/hw.json"); }).find("cannot open"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace anvil::hw
