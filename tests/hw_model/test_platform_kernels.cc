// The hardware model's host kernels through the whole platform, against ref::run_int8 bit for
// bit: a conv whose reduction spans several exact GEMM chunks (K = 4608), with the input at its
// extremes, a kAdd long enough to take the tabulated path, broadcasting binaries, data movement,
// and the second round's compiler gaps (cross-broadcast MatMul, constant - x, aliased outputs).
#include <gtest/gtest.h>

#include "../compiler/graph_builder_for_tests.h"
#include "../reference/resize_model_for_tests.h"
#include "anvil/compiler/compiler.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"

namespace anvil {
namespace {

using testing::GraphBuilder;

void expect_bit_exact(GraphBuilder& b, const TensorMap& inputs) {
  compiler::CompileOptions o;
  const compiler::CompileResult compiled = compiler::compile_graph(b.graph(), o).value();
  rt::Device dev = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(dev, compiled.program);
  const TensorMap got = session.run(inputs);
  const TensorMap want = ref::run_int8(b.graph(), inputs).value();
  for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << name;
}

TEST(PlatformKernels, DeepConvAtTheInputExtremesIsBitExact) {
  GraphBuilder b(11);
  // zero point 127: x - zp reaches -255; the weights span [-127, 127].
  const int x = b.input("x", {1, 512, 6, 6}, 0.02f, 127);
  const int y = b.value("y", {1, 8, 6, 6}, 0.5f, 0);
  ref::Int8Op& conv = b.conv("deep", x, y, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  conv.act_min = -128;
  for (auto& m : conv.multipliers) m = math::quantize_multiplier(1e-5);
  b.output(y, "y");
  for (int8_t fill : {int8_t{-128}, int8_t{127}}) {
    Tensor t(DType::kInt8, {1, 512, 6, 6});
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int8_t>()[i] = (i % 7 == 3) ? 0 : fill;
    expect_bit_exact(b, {{"x", t}});
  }
  expect_bit_exact(b, b.random_inputs());
}

TEST(PlatformKernels, LongAddIsBitExact) {
  GraphBuilder b(12);
  const int a = b.input("a", {1, 64, 48, 48}, 0.05f, -3);  // 147 456 elements: the tabulated path
  const int c = b.input("c", {1, 64, 48, 48}, 0.03f, 9);
  const int s = b.value("s", {1, 64, 48, 48}, 0.07f, 2);
  b.add("sum", a, c, s);
  b.output(s, "s");
  expect_bit_exact(b, b.random_inputs());
}

TEST(PlatformKernels, BroadcastingBinaryOpsAreBitExact) {
  // conv -> Mul by a per-channel int8 constant -> Sub of a [1, C, 1, W] input (both operands
  // broadcast) -> Add of a scalar input, on the SystemC platform against run_int8.
  GraphBuilder b(13);
  const int x = b.input("x", {1, 8, 9, 11}, 0.03f, 4);
  const int c = b.value("c", {1, 8, 9, 11}, 0.05f, -6);
  b.conv("conv", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int m = b.value("m", {1, 8, 9, 11}, 0.04f, 3);
  ref::Int8Op mul;
  mul.kind = ref::Int8OpKind::kMul;
  mul.node = "scale";
  mul.inputs = {c};
  mul.output = m;
  mul.weight = Tensor(DType::kInt8, {8, 1, 1});
  for (int64_t i = 0; i < 8; ++i) mul.weight.data<int8_t>()[i] = static_cast<int8_t>(b.uniform(-128, 127));
  mul.mul = math::make_mul_params(0.05, -6, 0.02, 5, 0.04, 3, -128, 127);
  b.graph().ops.push_back(mul);
  const int z = b.input("z", {1, 8, 1, 11}, 0.02f, -1);
  const int d = b.value("d", {1, 8, 9, 11}, 0.06f, 0);
  ref::Int8Op sub;
  sub.kind = ref::Int8OpKind::kSub;
  sub.node = "sub";
  sub.inputs = {m, z};
  sub.output = d;
  sub.add = math::make_add_params(0.04, 3, 0.02, -1, 0.06, 0, -128, 127);
  b.graph().ops.push_back(sub);
  const int s = b.input("s", {1}, 0.1f, 2);
  const int y = b.value("y", {1, 8, 9, 11}, 0.07f, 1);
  ref::Int8Op add = sub;
  add.kind = ref::Int8OpKind::kAdd;
  add.node = "add";
  add.inputs = {d, s};
  add.output = y;
  add.add = math::make_add_params(0.06, 0, 0.1, 2, 0.07, 1, 1, 127);  // a fused ReLU
  b.graph().ops.push_back(add);
  b.output(y, "y");
  compiler::CompileOptions o;
  o.host_fallback = false;  // every op on the NPU
  const isa::Program p = compiler::compile_graph(b.graph(), o).value().program;
  int binaries = 0;
  for (const isa::Instruction& i : p.instructions) binaries += i.opcode == isa::Opcode::kBinary;
  EXPECT_EQ(binaries, 3);
  expect_bit_exact(b, b.random_inputs());
}

/// Data movement (kCopy in its three modes): Concat of two scales, Transpose, reversed Slice, Pad.
TEST(PlatformKernels, DataMovementChainIsBitExact) {
  GraphBuilder b(13);
  const int x0 = b.input("x0", {2, 3, 5, 7}, 0.04f, -5);
  const int x1 = b.input("x1", {2, 4, 5, 7}, 0.07f, 11);
  const int cat = b.value("cat", {2, 7, 5, 7}, 0.06f, 2);
  const int tr = b.value("tr", {2, 5, 7, 7}, 0.06f, 2);
  const int sl = b.value("sl", {2, 3, 7, 4}, 0.06f, 2);
  const int pd = b.value("pd", {3, 4, 8, 7}, 0.06f, 2);
  b.concat("cat", {x0, x1}, cat, 1);
  b.transpose("tr", cat, tr, {0, 2, 1, 3});
  b.slice("sl", tr, sl, {0, 4, 0, 6}, {1, -2, 1, -2});
  b.pad("pd", sl, pd, {1, 0, 1, 2}, -7);
  b.output(pd, "y");
  b.output(tr, "t");
  expect_bit_exact(b, b.random_inputs());
}

/// The second round's compiler gaps on the platform: a MatMul whose batch dimensions broadcast
/// across both operands, constant - x (the constant as kBinary's operand a), and outputs sharing
/// bytes (a value under two names, a graph input returned): copied into their own IO tensors.
TEST(PlatformKernels, CrossMatMulConstantMinusAndAliasedOutputsAreBitExact) {
  GraphBuilder b(14);
  const int a = b.input("a", {2, 1, 3, 5}, 0.04f, -3);
  const int w = b.input("w", {1, 3, 5, 4}, 0.06f, 5);
  const int mm = b.value("mm", {2, 3, 3, 4}, 0.2f, 2);
  b.matmul("cross", a, w, mm);
  const int d = b.value("d", {2, 3, 3, 4}, 0.15f, -4);
  ref::Int8Op sub;
  sub.kind = ref::Int8OpKind::kSub;
  sub.node = "c_minus";
  sub.inputs = {mm};
  sub.output = d;
  sub.constant_first = true;
  sub.weight = Tensor(DType::kInt8, {4});
  for (int64_t i = 0; i < 4; ++i) sub.weight.data<int8_t>()[i] = static_cast<int8_t>(b.uniform(-128, 127));
  sub.add = math::make_add_params(0.1, 3, 0.2, 2, 0.15, -4, -128, 127);
  b.graph().ops.push_back(sub);
  b.output(d, "d");
  b.output(d, "d_again");
  b.output(a, "a_out");
  compiler::CompileOptions o;
  o.host_fallback = false;  // every op on the NPU
  ASSERT_TRUE(compiler::compile_graph(b.graph(), o).ok());
  expect_bit_exact(b, b.random_inputs());
}

TEST(PlatformKernels, ResizeNearestAndBilinearAreBitExact) {
  // QDQ models through lower_qdq (its taps), compiled and run on the SystemC platform: nearest x2
  // with the anvil quantizer's shared parameters, bilinear by a non-integer scale requantized.
  for (const char* mode : {"nearest", "linear"}) {
    anvil::test::ResizeCase c;
    c.in = {1, 5, 9, 7};
    c.mode = mode;
    c.scales = {1.0f, 1.0f, 2.0f, mode[0] == 'n' ? 2.0f : 1.6f};
    const anvil::test::ActParams p{{"x", {0.03f, -7}}, {"y", mode[0] == 'n' ? ref::QuantParams{0.03f, -7} : ref::QuantParams{0.025f, 4}}};
    const ref::Int8Graph g = ref::lower_qdq(anvil::test::resize_model(c)(p), 1).value();
    ASSERT_EQ(g.ops.at(0).kind, ref::Int8OpKind::kResize);
    const compiler::CompileResult compiled = compiler::compile_graph(g, compiler::CompileOptions{}).value();
    int resizes = 0;
    for (const isa::Instruction& i : compiled.program.instructions) resizes += i.opcode == isa::Opcode::kResize;
    EXPECT_EQ(resizes, 1) << mode;
    Tensor x(DType::kInt8, c.in);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<int8_t>()[i] = static_cast<int8_t>((i * 73) % 256 - 128);
    rt::Device dev = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
    rt::Session session(dev, compiled.program);
    const TensorMap got = session.run({{"x", x}});
    EXPECT_TRUE(got.at("y_dq") == ref::run_int8(g, {{"x", x}}).value().at("y_dq")) << mode;
  }
}

}  // namespace
}  // namespace anvil
