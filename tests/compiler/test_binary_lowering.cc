// Broadcasting Add/Sub/Mul (kBinary) compiled and run by the test interpreter against
// ref::run_int8, resident and tiled, with the refusals that send the op to the host.
#include <gtest/gtest.h>

#include "anvil/compiler/compiler.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

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

/// out = a (kind) b with the values' parameters; b < 0: the second operand is a random int8
/// constant of `const_shape`.
ref::Int8Op& binary(GraphBuilder& g, ref::Int8OpKind kind, const std::string& node, int a, int b, int out,
                    const Shape& const_shape = {}) {
  ref::Int8Op op;
  op.kind = kind;
  op.node = node;
  op.inputs = {a};
  op.output = out;
  ref::QuantParams qb{0.04f, 11};
  if (b >= 0) {
    op.inputs.push_back(b);
    qb = g.graph().values[b].q;
  } else {
    op.weight = Tensor(DType::kInt8, const_shape);
    for (int64_t i = 0; i < op.weight.numel(); ++i) op.weight.data<int8_t>()[i] = static_cast<int8_t>(g.uniform(-128, 127));
  }
  const auto &qa = g.graph().values[a].q, &qo = g.graph().values[out].q;
  if (kind == ref::Int8OpKind::kMul) {
    op.mul = math::make_mul_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, qo.scale, qo.zero_point, -100, 120);
  } else {
    op.add = math::make_add_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, qo.scale, qo.zero_point, -100, 120);
  }
  g.graph().ops.push_back(std::move(op));
  return g.graph().ops.back();
}

/// Interpreter run of the compiled program equals run_int8 on random inputs, with no unordered
/// conflicting accesses.
void expect_matches_reference(GraphBuilder& b, const compiler::Target& target, const std::string& what) {
  compiler::CompileOptions o;
  o.target = target;
  o.host_fallback = false;
  auto compiled = compiler::compile_graph(b.graph(), o);
  ASSERT_TRUE(compiled.ok()) << what << ": " << compiled.error().what();
  const isa::Program& p = compiled->program;
  EXPECT_GT(count(p, isa::Opcode::kBinary), 0) << what;
  anvil::testing::expect_program_matches(p, b.graph(), b.random_inputs(), what + " on " + target.name);
}

struct Case {
  Shape a, b, out;
  bool constant;  ///< b is a constant
};

}  // namespace

TEST(BinaryLowering, BroadcastShapesMatchRunInt8ResidentAndTiled) {
  const Case cases[] = {
      {{2, 3, 5, 7}, {1}, {2, 3, 5, 7}, false},             // scalar
      {{2, 3, 5, 7}, {}, {2, 3, 5, 7}, true},               // rank-0 constant
      {{2, 6, 5, 7}, {6, 1, 1}, {2, 6, 5, 7}, true},        // per-channel [C,1,1] (a scale or gamma)
      {{2, 6, 5, 7}, {6, 1, 1}, {2, 6, 5, 7}, false},
      {{1, 13, 33}, {33}, {1, 13, 33}, true},               // trailing dims (LayerNorm gamma)
      {{2, 1, 9, 1}, {1, 5, 1, 11}, {2, 5, 9, 11}, false},  // both operands broadcast
      {{3, 1, 7}, {3, 5, 7}, {3, 5, 7}, false},             // the first operand broadcast
      {{5, 3, 1}, {1, 3, 4}, {5, 3, 4}, false},
      {{2, 3, 5, 7}, {2, 3, 5, 7}, {2, 3, 5, 7}, false},    // equal shapes (Sub/Mul take kBinary too)
      {{7, 1, 3, 1, 5}, {7, 4, 3, 1, 5}, {7, 4, 3, 1, 5}, false},  // rank 5 that merges to 3 dims
  };
  uint32_t seed = 100;
  for (const Case& c : cases)
    for (ref::Int8OpKind kind : {ref::Int8OpKind::kAdd, ref::Int8OpKind::kSub, ref::Int8OpKind::kMul}) {
      if (kind == ref::Int8OpKind::kAdd && !c.constant && c.a == c.b) continue;  // kAdd, tested elsewhere
      GraphBuilder b(seed++);
      const int a = b.input("a", c.a, 0.03f, b.uniform(-20, 20));
      const int x = c.constant ? -1 : b.input("b", c.b, 0.05f, b.uniform(-20, 20));
      const int y = b.value("y", c.out, 0.06f, b.uniform(-10, 10));
      binary(b, kind, "bin", a, x, y, c.b);
      b.output(y, "y");
      const std::string what = std::string(ref::int8_op_name(kind)) + " " + shape_str(c.a) + " " + shape_str(c.b);
      expect_matches_reference(b, compiler::Target::from_name("warboy"), what);
      for (uint64_t sram : {512u, 1024u, 4096u}) {
        compiler::CompileOptions o;
        o.target = sram_target(sram);
        o.host_fallback = false;
        auto r = compiler::compile_graph(b.graph(), o);
        if (!r.ok()) {  // a row with a whole broadcast operand may not fit the smallest SRAM
          EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported) << r.error().what();
          EXPECT_NE(std::string(r.error().what()).find("'bin'"), std::string::npos) << r.error().what();
          continue;
        }
        EXPECT_LE(r->program.sram_bytes, sram);
        expect_matches_reference(b, o.target, what + " in " + std::to_string(sram) + " B");
      }
    }
}

TEST(BinaryLowering, TiledRowsDoubleBufferAndLoadABroadcastOperandOnce) {
  GraphBuilder b(7);
  const int a = b.input("a", {1, 40, 97}, 0.03f, 3);
  const int y = b.value("y", {1, 40, 97}, 0.02f, -4);
  binary(b, ref::Int8OpKind::kMul, "gamma", a, -1, y, {97});
  b.output(y, "y");
  compiler::CompileOptions o;
  o.target = sram_target(1024);
  const isa::Program p = compiler::compile_graph(b.graph(), o).value().program;
  EXPECT_GT(count(p, isa::Opcode::kBinary), 3);
  int const_loads = 0;
  for (const auto& i : p.instructions)
    const_loads += i.opcode == isa::Opcode::kDmaLoad && i.dma.region == static_cast<uint8_t>(isa::Region::kConst);
  EXPECT_EQ(const_loads, 1);  // the [97] gamma, shared by every row tile
  expect_matches_reference(b, o.target, "gamma");
}

TEST(BinaryLowering, RandomBroadcastShapesMatchRunInt8) {
  int refused = 0;
  for (uint32_t seed = 200; seed < 230; ++seed) {
    GraphBuilder b(seed);
    const int rank = b.uniform(1, 4);
    Shape out, sa, sb;
    for (int d = 0; d < rank; ++d) out.push_back(b.uniform(1, 9));
    for (int d = 0; d < rank; ++d) {
      const int pick = b.uniform(0, 2);  // 0: both full, 1: a broadcast, 2: b broadcast
      sa.push_back(pick == 1 ? 1 : out[d]);
      sb.push_back(pick == 2 ? 1 : out[d]);
    }
    sb.erase(sb.begin(), sb.begin() + b.uniform(0, rank - 1));  // b right-aligned with fewer dims
    const int pick = b.uniform(0, 2);
    const ref::Int8OpKind kind = pick == 0 ? ref::Int8OpKind::kAdd : pick == 1 ? ref::Int8OpKind::kSub : ref::Int8OpKind::kMul;
    const bool constant = b.uniform(0, 1) == 1;
    const int a = b.input("a", sa, 0.03f, b.uniform(-128, 127));
    const int x = constant ? -1 : b.input("b", sb, 0.05f, b.uniform(-128, 127));
    const int y = b.value("y", out, 0.02f + 0.001f * b.uniform(0, 100), b.uniform(-128, 127));
    binary(b, kind, "bin", a, x, y, sb);
    b.output(y, "y");
    const std::string what = "seed " + std::to_string(seed) + " " + shape_str(sa) + " " + shape_str(sb);
    if (kind == ref::Int8OpKind::kAdd && !constant && sa == sb) continue;
    expect_matches_reference(b, compiler::Target::from_name("warboy"), what);
    compiler::CompileOptions o;
    o.target = sram_target(256);
    o.host_fallback = false;
    if (!compiler::compile_graph(b.graph(), o).ok()) {  // an operand broadcast along the outer rows is loaded whole
      ++refused;
      continue;
    }
    expect_matches_reference(b, o.target, what + " tiled");
  }
  EXPECT_LT(refused, 10);
}

TEST(BinaryLowering, EqualShapeAddStillEmitsKAdd) {
  GraphBuilder b(3);
  const int a = b.input("a", {2, 3, 4, 5}), c = b.input("c", {2, 3, 4, 5}, 0.07f, 2);
  const int y = b.value("y", {2, 3, 4, 5}, 0.09f, 1);
  b.add("add", a, c, y);
  b.output(y, "y");
  const isa::Program p = compiler::compile_graph(b.graph(), {}).value().program;
  EXPECT_EQ(count(p, isa::Opcode::kAdd), 1);
  EXPECT_EQ(count(p, isa::Opcode::kBinary), 0);
}

TEST(BinaryLowering, MoreThanFourUnmergeableDimensionsGoToTheHost) {
  GraphBuilder b(4);
  const int a = b.input("a", {2, 1, 2, 1, 2}), c = b.input("c", {1, 2, 1, 2, 1});
  const int y = b.value("y", {2, 2, 2, 2, 2});
  binary(b, ref::Int8OpKind::kMul, "alternating", a, c, y);
  b.output(y, "y");
  compiler::CompileOptions o;
  o.host_fallback = false;
  const auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("'alternating'"), std::string::npos) << r.error().what();
}

TEST(BinaryLowering, OperandsThatDoNotBroadcastAreAnError) {
  GraphBuilder b(5);
  const int a = b.input("a", {2, 3}), c = b.input("c", {4});
  const int y = b.value("y", {2, 3});
  binary(b, ref::Int8OpKind::kSub, "bad_sub", a, c, y);
  b.output(y, "y");
  compiler::CompileOptions o;
  o.host_fallback = false;
  const auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("'bad_sub'"), std::string::npos) << r.error().what();
  const auto ran = ref::run_int8(b.graph(), b.random_inputs());
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(std::string(ran.error().what()).find("'bad_sub'"), std::string::npos) << ran.error().what();
}
