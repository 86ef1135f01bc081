// Compiled programs, executed by the test-only interpreter, against the golden model; and the
// dependency invariants of the compiled instruction streams.
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "cost_model.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

namespace {

compiler::Target tiny_target() {
  // 4 slices x 1 KiB: consecutive layers rarely fit side by side, so SRAM is reused and the
  // waits for reuse (write after read) are exercised.
  compiler::Target t = compiler::Target::from_name("warboy");
  t.name = "tiny";
  t.slices_per_pe = 4;
  t.sram_per_slice = 1024;
  return t;
}

isa::Program compile_for(const ref::Int8Graph& g, const compiler::Target& target) {
  compiler::CompileOptions o;
  o.target = target;
  return compiler::compile_graph(g, o).value().program;
}

/// Runs the compiled program and ref::run_int8 on the same random inputs; checks outputs and the
/// dependency invariants.
void expect_matches_reference(GraphBuilder& b, const compiler::Target& target) {
  const isa::Program p = compile_for(b.graph(), target);
  for (int trial = 0; trial < 2; ++trial) {
    const TensorMap inputs = b.random_inputs();
    anvil::testing::InterpreterRun run;
    const TensorMap got = anvil::testing::run_program_for_tests(p, inputs, &run);
    const TensorMap want = ref::run_int8(b.graph(), inputs).value();
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << "output " << name << " on " << target.name;
    const auto races = anvil::testing::find_unordered_conflicts(p, run);
    EXPECT_TRUE(races.empty()) << races.size() << " unordered conflicts, first: " << races.front();
  }
}

GraphBuilder conv_zoo(uint32_t seed) {
  GraphBuilder b(seed);
  const int x = b.input("image", {2, 3, 9, 7}, 0.02f, -7);
  const int c0 = b.value("c0", {2, 8, 5, 4}, 0.05f, -20);
  b.conv("stride2_pad", x, c0, 1, {3, 3}, {2, 2}, {1, 1, 1, 1});
  const int c1 = b.value("c1", {2, 8, 5, 4}, 0.04f, 5);
  b.conv("depthwise", c0, c1, 8, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int c2 = b.value("c2", {2, 8, 5, 4}, 0.06f, -3);
  b.conv("grouped_pointwise", c1, c2, 2, {1, 1});
  const int s = b.value("s", {2, 8, 5, 4}, 0.07f, 2);
  b.add("residual", c0, c2, s);
  const int asym = b.value("asym", {2, 4, 3, 2}, 0.05f, 0);
  b.conv("asymmetric_pad", s, asym, 1, {2, 3}, {2, 2}, {0, 1, 1, 0});
  const int mp = b.value("mp", {2, 4, 2, 1}, 0.05f, 0);
  b.pool(ref::Int8OpKind::kMaxPool, "maxpool", asym, mp, {2, 2}, {2, 2}, {1, 1, 0, 0});
  const int gap = b.value("gap", {2, 4, 1, 1}, 0.01f, -6);
  b.pool(ref::Int8OpKind::kAvgPool, "gap", mp, gap, {2, 1}, {1, 1});
  const int flat = b.value("flat", {2, 4}, 0.01f, -6);
  b.reshape("flatten", gap, flat);
  const int logits = b.value("logits_q", {2, 5}, 0.1f, 9);
  b.conv("gemm", flat, logits, 1, {1, 1});
  b.graph().ops.back().act_min = -128;  // no fused ReLU on the classifier
  b.output(logits, "logits");
  const int rq = b.value("rq", {2, 4, 2, 1}, 0.02f, -1);
  b.requant("clip", mp, rq);
  b.output(rq, "pooled");
  b.output(c0, "features");  // a graph output that later ops also read
  return b;
}

}  // namespace

TEST(CompilerExecution, HandComputedPaddedConv) {
  // 1x1x3x3 input, 3x3 kernel of ones, pad 1: output (y, x) sums the in-bounds neighbours of
  // (x - zp); requantized by 0.25 (TFLite rounding) with zero point 10.
  GraphBuilder b;
  const int x = b.input("x", {1, 1, 3, 3}, 1.0f, 2);
  const int y = b.value("y", {1, 1, 3, 3}, 1.0f, 10);
  ref::Int8Op& op = b.conv("c", x, y, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  for (int i = 0; i < 9; ++i) op.weight.data<int8_t>()[i] = 1;
  op.bias.data<int32_t>()[0] = 5;
  op.multipliers = {math::quantize_multiplier(0.25)};
  op.act_min = -128;
  b.output(y, "y");
  const std::vector<int8_t> in = {10, 20, 30, 40, 50, 60, 70, 80, 90};
  TensorMap inputs{{"x", Tensor::from_vector<int8_t>({1, 1, 3, 3}, in)}};
  const Tensor got = anvil::testing::run_program_for_tests(compile_for(b.graph(), tiny_target()), inputs).at("y");
  // Sums of x - 2 over each 3x3 neighbourhood, plus bias 5, times 0.25 rounded, plus 10.
  const int32_t sums[9] = {8 + 18 + 38 + 48, 8 + 18 + 28 + 38 + 48 + 58, 18 + 28 + 48 + 58,
                           8 + 18 + 38 + 48 + 68 + 78, 8 + 18 + 28 + 38 + 48 + 58 + 68 + 78 + 88,
                           18 + 28 + 48 + 58 + 78 + 88, 38 + 48 + 68 + 78, 38 + 48 + 58 + 68 + 78 + 88,
                           48 + 58 + 78 + 88};
  for (int i = 0; i < 9; ++i)
    EXPECT_EQ(got.data<int8_t>()[i], math::requantize(sums[i] + 5, math::quantize_multiplier(0.25), 10))
        << "position " << i;
}

TEST(CompilerExecution, ConvZooMatchesRunInt8OnEveryTarget) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    GraphBuilder b = conv_zoo(seed);
    for (const auto& target : {compiler::Target::from_name("warboy"), compiler::Target::from_name("warboy-2pe"),
                               tiny_target()})
      expect_matches_reference(b, target);
  }
}

TEST(CompilerExecution, RandomChainsMatchRunInt8) {
  // Random stacks of conv / pool / requant / add with random geometry.
  for (uint32_t seed = 10; seed < 18; ++seed) {
    GraphBuilder b(seed);
    int64_t c = b.uniform(1, 6), h = b.uniform(4, 11), w = b.uniform(4, 11);
    int v = b.input("x", {1, c, h, w}, 0.03f, b.uniform(-20, 20));
    for (int layer = 0; layer < 5; ++layer) {
      const std::string name = "l" + std::to_string(layer);
      const int kind = b.uniform(0, 3);
      const float scale = 0.01f + 0.01f * b.uniform(0, 5);
      const int32_t zp = b.uniform(-30, 30);
      if (kind == 0 || h < 3 || w < 3) {  // conv
        const int k = static_cast<int>(std::min<int64_t>({b.uniform(1, 3), h, w})), s = b.uniform(1, 2),
                  pad = b.uniform(0, k - 1);
        const int groups = c % 2 == 0 && b.uniform(0, 1) ? 2 : 1;
        const int64_t oc = groups * b.uniform(1, 4);
        const int64_t oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
        const int out = b.value(name, {1, oc, oh, ow}, scale, zp);
        b.conv(name, v, out, groups, {k, k}, {s, s}, {pad, pad, pad, pad});
        v = out, c = oc, h = oh, w = ow;
      } else if (kind == 1) {  // pool
        const bool avg = b.uniform(0, 1);
        const int64_t oh = (h - 2) / 2 + 1, ow = (w - 2) / 2 + 1;
        const int out = b.value(name, {1, c, oh, ow}, avg ? scale : b.graph().values[v].q.scale,
                                avg ? zp : b.graph().values[v].q.zero_point);
        b.pool(avg ? ref::Int8OpKind::kAvgPool : ref::Int8OpKind::kMaxPool, name, v, out, {2, 2}, {2, 2});
        v = out, h = oh, w = ow;
      } else if (kind == 2) {  // requant
        const int out = b.value(name, {1, c, h, w}, scale, zp);
        b.requant(name, v, out);
        v = out;
      } else {  // add with a requantized copy of itself
        const int side = b.value(name + "_side", {1, c, h, w}, scale, zp);
        b.requant(name + "_side", v, side);
        const int out = b.value(name, {1, c, h, w}, scale * 1.5f, zp / 2);
        b.add(name, v, side, out);
        v = out;
      }
    }
    b.output(v, "y");
    expect_matches_reference(b, compiler::Target::from_name("warboy"));
    expect_matches_reference(b, tiny_target());
  }
}

TEST(CompilerExecution, CheckerFindsMissingWaits) {
  // The invariant check itself: a program whose waits are removed must be reported.
  GraphBuilder b = conv_zoo(4);
  isa::Program p = compile_for(b.graph(), tiny_target());
  anvil::testing::InterpreterRun run;
  anvil::testing::run_program_for_tests(p, b.random_inputs(), &run);
  ASSERT_TRUE(anvil::testing::find_unordered_conflicts(p, run).empty());
  for (auto& inst : p.instructions)
    for (auto& w : inst.wait) w = 0;
  EXPECT_FALSE(anvil::testing::find_unordered_conflicts(p, run).empty());
}

TEST(CompilerExecution, InterpreterRejectsOutOfRangeAccess) {
  GraphBuilder b = conv_zoo(5);
  isa::Program p = compile_for(b.graph(), compiler::Target::from_name("warboy"));
  p.sram_bytes -= 1;  // the compiler's peak is exact: the last byte is used
  EXPECT_THROW(anvil::testing::run_program_for_tests(p, b.random_inputs()), Error);
}

namespace {

compiler::Target sram_target(uint64_t bytes) {
  compiler::Target t = compiler::Target::from_name("warboy");
  t.name = "sram" + std::to_string(bytes);
  t.slices_per_pe = 1;
  t.sram_per_slice = bytes;
  return t;
}

int count(const isa::Program& p, isa::Opcode op) {
  int n = 0;
  for (const auto& i : p.instructions) n += i.opcode == op;
  return n;
}

}  // namespace

TEST(CompilerExecution, IntermediatesStayInSramWhenTheyFit) {
  // conv -> conv -> maxpool -> requant on warboy: only the input and the constants are loaded,
  // only the output is stored.
  GraphBuilder b(31);
  const int x = b.input("x", {1, 8, 12, 12});
  const int a = b.value("a", {1, 16, 12, 12});
  b.conv("c1", x, a, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int c = b.value("c", {1, 16, 12, 12});
  b.conv("c2", a, c, 4, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int m = b.value("m", {1, 16, 6, 6});
  b.pool(ref::Int8OpKind::kMaxPool, "mp", c, m, {2, 2}, {2, 2});
  const int r = b.value("r", {1, 16, 6, 6});
  b.requant("rq", m, r);
  b.output(r, "y");
  const isa::Program p = compile_for(b.graph(), compiler::Target::from_name("warboy"));
  EXPECT_EQ(count(p, isa::Opcode::kDmaStore), 1);
  EXPECT_EQ(count(p, isa::Opcode::kDmaLoad), 1 + 2);  // x, and c1's and c2's constant blocks
  expect_matches_reference(b, compiler::Target::from_name("warboy"));
}

TEST(CompilerExecution, EvictedValuesAreStoredAndReloaded) {
  // A residual whose skip branch must leave a 3 KiB SRAM while the main branch runs.
  GraphBuilder b(32);
  const int x = b.input("x", {1, 4, 10, 10});
  const int a = b.value("a", {1, 8, 10, 10});
  b.conv("c1", x, a, 1, {1, 1});
  const int c = b.value("c", {1, 8, 10, 10});
  b.conv("c2", a, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int d = b.value("d", {1, 8, 10, 10});
  b.conv("c3", c, d, 2, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int s = b.value("s", {1, 8, 10, 10});
  b.add("sum", a, d, s);
  b.output(s, "y");
  expect_matches_reference(b, sram_target(3 * 1024));
  expect_matches_reference(b, compiler::Target::from_name("warboy"));
}

TEST(CompilerExecution, TiledLayersMatchRunInt8AndDoubleBuffer) {
  // Every layer exceeds 2 KiB: conv over output channels and rows with halos, pools over channels
  // and rows, add and requant over element ranges.
  GraphBuilder b(33);
  const int x = b.input("x", {2, 6, 23, 19}, 0.03f, 4);
  const int c0 = b.value("c0", {2, 12, 12, 10}, 0.05f, -9);
  b.conv("stem", x, c0, 1, {3, 3}, {2, 2}, {1, 1, 1, 1});
  const int c1 = b.value("c1", {2, 12, 12, 10}, 0.04f, 3);
  b.conv("dw", c0, c1, 12, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int s = b.value("s", {2, 12, 12, 10}, 0.06f, -2);
  b.add("res", c0, c1, s);
  const int mp = b.value("mp", {2, 12, 6, 5}, 0.06f, -2);
  b.pool(ref::Int8OpKind::kMaxPool, "mp", s, mp, {3, 3}, {2, 2}, {1, 1, 1, 1});
  const int ap = b.value("ap", {2, 12, 6, 5}, 0.02f, 1);
  b.pool(ref::Int8OpKind::kAvgPool, "ap", s, ap, {3, 3}, {2, 2}, {1, 1, 1, 1});
  const int rq = b.value("rq", {2, 12, 6, 5}, 0.03f, -5);
  b.requant("rq", ap, rq);
  b.output(mp, "mp");
  b.output(rq, "rq");
  const compiler::Target tiny = sram_target(2048);
  compiler::CompileOptions o;
  o.target = tiny;
  const compiler::CompileResult r = compiler::compile_graph(b.graph(), o).value();
  EXPECT_GT(count(r.program, isa::Opcode::kConv), 2);
  EXPECT_GT(count(r.program, isa::Opcode::kAdd), 1);
  EXPECT_GT(count(r.program, isa::Opcode::kMaxPool), 1);
  EXPECT_LE(r.program.sram_bytes, 2048u);
  // Double buffering lets DMA run under compute: the schedule is shorter than running serially.
  uint64_t serial = 0;
  for (const auto& inst : r.program.instructions) serial += compiler::instruction_cycles(inst, r.target);
  EXPECT_LT(r.est_cycles, serial);
  // Deterministic: the same graph gives the same bytes.
  const compiler::CompileResult again = compiler::compile_graph(b.graph(), o).value();
  EXPECT_EQ(again.program.serialize(), r.program.serialize());
  expect_matches_reference(b, tiny);
}

TEST(CompilerExecution, LutResidentAndTiledMatchRunInt8) {
  // conv -> lut (resident on warboy: the lut reads the conv's output in SRAM, one table load) and
  // the same graph on 2 KiB, where the lut runs in element tiles that share one table load.
  GraphBuilder b(35);
  const int x = b.input("x", {2, 6, 13, 11}, 0.03f, 4);
  const int c = b.value("c", {2, 8, 13, 11}, 0.08f, -6);
  b.conv("conv", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int y = b.value("y", {2, 8, 13, 11}, 1.0f / 256.0f, -128);
  b.lut("sigmoid", c, y);
  b.output(y, "y");
  const isa::Program resident = compile_for(b.graph(), compiler::Target::from_name("warboy"));
  EXPECT_EQ(count(resident, isa::Opcode::kLut), 1);
  EXPECT_EQ(count(resident, isa::Opcode::kDmaStore), 1);           // only y leaves the SRAM
  EXPECT_EQ(count(resident, isa::Opcode::kDmaLoad), 1 + 1 + 1);    // x, the conv's constants, the table
  expect_matches_reference(b, compiler::Target::from_name("warboy"));
  const isa::Program tiled = compile_for(b.graph(), sram_target(2048));
  EXPECT_GT(count(tiled, isa::Opcode::kLut), 1);
  int table_loads = 0;
  for (const auto& i : tiled.instructions)
    table_loads += i.opcode == isa::Opcode::kDmaLoad && i.dma.region == static_cast<uint8_t>(isa::Region::kConst) &&
                   i.dma.row_bytes == 256;
  EXPECT_EQ(table_loads, 1);
  expect_matches_reference(b, sram_target(2048));
  expect_matches_reference(b, tiny_target());
}

TEST(CompilerExecution, RandomTiledLayersMatchRunInt8) {
  // Odd sizes, strides 1-2, padding, groups, dilation, batch 1-2, on SRAMs from 1 KiB to 16 KiB.
  for (uint32_t seed = 40; seed < 64; ++seed) {
    GraphBuilder b(seed);
    const int64_t n = b.uniform(1, 2), groups = b.uniform(1, 3), c = groups * b.uniform(1, 5);
    const int64_t h = b.uniform(5, 27), w = b.uniform(3, 21);
    const int x = b.input("x", {n, c, h, w}, 0.03f, b.uniform(-20, 20));
    const int k = b.uniform(1, 3), s = b.uniform(1, 2), dil = b.uniform(1, 2), pad = b.uniform(0, k - 1);
    const int64_t span = dil * (k - 1) + 1;
    const int64_t oh = (h + 2 * pad - span) / s + 1, ow = (w + 2 * pad - span) / s + 1;
    const int64_t oc = groups * b.uniform(1, 7);
    const int y = b.value("y", {n, oc, oh, ow}, 0.05f, b.uniform(-20, 20));
    ref::Int8Op& conv = b.conv("conv", x, y, static_cast<int>(groups), {k, k}, {s, s}, {pad, pad, pad, pad});
    conv.dilations = {dil, dil};
    int v = y;
    if (oh >= 2 && ow >= 2) {
      const int p = b.value("p", {n, oc, (oh - 2) / 2 + 1, (ow - 2) / 2 + 1}, 0.05f, 0);
      b.pool(b.uniform(0, 1) ? ref::Int8OpKind::kMaxPool : ref::Int8OpKind::kAvgPool, "pool", y, p, {2, 2}, {2, 2});
      v = p;
    }
    b.output(v, "out");
    b.output(y, "conv_out");
    for (uint64_t sram : {1024u, 2048u, 5000u, 16384u}) {
      compiler::CompileOptions o;
      o.target = sram_target(sram);
      o.host_fallback = false;
      const auto r = compiler::compile_graph(b.graph(), o);
      if (!r.ok()) {  // only when a single row tile cannot fit
        EXPECT_NE(std::string(r.error().what()).find("does not fit"), std::string::npos) << r.error().what();
        continue;
      }
      expect_matches_reference(b, o.target);
    }
  }
}
