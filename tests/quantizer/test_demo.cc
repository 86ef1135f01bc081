#include <gtest/gtest.h>

#include <filesystem>

#include "anvil/common/dataset.h"
#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"

using namespace anvil;
using namespace anvil::quant;

namespace {
const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

std::vector<int64_t> top1(const Tensor& logits) {
  std::vector<int64_t> out;
  const int64_t classes = logits.dim(1);
  for (int64_t n = 0; n < logits.dim(0); ++n) {
    const float* row = logits.data<float>() + n * classes;
    out.push_back(std::max_element(row, row + classes) - row);
  }
  return out;
}
}  // namespace

/// The shipped demo CNN, calibrated on 64 training images: the QDQ model's float execution picks
/// the same class as FP32 on >= 95% of 200 test images.
TEST(DemoCnn, QdqAgreesWithFp32InTop1) {
  if (!std::filesystem::exists(std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashionMnist;
  const Normalization norm{{0.286f}, {0.353f}};  // examples/demo/demo_cnn.json
  const std::string spec = std::string("fashion-mnist:") + kFashionMnist;
  const Dataset train = load_dataset(spec, Split::kTrain, 64, norm);
  const Dataset test = load_dataset(spec, Split::kTest, 200, norm);
  const onnx::ModelProto fp32 = load_onnx(std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx");

  for (Method method : {Method::kMinMaxAsym, Method::kMinMaxSym}) {
    QuantizeOptions options;
    options.method = method;
    std::vector<std::string> float_nodes;
    auto qdq = quantize_model(fp32, train.images, options, &float_nodes);
    ASSERT_TRUE(qdq.ok()) << qdq.error().what();
    EXPECT_TRUE(float_nodes.empty()) << float_nodes[0];

    auto fp32_out = ref::Executor::create(fp32)->run({{"input", test.images}});
    auto q_out = ref::Executor::create(*qdq)->run({{"input", test.images}});
    ASSERT_TRUE(fp32_out.ok() && q_out.ok());
    const auto a = top1(fp32_out->at("logits")), b = top1(q_out->at("logits"));
    int agree = 0;
    for (size_t i = 0; i < a.size(); ++i) agree += a[i] == b[i];
    EXPECT_GE(agree, 190) << method_name(method) << ": " << agree << "/200";
    RecordProperty(std::string("top1_agreement_") + method_name(method), agree);
  }
}
