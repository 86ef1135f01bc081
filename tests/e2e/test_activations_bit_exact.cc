// End to end for the lookup-table activations: small FP32 models Conv -> activation, quantized by
// anvil's quantizer, compiled, and run on the SystemC model through the runtime, give int8 outputs
// equal bit for bit to ref::run_int8; the activation is one kLut on the NPU (no host fallback).
#include <gtest/gtest.h>

#include <set>

#include "../reference/qdq_builder.h"
#include "anvil/compiler/compiler.h"
#include "anvil/hw/config.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"
#include "bit_exact_for_tests.h"

using namespace anvil;
using anvil::test::ModelBuilder;
using anvil::test::random_tensor;

namespace {

struct Case {
  const char* activation;  ///< an ONNX op, or "SiLU" = Mul(c, Sigmoid(c)), "HardSwishMul" = Mul(c, HardSigmoid(c))
  const char* target;
  int64_t batch;
};

/// x [N, 3, 10, 10] -> Conv 3x3 (8 channels, pad 1, bias) -> activation -> y.
onnx::ModelProto conv_activation_model(const std::string& activation) {
  ModelBuilder b(14);  // HardSwish is opset 14
  b.input("x", DType::kFloat32, {-1, 3, 10, 10});
  b.initializer("w", random_tensor({8, 3, 3, 3}, -0.5f, 0.5f, 11));
  b.initializer("b", random_tensor({8}, -0.3f, 0.3f, 12));
  auto& conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  ModelBuilder::attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  if (activation == "SiLU" || activation == "HardSwishMul") {
    b.node(activation == "SiLU" ? "Sigmoid" : "HardSigmoid", {"c"}, {"g"}, "gate");
    b.node("Mul", {"c", "g"}, {"y"}, "mul");
  } else {
    auto& act = b.node(activation, {"c"}, {"y"}, "act");
    if (activation == "LeakyRelu") ModelBuilder::attr(act, "alpha", 0.1f);
  }
  b.output("y");
  return b.model();
}

class ActivationBitExact : public ::testing::TestWithParam<Case> {};

TEST_P(ActivationBitExact, EmulatorEqualsReferenceAndTheActivationIsALut) {
  const Case c = GetParam();
  const onnx::ModelProto qmodel =
      quant::quantize_model(conv_activation_model(c.activation), random_tensor({16, 3, 10, 10}, -2.0f, 2.0f, 1), {})
          .value();
  const ref::Int8Graph golden = ref::lower_qdq(qmodel, c.batch).value();
  ASSERT_EQ(golden.ops.size(), 2u);
  EXPECT_EQ(golden.ops[0].kind, ref::Int8OpKind::kConv);
  EXPECT_EQ(golden.ops[1].kind, ref::Int8OpKind::kLut);

  compiler::CompileOptions copt;
  copt.target = compiler::Target::from_name(c.target);
  copt.batch = c.batch;
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  int luts = 0;
  for (const isa::Instruction& i : compiled.program.instructions) luts += i.opcode == isa::Opcode::kLut;
  EXPECT_EQ(luts, 1);
  ASSERT_EQ(compiled.layers.size(), 2u);
  EXPECT_EQ(compiled.layers[1].op, "lut");

  rt::Device device = rt::Device::open(c.target == std::string("warboy") ? "warboy(1)*1" : "npu0pe0-1",
                                       hw::HwConfig::preset(c.target));
  rt::Session session(device, compiled.program);
  for (uint32_t seed = 0; seed < 3; ++seed) {
    // Wider than the calibration range, so both saturated ends of the tables are exercised.
    const Tensor x = random_tensor({c.batch, 3, 10, 10}, -4.0f, 4.0f, 100 + seed);
    const auto [got, want] = test::run_npu_and_golden(session, compiled.program, golden, x);
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_TRUE(got == want) << c.activation << " on " << c.target << ", input seed " << seed;
    std::set<int8_t> levels(got.data<int8_t>(), got.data<int8_t>() + got.numel());
    EXPECT_GT(levels.size(), 30u) << "the activation's output should span many int8 levels";
  }
}

TEST(ElementwiseChainBitExact, GeluAndAScaledActivationRunOnTheNpuAsTables) {
  // Conv -> GELU as torch exports it, 0.5 * c * (1 + erf(c / sqrt 2)), and c / 4 beside it. The
  // quantizer leaves Div and Erf float; the lowering makes Div -> Erf one table and c / 4 another,
  // so nothing runs on the host.
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 3, 10, 10});
  b.initializer("w", random_tensor({8, 3, 3, 3}, -0.5f, 0.5f, 21));
  b.initializer("b", random_tensor({8}, -0.3f, 0.3f, 22));
  b.initializer("sqrt2", Tensor::scalar<float>(1.4142135f)).initializer("one", Tensor::scalar<float>(1.0f));
  b.initializer("half", Tensor::scalar<float>(0.5f)).initializer("four", Tensor::scalar<float>(4.0f));
  auto& conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  ModelBuilder::attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("Div", {"c", "sqrt2"}, {"d"}, "gelu_div");
  b.node("Erf", {"d"}, {"e"}, "gelu_erf");
  b.node("Add", {"e", "one"}, {"a"}, "gelu_add");
  b.node("Mul", {"c", "a"}, {"m"}, "gelu_mul");
  b.node("Mul", {"m", "half"}, {"y"}, "gelu_half");
  b.node("Div", {"c", "four"}, {"z"}, "scale");
  b.output("y").output("z");
  const onnx::ModelProto qmodel =
      quant::quantize_model(b.model(), random_tensor({16, 3, 10, 10}, -2.0f, 2.0f, 2), {}).value();
  const int64_t batch = 2;
  const ref::Int8Graph golden = ref::lower_qdq(qmodel, batch).value();  // no host fallback
  int tables = 0;
  for (const ref::Int8Op& op : golden.ops) tables += op.kind == ref::Int8OpKind::kLut;
  EXPECT_EQ(tables, 2);

  compiler::CompileOptions copt;
  copt.batch = batch;
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  ASSERT_FALSE(compiled.placement.empty());
  for (const compiler::NodePlacement& node : compiled.placement) EXPECT_EQ(node.runs_on, "npu") << node.node;
  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, compiled.program);
  const isa::TensorDesc& in = compiled.program.inputs.at(0);
  for (uint32_t seed = 0; seed < 3; ++seed) {
    const Tensor q = ref::quantize_tensor(random_tensor({batch, 3, 10, 10}, -4.0f, 4.0f, 200 + seed),
                                          {in.scale, in.zero_point});
    const auto got = session.run({{in.name, q}});
    const auto want = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value();
    ASSERT_EQ(compiled.program.outputs.size(), 2u);
    for (const isa::TensorDesc& out : compiled.program.outputs)
      EXPECT_TRUE(got.at(out.name) == want.at(out.name)) << out.name << ", input seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, ActivationBitExact,
                         ::testing::Values(Case{"Sigmoid", "warboy", 2}, Case{"Tanh", "warboy", 2},
                                           Case{"HardSigmoid", "warboy", 2}, Case{"HardSwish", "warboy", 2},
                                           Case{"LeakyRelu", "warboy", 2}, Case{"SiLU", "warboy", 2},
                                           Case{"HardSwishMul", "warboy", 1}, Case{"SiLU", "warboy-2pe", 4}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.activation) + "_" + info.param.target;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
