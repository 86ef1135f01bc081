// End to end: the shipped demo model, quantized by anvil, compiled, and run on the SystemC model
// through the runtime, gives int8 outputs equal bit for bit to the reference executor's integer run.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "anvil/common/dataset.h"
#include "anvil/common/onnx_model.h"
#include "anvil/compiler/compiler.h"
#include "anvil/hw/config.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"
#include "bit_exact_for_tests.h"

using namespace anvil;

namespace {

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST when installed (the setup script installs it), else deterministic noise with the
/// same shape and normalisation: bit-exactness does not depend on the images being real.
Tensor images(Split split, int64_t n) {
  if (std::filesystem::exists(kFashionMnist)) {
    Normalization norm;
    norm.mean = {0.2860f};
    norm.std = {0.3530f};
    return load_dataset(std::string("fashion-mnist:") + kFashionMnist, split, n, norm).images;
  }
  Tensor t(DType::kFloat32, {n, 1, 28, 28});
  std::mt19937 rng(split == Split::kTrain ? 1 : 2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

struct Case {
  const char* method;
  const char* target;
  int64_t batch;
};

class DemoBitExact : public ::testing::TestWithParam<Case> {};

TEST_P(DemoBitExact, EmulatorEqualsReferenceOn100Images) {
  const Case c = GetParam();
  const onnx::ModelProto model = load_onnx(std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx");
  quant::QuantizeOptions qopt;
  qopt.method = quant::method_from_name(c.method);
  const onnx::ModelProto qmodel = quant::quantize_model(model, images(Split::kTrain, 64), qopt).value();

  compiler::CompileOptions copt;
  copt.target = compiler::Target::from_name(c.target);
  copt.batch = c.batch;
  const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
  const ref::Int8Graph golden = ref::lower_qdq(qmodel, c.batch).value();

  rt::Device device = rt::Device::open(c.target == std::string("warboy") ? "warboy(1)*1" : "npu0pe0-1",
                                       hw::HwConfig::preset(c.target));
  rt::Session session(device, compiled.program);
  const Tensor test_images = images(Split::kTest, 100);
  int64_t compared = 0;
  for (int64_t i = 0; i < 100; i += c.batch) {
    const auto [got, want] =
        test::run_npu_and_golden(session, compiled.program, golden, test_images.slice0(i, i + c.batch));
    ASSERT_EQ(got.dtype(), DType::kInt8);
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_TRUE(got == want) << "images " << i << ".." << i + c.batch - 1 << " differ from the reference";
    EXPECT_GT(session.last_stats().cycles, 0u);
    compared += c.batch;
  }
  EXPECT_EQ(compared, 100);
}

INSTANTIATE_TEST_SUITE_P(Demo, DemoBitExact,
                         ::testing::Values(Case{"MIN_MAX_ASYM", "warboy", 1}, Case{"MIN_MAX_SYM", "warboy", 1},
                                           Case{"MIN_MAX_ASYM", "warboy-2pe", 10}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.method) + "_" + info.param.target + "_b" +
                                           std::to_string(info.param.batch);
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
