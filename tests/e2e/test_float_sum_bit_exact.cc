// End to end for QuantizeOptions::float_sum_copies: a residual Add whose output both a LayerNorm
// (float, host) and a quantized Add read. The int8 Add stays on the NPU; the LayerNorm's host op
// reads the float copy of the sum of the Add's two int8 operands. The emulator's int8 outputs equal
// ref::run_int8's bit for bit.
#include <gtest/gtest.h>

#include "../reference/qdq_builder.h"
#include "anvil/compiler/compiler.h"
#include "anvil/hw/config.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"

using namespace anvil;
using anvil::test::ModelBuilder;
using anvil::test::random_tensor;

namespace {

/// x [N, 8] -> h = MatMul(x, W); a = Add(h, x); n = LayerNorm(a) (nine nodes); z = Add(a, n).
onnx::ModelProto residual_layer_norm() {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 8});
  b.initializer("W", random_tensor({8, 8}, -0.3f, 0.3f, 71));
  b.initializer("axes_two", Tensor::from_vector<float>({1}, {2.0f}));
  b.initializer("eps", Tensor::from_vector<float>({1}, {1e-5f}));
  b.initializer("gamma", random_tensor({8}, 0.5f, 1.5f, 72));
  b.initializer("beta", random_tensor({8}, -0.5f, 0.5f, 73));
  b.node("MatMul", {"x", "W"}, {"h"}, "matmul");
  b.node("Add", {"h", "x"}, {"a"}, "residual");
  ModelBuilder::attr(b.node("ReduceMean", {"a"}, {"m"}, "ln_mean"), "axes", std::vector<int64_t>{-1});
  b.node("Sub", {"a", "m"}, {"d"}, "ln_sub");
  b.node("Pow", {"d", "axes_two"}, {"p"}, "ln_pow");
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

TEST(FloatSumBitExact, TheInt8AddStaysOnTheNpuAndTheHostLayerNormReadsItsOperands) {
  quant::QuantizeOptions options;
  options.float_sum_copies = true;
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
  EXPECT_EQ(adds, 2);  // the residual Add and "after", both int8
  EXPECT_GE(host_ops, 1);

  compiler::CompileOptions copt;
  copt.target = compiler::Target::from_name("warboy");
  copt.batch = batch;
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  ASSERT_EQ(compiled.program.segments.size(), 3u);  // NPU (MatMul, residual Add), host (LayerNorm), NPU
  EXPECT_EQ(compiled.program.segments[0].kind, isa::SegmentKind::kNpu);
  EXPECT_EQ(compiled.program.segments[1].kind, isa::SegmentKind::kHost);
  EXPECT_EQ(compiled.program.segments[1].inputs.size(), 2u);  // the Add's operands, not its sum
  bool residual_on_npu = false;
  for (const compiler::NodePlacement& p : compiled.placement)
    residual_on_npu = residual_on_npu || (p.node == "residual" && p.runs_on == "npu");
  EXPECT_TRUE(residual_on_npu);

  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, compiled.program);
  const isa::TensorDesc& in = compiled.program.inputs.at(0);
  const isa::TensorDesc& out = compiled.program.outputs.at(0);
  for (uint32_t seed = 0; seed < 3; ++seed) {
    const Tensor x = random_tensor({batch, 8}, -2.0f, 2.0f, 100 + seed);
    const Tensor q = ref::quantize_tensor(x, {in.scale, in.zero_point});
    const Tensor got = session.run({{in.name, q}}).at(out.name);
    const Tensor want = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value().at(golden.output_names.at(0));
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_TRUE(got == want) << "input seed " << seed;
  }
}

}  // namespace
