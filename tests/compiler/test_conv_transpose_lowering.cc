// ConvTranspose and Pad edge / reflect on the NPU: random QDQ models compiled NPU-only (the kPad
// as kCopy fills and strided / stride-0 / negative-stride copies, the conv as an ordinary kConv)
// and run by the test interpreter, bit for bit against ref::run_int8; tiling over the outermost
// axis on a small SRAM; corrupt pads.
#include <gtest/gtest.h>

#include "../reference/conv_transpose_models_for_tests.h"
#include "anvil/compiler/compiler.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::testing::expect_compiled_matches;
using anvil::testing::npu_only;

namespace {

size_t count(const isa::Program& p, isa::Opcode op) {
  size_t n = 0;
  for (const isa::Instruction& i : p.instructions) n += i.opcode == op;
  return n;
}

TensorMap quantized_inputs(const ref::Int8Graph& g, const TensorMap& fl) {
  TensorMap in;
  for (size_t i = 0; i < g.inputs.size(); ++i)
    in[g.input_names[i]] = ref::quantize_tensor(fl.at(g.input_names[i]), g.values[g.inputs[i]].q);
  return in;
}

TEST(ConvTransposeLowering, RandomCasesAreBitExact) {
  std::mt19937 rng(808);
  for (int k = 0; k < 24; ++k) {
    const test::ConvTransposeCase c = test::random_conv_transpose(rng);
    const TensorMap fl{{"x", test::random_tensor(c.x, -1.0f, 1.5f, 30 + k)}};
    const ref::Int8Graph g = ref::lower_qdq(test::conv_transpose_model(c, fl, 60 + k), c.x[0]).value();
    const isa::Program p = expect_compiled_matches(g, quantized_inputs(g, fl), c.describe);
    EXPECT_GE(count(p, isa::Opcode::kConv), 1u) << c.describe;
  }
}

TEST(ConvTransposeLowering, StrideTwoWithGroupsIsAFillAStridedCopyAndAConv) {
  test::ConvTransposeCase c = test::undilated_conv_transpose({1, 4, 5, 6}, 6, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 2);
  const TensorMap fl{{"x", test::random_tensor(c.x, -1.0f, 1.0f, 4)}};
  const ref::Int8Graph g = ref::lower_qdq(test::conv_transpose_model(c, fl), 1).value();
  const isa::Program p = expect_compiled_matches(g, quantized_inputs(g, fl), "stride 2 groups 2");
  EXPECT_EQ(count(p, isa::Opcode::kCopy), 2u);  // the fill with the zero point, the strided copy
  bool strided = false;
  for (const isa::Instruction& i : p.instructions)
    if (i.opcode == isa::Opcode::kCopy && i.copy.mode == static_cast<uint8_t>(isa::CopyMode::kCopy))
      strided = i.copy.out_stride[isa::kCopyDims - 1] == 2;  // every other column of the output
  EXPECT_TRUE(strided);
}

TEST(PadModeLowering, RandomEdgeAndReflectAreBitExact) {
  std::mt19937 rng(909);
  for (const std::string mode : {"edge", "reflect"})
    for (int k = 0; k < 14; ++k) {
      test::MovementCase c = test::random_pad_mode(rng, mode);
      c.shared_scale = k % 2 == 0;
      const ref::Int8Graph g = ref::lower_qdq(test::movement_model(c), c.inputs[0][0]).value();
      const isa::Program p = expect_compiled_matches(g, quantized_inputs(g, test::movement_inputs(c, 40 + k)), c.describe);
      // One copy per combination of the axes' segments (before, inside, after); no fill.
      size_t want = 1;
      const Shape& x = c.inputs[0];
      const Shape& y = g.values[g.ops[0].output].shape;
      for (size_t a = 0; a < x.size(); ++a)
        want *= 1 + (g.ops[0].pad_begin[a] > 0) + (y[a] - x[a] - g.ops[0].pad_begin[a] > 0);
      EXPECT_EQ(count(p, isa::Opcode::kCopy), want) << c.describe;
    }
}

/// On a 2 KiB SRAM, a zero-inserting pad, an edge pad and a reflect pad of several KiB each tile
/// over the outermost axis; a ConvTranspose model of batch 6 compiles with both halves tiled.
TEST(PadModeLowering, TiledOverTheOutermostAxisOnASmallSram) {
  anvil::testing::GraphBuilder b(21);
  const int x = b.input("x", {6, 5, 7, 9}, 0.04f, -5);  // 315-byte rows
  const int ins = b.value("ins", {6, 5, 15, 19}, 0.04f, -5);
  const int edge = b.value("edge", {9, 7, 8, 12}, 0.04f, -5);
  const int refl = b.value("refl", {8, 5, 11, 9}, 0.06f, 2);  // requantizes
  b.pad("ins", x, ins, {0, 0, 1, 1}, -5).pad_interior = {0, 0, 1, 1};
  b.pad("edge", x, edge, {2, 1, 0, 3}, 0).pad_mode = ref::PadMode::kEdge;
  b.pad("refl", x, refl, {1, 0, 3, 0}, 0).pad_mode = ref::PadMode::kReflect;
  for (int v : {ins, edge, refl}) b.output(v, b.graph().values[v].name);
  compiler::CompileOptions o = npu_only();
  o.target.sram_per_slice = 32;  // 64 slices: 2 KiB
  const isa::Program p = expect_compiled_matches(b.graph(), b.random_inputs(), "tiled pads", o);
  EXPECT_LE(p.sram_bytes, 2048u);
  EXPECT_GT(count(p, isa::Opcode::kDmaStore), 3u * 2u);  // each output in several tiles

  test::ConvTransposeCase c = test::undilated_conv_transpose({6, 3, 6, 7}, 4, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1});
  const TensorMap fl{{"x", test::random_tensor(c.x, -1.0f, 1.0f, 5)}};
  const ref::Int8Graph g = ref::lower_qdq(test::conv_transpose_model(c, fl), 6).value();
  const isa::Program q = expect_compiled_matches(g, quantized_inputs(g, fl), "tiled ConvTranspose", o);
  EXPECT_LE(q.sram_bytes, 2048u);
}

TEST(PadModeLowering, CorruptPadsAreInvalid) {
  anvil::testing::GraphBuilder b(22);
  const int x = b.input("x", {1, 3, 4});
  const int y = b.value("y", {1, 3, 9});
  b.pad("reflect_too_far", x, y, {0, 0, 4}, 0).pad_mode = ref::PadMode::kReflect;  // 4 and 1 of an axis of 4
  b.output(y, "y");
  auto r = compiler::compile_graph(b.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("reflect_too_far"), std::string::npos) << r.error().what();

  anvil::testing::GraphBuilder e(23);
  const int x2 = e.input("x", {1, 3, 4});
  const int y2 = e.value("y", {1, 3, 8});
  ref::Int8Op& op = e.pad("edge_interior", x2, y2, {0, 0, 1}, 0);
  op.pad_mode = ref::PadMode::kEdge;
  op.pad_interior = {0, 0, 1};
  e.output(y2, "y");
  r = compiler::compile_graph(e.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("edge_interior"), std::string::npos) << r.error().what();

  anvil::testing::GraphBuilder i(24);
  const int x3 = i.input("x", {1, 3, 4});
  const int y3 = i.value("y", {1, 3, 7});
  i.pad("interior_past_end", x3, y3, {0, 0, 1}, 0).pad_interior = {0, 0, 1};  // needs 1 + 7 columns
  i.output(y3, "y");
  r = compiler::compile_graph(i.graph(), npu_only());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("interior_past_end"), std::string::npos) << r.error().what();
}

}  // namespace
