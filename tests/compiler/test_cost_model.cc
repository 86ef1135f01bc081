// The compiler's cost model against hand-computed docs/warboy.md timing, and the report/summary
// it feeds.
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "cost_model.h"
#include "graph_builder_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

namespace {

isa::Instruction dma(uint32_t bytes) {
  isa::Instruction i;
  i.opcode = isa::Opcode::kDmaLoad;
  i.dma.row_bytes = bytes;
  i.dma.rows = 1;
  return i;
}

isa::Instruction conv_3x3() {
  isa::Instruction i;
  i.opcode = isa::Opcode::kConv;
  isa::ConvArgs& c = i.conv;
  c.n = 1, c.in_c = 3, c.in_h = 9, c.in_w = 7, c.out_c = 8, c.out_h = 9, c.out_w = 7;
  c.kernel_h = c.kernel_w = 3, c.stride_h = c.stride_w = 1, c.dilation_h = c.dilation_w = 1, c.groups = 1;
  return i;
}

}  // namespace

TEST(CostModel, InstructionCyclesFollowTheDocumentedFormulas) {
  const compiler::Target one = compiler::Target::from_name("warboy"), two = compiler::Target::from_name("warboy-2pe");
  // DMA: 100 ns x 2 GHz + 189 B / (66 / 2 B per cycle) = 205.7 -> 206.
  EXPECT_EQ(compiler::instruction_cycles(dma(189), one), 206u);
  EXPECT_EQ(compiler::instruction_cycles(dma(33 * 1000), one), 1200u);
  // Conv: 64 + ceil(63 / 64) * ceil(8 / 32) * ceil(27 / 4) * 1 = 71.
  EXPECT_EQ(compiler::instruction_cycles(conv_3x3(), one), 71u);
  // Depthwise 3x3 over 32 channels of 16x16 (256 pixels): 64 + ceil(256/64) * 1 * ceil(9/4) * 32.
  isa::Instruction dw = conv_3x3();
  dw.conv.in_c = dw.conv.out_c = dw.conv.groups = 32;
  dw.conv.out_h = dw.conv.out_w = 16;
  EXPECT_EQ(compiler::instruction_cycles(dw, one), 64u + 4 * 1 * 3 * 32);
  EXPECT_EQ(compiler::instruction_cycles(dw, two), 64u + 2 * 1 * 3 * 32);  // the fused pair's 128 slices
  // Vector: 16 + ceil(1000 / 256), and / 512 on the fused pair.
  isa::Instruction add;
  add.opcode = isa::Opcode::kAdd;
  add.add.count = 1000;
  EXPECT_EQ(compiler::instruction_cycles(add, one), 20u);
  EXPECT_EQ(compiler::instruction_cycles(add, two), 18u);
  // Pooling reads every window element: 1 x 4 x 3 x 3 outputs x 2 x 2 = 144 -> 16 + 1.
  isa::Instruction pool;
  pool.opcode = isa::Opcode::kMaxPool;
  pool.pool.n = 1, pool.pool.c = 4, pool.pool.out_h = pool.pool.out_w = 3, pool.pool.kernel_h = pool.pool.kernel_w = 2;
  EXPECT_EQ(compiler::instruction_cycles(pool, one), 17u);
  // kLut at lut_lanes lookups per cycle per PE: 16 + ceil(1000 / 256) on the preset, / 512 fused,
  // and 16 + ceil(1000 / 16) with lut_lanes = 16 (an add keeps vector_lanes).
  isa::Instruction lut;
  lut.opcode = isa::Opcode::kLut;
  lut.lut.count = 1000;
  EXPECT_EQ(compiler::instruction_cycles(lut, one), 20u);
  EXPECT_EQ(compiler::instruction_cycles(lut, two), 18u);
  compiler::Target slow_lut = one;
  slow_lut.lut_lanes = 16;
  EXPECT_EQ(compiler::instruction_cycles(lut, slow_lut), 16u + 63);
  EXPECT_EQ(compiler::instruction_cycles(add, slow_lut), 20u);
}

TEST(CostModel, ScheduleOverlapsUnitsUnlessTheyWait) {
  const compiler::Target t = compiler::Target::from_name("warboy");
  isa::Program p;
  p.instructions.push_back(dma(189));  // 0 -> 206
  isa::Instruction c = conv_3x3();
  c.wait[0] = 1;                       // after the load: 206 + 71
  p.instructions.push_back(c);
  p.instructions.push_back(dma(189));  // DMA unit in order: 206 + 206, runs under the conv
  isa::Instruction c2 = conv_3x3();    // waits for nothing but its unit: 277 + 71
  p.instructions.push_back(c2);
  isa::Instruction last = dma(189);
  last.wait[1] = 2;                    // after both convs: max(412, 348) + 206
  p.instructions.push_back(last);
  EXPECT_EQ(compiler::schedule_cycles(p, t), (std::vector<uint64_t>{206, 277, 412, 348, 618}));
}

TEST(CostModel, ReportAndSummaryCarryTheEstimates) {
  GraphBuilder b(3);
  const int x = b.input("x", {1, 16, 20, 20});
  const int y = b.value("y", {1, 32, 20, 20});
  b.conv("conv_a", x, y, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int z = b.value("z", {1, 32, 10, 10});
  b.pool(ref::Int8OpKind::kMaxPool, "pool_b", y, z, {2, 2}, {2, 2});
  b.output(z, "z");
  compiler::CompileOptions o;
  o.model_name = "m";
  const compiler::CompileResult r = compiler::compile_graph(b.graph(), o).value();
  ASSERT_EQ(r.layers.size(), 2u);
  const compiler::LayerReport& conv = r.layers[0];
  EXPECT_EQ(conv.macs, 400u * 32 * 16 * 9);
  // 64 + ceil(400 / 64) * ceil(32 / 32) * ceil(144 / 4) = 64 + 7 * 36.
  EXPECT_EQ(conv.compute_cycles, 64u + 7 * 36);
  EXPECT_GT(conv.dma_cycles, 0u);
  EXPECT_EQ(conv.est_cycles, std::max(conv.dma_cycles, conv.compute_cycles));
  EXPECT_EQ(conv.bound, conv.dma_cycles > conv.compute_cycles ? "memory" : "compute");
  // The whole program is at least its longest unit, at most everything serialised.
  uint64_t serial = 0;
  for (const auto& inst : r.program.instructions) serial += compiler::instruction_cycles(inst, r.target);
  EXPECT_LE(r.est_cycles, serial);
  EXPECT_GE(r.est_cycles, conv.compute_cycles);
  const nlohmann::json j = r.report();
  EXPECT_EQ(j["est_cycles"], r.est_cycles);
  EXPECT_EQ(j["peak_sram_bytes"], r.program.sram_bytes);
  EXPECT_EQ(j["dram_footprint_bytes"], r.program.constants.size() + r.program.scratch_bytes + r.program.io_bytes);
  EXPECT_EQ(j["layers"][0]["bound"], conv.bound);
  EXPECT_EQ(j["layers"][1]["est_cycles"], r.layers[1].est_cycles);
  const std::string s = r.summary();
  for (const char* want : {"conv_a", "pool_b", "conv", "maxpool", "est cycles", "MAC utilisation", "peak SRAM"})
    EXPECT_NE(s.find(want), std::string::npos) << want << " missing from\n" << s;
  EXPECT_NE(s.find(std::to_string(conv.macs)), std::string::npos) << s;
}

TEST(CostModel, BinaryCostsItsOutputElements) {
  // kBinary reads one a and one b per output element whatever the strides: 2 x 5 x 10 x 10 = 1000
  // outputs -> 16 + ceil(1000 / 256), / 512 on the fused pair, as a kAdd of 1000.
  isa::Instruction bin;
  bin.opcode = isa::Opcode::kBinary;
  const uint32_t shape[4] = {2, 5, 10, 10};
  std::copy(shape, shape + 4, bin.binary.shape);
  bin.binary.b_stride[1] = 1;  // b broadcast over everything but dimension 1
  EXPECT_EQ(compiler::instruction_cycles(bin, compiler::Target::from_name("warboy")), 20u);
  EXPECT_EQ(compiler::instruction_cycles(bin, compiler::Target::from_name("warboy-2pe")), 18u);
}
