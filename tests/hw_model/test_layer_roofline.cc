// Consistency of the hardware model's timing with the roofline: every layer of compiled
// (generated) models, run on the SystemC model, takes at least
// max(MACs / peak MACs per cycle, DRAM bytes / DRAM bytes per cycle, vector elements / lanes)
// cycles, for several hardware configurations (vector-only layers included, kLut at lut_lanes);
// the per-layer work read from the trace equals the compiler's report; a lut layer's span starts
// at its lookup, not at its early table load; the compiler's Target mirrors HwConfig's timing keys;
// and the layer profile's bad inputs are rejected. No ../shared.
#include <gtest/gtest.h>

#include <cstdio>

#include "../compiler/graph_builder_for_tests.h"
#include "anvil/common/status.h"
#include "anvil/compiler/compiler.h"
#include "anvil/hw/layer_profile.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"

namespace anvil {
namespace {

using testing::GraphBuilder;

/// A small residual CNN: stem conv, max pool, a bottleneck with a projection shortcut and a
/// residual add, a depthwise conv, global average pool and a 1x1 classifier.
GraphBuilder residual_cnn(uint32_t seed) {
  GraphBuilder b(seed);
  const int x = b.input("image", {1, 8, 32, 32}, 0.02f, -7);
  const int stem = b.value("stem", {1, 32, 16, 16}, 0.05f, -20);
  b.conv("stem_conv", x, stem, 1, {3, 3}, {2, 2}, {1, 1, 1, 1});
  const int mp = b.value("mp", {1, 32, 8, 8}, 0.05f, -20);
  b.pool(ref::Int8OpKind::kMaxPool, "maxpool", stem, mp, {2, 2}, {2, 2});
  const int a = b.value("a", {1, 64, 8, 8}, 0.04f, -10);
  b.conv("reduce", mp, a, 1, {1, 1});
  const int c = b.value("c", {1, 64, 8, 8}, 0.04f, -12);
  b.conv("conv3x3", a, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int d = b.value("d", {1, 128, 8, 8}, 0.06f, 3);
  b.conv("expand", c, d, 1, {1, 1});
  const int sc = b.value("sc", {1, 128, 8, 8}, 0.06f, 1);
  b.conv("projection", mp, sc, 1, {1, 1});
  const int s = b.value("s", {1, 128, 8, 8}, 0.07f, 2);
  b.add("residual", d, sc, s);
  const int dw = b.value("dw", {1, 128, 8, 8}, 0.05f, -4);
  b.conv("depthwise", s, dw, 128, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int gp = b.value("gp", {1, 128, 1, 1}, 0.05f, -4);
  b.pool(ref::Int8OpKind::kAvgPool, "global_pool", dw, gp, {8, 8}, {1, 1});
  const int logits = b.value("logits", {1, 10, 1, 1}, 0.1f, 0);
  b.conv("classifier", gp, logits, 1, {1, 1});
  b.output(logits, "logits");
  return b;
}

/// Fully connected layers (1x1 convs on one pixel): the weights dominate, DRAM-bound.
GraphBuilder mlp(uint32_t seed) {
  GraphBuilder b(seed);
  const int x = b.input("x", {2, 256, 1, 1}, 0.02f, 0);
  const int h1 = b.value("h1", {2, 512, 1, 1}, 0.05f, -30);
  b.conv("fc1", x, h1, 1, {1, 1});
  const int h2 = b.value("h2", {2, 256, 1, 1}, 0.05f, -30);
  b.conv("fc2", h1, h2, 1, {1, 1});
  const int y = b.value("y", {2, 10, 1, 1}, 0.1f, 0);
  b.conv("fc3", h2, y, 1, {1, 1});
  b.output(y, "y");
  return b;
}

/// Vector-engine layers on SRAM-resident values: conv -> sigmoid table -> max pool, a residual
/// add of the pool and a second table, and a requantization; only the conv touches the MACs.
GraphBuilder vector_chain(uint32_t seed) {
  GraphBuilder b(seed);
  const int x = b.input("x", {1, 16, 24, 24}, 0.02f, -7);
  const int c = b.value("c", {1, 32, 24, 24}, 0.06f, -5);
  b.conv("conv", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int s = b.value("s", {1, 32, 24, 24}, 1.0f / 256.0f, -128);
  b.lut("sigmoid", c, s);
  const int m = b.value("m", {1, 32, 12, 12}, 1.0f / 256.0f, -128);
  b.pool(ref::Int8OpKind::kMaxPool, "maxpool", s, m, {2, 2}, {2, 2});
  const int t = b.value("t", {1, 32, 12, 12}, 1.0f / 256.0f, -128);
  b.lut("sigmoid2", m, t);
  const int a = b.value("a", {1, 32, 12, 12}, 0.01f, -100);
  b.add("residual", m, t, a);
  const int r = b.value("r", {1, 32, 12, 12}, 0.02f, 0);
  b.requant("requant", a, r);
  b.output(r, "y");
  return b;
}

struct Platform {
  const char* name;
  compiler::Target target;
  hw::HwConfig config;
  std::string device;
};

/// The presets and a small chip (16 slices of 2 KiB, a 16x8 MAC array, 20 GB/s at 1 GHz) on which
/// the larger layers (conv3x3's 36 KiB of weights, the FC layers) are tiled. The compiler's target mirrors the hardware configuration.
std::vector<Platform> platforms() {
  std::vector<Platform> out;
  out.push_back({"warboy", compiler::Target::from_name("warboy"), hw::HwConfig::preset("warboy"), "warboy(1)*1"});
  out.push_back({"warboy-2pe", compiler::Target::from_name("warboy-2pe"), hw::HwConfig::preset("warboy-2pe"),
                 "npu0pe0-1"});
  Platform small{"small", compiler::Target::from_name("warboy"), hw::HwConfig::preset("warboy"), "warboy(1)*1"};
  for (const char* kv : {"clock_ghz=1", "slices_per_pe=16", "sram_per_slice=2048", "mac_rows=16", "mac_cols=8",
                         "vector_lanes=64", "lut_lanes=16", "dram_gbps=20", "dram_latency_ns=150"})
    small.config.set(kv);
  small.config.validate();
  small.target.name = "small";
  small.target.slices_per_pe = 16;
  small.target.sram_per_slice = 2048;
  small.target.mac_rows = 16, small.target.mac_cols = 8;
  small.target.clock_ghz = 1.0, small.target.vector_lanes = 64, small.target.lut_lanes = 16;
  small.target.dram_gbps = 20;
  small.target.dram_latency_ns = 150;
  out.push_back(small);
  return out;
}

TEST(LayerRoofline, EveryLayerOfGeneratedModelsIsAtOrAboveItsRoofline) {
  for (const Platform& pf : platforms()) {
    for (auto make : {residual_cnn, mlp, vector_chain}) {
      GraphBuilder b = make(7);
      compiler::CompileOptions o;
      o.target = pf.target;
      const compiler::CompileResult compiled = compiler::compile_graph(b.graph(), o).value();
      const isa::Program& program = compiled.program;
      rt::Device dev = rt::Device::open(pf.device, pf.config);
      dev.set_trace(true);
      rt::Session session(dev, program);
      const TensorMap inputs = b.random_inputs();
      TensorMap device_inputs;
      for (const auto& [name, t] : inputs) device_inputs[name] = t;
      const TensorMap got = session.run(device_inputs);
      const TensorMap want = ref::run_int8(b.graph(), inputs).value();
      for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << pf.name << " output " << name;

      const std::vector<hw::LayerRange> ranges = hw::layer_ranges_from_metadata(program.metadata);
      ASSERT_EQ(ranges.size(), compiled.layers.size());
      const std::vector<hw::LayerProfile> prof = hw::profile_layers(dev.trace_json(), ranges, pf.config);
      ASSERT_EQ(prof.size(), compiled.layers.size());
      const double peak = static_cast<double>(pf.config.slices_per_pe) * pf.config.mac_rows * pf.config.mac_cols *
                          program.num_pes;
      const double lanes = static_cast<double>(pf.config.vector_lanes) * program.num_pes;
      const double lut_lanes = static_cast<double>(pf.config.lut_lanes) * program.num_pes;
      uint64_t macs = 0, tiled = 0, vector_bound = 0;
      for (size_t i = 0; i < prof.size(); ++i) {
        const hw::LayerProfile& p = prof[i];
        const compiler::LayerReport& l = compiled.layers[i];
        SCOPED_TRACE(std::string(pf.name) + " " + p.name);
        EXPECT_EQ(p.name, l.node);
        // What the model executed is what the compiler counted.
        EXPECT_EQ(p.macs, l.macs);
        EXPECT_EQ(p.dram_bytes, l.dram_bytes);
        macs += p.macs;
        if (p.instructions == 0) continue;
        tiled += p.instructions > 3;
        EXPECT_DOUBLE_EQ(p.mac_bound_cycles, p.macs / peak);
        EXPECT_DOUBLE_EQ(p.dram_bound_cycles, p.dram_bytes / pf.config.dram_bytes_per_cycle());
        // A lut layer's only vector instruction is its kLut, at lut_lanes lookups per cycle.
        EXPECT_DOUBLE_EQ(p.vector_bound_cycles, p.vector_elements / (p.op == "lut" ? lut_lanes : lanes));
        const bool vector_op = p.op == "add" || p.op == "maxpool" || p.op == "avgpool" || p.op == "requant" ||
                               p.op == "lut";
        EXPECT_EQ(p.vector_elements > 0, vector_op) << p.op;
        if (vector_op) { EXPECT_GT(p.roofline_cycles, 0.0); }  // a bound even when nothing moves through DRAM
        vector_bound += p.bound == "vector";
        // The bar: never faster than the roofline; each unit at least its own bound.
        EXPECT_GE(static_cast<double>(p.cycles), p.roofline_cycles);
        EXPECT_GE(static_cast<double>(p.unit_busy_cycles[1]), p.mac_bound_cycles);
        EXPECT_GE(static_cast<double>(p.unit_busy_cycles[0]), p.dram_bound_cycles);
        EXPECT_GE(static_cast<double>(p.unit_busy_cycles[2]), p.vector_bound_cycles);
        // The span holds every compute unit's busy cycles; the DMA's (which may include constant
        // loads issued before the span of a compute- or vector-bound layer) fit from the layer's
        // earliest instruction, and a memory-bound layer's span starts there.
        EXPECT_GE(p.cycles, std::max(p.unit_busy_cycles[1], p.unit_busy_cycles[2]));
        EXPECT_LE(p.first_start_cycle, p.start_cycle);
        EXPECT_GE(p.end_cycle - p.first_start_cycle, p.unit_busy_cycles[0]);
        if (p.bound == "memory") { EXPECT_EQ(p.start_cycle, p.first_start_cycle); }
        EXPECT_LE(p.end_cycle, session.last_stats().cycles);
        if (p.roofline_cycles > 0) { EXPECT_GE(p.ratio, 1.0); }
        std::printf("%-10s %-12s %-8s MACs %9llu bytes %7llu roofline %9.0f simulated %7llu ratio %6.2f %s\n",
                    pf.name, p.name.c_str(), p.op.c_str(), static_cast<unsigned long long>(p.macs),
                    static_cast<unsigned long long>(p.dram_bytes), p.roofline_cycles,
                    static_cast<unsigned long long>(p.cycles), p.ratio, p.bound.c_str());
      }
      EXPECT_EQ(macs, session.last_stats().macs);
      if (std::string(pf.name) == "small" && make == residual_cnn) { EXPECT_GT(tiled, 0u) << "a tiled layer was expected"; }
      // On the presets the chain's values stay in SRAM: its vector layers are bound by the lanes.
      if (std::string(pf.name) != "small" && make == vector_chain) { EXPECT_GE(vector_bound, 4u); }
    }
  }
}

TEST(LayerRoofline, MemoryAndComputeBoundLayersAreLabelled) {
  // On the preset (8192 MACs and 33 DRAM bytes per cycle: the ridge is at 248 MACs per byte), an
  // FC layer (each weight used once) is memory-bound; a 3x3 conv on a 32x32 map with 64 -> 64
  // channels (37.7 M MACs for 36 KiB of weights and 64 KiB of input: 370 MACs per byte) is
  // compute-bound.
  GraphBuilder b(3);
  const int x = b.input("x", {1, 64, 32, 32}, 0.02f, 0);
  const int c = b.value("c", {1, 64, 32, 32}, 0.05f, -3);
  b.conv("conv", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int gp = b.value("gp", {1, 64, 1, 1}, 0.05f, -3);
  b.pool(ref::Int8OpKind::kAvgPool, "pool", c, gp, {32, 32}, {1, 1});
  const int h = b.value("h", {1, 1024, 1, 1}, 0.05f, 0);
  b.conv("fc", gp, h, 1, {1, 1});
  b.output(h, "h");
  compiler::CompileOptions o;
  const compiler::CompileResult compiled = compiler::compile_graph(b.graph(), o).value();
  rt::Device dev = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  dev.set_trace(true);
  rt::Session session(dev, compiled.program);
  session.run(b.random_inputs());
  const auto prof = hw::profile_layers(dev.trace_json(), hw::layer_ranges_from_metadata(compiled.program.metadata),
                                       dev.config());
  ASSERT_EQ(prof.size(), 3u);
  EXPECT_EQ(prof[0].bound, "compute");
  // The pool reads SRAM only (no MACs, no DRAM bytes): its roof is the vector engine's lanes,
  // every window element once, 64 x 32 x 32 / 256 lanes.
  EXPECT_EQ(prof[1].bound, "vector");
  EXPECT_EQ(prof[1].vector_elements, 64u * 32 * 32);
  EXPECT_DOUBLE_EQ(prof[1].roofline_cycles, 64.0 * 32 * 32 / 256);
  EXPECT_GE(prof[1].ratio, 1.0);
  EXPECT_EQ(prof[2].bound, "memory");
  EXPECT_GT(prof[2].dram_bound_cycles, 10 * prof[2].mac_bound_cycles);
  const std::string table = hw::format_layer_table(prof);
  EXPECT_NE(table.find("roofline"), std::string::npos);
  EXPECT_NE(table.find("fc"), std::string::npos);
  EXPECT_EQ(hw::layer_profile_json(prof).size(), 3u);
}

TEST(LayerRoofline, LutSpanStartsAtTheLookupNotAtTheEarlyTableLoad) {
  // vector_chain's two lut layers each load a 256-byte table; the DMA queue issues the load early,
  // under the producer's compute. The span starts at the kLut (the layer's first vector
  // instruction), so on the presets it is exactly the lookup's cycles: fill + count / lut_lanes,
  // and the ratio is that over count / lut_lanes, not the table load's head start.
  for (const Platform& pf : platforms()) {
    if (std::string(pf.name) == "small") continue;  // 2 KiB slices: the chain's values spill to DRAM
    GraphBuilder b = vector_chain(7);
    compiler::CompileOptions o;
    o.target = pf.target;
    const compiler::CompileResult compiled = compiler::compile_graph(b.graph(), o).value();
    rt::Device dev = rt::Device::open(pf.device, pf.config);
    dev.set_trace(true);
    rt::Session session(dev, compiled.program);
    session.run(b.random_inputs());
    const auto prof = hw::profile_layers(dev.trace_json(), hw::layer_ranges_from_metadata(compiled.program.metadata),
                                         pf.config);
    const uint64_t lut_lanes = static_cast<uint64_t>(pf.config.lut_lanes) * compiled.program.num_pes;
    int luts = 0, early_tables = 0;
    for (const hw::LayerProfile& p : prof) {
      if (p.op != "lut") continue;
      SCOPED_TRACE(std::string(pf.name) + " " + p.name);
      ++luts;
      EXPECT_EQ(p.dram_bytes, 256u);  // the table counts as the layer's DRAM traffic
      EXPECT_GT(p.unit_busy_cycles[0], 0u);
      ASSERT_EQ(p.bound, "vector");
      const uint64_t lookup = pf.config.vector_fill_cycles + (p.vector_elements + lut_lanes - 1) / lut_lanes;
      EXPECT_EQ(p.unit_busy_cycles[2], lookup);
      EXPECT_EQ(p.cycles, lookup);  // the lookup is the layer's last instruction
      EXPECT_NEAR(p.ratio, static_cast<double>(lookup) / (static_cast<double>(p.vector_elements) / lut_lanes), 1e-9);
      early_tables += p.first_start_cycle < p.start_cycle;
    }
    EXPECT_EQ(luts, 2) << pf.name;
    EXPECT_GT(early_tables, 0) << pf.name << ": no table was loaded ahead of its lookup (the case this rule is for)";
  }
}

TEST(LayerRoofline, CompilerTargetTimingMirrorsHwConfig) {
  // The compiler's cost model plans with Target's copies of the timing keys: the presets agree.
  for (const char* name : {"warboy", "warboy-2pe"}) {
    const compiler::Target t = compiler::Target::from_name(name);
    const hw::HwConfig c = hw::HwConfig::preset(name);
    SCOPED_TRACE(name);
    EXPECT_EQ(static_cast<uint32_t>(t.num_pes), c.num_pes);
    EXPECT_EQ(static_cast<uint32_t>(t.slices_per_pe), c.slices_per_pe);
    EXPECT_EQ(t.sram_per_slice, c.sram_per_slice);
    EXPECT_EQ(static_cast<uint32_t>(t.mac_rows), c.mac_rows);
    EXPECT_EQ(static_cast<uint32_t>(t.mac_cols), c.mac_cols);
    EXPECT_DOUBLE_EQ(t.clock_ghz, c.clock_ghz);
    EXPECT_EQ(static_cast<uint32_t>(t.vector_lanes), c.vector_lanes);
    EXPECT_EQ(static_cast<uint32_t>(t.lut_lanes), c.lut_lanes);
    EXPECT_EQ(static_cast<uint32_t>(t.conv_fill_cycles), c.conv_fill_cycles);
    EXPECT_EQ(static_cast<uint32_t>(t.vector_fill_cycles), c.vector_fill_cycles);
    EXPECT_DOUBLE_EQ(t.dram_gbps, c.dram_gbps);
    EXPECT_DOUBLE_EQ(t.dram_latency_ns, c.dram_latency_ns);
    EXPECT_DOUBLE_EQ(t.pcie_gbps, c.pcie_gbps);
    EXPECT_DOUBLE_EQ(t.pcie_latency_ns, c.pcie_latency_ns);
  }
}

TEST(LayerRoofline, BadInputsAreRejected) {
  auto expect_invalid = [](auto f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  expect_invalid([] { hw::layer_ranges_from_metadata("{}"); }, "layers");
  expect_invalid([] { hw::layer_ranges_from_metadata("not json"); }, "layers");
  expect_invalid([] { hw::layer_ranges_from_metadata(R"({"layers": [{"node": "fc1", "op": "conv"}]})"); }, "fc1");
  const nlohmann::json no_run = {{"traceEvents", nlohmann::json::array()}};
  expect_invalid([&] { hw::profile_layers(no_run, {}, cfg); }, "pe0");

  // A real run traced, then a range past its instructions and a run recorded without tracing.
  GraphBuilder b = mlp(1);
  compiler::CompileOptions o;
  const compiler::CompileResult compiled = compiler::compile_graph(b.graph(), o).value();
  rt::Device dev = rt::Device::open("warboy(1)*1", cfg);
  dev.set_trace(true);
  rt::Session session(dev, compiled.program);
  session.run(b.random_inputs());
  const nlohmann::json trace = dev.trace_json();
  const uint64_t n = compiled.program.instructions.size();
  expect_invalid([&] { hw::profile_layers(trace, {{"too_long", "conv", n - 1, 2}}, cfg); }, "too_long");
  // Run 0 is the one run (the same profile as the last); there is no run 1.
  const std::vector<hw::LayerRange> ranges = hw::layer_ranges_from_metadata(compiled.program.metadata);
  EXPECT_EQ(hw::layer_profile_json(hw::profile_layers(trace, ranges, cfg, 0, 0)),
            hw::layer_profile_json(hw::profile_layers(trace, ranges, cfg)));
  expect_invalid([&] { hw::profile_layers(trace, ranges, cfg, 0, 1); }, "not a run 1");
  nlohmann::json only_run = {{"traceEvents", nlohmann::json::array()}};
  for (const auto& e : trace.at("traceEvents"))
    if (e.value("name", "") == "run") only_run["traceEvents"].push_back(e);
  expect_invalid([&] { hw::profile_layers(only_run, {{"fc1", "conv", 0, 1}}, cfg); }, "no trace event");
}

}  // namespace
}  // namespace anvil
