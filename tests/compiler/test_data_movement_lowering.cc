// Data movement on the NPU: random Transpose / Slice / Split / Concat / Pad QDQ models compiled
// (kCopy) and run by the test interpreter, bit for bit against ref::run_int8; a chain that stays
// resident; tiling over the outermost axis; what the compiler refuses (a transpose of the outermost
// axis too big for SRAM, more axes than kCopy has) and corrupt ops.
#include <gtest/gtest.h>

#include <map>

#include "../reference/movement_models_for_tests.h"
#include "anvil/compiler/compiler.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::testing::expect_compiled_matches;
using anvil::testing::npu_only;

namespace {

size_t count_copies(const isa::Program& p) {
  size_t n = 0;
  for (const isa::Instruction& i : p.instructions) n += i.opcode == isa::Opcode::kCopy;
  return n;
}

TEST(DataMovementLowering, RandomCasesAreBitExact) {
  std::mt19937 rng(4242);
  for (const auto& generate : test::movement_generators())
    for (int k = 0; k < 12; ++k) {
      test::MovementCase c = generate(rng);
      c.shared_scale = k % 2 == 0;
      const onnx::ModelProto model = test::movement_model(c);
      const ref::Int8Graph g = ref::lower_qdq(model, c.inputs[0][0]).value();
      TensorMap in;
      const TensorMap fl = test::movement_inputs(c, 100 + k);
      for (size_t i = 0; i < g.inputs.size(); ++i)
        in[g.input_names[i]] = ref::quantize_tensor(fl.at(g.input_names[i]), g.values[g.inputs[i]].q);
      const isa::Program p = expect_compiled_matches(g, in, c.describe);
      // One copy per move: a transpose or slice one, a split one per output, a concat one per
      // input, a pad a fill and a copy.
      const size_t want = c.op == "Concat" ? c.inputs.size() : c.op == "Pad" ? 2 : static_cast<size_t>(c.outputs);
      EXPECT_EQ(count_copies(p), want) << c.describe;
    }
}

/// Concat of two inputs on different scales -> Transpose -> reversed Slice -> Pad, all resident:
/// only the graph inputs are loaded and only the output is stored.
TEST(DataMovementLowering, ChainStaysResident) {
  anvil::testing::GraphBuilder b(3);
  const int x0 = b.input("x0", {2, 3, 5, 7}, 0.04f, -5);
  const int x1 = b.input("x1", {2, 4, 5, 7}, 0.07f, 11);
  const int cat = b.value("cat", {2, 7, 5, 7}, 0.06f, 2);
  const int tr = b.value("tr", {2, 5, 7, 7}, 0.06f, 2);
  const int sl = b.value("sl", {2, 3, 7, 4}, 0.06f, 2);
  const int pd = b.value("pd", {3, 4, 8, 7}, 0.06f, 2);
  b.concat("cat", {x0, x1}, cat, 1);
  b.transpose("tr", cat, tr, {0, 2, 1, 3});
  b.slice("sl", tr, sl, {0, 4, 0, 6}, {1, -2, 1, -2});  // rows 4, 2, 0 and columns 6, 4, 2, 0
  b.pad("pd", sl, pd, {1, 0, 1, 2}, -7);
  b.output(pd, "y");
  const isa::Program p = expect_compiled_matches(b.graph(), b.random_inputs(), "chain");
  size_t loads = 0, stores = 0;
  for (const isa::Instruction& i : p.instructions) {
    loads += i.opcode == isa::Opcode::kDmaLoad;
    stores += i.opcode == isa::Opcode::kDmaStore;
  }
  EXPECT_EQ(loads, 2u);
  EXPECT_EQ(stores, 1u);
  EXPECT_EQ(count_copies(p), 2u + 1u + 1u + 2u);
}

/// On a 2 KiB SRAM: ops over tensors of several KiB tile over output rows of the outermost axis.
TEST(DataMovementLowering, TiledOverTheOutermostAxisOnASmallSram) {
  anvil::testing::GraphBuilder b(10);
  const int x0 = b.input("x0", {6, 5, 7, 9}, 0.04f, -5);   // 315-byte rows
  const int x1 = b.input("x1", {6, 2, 7, 9}, 0.07f, 11);
  const int tr = b.value("tr", {6, 7, 5, 9}, 0.04f, -5);
  const int sl = b.value("sl", {3, 7, 2, 9}, 0.04f, -5);
  const int cat1 = b.value("cat1", {6, 7, 7, 9}, 0.06f, 2);
  const int cat0 = b.value("cat0", {12, 5, 7, 9}, 0.06f, 2);
  const int pd = b.value("pd", {9, 8, 7, 9}, 0.06f, 2);
  b.transpose("tr", x0, tr, {0, 2, 1, 3});
  b.slice("sl", tr, sl, {5, 0, 4, 0}, {-2, 1, -3, 1});  // rows 5, 3, 1 of the outermost axis
  b.concat("cat1", {x0, x1}, cat1, 1);
  b.concat("cat0", {x0, x0}, cat0, 0);
  b.pad("pd", sl, pd, {4, 1, 0, 0}, 9);  // also pads the outermost axis: 4 rows before, 2 after
  for (int v : {sl, cat1, cat0, pd}) b.output(v, b.graph().values[v].name);
  compiler::CompileOptions o = npu_only();
  o.target.sram_per_slice = 32;  // 64 slices: 2 KiB
  auto compiled = compiler::compile_graph(b.graph(), o);
  ASSERT_TRUE(compiled.ok()) << compiled.error().what();
  const isa::Program& p = compiled.value().program;
  EXPECT_LE(p.sram_bytes, 2048u);
  anvil::testing::expect_program_matches(p, b.graph(), b.random_inputs(), "tiled movement");
  size_t stores = 0;
  for (const isa::Instruction& i : p.instructions) stores += i.opcode == isa::Opcode::kDmaStore;
  // tr, cat1, cat0 and pd exceed 2 KiB on their own: each stores several tiles (sl fits resident).
  EXPECT_GT(stores, 4u * 2u);
}

TEST(DataMovementLowering, TooBigForSramGoesToTheHost) {
  anvil::testing::GraphBuilder b(4);
  const int x = b.input("x", {1, 64, 64, 48});  // 196 608 bytes, the transposed output as much again
  const int y = b.value("y", {1, 48, 64, 64});
  b.transpose("big_transpose", x, y, {0, 3, 2, 1});
  b.output(y, "y");
  compiler::CompileOptions o = npu_only();
  o.target.sram_per_slice = 4096;  // 256 KiB of SRAM: input and output do not fit together
  auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("big_transpose"), std::string::npos) << r.error().what();
  EXPECT_NE(std::string(r.error().what()).find("one output row does not fit"), std::string::npos) << r.error().what();
  // A transpose of the outermost axis cannot be tiled over it.
  anvil::testing::GraphBuilder t(11);
  const int x2 = t.input("x", {8, 256, 96});  // 192 KiB, the output as much again
  const int y2 = t.value("y", {256, 8, 96});
  t.transpose("swap_outer", x2, y2, {1, 0, 2});
  t.output(y2, "y");
  auto s = compiler::compile_graph(t.graph(), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(s.error().what()).find("swap_outer"), std::string::npos) << s.error().what();
  EXPECT_NE(std::string(s.error().what()).find("not the input's"), std::string::npos) << s.error().what();
  o.host_fallback = true;
  auto h = compiler::compile_graph(b.graph(), o);
  ASSERT_TRUE(h.ok()) << h.error().what();
  ASSERT_EQ(h.value().placement.size(), 1u);
  EXPECT_EQ(h.value().placement[0].runs_on, "host");
}

TEST(DataMovementLowering, MoreAxesThanKCopyIsRefused) {
  anvil::testing::GraphBuilder b(5);
  const int x = b.input("x", {2, 3, 2, 3, 2, 3, 2});
  const int y = b.value("y", {2, 3, 2, 3, 2, 3, 2});
  b.transpose("rank7", x, y, {0, 3, 2, 1, 4, 5, 6});  // no two neighbours stay neighbours... except 4, 5, 6
  b.output(y, "y");
  // Axes 4, 5, 6 merge: five axes remain, which kCopy takes.
  expect_compiled_matches(b.graph(), b.random_inputs(), "rank 7, mergeable");
  anvil::testing::GraphBuilder c(6);
  const int x2 = c.input("x", {2, 3, 2, 3, 2, 3, 2});
  const int y2 = c.value("y", {2, 3, 2, 3, 2, 3, 2});  // the shape is a palindrome
  c.transpose("rank7_reversed", x2, y2, {6, 5, 4, 3, 2, 1, 0});
  c.output(y2, "y");
  auto r = compiler::compile_graph(c.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("rank7_reversed"), std::string::npos) << r.error().what();
  EXPECT_NE(std::string(r.error().what()).find("7 axes"), std::string::npos) << r.error().what();
}

TEST(DataMovementLowering, CorruptOpsAreInvalid) {
  anvil::testing::GraphBuilder b(7);
  const int x = b.input("x", {1, 3, 4});
  const int y = b.value("y", {1, 6, 4});
  ref::Int8Op& op = b.concat("cat", {x, x}, y, 1);
  op.multipliers.pop_back();
  b.output(y, "y");
  auto r = compiler::compile_graph(b.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("cat"), std::string::npos) << r.error().what();

  anvil::testing::GraphBuilder t(9);
  const int x3 = t.input("x", {2, 2});
  const int y3 = t.value("y", {2, 2});
  t.transpose("repeats_an_axis", x3, y3, {0, 0});
  t.output(y3, "y");
  r = compiler::compile_graph(t.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("repeats_an_axis"), std::string::npos) << r.error().what();

  anvil::testing::GraphBuilder s(8);
  const int x2 = s.input("x", {1, 3, 4});
  const int y2 = s.value("y", {1, 3, 4});
  s.slice("past_end", x2, y2, {0, 1, 0}, {1, 1, 1});  // rows 1..3 of 3
  s.output(y2, "y");
  r = compiler::compile_graph(s.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("past_end"), std::string::npos) << r.error().what();
}

}  // namespace
