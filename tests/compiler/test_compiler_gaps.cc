// Compiler gaps closed in the second round of issue 6, each compiled and run by the test
// interpreter against ref::run_int8, bit for bit:
//   graph outputs that share bytes with a graph input or another output (DramPlan::io_copies),
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "cost_model.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"

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
  anvil::testing::InterpreterRun run;
  const TensorMap got = anvil::testing::run_program_for_tests(p, inputs, &run);
  const TensorMap want = ref::run_int8(g, inputs).value();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << what << ": output " << name;
  const auto races = anvil::testing::find_unordered_conflicts(p, run);
  EXPECT_TRUE(races.empty()) << what << ": " << races.size() << " unordered conflicts, first: " << races.front();
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
