// kResize compiled and run by the test interpreter against ref::run_int8: QDQ models through
// lower_qdq (the taps are lower_qdq's), every nearest mode and bilinear, random shapes with odd
// sizes, upsampling by 2 and by non-integer scales, downsampling; resident and tiled over planes
// (a target with little SRAM); a plane that does not fit goes to the host.
#include <gtest/gtest.h>

#include <random>

#include "../reference/resize_model_for_tests.h"
#include "anvil/compiler/compiler.h"
#include "isa_interpreter_for_tests.h"
#include "lowering_check_for_tests.h"

using namespace anvil;
using anvil::test::ActParams;
using anvil::test::ResizeCase;

namespace {

compiler::Target tiny_target() {
  compiler::Target t = compiler::Target::from_name("warboy");
  t.name = "tiny";  // 4 slices x 1 KiB: the larger cases below are tiled
  t.slices_per_pe = 4;
  t.sram_per_slice = 1024;
  return t;
}

int count(const isa::Program& p, isa::Opcode op) {
  int n = 0;
  for (const isa::Instruction& i : p.instructions) n += i.opcode == op;
  return n;
}

/// The lowered graph of case `c` with input parameters `x` and output parameters `y`.
ref::Int8Graph resize_graph(const ResizeCase& c, ref::QuantParams x, ref::QuantParams y) {
  const ActParams p{{"x", x}, {"y", y}};
  auto g = ref::lower_qdq(anvil::test::resize_model(c)(p), c.in[0]);
  if (!g.ok()) ADD_FAILURE() << g.error().what();
  return g.value();
}

TensorMap random_input(const ref::Int8Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  Tensor t(DType::kInt8, g.values[g.inputs[0]].shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int8_t>()[i] = static_cast<int8_t>(d(rng));
  return {{g.input_names[0], t}};
}

/// Compiles for `target`, runs the interpreter and run_int8: equal bytes, no unordered conflicts.
isa::Program expect_matches_reference(const ref::Int8Graph& g, const compiler::Target& target, uint32_t seed) {
  compiler::CompileOptions o;
  o.target = target;
  auto compiled = compiler::compile_graph(g, o);
  EXPECT_TRUE(compiled.ok()) << compiled.error().what();
  if (!compiled.ok()) return {};
  const isa::Program& p = compiled->program;
  anvil::testing::expect_program_matches(p, g, random_input(g, seed), "on " + target.name);
  return p;
}

}  // namespace

TEST(ResizeLowering, EveryModeMatchesRunInt8ResidentAndTiled) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> nc(1, 3), hw(1, 11);
  const std::vector<std::vector<float>> scales = {{2.0f, 2.0f}, {1.5f, 2.7f}, {0.5f, 0.7f}, {1.0f, 3.0f}};
  struct Mode {
    const char* mode;
    const char* transform;
    const char* nearest;
  };
  const std::vector<Mode> modes = {{"nearest", "half_pixel", "round_prefer_floor"},
                                   {"nearest", "asymmetric", "floor"},
                                   {"nearest", "align_corners", "round_prefer_ceil"},
                                   {"nearest", "tf_half_pixel_for_nn", "floor"},
                                   {"nearest", "pytorch_half_pixel", "round_prefer_floor"},
                                   {"linear", "half_pixel", "round_prefer_floor"},
                                   {"linear", "align_corners", "round_prefer_floor"},
                                   {"linear", "pytorch_half_pixel", "round_prefer_floor"},
                                   {"linear", "asymmetric", "round_prefer_floor"}};
  uint32_t seed = 1;
  for (const Mode& m : modes)
    for (const auto& s : scales) {
      ResizeCase c;
      c.in = {nc(rng), nc(rng), hw(rng) + 1, hw(rng) + 1};
      c.mode = m.mode, c.transform = m.transform, c.nearest_mode = m.nearest;
      c.scales = {1.0f, 1.0f, s[0], s[1]};
      // Output parameters differ in every other case (an ONNX Runtime model): requantized.
      const ref::QuantParams x{0.04f, -5}, y = seed % 2 ? ref::QuantParams{0.04f, -5} : ref::QuantParams{0.05f, 3};
      const ref::Int8Graph g = resize_graph(c, x, y);
      const isa::Program p = expect_matches_reference(g, compiler::Target::from_name("warboy"), seed);
      EXPECT_EQ(count(p, isa::Opcode::kResize), 1) << "resident: one instruction";
      expect_matches_reference(g, tiny_target(), seed);
      ++seed;
    }
  // Sizes with odd targets.
  ResizeCase c;
  c.in = {1, 3, 7, 5};
  c.mode = "linear";
  c.sizes = {1, 3, 13, 3};
  expect_matches_reference(resize_graph(c, {0.03f, 10}, {0.03f, 10}), compiler::Target::from_name("warboy"), 99);
}

TEST(ResizeLowering, LargerThanSramIsTiledOverPlanes) {
  // 2 x 6 planes of 15 x 17 -> 30 x 34 (12 KiB out): larger than the tiny target's 4 KiB SRAM,
  // one plane (255 + 1020 bytes and 64 taps) fits.
  ResizeCase c;
  c.in = {2, 6, 15, 17};
  c.mode = "linear";
  c.scales = {1.0f, 1.0f, 2.0f, 2.0f};
  const ref::Int8Graph g = resize_graph(c, {0.02f, 0}, {0.02f, 0});
  const isa::Program p = expect_matches_reference(g, tiny_target(), 7);
  EXPECT_GT(count(p, isa::Opcode::kResize), 1) << "tiled: several instructions";
}

TEST(ResizeLowering, APlaneLargerThanSramGoesToTheHost) {
  ResizeCase c;
  c.in = {1, 1, 40, 40};
  c.scales = {1.0f, 1.0f, 2.0f, 2.0f};  // one 80 x 80 output plane: 6400 bytes > 4 KiB
  const ref::Int8Graph g = resize_graph(c, {0.02f, 0}, {0.02f, 0});
  compiler::CompileOptions o;
  o.target = tiny_target();
  o.host_fallback = false;
  auto r = compiler::compile_graph(g, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(r.error().what()).find("'resize'"), std::string::npos) << r.error().what();
  o.host_fallback = true;
  auto h = compiler::compile_graph(g, o);
  ASSERT_TRUE(h.ok()) << h.error().what();
  EXPECT_EQ(count(h->program, isa::Opcode::kResize), 0);
  ASSERT_EQ(h->program.segments.size(), 1u);  // the Resize runs in a host segment
}

TEST(ResizeLowering, InconsistentTapsAreRejectedNamingTheNode) {
  ResizeCase c;
  c.in = {1, 2, 4, 4};
  c.scales = {1.0f, 1.0f, 2.0f, 2.0f};
  ref::Int8Graph g = resize_graph(c, {0.02f, 0}, {0.02f, 0});
  g.ops[0].resize_cols[3].first = 4;  // the input is 4 wide
  compiler::CompileOptions o;
  o.host_fallback = false;
  auto r = compiler::compile_graph(g, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("resize"), std::string::npos) << r.error().what();
}
