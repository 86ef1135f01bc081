// ConvTranspose (zero-inserting kPad + kConv) and Pad edge / reflect (kCopy with stride-0 and
// negative strides) through the whole platform (SystemC model), bit for bit against ref::run_int8.
#include <gtest/gtest.h>

#include "../compiler/graph_builder_for_tests.h"
#include "../reference/conv_transpose_models_for_tests.h"
#include "anvil/compiler/compiler.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"

namespace anvil {
namespace {

void expect_bit_exact(const ref::Int8Graph& g, const TensorMap& inputs) {
  compiler::CompileOptions o;
  o.host_fallback = false;  // every op on the NPU
  const compiler::CompileResult compiled = compiler::compile_graph(g, o).value();
  rt::Device dev = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(dev, compiled.program);
  const TensorMap got = session.run(inputs);
  const TensorMap want = ref::run_int8(g, inputs).value();
  for (const auto& [name, t] : want) EXPECT_TRUE(got.at(name) == t) << name;
}

TEST(PlatformConvTranspose, StrideTwoGroupedConvTransposeIsBitExact) {
  test::ConvTransposeCase c = test::undilated_conv_transpose({2, 4, 7, 6}, 6, {3, 4}, {2, 3}, {1, 2, 1, 1}, {1, 0}, 2);
  c.relu = true;
  const TensorMap fl{{"x", test::random_tensor(c.x, -1.0f, 1.5f, 9)}};
  const ref::Int8Graph g = ref::lower_qdq(test::conv_transpose_model(c, fl), 2).value();
  expect_bit_exact(g, {{"x", ref::quantize_tensor(fl.at("x"), g.values[g.inputs[0]].q)}});
}

TEST(PlatformConvTranspose, EdgeAndReflectPadsAreBitExact) {
  testing::GraphBuilder b(31);
  const int x = b.input("x", {2, 3, 5, 7}, 0.04f, -5);
  const int edge = b.value("edge", {2, 3, 8, 10}, 0.04f, -5);
  const int refl = b.value("refl", {2, 3, 12, 14}, 0.05f, 3);  // requantizing copies
  b.pad("edge", x, edge, {0, 0, 2, 1}, 0).pad_mode = ref::PadMode::kEdge;
  b.pad("refl", edge, refl, {0, 0, 3, 2}, 0).pad_mode = ref::PadMode::kReflect;
  b.output(edge, "edge");
  b.output(refl, "refl");
  expect_bit_exact(b.graph(), b.random_inputs());
}

}  // namespace
}  // namespace anvil
