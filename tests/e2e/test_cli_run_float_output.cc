// `anvil run --dequantize` on a partitioned program whose output is float: the last node (a
// Softmax left unquantized) runs on the host, so the program's output descriptor is float32 and the
// CLI writes that tensor as it is, equal to the golden model's run_int8 output. Needs only files the
// test writes (no ../shared).
#include <gtest/gtest.h>

#include "../reference/qdq_builder.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/reference/int8_graph.h"
#include "cli_harness.h"

using namespace anvil;
using namespace anvil::test;

namespace {

/// x [N,8] -> Q/DQ -> MatMul W [8,6] -> Q/DQ = h (NPU) -> Softmax -> p, a float graph output (host).
onnx::ModelProto float_output_model(const ActParams& params) {
  QdqBuilder q(params);
  q.b.input("x", DType::kFloat32, {-1, 8});
  std::vector<float> scales;
  const std::string w = q.weight("w", random_tensor({8, 6}, -0.5f, 0.5f, 61), 1, &scales);
  q.b.node("MatMul", {q.qdq("x"), w}, {"h"}, "matmul");
  ModelBuilder::attr(q.b.node("Softmax", {q.qdq("h")}, {"p"}, "softmax"), "axis", int64_t{1});
  q.b.output("p");
  onnx::ModelProto m = q.b.model();  // the file needs the output's shape (ONNX checker): [N, 6]
  auto* shape = m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  shape->add_dim()->set_dim_value(6);
  return m;
}

}  // namespace

TEST(CliRunFloatOutput, DequantizeWritesAHostFloatOutputAsItIs) {
  const std::string dir = cli_tmpdir("anvil_cli_run_float_output");
  const Tensor x = random_tensor({1, 8}, -1.0f, 1.0f, 62);
  const onnx::ModelProto model = float_output_model(calibrate(float_output_model, {"x", "h"}, {{"x", x}}));
  save_onnx(model, dir + "/m.onnx");
  const CliResult c = run_anvil("compile " + dir + "/m.onnx -o " + dir + "/m.anvil", dir);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ref::LowerOptions host;
  host.host_fallback = true;
  const ref::Int8Graph g = ref::lower_qdq(model, 1, host).value();
  const Tensor xq = ref::quantize_tensor(x, g.values.at(g.inputs.at(0)).q);
  write_npy(dir + "/x.npy", xq);
  auto want = ref::run_int8(g, {{"x", xq}});
  ASSERT_TRUE(want.ok()) << want.error().what();
  for (const char* flag : {"", " --dequantize"}) {
    const CliResult r = run_anvil("run " + dir + "/m.anvil --input " + dir + "/x.npy -o " + dir + "/y.npy" + flag, dir);
    ASSERT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    EXPECT_NE(r.out.find("output p float32"), std::string::npos) << r.out;
    const Tensor y = read_npy(dir + "/y.npy");
    ASSERT_EQ(y.dtype(), DType::kFloat32) << flag;
    EXPECT_EQ(y, want->at("p")) << flag;
  }
}
