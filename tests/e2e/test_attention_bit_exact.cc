// End to end for attention: a small FP32 model softmax(x * x') * x, quantized by anvil's
// quantizer, compiled, and run on the SystemC model through the runtime, gives int8 outputs equal
// bit for bit to ref::run_int8, with both MatMuls (two activations) and the Softmax on the NPU.
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

/// x [N, 6, 8] -> xt = Reshape(x, [N, 8, 6]); s = MatMul(x, xt) [N, 6, 6]; p = Softmax(s);
/// y = MatMul(p, x) [N, 6, 8].
onnx::ModelProto attention_model() {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 6, 8});
  b.initializer("xt_shape", Tensor::from_vector<int64_t>({3}, {0, 8, 6}));
  b.node("Reshape", {"x", "xt_shape"}, {"xt"}, "reshape");
  b.node("MatMul", {"x", "xt"}, {"s"}, "scores");
  auto& sm = b.node("Softmax", {"s"}, {"p"}, "softmax");
  ModelBuilder::attr(sm, "axis", int64_t{-1});
  b.node("MatMul", {"p", "x"}, {"y"}, "context");
  b.output("y");
  return b.model();
}

TEST(AttentionBitExact, EmulatorEqualsReferenceWithMatMulsAndSoftmaxOnTheNpu) {
  const onnx::ModelProto qmodel =
      quant::quantize_model(attention_model(), random_tensor({16, 6, 8}, -1.5f, 1.5f, 1), {}).value();
  const int64_t batch = 2;
  const ref::Int8Graph golden = ref::lower_qdq(qmodel, batch).value();
  std::multiset<ref::Int8OpKind> kinds;
  for (const ref::Int8Op& op : golden.ops) kinds.insert(op.kind);
  EXPECT_EQ(kinds.count(ref::Int8OpKind::kMatMul), 2u);
  EXPECT_EQ(kinds.count(ref::Int8OpKind::kSoftmax), 1u);

  compiler::CompileOptions copt;
  copt.target = compiler::Target::from_name("warboy");
  copt.batch = batch;
  copt.host_fallback = false;  // everything on the NPU, or the compile fails
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  int matmuls = 0, softmaxes = 0;
  for (const isa::Instruction& i : compiled.program.instructions) {
    matmuls += i.opcode == isa::Opcode::kMatMul;
    softmaxes += i.opcode == isa::Opcode::kSoftmax;
  }
  EXPECT_EQ(matmuls, 2);
  EXPECT_EQ(softmaxes, 1);

  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, compiled.program);
  for (uint32_t seed = 0; seed < 3; ++seed) {
    const Tensor x = random_tensor({batch, 6, 8}, -2.0f, 2.0f, 100 + seed);
    const auto [got, want] = test::run_npu_and_golden(session, compiled.program, golden, x);
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_TRUE(got == want) << "input seed " << seed;
    std::set<int8_t> levels(got.data<int8_t>(), got.data<int8_t>() + got.numel());
    EXPECT_GT(levels.size(), 10u) << "the output should span many int8 levels";
  }
}

}  // namespace
