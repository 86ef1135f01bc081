// kMatMul (two int8 activations) and kSoftmax compiled and run by the test interpreter against
// ref::run_int8: random shapes with odd sizes, batch dimensions and broadcasting, resident and
// tiled (a target with little SRAM), the host fallback of what does not fit, and bad ops.
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "cost_model.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

namespace {

compiler::Target tiny_target() {
  compiler::Target t = compiler::Target::from_name("warboy");
  t.name = "tiny";  // 4 slices x 1 KiB: most ops below are tiled
  t.slices_per_pe = 4;
  t.sram_per_slice = 1024;
  return t;
}

compiler::CompileResult compile_for(const ref::Int8Graph& g, const compiler::Target& target, bool fallback = false) {
  compiler::CompileOptions o;
  o.target = target;
  o.host_fallback = fallback;
  auto r = compiler::compile_graph(g, o);
  if (!r.ok()) ADD_FAILURE() << r.error().what();
  return r.value();
}

int count(const isa::Program& p, isa::Opcode op) {
  int n = 0;
  for (const isa::Instruction& i : p.instructions) n += i.opcode == op;
  return n;
}

/// Compiles for `target`, runs the interpreter and run_int8 on random inputs: equal bytes and no
/// unordered conflicts. Returns the program.
isa::Program expect_matches_reference(GraphBuilder& b, const compiler::Target& target) {
  const isa::Program p = compile_for(b.graph(), target).program;
  anvil::testing::expect_program_matches(p, b.graph(), b.random_inputs(), "on " + target.name);
  return p;
}

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(AttentionOps, MatMulShapesMatchRunInt8ResidentAndTiled) {
  struct Case {
    Shape a_batch, b_batch, out_batch;
  };
  // Equal batch dims, B broadcast (rows of A tiled, B shared), A broadcast (products tiled), none.
  const std::vector<Case> cases = {{{3}, {3}, {3}}, {{2, 3}, {2, 3}, {2, 3}}, {{2, 3}, {}, {2, 3}},
                                   {{}, {4}, {4}},  {{1}, {5}, {5}},           {{}, {}, {}},
                                   {{2, 1}, {1}, {2, 1}}};
  uint32_t seed = 100;
  for (const Case& c : cases) {
    GraphBuilder b(seed++);
    const int64_t m = b.uniform(1, 9), k = b.uniform(1, 23), n = b.uniform(1, 13);
    const int a = b.input("a", concat(c.a_batch, {m, k}), 0.03f, b.uniform(-60, 60));
    const int bb = b.input("b", concat(c.b_batch, {k, n}), 0.02f, b.uniform(-60, 60));
    const int y = b.value("y", concat(c.out_batch, {m, n}), 0.05f, b.uniform(-20, 20));
    b.matmul("mm", a, bb, y).act_min = -100;  // a clamp, as a fused Clip gives
    b.output(y, "y");
    for (const auto& t : {compiler::Target::from_name("warboy"), compiler::Target::from_name("warboy-2pe")}) {
      const isa::Program p = expect_matches_reference(b, t);
      EXPECT_EQ(count(p, isa::Opcode::kMatMul), 1) << "resident: one instruction";
    }
    expect_matches_reference(b, tiny_target());
  }
}

TEST(AttentionOps, LargeMatMulIsTiledOverRowsAndProducts) {
  {  // B shared: 2 x 40 rows of A (K = 37) against one 37 x 11 B: tiles of rows
    GraphBuilder b(7);
    const int a = b.input("a", {2, 40, 37}, 0.03f, 5);
    const int w = b.input("b", {37, 11}, 0.02f, -9);
    const int y = b.value("y", {2, 40, 11}, 0.05f, 3);
    b.matmul("rows", a, w, y);
    b.output(y, "y");
    const isa::Program p = expect_matches_reference(b, tiny_target());
    EXPECT_GT(count(p, isa::Opcode::kMatMul), 1);
  }
  {  // batched attention-like: 6 products of 15 x 23 by 23 x 17 (6.4 KiB > 4 KiB)
    GraphBuilder b(8);
    const int q = b.input("q", {6, 15, 23}, 0.03f, 5);
    const int kt = b.input("kt", {6, 23, 17}, 0.02f, -9);
    const int y = b.value("y", {6, 15, 17}, 0.05f, 3);
    b.matmul("products", q, kt, y);
    b.output(y, "y");
    const isa::Program p = expect_matches_reference(b, tiny_target());
    EXPECT_GT(count(p, isa::Opcode::kMatMul), 1);
  }
}

TEST(AttentionOps, SoftmaxAxesMatchRunInt8ResidentAndTiled) {
  struct Case {
    Shape shape;
    int axis;
  };
  const std::vector<Case> cases = {{{2, 3, 17}, 2}, {{2, 3, 17}, 1}, {{5, 4}, 0}, {{1, 7, 3, 5}, 3},
                                   {{1, 7, 3, 5}, 1}, {{64, 45}, 1}, {{3, 1}, 1}};
  uint32_t seed = 200;
  for (const Case& c : cases) {
    GraphBuilder b(seed++);
    const int x = b.input("x", c.shape, 0.01f + 0.01f * b.uniform(0, 10), b.uniform(-30, 30));
    const int y = b.value("y", c.shape, 1.0f / 256.0f, -128);
    b.softmax("sm", x, y, c.axis);
    b.output(y, "y");
    for (const auto& t : {compiler::Target::from_name("warboy"), compiler::Target::from_name("warboy-2pe"), tiny_target()})
      expect_matches_reference(b, t);
  }
}

TEST(AttentionOps, SoftmaxWithManyRowsIsTiledAndOtherOutputParamsWork) {
  GraphBuilder b(9);
  const int x = b.input("x", {2, 40, 97}, 0.05f, 11);
  const int y = b.value("y", {2, 40, 97}, 0.003f, -100);  // not the quantizer's 1/256, -128
  b.softmax("sm", x, y, 2);
  b.output(y, "y");
  const isa::Program p = expect_matches_reference(b, tiny_target());
  EXPECT_GT(count(p, isa::Opcode::kSoftmax), 1);
}

TEST(AttentionOps, AttentionChainMatchesRunInt8) {
  // scores = q x kT -> softmax -> x v, resident on warboy, tiled on the tiny target.
  GraphBuilder b(11);
  const int q = b.input("q", {4, 16, 8}, 0.04f, 3);
  const int kt = b.input("kt", {4, 8, 16}, 0.04f, -2);
  const int v = b.input("v", {4, 16, 8}, 0.03f, 7);
  const int s = b.value("s", {4, 16, 16}, 0.08f, -5);
  b.matmul("qk", q, kt, s);
  const int p = b.value("p", {4, 16, 16}, 1.0f / 256.0f, -128);
  b.softmax("softmax", s, p, 2);
  const int o = b.value("o", {4, 16, 8}, 0.02f, 1);
  b.matmul("pv", p, v, o);
  b.output(o, "o");
  for (const auto& t : {compiler::Target::from_name("warboy"), tiny_target()}) expect_matches_reference(b, t);
}

TEST(AttentionOps, WhatDoesNotFitIsRefusedOrRunOnTheHost) {
  // One softmax row of 3000 elements (in + out + 1 KiB table) cannot fit 4 KiB of SRAM.
  GraphBuilder b(12);
  const int x = b.input("x", {2, 3000}, 0.05f, 0);
  const int y = b.value("y", {2, 3000}, 1.0f / 256.0f, -128);
  b.softmax("long_row", x, y, 1);
  b.output(y, "y");
  compiler::CompileOptions o;
  o.target = tiny_target();
  o.host_fallback = false;
  auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("long_row"), std::string::npos) << r.error().what();
  // With host fallback the softmax runs on the host, with the same results.
  const compiler::CompileResult host = compile_for(b.graph(), tiny_target(), true);
  bool on_host = false;
  for (const auto& pl : host.placement) on_host |= pl.node == "long_row" && pl.runs_on == "host";
  EXPECT_TRUE(on_host);
  // The same op fits warboy's SRAM.
  expect_matches_reference(b, compiler::Target::from_name("warboy"));
}

TEST(AttentionOps, MalformedOpsAreRejectedNamingTheNode) {
  auto expect_error = [](ref::Int8Graph g, ErrorCode code, const std::string& text) {
    compiler::CompileOptions o;
    o.host_fallback = false;
    auto r = compiler::compile_graph(g, o);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code(), code) << r.error().what();
    EXPECT_NE(std::string(r.error().what()).find(text), std::string::npos) << r.error().what();
  };
  {
    GraphBuilder b;
    const int a = b.input("a", {3, 4, 5}), w = b.input("b", {3, 6, 2});
    const int y = b.value("y", {3, 4, 2});
    b.matmul("bad_k", a, w, y);
    b.output(y, "y");
    expect_error(b.graph(), ErrorCode::kInvalidArgument, "bad_k");
  }
  {  // (batch dimensions broadcast across both operands lower: test_compiler_gaps.cc)
    GraphBuilder b;
    const int a = b.input("a", {2, 1, 4, 5}), w = b.input("b", {1, 3, 5, 2});
    const int y = b.value("y", {2, 2, 4, 2});
    b.matmul("cross_wrong_output", a, w, y);
    b.output(y, "y");
    expect_error(b.graph(), ErrorCode::kInvalidArgument, "cross_wrong_output");
  }
  {
    GraphBuilder b;
    const int a = b.input("a", {4, 5}), w = b.input("b", {5, 2});
    const int y = b.value("y", {4, 3});
    b.matmul("bad_out", a, w, y);
    b.output(y, "y");
    expect_error(b.graph(), ErrorCode::kInvalidArgument, "bad_out");
  }
  {
    GraphBuilder b;
    const int x = b.input("x", {4, 5});
    const int y = b.value("y", {4, 5});
    b.softmax("bad_axis", x, y, 2);
    b.output(y, "y");
    expect_error(b.graph(), ErrorCode::kInvalidArgument, "bad_axis");
  }
  {
    GraphBuilder b;
    const int x = b.input("x", {4, 5});
    const int y = b.value("y", {4, 5});
    b.softmax("bad_table", x, y, 1).softmax_table[0] = 0;
    b.output(y, "y");
    expect_error(b.graph(), ErrorCode::kInvalidArgument, "bad_table");
  }
}

TEST(AttentionOps, CostModelCyclesFollowTheDocumentedFormulas) {
  const compiler::Target one = compiler::Target::from_name("warboy"), two = compiler::Target::from_name("warboy-2pe");
  // kMatMul 3 x (50 x 100 * 100 x 70): 64 + ceil(150 / 64) * ceil(70 / 32) * ceil(100 / 4) = 64 + 3*3*25;
  // the fused pair's 128 slices: ceil(150 / 128) = 2.
  isa::Instruction mm;
  mm.opcode = isa::Opcode::kMatMul;
  mm.matmul.batch = 3, mm.matmul.m = 50, mm.matmul.k = 100, mm.matmul.n = 70;
  EXPECT_EQ(compiler::instruction_cycles(mm, one), 289u);
  EXPECT_EQ(compiler::instruction_cycles(mm, two), 214u);
  EXPECT_EQ(isa::matmul_macs(mm.matmul), 3u * 50 * 70 * 100);
  // kSoftmax 4 x 100 x 3: three passes over 1200 elements, 16 + ceil(3600 / 256), / 512 fused.
  isa::Instruction sm;
  sm.opcode = isa::Opcode::kSoftmax;
  sm.softmax.outer = 4, sm.softmax.length = 100, sm.softmax.inner = 3;
  EXPECT_EQ(compiler::instruction_cycles(sm, one), 31u);
  EXPECT_EQ(compiler::instruction_cycles(sm, two), 24u);
}

TEST(AttentionOps, BatchedRowsMatMulAsReshapeConvReshapeMatchesRunInt8) {
  // What lower_qdq makes of a constant-weight MatMul on [batch, tokens, K] (a transformer's
  // projection): kReshape to [rows, K], the 1x1 conv, kReshape back; then an attention product
  // reads the projected tokens. Resident on warboy, tiled on the tiny target.
  GraphBuilder b(21);
  const int x = b.input("x", {2, 9, 12}, 0.05f, 2);
  const int rows = b.value("rows", {18, 12}, 0.05f, 2);
  b.reshape("proj/in", x, rows);
  const int y = b.value("y2d", {18, 10}, 0.06f, -3);
  b.conv("proj", rows, y, 1, {1, 1});
  const int t = b.value("t", {2, 9, 10}, 0.06f, -3);
  b.reshape("proj/out", y, t);
  const int kt = b.input("kt", {2, 10, 9}, 0.04f, 5);
  const int s = b.value("s", {2, 9, 9}, 0.1f, 0);
  b.matmul("scores", t, kt, s);
  b.output(s, "s");
  for (const auto& target : {compiler::Target::from_name("warboy"), tiny_target()}) {
    const isa::Program p = expect_matches_reference(b, target);
    EXPECT_GE(count(p, isa::Opcode::kConv), 1) << target.name;
    EXPECT_GE(count(p, isa::Opcode::kMatMul), 1) << target.name;
  }
}
