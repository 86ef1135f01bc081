// Microbenchmarks: single instructions on the simulated chip against the closed-form timing of
// docs/warboy.md, within 2%, for two hardware configurations.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/common/requant.h"
#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::dma;

double ceil_div(double a, double b) { return std::ceil(a / b); }

struct Case {
  const char* name;
  hw::HwConfig config;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

hw::HwConfig small_config() {
  hw::HwConfig c = hw::HwConfig::preset("warboy");
  for (const char* kv : {"clock_ghz=1.0", "slices_per_pe=16", "sram_per_slice=131072", "mac_rows=16", "mac_cols=8",
                         "vector_lanes=64", "dram_gbps=20", "dram_latency_ns=250", "conv_fill_cycles=32",
                         "vector_fill_cycles=8", "lut_lanes=16"})
    c.set(kv);
  return c;
}

class Timing : public ::testing::TestWithParam<Case> {
 protected:
  const hw::HwConfig& cfg() const { return GetParam().config; }
  /// PE cycles of a program made of `code` (no inputs/outputs), on a fresh device.
  uint64_t cycles(std::vector<isa::Instruction> code, uint64_t io_bytes = 1 << 20) {
    isa::Program p;
    p.instructions = std::move(code);
    p.io_bytes = io_bytes;
    Device dev = Device::open("warboy(1)*1", cfg());
    Session s(dev, p);
    s.run({});
    return s.last_stats().cycles;
  }
  double dma_cycles(uint64_t bytes) const {
    return cfg().dram_latency_ns * cfg().clock_ghz + static_cast<double>(bytes) / cfg().dram_bytes_per_cycle();
  }
  double conv_cycles(const isa::ConvArgs& c, uint32_t slices) const {
    const double k = static_cast<double>(c.in_c / c.groups) * c.kernel_h * c.kernel_w;
    return cfg().conv_fill_cycles + ceil_div(static_cast<double>(c.n) * c.out_h * c.out_w, slices) *
                                        ceil_div(c.out_c / c.groups, cfg().mac_rows) * ceil_div(k, cfg().mac_cols) *
                                        c.groups;
  }
  static isa::Instruction conv_instruction() {
    anvil::testing::ConvLayer g;
    g.ic = 32, g.h = 20, g.w = 20, g.oc = 48, g.kh = 3, g.kw = 3, g.pad = 1;
    isa::Instruction i;
    i.opcode = isa::Opcode::kConv;
    // SRAM is zero after reset: weights, bias and multipliers 0 are a valid (all-zero) conv.
    i.conv = g.args(0, 1 << 16, 1 << 17, 1 << 18);
    return i;
  }
};

#define EXPECT_WITHIN_2PCT(measured, expected) \
  EXPECT_NEAR(static_cast<double>(measured), (expected), 0.02 * (expected)) << #expected

TEST_P(Timing, SingleDmaLoad) {
  for (uint32_t bytes : {4096u, 65536u, 1u << 20}) {
    const uint64_t c = cycles({dma(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0, bytes)});
    EXPECT_WITHIN_2PCT(c, dma_cycles(bytes)) << bytes << " bytes";
  }
}

TEST_P(Timing, StridedDmaStoreCostsItsBytes) {
  isa::Instruction st = dma(isa::Opcode::kDmaStore, isa::Region::kIo, 0, 0, 256);
  st.dma.rows = 512;
  st.dma.dram_stride = 1024;
  st.dma.sram_stride = 512;
  EXPECT_WITHIN_2PCT(cycles({st}), dma_cycles(256 * 512));
}

TEST_P(Timing, OneConv) {
  const isa::Instruction conv = conv_instruction();
  EXPECT_WITHIN_2PCT(cycles({conv}), conv_cycles(conv.conv, cfg().slices_per_pe));
}

TEST_P(Timing, OneVectorOp) {
  isa::Instruction add;
  add.opcode = isa::Opcode::kAdd;
  add.add.a_addr = 0, add.add.b_addr = 1 << 16, add.add.out_addr = 1 << 17, add.add.count = 60000;
  add.add.act_min = -128, add.add.act_max = 127;
  EXPECT_WITHIN_2PCT(cycles({add}), cfg().vector_fill_cycles + ceil_div(60000, cfg().vector_lanes));
  isa::Instruction pool;
  pool.opcode = isa::Opcode::kMaxPool;
  pool.pool = {};
  pool.pool.in_addr = 0, pool.pool.out_addr = 1 << 17, pool.pool.n = 1, pool.pool.c = 16, pool.pool.in_h = 32;
  pool.pool.in_w = 32, pool.pool.out_h = 16, pool.pool.out_w = 16, pool.pool.kernel_h = 2, pool.pool.kernel_w = 2;
  pool.pool.stride_h = 2, pool.pool.stride_w = 2, pool.pool.act_min = -128, pool.pool.act_max = 127;
  EXPECT_WITHIN_2PCT(cycles({pool}), cfg().vector_fill_cycles + ceil_div(16 * 16 * 16 * 4, cfg().vector_lanes));
}

TEST_P(Timing, OneLut) {
  // A table lookup runs at lut_lanes lookups per cycle after the fill (the zero SRAM after reset
  // is a valid all-zero table): 256 on the preset (= vector_lanes), 16 of 64 lanes on the small
  // configuration, where the same count as an elementwise add takes 4x the cycles.
  for (uint32_t count : {1000u, 60000u}) {
    isa::Instruction lut;
    lut.opcode = isa::Opcode::kLut;
    lut.lut = {0, 1 << 17, 1 << 16, count};
    EXPECT_WITHIN_2PCT(cycles({lut}), cfg().vector_fill_cycles + ceil_div(count, cfg().lut_lanes)) << count;
  }
}

TEST_P(Timing, DmaOverlapsComputeUnlessItWaits) {
  const isa::Instruction conv = conv_instruction();
  const double conv_c = conv_cycles(conv.conv, cfg().slices_per_pe);
  // Pick a DMA about as long as the conv so that overlap and serialisation differ clearly.
  const uint32_t bytes = static_cast<uint32_t>(conv_c * cfg().dram_bytes_per_cycle() * 0.8);
  const double dma_c = dma_cycles(bytes);
  const isa::Instruction load = dma(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 1 << 20, bytes);
  EXPECT_WITHIN_2PCT(cycles({load, conv}, bytes), std::max(conv_c, dma_c));
  isa::Instruction dependent = conv;
  dependent.wait[0] = 1;
  EXPECT_WITHIN_2PCT(cycles({load, dependent}, bytes), conv_c + dma_c);
}

TEST_P(Timing, FusedPairHasTwiceTheSlices) {
  hw::HwConfig two = cfg();
  two.num_pes = 2;
  isa::Program p;
  p.num_pes = 2;
  p.instructions = {conv_instruction()};
  Device dev = Device::open("warboy-2pe", two);
  Session s(dev, p);
  s.run({});
  EXPECT_WITHIN_2PCT(s.last_stats().cycles, conv_cycles(p.instructions[0].conv, 2 * cfg().slices_per_pe));
  const double peak = 2.0 * cfg().slices_per_pe * cfg().mac_rows * cfg().mac_cols;
  EXPECT_NEAR(s.last_stats().mac_utilization,
              static_cast<double>(isa::conv_macs(p.instructions[0].conv)) / (s.last_stats().cycles * peak), 1e-12);
}

TEST_P(Timing, OneMatMulAndOneSoftmax) {
  // kMatMul: the slices split batch*M output rows, mac_rows output columns and mac_cols of K per
  // cycle (zero SRAM is a valid pair of operands).
  isa::Instruction mm;
  mm.opcode = isa::Opcode::kMatMul;
  mm.matmul = {0, 1 << 16, 1 << 17, 3, 50, 100, 70, 5000, 7000, 0, 0, 0, 1 << 30, -5, -128, 127};
  EXPECT_WITHIN_2PCT(cycles({mm}), cfg().conv_fill_cycles + ceil_div(150, cfg().slices_per_pe) *
                                                               ceil_div(70, cfg().mac_rows) * ceil_div(100, cfg().mac_cols));
  // kSoftmax: three passes over outer*length*inner elements at vector_lanes, after its 1 KiB
  // table is loaded from the constants (the instruction waits for that DMA).
  const math::SoftmaxTable table = math::make_softmax_table(0.05);
  isa::Program p;
  p.constants.assign(reinterpret_cast<const uint8_t*>(table.data()), reinterpret_cast<const uint8_t*>(table.data()) + 1024);
  p.io_bytes = 1 << 10;
  p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, 1 << 18, 1024));
  isa::Instruction sm;
  sm.opcode = isa::Opcode::kSoftmax;
  const math::QuantizedMultiplier out = math::softmax_output_multiplier(1.0 / 256);
  sm.softmax = {0, 1 << 18, 1 << 16, 40, 100, 3, -128, out.multiplier, out.shift};
  sm.wait[0] = 1;
  p.instructions.push_back(sm);
  Device dev = Device::open("warboy(1)*1", cfg());
  Session session(dev, p);
  session.run({});
  EXPECT_WITHIN_2PCT(session.last_stats().cycles,
                     dma_cycles(1024) + cfg().vector_fill_cycles + ceil_div(3 * 40 * 100 * 3, cfg().vector_lanes));
}

INSTANTIATE_TEST_SUITE_P(Configs, Timing,
                         ::testing::Values(Case{"warboy", hw::HwConfig::preset("warboy")}, Case{"small", small_config()}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace anvil::rt
