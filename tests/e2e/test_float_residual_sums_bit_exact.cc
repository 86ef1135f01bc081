// End to end for QuantizeOptions::float_residual_sums: a residual Add whose output both a LayerNorm
// (float, host) and a quantized Add read. The residual Add runs in float on the host with the
// LayerNorm, on its two int8 operands, and gives the int8 Add after it QuantizeLinear of the sum.
// The emulator's int8 outputs equal ref::run_int8's bit for bit.
#include <gtest/gtest.h>

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

/// x [N, 8] -> h = MatMul(x, W); a = Add(h, x); n = LayerNorm(a) (nine nodes); z = Add(a, n).
onnx::ModelProto residual_layer_norm() {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 8});
  b.initializer("W", random_tensor({8, 8}, -0.3f, 0.3f, 71));
  b.initializer("two", Tensor::from_vector<float>({1}, {2.0f}));
  b.initializer("eps", Tensor::from_vector<float>({1}, {1e-5f}));
  b.initializer("gamma", random_tensor({8}, 0.5f, 1.5f, 72));
  b.initializer("beta", random_tensor({8}, -0.5f, 0.5f, 73));
  b.node("MatMul", {"x", "W"}, {"h"}, "matmul");
  b.node("Add", {"h", "x"}, {"a"}, "residual");
  ModelBuilder::attr(b.node("ReduceMean", {"a"}, {"m"}, "ln_mean"), "axes", std::vector<int64_t>{-1});
  b.node("Sub", {"a", "m"}, {"d"}, "ln_sub");
  b.node("Pow", {"d", "two"}, {"p"}, "ln_pow");
  ModelBuilder::attr(b.node("ReduceMean", {"p"}, {"var"}, "ln_var"), "axes", std::vector<int64_t>{-1});
  b.node("Add", {"var", "eps"}, {"ve"}, "ln_eps");
  b.node("Sqrt", {"ve"}, {"sd"}, "ln_sqrt");
  b.node("Div", {"d", "sd"}, {"nn"}, "ln_div");
  b.node("Mul", {"nn", "gamma"}, {"g"}, "ln_gamma");
  b.node("Add", {"g", "beta"}, {"n"}, "ln_beta");
  b.node("Add", {"a", "n"}, {"z"}, "after");
  b.output("z");
  return b.model();
}

TEST(FloatResidualSumsBitExact, TheResidualAddRunsWithTheLayerNormOnTheHostOnItsInt8Operands) {
  quant::QuantizeOptions options;
  options.float_residual_sums = true;
  const onnx::ModelProto qmodel =
      quant::quantize_model(residual_layer_norm(), random_tensor({32, 8}, -2.0f, 2.0f, 74), options).value();
  const int64_t batch = 2;
  ref::LowerOptions lower;
  lower.host_fallback = true;  // the LayerNorm has no integer form
  const ref::Int8Graph golden = ref::lower_qdq(qmodel, batch, lower).value();
  int adds = 0, host_ops = 0;
  for (const ref::Int8Op& op : golden.ops) {
    adds += op.kind == ref::Int8OpKind::kAdd;
    host_ops += op.kind == ref::Int8OpKind::kHost;
  }
  EXPECT_EQ(adds, 1);  // "after"; the residual Add is in a host op with the LayerNorm
  EXPECT_GE(host_ops, 1);

  compiler::CompileOptions copt;
  copt.target = compiler::Target::from_name("warboy");
  copt.batch = batch;
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  ASSERT_EQ(compiled.program.segments.size(), 3u);  // NPU (MatMul), host (residual Add, LayerNorm), NPU
  EXPECT_EQ(compiled.program.segments[0].kind, isa::SegmentKind::kNpu);
  EXPECT_EQ(compiled.program.segments[1].kind, isa::SegmentKind::kHost);
  EXPECT_EQ(compiled.program.segments[1].inputs.size(), 2u);  // the Add's int8 operands h and x
  bool residual_on_host = false, after_on_npu = false;
  for (const compiler::NodePlacement& p : compiled.placement) {
    residual_on_host = residual_on_host || (p.node == "residual" && p.runs_on == "host");
    after_on_npu = after_on_npu || (p.node == "after" && p.runs_on == "npu");
  }
  EXPECT_TRUE(residual_on_host);
  EXPECT_TRUE(after_on_npu);

  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, compiled.program);
  for (uint32_t seed = 0; seed < 3; ++seed) {
    const Tensor x = random_tensor({batch, 8}, -2.0f, 2.0f, 100 + seed);
    const auto [got, want] = test::run_npu_and_golden(session, compiled.program, golden, x);
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_TRUE(got == want) << "input seed " << seed;
  }
}

}  // namespace
