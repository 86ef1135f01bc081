// Observability of the virtual chip: the activity trace, the performance counters, a parameter
// sweep (DRAM bandwidth sensitivity) and the roofline bound, all on simulated time only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "anvil/common/status.h"
#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::dma;

/// A tiled 3x3 conv (128 -> 128 channels, 16x16 tiles) with double-buffered input and output
/// tiles: tile i+2 loads and tile i stores while the MAC array works on tile i+1. The weights
/// are all zero (values do not change timing, and the functional kernel skips zero weights, so
/// the test stays fast); output = out_zero_point everywhere.
isa::Program pipelined_conv(int tiles) {
  ConvLayer g;
  g.n = 1, g.ic = 128, g.oc = 128, g.h = 16, g.w = 16, g.kh = 3, g.kw = 3, g.pad = 1, g.in_zp = 0, g.out_zp = 7;
  const uint32_t tile = 128 * 16 * 16, wbytes = 128 * 128 * 9, vbytes = 12 * 128;
  const uint32_t s_w = 0, s_v = 160 << 10, s_in = 192 << 10, s_out = 256 << 10;
  isa::Program p;
  p.constants.assign(wbytes + vbytes, 0);  // zero weights, bias, multipliers and shifts
  auto& code = p.instructions;
  uint32_t dma_count = 0, mac_count = 0;
  std::vector<uint32_t> load_pos(tiles), store_pos(tiles);  // 1-based DMA completion counts
  auto push_dma = [&](isa::Instruction i) {
    code.push_back(i);
    return ++dma_count;
  };
  push_dma(dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, s_w, wbytes));
  push_dma(dma(isa::Opcode::kDmaLoad, isa::Region::kConst, wbytes, s_v, vbytes));
  for (int i = 0; i < std::min(tiles, 2); ++i)
    load_pos[i] = push_dma(dma(isa::Opcode::kDmaLoad, isa::Region::kIo, uint64_t{tile} * i, s_in + tile * (i % 2), tile));
  for (int i = 0; i < tiles; ++i) {
    isa::Instruction conv;
    conv.opcode = isa::Opcode::kConv;
    conv.conv = g.args(s_in + tile * (i % 2), s_w, s_v, s_out + tile * (i % 2));
    conv.wait[0] = std::max(load_pos[i], i >= 2 ? store_pos[i - 2] : 2u);
    code.push_back(conv);
    ++mac_count;
    store_pos[i] = push_dma(dma(isa::Opcode::kDmaStore, isa::Region::kIo, uint64_t{tile} * (tiles + i),
                                s_out + tile * (i % 2), tile, {0, mac_count, 0}));
    if (i + 2 < tiles)
      load_pos[i + 2] = push_dma(dma(isa::Opcode::kDmaLoad, isa::Region::kIo, uint64_t{tile} * (i + 2),
                                     s_in + tile * (i % 2), tile, {0, mac_count, 0}));
  }
  p.inputs = {{"x", DType::kInt8, isa::Layout::kNCHW, {tiles, 128, 16, 16}, 0.05f, 0, 0}};
  p.outputs = {{"y", DType::kInt8, isa::Layout::kNCHW, {tiles, 128, 16, 16}, 0.1f, 7, uint64_t{tile} * tiles}};
  p.io_bytes = 2ull * tile * tiles;
  p.sram_bytes = s_out + 2 * tile;
  return p;
}

TensorMap zero_input(const isa::Program& p) {
  TensorMap m;
  for (const auto& d : p.inputs) m.emplace(d.name, Tensor(DType::kInt8, d.shape));
  return m;
}

/// A 1x1 conv with 4 channels over 256x256 pixels: 512 KiB of DMA for 1 Mi MACs (memory-bound).
ConvLayer memory_bound_layer() {
  ConvLayer g;
  g.ic = 4, g.oc = 4, g.h = 256, g.w = 256, g.kh = 1, g.kw = 1, g.pad = 0;
  return ConvLayer::random(11, g);
}

struct Event {
  std::string name;
  int pid, tid;
  double ts, dur;
  nlohmann::json args;
};

std::vector<Event> complete_events(const nlohmann::json& trace) {
  std::vector<Event> out;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "X")
      out.push_back({e.at("name"), e.at("pid"), e.at("tid"), e.at("ts"), e.at("dur"), e.value("args", nlohmann::json())});
  return out;
}

TEST(Trace, OneEventPerInstructionNoOverlapPerUnitAndDmaUnderCompute) {
  const hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  const isa::Program p = pipelined_conv(4);
  Device dev = Device::open("warboy(1)*1", cfg);
  dev.set_trace(true);
  Session s(dev, p);
  const TensorMap out = s.run(zero_input(p));
  for (int8_t v : std::vector<int8_t>(out.at("y").data<int8_t>(), out.at("y").data<int8_t>() + out.at("y").numel()))
    ASSERT_EQ(v, 7);
  const std::vector<Event> ev = complete_events(dev.trace_json());

  // Exactly one event per instruction, on its unit's track of PE 0 (pid 1), named by its opcode.
  std::map<uint32_t, const Event*> by_index;
  std::map<int, std::vector<const Event*>> by_tid;
  for (const Event& e : ev) {
    if (e.pid != 1 || e.tid == 0) continue;
    const uint32_t i = e.args.at("index");
    ASSERT_LT(i, p.instructions.size());
    EXPECT_TRUE(by_index.emplace(i, &e).second) << "two events for instruction " << i;
    EXPECT_EQ(e.name, isa::opcode_name(p.instructions[i].opcode));
    EXPECT_EQ(e.tid, 1 + static_cast<int>(isa::opcode_unit(p.instructions[i].opcode)));
    // "cycles" is the duration at the configured clock (us * 1000 * GHz).
    EXPECT_NEAR(e.args.at("cycles").get<double>(), e.dur * 1e3 * cfg.clock_ghz, 1.0);
    by_tid[e.tid].push_back(&e);
  }
  EXPECT_EQ(by_index.size(), p.instructions.size());
  for (auto& [tid, list] : by_tid) {
    std::sort(list.begin(), list.end(), [](const Event* a, const Event* b) { return a->ts < b->ts; });
    for (size_t k = 1; k < list.size(); ++k)
      EXPECT_LE(list[k - 1]->ts + list[k - 1]->dur, list[k]->ts + 1e-6) << "unit " << tid << " overlaps itself";
  }
  // The store of tile 0 and the load of tile 2 run while the MAC array computes tile 1.
  auto overlap = [](const Event* a, const Event* b) {
    return std::min(a->ts + a->dur, b->ts + b->dur) - std::max(a->ts, b->ts);
  };
  double dma_under_mac = 0;
  for (const Event* d : by_tid[1])
    for (const Event* m : by_tid[2]) dma_under_mac += std::max(0.0, overlap(d, m));
  EXPECT_GT(dma_under_mac, 0.5) << "us of DMA under compute";
  // DMA events carry their bytes; the sequencer's run spans every instruction; the command
  // processor shows the load and run commands and PCIe its transfers.
  uint64_t dma_bytes = 0;
  for (const Event* d : by_tid[1]) dma_bytes += d->args.at("bytes").get<uint64_t>();
  EXPECT_EQ(dma_bytes, p.constants.size() + p.io_bytes);
  int runs = 0, run_commands = 0, load_commands = 0, pcie = 0;
  for (const Event& e : ev) {
    if (e.pid == 1 && e.tid == 0) {
      ++runs;
      EXPECT_EQ(e.args.at("cycles").get<uint64_t>(), s.last_stats().cycles);
      for (const auto& [i, x] : by_index) {
        EXPECT_GE(x->ts, e.ts - 1e-6);
        EXPECT_LE(x->ts + x->dur, e.ts + e.dur + 1e-6);
      }
    }
    if (e.pid == 0 && e.tid == 0) (e.name == "run command" ? run_commands : load_commands) += 1;
    if (e.pid == 0 && e.tid == 1) {
      ++pcie;
      EXPECT_GT(e.args.at("bytes").get<uint64_t>(), 0u);
    }
    if (e.name == "run command") {
      EXPECT_EQ(e.args.at("cycles").get<uint64_t>(), s.last_stats().request_cycles);
    }
  }
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(run_commands, 1);
  EXPECT_EQ(load_commands, 1);
  EXPECT_GE(pcie, 4);  // at least: SQ entry, inputs, outputs, CQ entry of the run

  // Off (the default): nothing is recorded.
  Device quiet = Device::open("warboy(1)*1", cfg);
  Session q(quiet, p);
  q.run(zero_input(p));
  EXPECT_TRUE(complete_events(quiet.trace_json()).empty());
  EXPECT_THROW(Device().trace_json(), Error);
}

TEST(Stats, PerUnitCountersOfAPipelinedRun) {
  const hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  const int tiles = 4;
  const isa::Program p = pipelined_conv(tiles);
  Device dev = Device::open("warboy(1)*1", cfg);
  Session s(dev, p);
  s.run(zero_input(p));
  const nlohmann::json c = dev.counters();
  const nlohmann::json& pe = c.at("pe0");
  const uint32_t tile = 128 * 16 * 16;
  const auto& ld = pe.at("dma").at("dram_to_sram");
  const auto& st = pe.at("dma").at("sram_to_dram");
  EXPECT_EQ(ld.at("issued"), 2 + tiles);
  EXPECT_EQ(ld.at("completed"), 2 + tiles);
  EXPECT_EQ(ld.at("bytes"), p.constants.size() + uint64_t{tile} * tiles);
  EXPECT_EQ(st.at("issued"), tiles);
  EXPECT_EQ(st.at("completed"), tiles);
  EXPECT_EQ(st.at("bytes"), uint64_t{tile} * tiles);
  // A tile store is latency + bytes / bandwidth (it never shares the DRAM with another transfer).
  const double store = cfg.dram_latency_ns * cfg.clock_ghz + tile / cfg.dram_bytes_per_cycle();
  EXPECT_NEAR(st.at("avg_latency_cycles").get<double>(), store, 0.02 * store);
  EXPECT_GE(ld.at("avg_latency_cycles").get<double>(), cfg.dram_latency_ns * cfg.clock_ghz);
  EXPECT_EQ(pe.at("instructions"), p.instructions.size());
  EXPECT_EQ(pe.at("mac").at("instructions"), tiles);
  EXPECT_EQ(pe.at("run_cycles"), s.last_stats().cycles);
  EXPECT_EQ(pe.at("last_run_cycles"), s.last_stats().cycles);
  // conv busy cycles: fill + ceil(256/64) * ceil(128/32) * ceil(1152/4) per tile.
  EXPECT_EQ(pe.at("mac").at("busy_cycles"), uint64_t{tiles} * (cfg.conv_fill_cycles + 4 * 4 * 288));
  const double peak = 32.0 * 4 * 64;
  const double util = static_cast<double>(s.last_stats().macs) / (s.last_stats().cycles * peak);
  EXPECT_NEAR(pe.at("mac").at("utilization").get<double>(), util, 1e-9);
  EXPECT_NEAR(util, s.last_stats().mac_utilization, 1e-9);
  EXPECT_GT(util, 0.5);  // the pipeline hides most of the DMA
  EXPECT_LE(util, 1.0);
  EXPECT_EQ(pe.at("sram_high_water_bytes"), p.sram_bytes);
  EXPECT_GT(pe.at("dma").at("busy_cycles").get<uint64_t>(), 0u);
  EXPECT_EQ(pe.at("vector").at("busy_cycles"), 0u);
}

/// PE cycles of one run per dram_gbps value, through rt::sweep.
std::vector<uint64_t> dram_sweep(const isa::Program& p, const TensorMap& in) {
  std::vector<uint64_t> cycles;
  for (const SweepPoint& pt : sweep("warboy(1)*1", hw::HwConfig::preset("warboy"), "dram_gbps", {"66", "33"}, p, in))
    cycles.push_back(pt.stats.cycles);
  return cycles;
}

TEST(Sweep, HalvingDramBandwidthSlowsMemoryBoundOnly) {
  const ConvLayer mem = memory_bound_layer();
  const isa::Program mp = mem.program();
  TensorMap min;
  min.emplace("x", Tensor::from_vector<int8_t>({1, 4, 256, 256}, anvil::testing::random_int8(4 * 256 * 256, 3)));
  const std::vector<uint64_t> m = dram_sweep(mp, min);
  const isa::Program cp = pipelined_conv(40);
  const std::vector<uint64_t> c = dram_sweep(cp, zero_input(cp));
  const double mem_slowdown = static_cast<double>(m[1]) / m[0], compute_slowdown = static_cast<double>(c[1]) / c[0];
  std::printf("dram_gbps 66 -> 33: memory-bound %llu -> %llu cycles (x%.3f), compute-bound %llu -> %llu (x%.3f)\n",
              static_cast<unsigned long long>(m[0]), static_cast<unsigned long long>(m[1]), mem_slowdown,
              static_cast<unsigned long long>(c[0]), static_cast<unsigned long long>(c[1]), compute_slowdown);
  EXPECT_GT(mem_slowdown, 1.7);
  EXPECT_LT(compute_slowdown, 1.05);
  EXPECT_GE(compute_slowdown, 1.0);
}

TEST(Sweep, BadSweepsAreRejected) {
  EXPECT_THROW(parse_sweep("dram_gbps"), Error);
  EXPECT_THROW(parse_sweep("=1,2"), Error);
  EXPECT_THROW(parse_sweep("dram_gbps=1,,2"), Error);
  const auto [key, values] = parse_sweep("dram_gbps=66,33");
  EXPECT_EQ(key, "dram_gbps");
  EXPECT_EQ(values, (std::vector<std::string>{"66", "33"}));
  const isa::Program p = pipelined_conv(1);
  EXPECT_THROW(sweep("warboy(1)*1", hw::HwConfig::preset("warboy"), "no_such_key", {"1"}, p, zero_input(p)), Error);
  EXPECT_THROW(sweep("warboy(1)*1", hw::HwConfig::preset("warboy"), "dram_gbps", {"66", "-1"}, p, zero_input(p)), Error);
}

/// Roofline: a layer can never beat its MAC bound or its DRAM bound, per program and per
/// instruction (conv: MACs / peak; DMA: bytes / DRAM bytes per cycle).
TEST(Roofline, SimulatedCyclesNeverBelowTheBound) {
  struct Shape {
    int ic, oc, h, kh, stride, groups;
  };
  for (const char* preset : {"warboy", "small"}) {
    hw::HwConfig cfg = hw::HwConfig::preset("warboy");
    if (std::string(preset) == "small")
      for (const char* kv : {"slices_per_pe=16", "mac_rows=16", "mac_cols=8", "dram_gbps=20", "clock_ghz=1"}) cfg.set(kv);
    const double peak = static_cast<double>(cfg.slices_per_pe) * cfg.mac_rows * cfg.mac_cols;
    for (const Shape& sh : {Shape{3, 32, 32, 3, 2, 1}, Shape{64, 64, 28, 3, 1, 1}, Shape{32, 32, 28, 3, 1, 32},
                            Shape{128, 256, 7, 1, 1, 1}, Shape{8, 8, 64, 1, 1, 1}}) {
      ConvLayer g;
      g.ic = sh.ic, g.oc = sh.oc, g.h = g.w = sh.h, g.kh = g.kw = sh.kh, g.pad = sh.kh / 2, g.stride = sh.stride;
      g.groups = sh.groups;
      g = ConvLayer::random(5, g);
      const isa::Program p = g.program();
      Device dev = Device::open("warboy(1)*1", cfg);
      dev.set_trace(true);
      Session s(dev, p);
      TensorMap in;
      in.emplace("x", Tensor::from_vector<int8_t>({1, g.ic, g.h, g.w},
                                                  anvil::testing::random_int8(static_cast<size_t>(g.ic) * g.h * g.w, 9)));
      s.run(in);
      const nlohmann::json c = dev.counters().at("pe0");
      const double bytes = c.at("dma").at("bytes_loaded").get<double>() + c.at("dma").at("bytes_stored").get<double>();
      const double mac_bound = s.last_stats().macs / peak, dram_bound = bytes / cfg.dram_bytes_per_cycle();
      const double bound = std::max(mac_bound, dram_bound);
      std::printf("%s conv %dx%dx%d k%d s%d g%d: %llu cycles, roofline %.0f (%s), ratio %.2f\n", preset, sh.ic, sh.h,
                  sh.h, sh.kh, sh.stride, sh.groups, static_cast<unsigned long long>(s.last_stats().cycles), bound,
                  mac_bound > dram_bound ? "MACs" : "DRAM", s.last_stats().cycles / bound);
      EXPECT_GE(static_cast<double>(s.last_stats().cycles), bound);
      for (const Event& e : complete_events(dev.trace_json())) {
        if (e.pid != 1 || e.tid == 0) continue;
        const double cycles = e.args.at("cycles").get<double>();
        if (e.tid == 2) {
          EXPECT_GE(cycles, e.args.at("macs").get<double>() / peak) << e.name;
        } else if (e.tid == 1) {
          EXPECT_GE(cycles, e.args.at("bytes").get<double>() / cfg.dram_bytes_per_cycle()) << e.name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace anvil::rt
