// End to end for ConvTranspose and Pad edge / reflect: a small FP32 decoder (Conv -> Relu ->
// ConvTranspose stride 2 -> Relu -> reflect Pad -> Conv -> edge Pad -> ConvTranspose stride 2,
// kernel 4), quantized by anvil's quantizer, lowered with no host op, compiled NPU-only and run on
// the SystemC model through the runtime: int8 outputs equal ref::run_int8 bit for bit.
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

onnx::ModelProto decoder_model() {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 3, 8, 8});
  b.initializer("w1", random_tensor({8, 3, 3, 3}, -0.5f, 0.5f, 1));
  b.initializer("b1", random_tensor({8}, -0.2f, 0.2f, 2));
  b.initializer("wt1", random_tensor({8, 6, 3, 3}, -0.4f, 0.4f, 3));  // C x M x KH x KW
  b.initializer("bt1", random_tensor({6}, -0.2f, 0.2f, 4));
  b.initializer("w2", random_tensor({4, 6, 3, 3}, -0.4f, 0.4f, 5));
  b.initializer("b2", random_tensor({4}, -0.2f, 0.2f, 6));
  b.initializer("wt2", random_tensor({4, 2, 4, 4}, -0.4f, 0.4f, 7));
  b.initializer("bt2", random_tensor({2}, -0.2f, 0.2f, 8));
  b.initializer("reflect_pads", Tensor::from_vector<int64_t>({8}, {0, 0, 1, 1, 0, 0, 1, 1}));
  b.initializer("edge_pads", Tensor::from_vector<int64_t>({8}, {0, 0, 0, 1, 0, 0, 2, 1}));
  ModelBuilder::attr(b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1"), "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"}, "relu1");
  auto& up = b.node("ConvTranspose", {"r1", "wt1", "bt1"}, {"u1"}, "up1");
  ModelBuilder::attr(up, "strides", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(up, "pads", std::vector<int64_t>{1, 1, 1, 1});
  ModelBuilder::attr(up, "output_padding", std::vector<int64_t>{1, 1});
  b.node("Relu", {"u1"}, {"r2"}, "relu2");
  ModelBuilder::attr(b.node("Pad", {"r2", "reflect_pads"}, {"p1"}, "reflect"), "mode", std::string("reflect"));
  b.node("Conv", {"p1", "w2", "b2"}, {"c2"}, "conv2");
  ModelBuilder::attr(b.node("Pad", {"c2", "edge_pads"}, {"p2"}, "edge"), "mode", std::string("edge"));
  auto& up2 = b.node("ConvTranspose", {"p2", "wt2", "bt2"}, {"y"}, "up2");
  ModelBuilder::attr(up2, "strides", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(up2, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.output("y");
  return b.model();
}

TEST(ConvTransposeBitExact, DecoderRunsOnTheNpuBitExact) {
  const onnx::ModelProto qmodel =
      quant::quantize_model(decoder_model(), random_tensor({8, 3, 8, 8}, -2.0f, 2.0f, 9), {}).value();
  for (int64_t batch : {1, 2}) {
    const ref::Int8Graph golden = ref::lower_qdq(qmodel, batch).value();  // no host fallback: no kHost op
    int pads = 0, convs = 0;
    for (const ref::Int8Op& op : golden.ops) {
      pads += op.kind == ref::Int8OpKind::kPad;
      convs += op.kind == ref::Int8OpKind::kConv;
    }
    EXPECT_EQ(pads, 4);   // two zero insertions, reflect, edge
    EXPECT_EQ(convs, 4);  // conv1, up1, conv2, up2
    compiler::CompileOptions copt;
    copt.batch = batch;
    copt.host_fallback = false;
    const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
    rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
    rt::Session session(device, compiled.program);
    const auto [got, want] = test::run_npu_and_golden(session, compiled.program, golden,
                                                      random_tensor({batch, 3, 8, 8}, -2.5f, 2.5f, 20 + batch));
    ASSERT_EQ(got.shape(), (Shape{batch, 2, 36, 36}));
    EXPECT_TRUE(got == want) << "batch " << batch;
  }
}

}  // namespace
