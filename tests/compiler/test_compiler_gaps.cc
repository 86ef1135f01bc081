// Compiler gaps closed in the second round of issue 6, each compiled and run by the test
// interpreter against ref::run_int8, bit for bit:
//   graph outputs that share bytes with a graph input or another output (DramPlan::io_copies),
//   constant - x (a kSub with Int8Op::constant_first: the constant is kBinary's operand a),
//   MatMul whose batch dimensions broadcast across both operands (ref::MatMulDims::cross),
//   a MatMul tiled within one product when B does not fit SRAM (lower_matmul_columns),
//   double-buffered data-movement tiles (lower_movement_tiled),
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "cost_model.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

namespace {

compiler::CompileResult compile_npu(const ref::Int8Graph& g, const compiler::Target& target) {
  compiler::CompileOptions o;
  o.target = target;
  o.host_fallback = false;
  auto r = compiler::compile_graph(g, o);
  if (!r.ok()) ADD_FAILURE() << r.error().what();
  return r.ok() ? r.value() : compiler::CompileResult{};
}

compiler::Target small_target(uint64_t slice_bytes) {
  compiler::Target t = compiler::Target::from_name("warboy");
  t.name = "small";
  t.slices_per_pe = 4;
  t.sram_per_slice = slice_bytes;
  return t;
}

int count(const isa::Program& p, isa::Opcode op) {
  int n = 0;
  for (const isa::Instruction& i : p.instructions) n += i.opcode == op;
  return n;
}

/// Runs the program on `inputs` with the test interpreter: every output equals run_int8's, and
/// the waits order every conflicting pair of accesses.
void expect_runs_like_reference(const isa::Program& p, const ref::Int8Graph& g, const TensorMap& inputs,
                                const std::string& what) {
  anvil::testing::expect_program_matches(p, g, inputs, what);
}

}  // namespace

// ---- graph outputs sharing bytes ---------------------------------------------------------------

/// An add's output under two names and reshaped, a graph input as an output (twice): each alias is
/// an IO tensor of its own, filled by a copy after the last op; resident on warboy, in chunks on
/// a 1 KiB SRAM (the tensors are 1350 bytes).
TEST(IoAliases, OutputsSharingBytesAreCopiedIntoTheirOwnTensors) {
  GraphBuilder b(3);
  const int x0 = b.input("left", {2, 3, 15, 15}, 0.03f, 4);
  const int x1 = b.input("right", {2, 3, 15, 15}, 0.07f, -9);
  const int s = b.value("sum", {2, 3, 15, 15}, 0.08f, 1);
  const int f = b.value("flat", {2, 675}, 0.08f, 1);
  b.add("add0", x0, x1, s);
  b.reshape("flatten0", s, f);
  b.output(f, "flat_out");
  b.output(s, "sum_out");    // the bytes of flat_out
  b.output(x0, "left_out");  // a graph input
  b.output(f, "flat_again");
  b.output(x0, "left_again");
  for (const compiler::Target& t : {compiler::Target::from_name("warboy"), small_target(256)}) {
    const compiler::CompileResult r = compile_npu(b.graph(), t);
    const isa::Program& p = r.program;
    ASSERT_EQ(p.outputs.size(), 5u);
    for (size_t i = 0; i < p.outputs.size(); ++i)
      for (size_t j = 0; j < i; ++j) EXPECT_NE(p.outputs[i].io_offset, p.outputs[j].io_offset) << t.name;
    // Four copies, each a report line of its own named after the output; no placement for them.
    std::vector<std::string> copies;
    for (const compiler::LayerReport& l : r.layers)
      if (l.op == "io_copy") copies.push_back(l.node);
    EXPECT_EQ(copies, (std::vector<std::string>{"sum_out", "left_out", "flat_again", "left_again"})) << t.name;
    for (const compiler::NodePlacement& pl : r.placement) EXPECT_NE(pl.op, "io_copy");
    for (uint32_t seed : {1u, 2u}) {
      GraphBuilder inputs(seed);
      inputs.graph() = b.graph();
      expect_runs_like_reference(p, b.graph(), inputs.random_inputs(), t.name);
    }
    if (t.name == "small") {
      EXPECT_GT(count(p, isa::Opcode::kDmaStore), 4 * 2) << "1350 bytes in 1 KiB chunks";
    }
    EXPECT_LE(p.sram_bytes, t.sram_capacity());
  }
}

/// No op at all: the graph's output is its input.
TEST(IoAliases, AGraphWithoutOpsCopiesItsInput) {
  GraphBuilder b(4);
  const int x = b.input("x", {3, 7}, 0.1f, 2);
  b.output(x, "y");
  const compiler::CompileResult r = compile_npu(b.graph(), compiler::Target::from_name("warboy"));
  EXPECT_EQ(count(r.program, isa::Opcode::kDmaLoad), 1);
  EXPECT_EQ(count(r.program, isa::Opcode::kDmaStore), 1);
  expect_runs_like_reference(r.program, b.graph(), b.random_inputs(), "no ops");
}

/// With host fallback, an NPU segment whose outputs are a value and its reshape (both read later)
/// now lowers on the NPU instead of sending the run to the host.
TEST(IoAliases, SegmentOutputsSharingBytesStayOnTheNpu) {
  GraphBuilder b(5);
  const int x = b.input("x", {1, 4, 6, 6});
  const int c = b.value("c", {1, 4, 6, 6}, 0.05f, -2);
  const int r = b.value("r", {1, 144}, 0.05f, -2);
  const int h = b.value("h", {1, 4, 4, 4}, 0.05f, -2);
  const int y = b.value("y", {1, 4, 4, 4}, 0.06f, 3);
  b.conv("conv", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  b.reshape("flatten", c, r);
  // Dilated pooling: the NPU refuses it, so it runs on the host and reads c from the first segment.
  b.pool(ref::Int8OpKind::kMaxPool, "dilated", c, h, {3, 3}, {1, 1}, {1, 1, 1, 1}).dilations = {2, 2};
  b.add("add", h, h, y);
  b.output(r, "flat");
  b.output(y, "y");
  compiler::CompileOptions o;
  const compiler::CompileResult res = compiler::compile_graph(b.graph(), o).value();
  std::vector<std::string> where;
  for (const auto& pl : res.placement) where.push_back(pl.node + ":" + pl.runs_on);
  EXPECT_EQ(where, (std::vector<std::string>{"conv:npu", "flatten:npu", "dilated:host", "add:npu"}));
  ASSERT_EQ(res.program.segments.size(), 3u);
  EXPECT_EQ(res.program.segments[0].outputs, (std::vector<std::string>{"c", "r"}));
}

// ---- constant - x ------------------------------------------------------------------------------

namespace {

/// y = c - x for a random int8 constant c (its own scale and zero point), fused clamp [-100, 120].
void constant_minus(GraphBuilder& b, const std::string& node, int x, const Shape& c_shape, int y) {
  ref::Int8Op op;
  op.kind = ref::Int8OpKind::kSub;
  op.node = node;
  op.inputs = {x};
  op.output = y;
  op.constant_first = true;
  op.weight = Tensor(DType::kInt8, c_shape);
  for (int64_t i = 0; i < op.weight.numel(); ++i) op.weight.data<int8_t>()[i] = static_cast<int8_t>(b.uniform(-128, 127));
  const ref::QuantParams &qx = b.graph().values[x].q, &qy = b.graph().values[y].q;
  op.add = math::make_add_params(0.09, 7, qx.scale, qx.zero_point, qy.scale, qy.zero_point, -100, 120);
  b.graph().ops.push_back(std::move(op));
}

}  // namespace

/// Broadcast either way, resident on warboy and tiled over rows on a 2 KiB SRAM.
TEST(ConstantMinusValue, MatchesRunInt8ResidentAndTiled) {
  struct Case {
    Shape x, c, y;
  } cases[] = {{{2, 4, 3, 5}, {4, 1, 1}, {2, 4, 3, 5}}, {{1, 1, 3}, {2, 3, 1}, {1, 2, 3, 3}},
               {{3, 6}, {3, 6}, {3, 6}}, {{2, 37, 40}, {40}, {2, 37, 40}}, {{1, 40, 1}, {3, 1, 33}, {1, 3, 40, 33}}};
  uint32_t seed = 60;
  for (const Case& c : cases)
    for (const compiler::Target& t : {compiler::Target::from_name("warboy"), small_target(512)}) {
      const std::string what = shape_str(c.c) + " - " + shape_str(c.x) + " on " + t.name;
      GraphBuilder b(seed++);
      const int x = b.input("x", c.x, 0.05f, -3);
      const int y = b.value("y", c.y, 0.1f, 4);
      constant_minus(b, "c_minus_x", x, c.c, y);
      b.output(y, "y");
      const isa::Program p = compile_npu(b.graph(), t).program;
      ASSERT_EQ(count(p, isa::Opcode::kBinary) >= 1, true) << what;
      for (const isa::Instruction& i : p.instructions)
        if (i.opcode == isa::Opcode::kBinary) {
          EXPECT_EQ(i.binary.op, static_cast<uint8_t>(isa::BinaryOp::kSub)) << what;
        }
      expect_runs_like_reference(p, b.graph(), b.random_inputs(), what);
      if (t.name == "small" && shape_numel(b.graph().values[y].shape) > 2048) {
        EXPECT_GT(count(p, isa::Opcode::kBinary), 1) << what << ": tiled";
      }
    }
}

/// The flag on anything but a one-value sub is a malformed op, named.
TEST(ConstantMinusValue, ConstantFirstOnTwoValuesIsInvalid) {
  GraphBuilder b(70);
  const int x = b.input("x", {2, 5});
  const int y = b.value("y", {2, 5});
  b.add("two_values", x, x, y).constant_first = true;
  b.graph().ops.back().kind = ref::Int8OpKind::kSub;
  b.output(y, "y");
  compiler::CompileOptions o;
  o.host_fallback = false;
  auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("two_values"), std::string::npos) << r.error().what();
}

// ---- MatMul with batch dimensions broadcast across both operands ------------------------------

/// Resident on warboy and tiled over products on a 4 KiB SRAM; the instruction count shows the
/// runs (one kMatMul per run of products whose matrices stay or advance by one).
TEST(CrossBroadcastMatMul, MatchesRunInt8ResidentAndTiled) {
  struct Case {
    Shape a, b, y;
    int runs;  ///< kMatMul instructions when resident
  } cases[] = {
      {{2, 1, 3, 5}, {1, 3, 5, 4}, {2, 3, 3, 4}, 2},         // A's matrix per row of 3 products, B advances
      {{1, 3, 3, 5}, {2, 1, 5, 4}, {2, 3, 3, 4}, 2},         // A advances, B's matrix per run
      {{2, 3, 1, 4, 7}, {1, 3, 4, 7, 5}, {2, 3, 4, 4, 5}, 6},  // [2,3,1] x [1,3,4]: 6 runs of 4
      {{4, 1, 2, 9}, {5, 9, 3}, {4, 5, 2, 3}, 4},            // ranks differ: [4,1] x [5]
      {{3, 1, 1, 6, 8}, {1, 2, 2, 8, 3}, {3, 2, 2, 6, 3}, 3},  // [3,1,1] x [1,2,2]: B's 4 matrices in one run
  };
  uint32_t seed = 80;
  for (const Case& c : cases)
    for (const compiler::Target& t : {compiler::Target::from_name("warboy"), small_target(1024)}) {
      const std::string what = shape_str(c.a) + " x " + shape_str(c.b) + " on " + t.name;
      GraphBuilder b(seed++);
      const int a = b.input("a", c.a, 0.04f, -3);
      const int bb = b.input("b", c.b, 0.06f, 5);
      const int y = b.value("y", c.y, 0.2f, 2);
      b.matmul("cross_matmul", a, bb, y);
      b.output(y, "y");
      const compiler::CompileResult r = compile_npu(b.graph(), t);
      const isa::Program& p = r.program;
      expect_runs_like_reference(p, b.graph(), b.random_inputs(), what);
      const int64_t products = shape_numel(c.y) / (c.y[c.y.size() - 2] * c.y.back());
      const uint64_t macs = static_cast<uint64_t>(products * c.y[c.y.size() - 2] * c.y.back() * c.a.back());
      ASSERT_EQ(r.layers.size(), 1u);
      EXPECT_EQ(r.layers[0].macs, macs) << what;
      if (t.name == "warboy") {
        EXPECT_EQ(count(p, isa::Opcode::kMatMul), c.runs) << what;
      }
    }
  // Tiled: 12 products of 40 x 40 outputs (19200 bytes) with both operands (1920 + 3600) on 16 KiB.
  GraphBuilder b(90);
  const int a = b.input("a", {4, 1, 40, 12}, 0.04f, -3);
  const int bb = b.input("b", {1, 3, 12, 100}, 0.06f, 5);
  const int y = b.value("y", {4, 3, 40, 100}, 0.2f, 2);
  b.matmul("tiled_cross", a, bb, y);
  b.output(y, "y");
  const isa::Program p = compile_npu(b.graph(), small_target(4096)).program;
  expect_runs_like_reference(p, b.graph(), b.random_inputs(), "tiled");
  EXPECT_GT(count(p, isa::Opcode::kDmaStore), 1);
  EXPECT_GE(count(p, isa::Opcode::kMatMul), 4);
}

// ---- MatMul tiled within a product (blocks of B's columns x blocks of A's rows) -------------------

/// B too large for SRAM with one row of A: every kind of batch layout, on a 4 KiB SRAM, against
/// run_int8 (including the cross-broadcast case whose operands do not fit whole).
TEST(MatMulColumnTiles, BTooLargeForSramIsTiledOverColumnsAndRows) {
  struct Case {
    Shape a, b, y;
  } cases[] = {
      {{1, 6, 40}, {1, 40, 300}, {1, 6, 300}},          // one product: 12 KiB of B, 6 column blocks
      {{1, 300, 40}, {40, 100}, {1, 300, 100}},         // B shared: column blocks x row blocks
      {{3, 5, 40}, {3, 40, 200}, {3, 5, 200}},          // batched products
      {{2, 1, 4, 30}, {1, 2, 30, 150}, {2, 2, 4, 150}},  // batch dims broadcast across both
      {{4, 7, 33}, {33, 257}, {4, 7, 257}},             // odd sizes
  };
  uint32_t seed = 95;
  for (const Case& c : cases) {
    const std::string what = shape_str(c.a) + " x " + shape_str(c.b);
    GraphBuilder b(seed++);
    const int a = b.input("a", c.a, 0.04f, -3);
    const int bb = b.input("b", c.b, 0.06f, 5);
    const int y = b.value("y", c.y, 0.3f, 2);
    b.matmul("wide_matmul", a, bb, y);
    b.output(y, "y");
    const compiler::Target t = small_target(1024);  // 4 KiB
    const compiler::CompileResult r = compile_npu(b.graph(), t);
    const isa::Program& p = r.program;
    expect_runs_like_reference(p, b.graph(), b.random_inputs(), what);
    EXPECT_LE(p.sram_bytes, t.sram_capacity()) << what;
    EXPECT_GT(count(p, isa::Opcode::kMatMul), 1) << what;
    for (const isa::Instruction& i : p.instructions)
      if (i.opcode == isa::Opcode::kMatMul) {
        EXPECT_LT(i.matmul.n, static_cast<uint32_t>(c.y.back())) << what << ": column blocks";
      }
    const uint64_t macs = static_cast<uint64_t>(shape_numel(c.y) * c.a.back());
    EXPECT_EQ(r.layers.at(0).macs, macs) << what;
  }
}

/// K so long that one row of A and one column of B do not fit: kUnsupported naming the node,
/// and with host fallback the op runs on the host.
TEST(MatMulColumnTiles, ARowAndAColumnThatDoNotFitGoToTheHost) {
  GraphBuilder b(91);
  const int a = b.input("a", {1, 2, 3000}, 0.04f, -3);
  const int bb = b.input("b", {1, 3000, 3}, 0.06f, 5);
  const int y = b.value("y", {1, 2, 3}, 0.2f, 2);
  b.matmul("long_k", a, bb, y);
  b.output(y, "y");
  compiler::CompileOptions o;
  o.target = small_target(1024);  // 4 KiB: 3000 + 3000 bytes do not fit
  o.host_fallback = false;
  auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("long_k"), std::string::npos) << r.error().what();
  o.host_fallback = true;
  const compiler::CompileResult h = compiler::compile_graph(b.graph(), o).value();
  ASSERT_EQ(h.placement.size(), 1u);
  EXPECT_EQ(h.placement[0].runs_on, "host");
}

// ---- double-buffered data-movement tiles -------------------------------------------------------

namespace {

/// Whether, in the cost model's schedule, some kCopy of the layer runs while one of its kDmaLoads runs.
bool copies_overlap_loads(const compiler::CompileResult& r, const std::string& layer) {
  const isa::Program& p = r.program;
  const std::vector<uint64_t> finish = compiler::schedule_cycles(p, r.target);
  for (const compiler::LayerReport& l : r.layers) {
    if (l.node != layer) continue;
    const size_t first = l.first_instruction, last = l.first_instruction + l.instructions;
    for (size_t i = first; i < last; ++i) {
      if (p.instructions[i].opcode != isa::Opcode::kCopy) continue;
      const uint64_t c1 = finish[i], c0 = c1 - compiler::instruction_cycles(p.instructions[i], r.target);
      for (size_t j = first; j < last; ++j) {
        if (p.instructions[j].opcode != isa::Opcode::kDmaLoad) continue;
        const uint64_t l1 = finish[j], l0 = l1 - compiler::instruction_cycles(p.instructions[j], r.target);
        if (l0 < c1 && c0 < l1) return true;
      }
    }
  }
  return false;
}

}  // namespace

/// A transpose, a concat and a pad too big for a 16 KiB SRAM: tiled over the outermost axis with
/// two buffer sets, bit-exact, and the schedule overlaps the transpose's loads with its copies
/// (one move: only the prefetch of the next tile can overlap). On a 2 KiB SRAM, which holds one
/// row's buffers but not two sets, the transpose runs unpipelined: no overlap.
TEST(MovementDoubleBuffering, TilesAlternateBuffersAndOverlapLoadsWithCopies) {
  GraphBuilder b(100);
  const int x0 = b.input("x0", {24, 6, 8, 16}, 0.04f, -5);  // 768-byte rows, 18 KiB
  const int x1 = b.input("x1", {24, 2, 8, 16}, 0.07f, 11);
  const int tr = b.value("tr", {24, 8, 6, 16}, 0.04f, -5);
  const int cat = b.value("cat", {24, 8, 8, 16}, 0.06f, 2);
  const int pd = b.value("pd", {27, 8, 9, 16}, 0.06f, 2);
  b.transpose("tr", x0, tr, {0, 2, 1, 3});
  b.concat("cat", {x0, x1}, cat, 1);
  b.pad("pd", cat, pd, {2, 0, 1, 0}, -4);
  b.output(tr, "tr");
  b.output(pd, "pd");
  const compiler::Target roomy = small_target(4096);  // 16 KiB: several rows per tile, two sets
  const compiler::CompileResult r = compile_npu(b.graph(), roomy);
  const isa::Program& p = r.program;
  expect_runs_like_reference(p, b.graph(), b.random_inputs(), "double-buffered");
  EXPECT_LE(p.sram_bytes, roomy.sram_capacity());
  EXPECT_GT(count(p, isa::Opcode::kDmaStore), 3 * 2);
  EXPECT_TRUE(copies_overlap_loads(r, "tr"));
  EXPECT_TRUE(copies_overlap_loads(r, "pd"));
  uint64_t serial = 0;
  for (const isa::Instruction& i : p.instructions) serial += compiler::instruction_cycles(i, roomy);
  EXPECT_LT(r.est_cycles, serial);

  // tr's row: 768 input + 768 output bytes; two sets (3 KiB) do not fit 2 KiB, one does.
  GraphBuilder t(101);
  const int tx = t.input("x0", {24, 6, 8, 16}, 0.04f, -5);
  const int ty = t.value("tr", {24, 8, 6, 16}, 0.04f, -5);
  t.transpose("tr", tx, ty, {0, 2, 1, 3});
  t.output(ty, "tr");
  const compiler::CompileResult one = compile_npu(t.graph(), small_target(512));
  expect_runs_like_reference(one.program, t.graph(), t.random_inputs(), "one buffer set");
  EXPECT_EQ(count(one.program, isa::Opcode::kCopy), 24);
  EXPECT_FALSE(copies_overlap_loads(one, "tr"));
}
