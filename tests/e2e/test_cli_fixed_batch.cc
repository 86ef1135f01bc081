// A model exported with a fixed batch (input [1, 1, 8, 8], no dynamic batch axis) calibrates and
// evaluates on many images: every run takes exactly its batch, with the results of the same model
// with a dynamic batch. And npy data is shaped for the model's input: a rank-3 dataset feeds a
// Conv1d model as it is. Needs only files the test writes (no ../shared).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../quantizer/model_builder.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "cli_harness.h"

using namespace anvil;
using namespace anvil::quant::test;
namespace fs = std::filesystem;

namespace {

std::string tmpdir() {
  static const std::string dir = test::cli_tmpdir("anvil_cli_fixed_batch");
  return dir;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }

/// A classifier x [N,1,8,8] -> Conv 3x3 (4) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> y [N,3],
/// saved with a dynamic batch and with fixed batches of 1 and 4; and npy:DIR with 10 training and
/// 10 labelled test images of 8 x 8 uint8 pixels (N x H x W, as Fashion-MNIST's files are).
struct Fixture {
  std::string dynamic, batch1, batch4, data;
};
const Fixture& fixture() {
  static const Fixture f = [] {
    const onnx::ModelProto model = small_cnn(2.0f);
    Fixture f;
    f.dynamic = tmpdir() + "/dynamic.onnx";
    f.batch1 = tmpdir() + "/batch1.onnx";
    f.batch4 = tmpdir() + "/batch4.onnx";
    save_onnx(model, f.dynamic);
    save_onnx(with_fixed_batch(model, 1), f.batch1);
    save_onnx(with_fixed_batch(model, 4), f.batch4);
    f.data = tmpdir() + "/data";
    fs::create_directories(f.data);
    for (const char* split : {"train", "test"}) {
      Tensor px(DType::kUInt8, {10, 8, 8});
      for (int64_t i = 0; i < px.numel(); ++i) px.data<uint8_t>()[i] = static_cast<uint8_t>((i * 37 + (split[1] == 'e')) % 256);
      write_npy(f.data + "/" + split + "_images.npy", px);
    }
    write_npy(f.data + "/test_labels.npy", Tensor::from_vector<int64_t>({10}, {0, 1, 2, 0, 1, 2, 0, 1, 2, 0}));
    return f;
  }();
  return f;
}

/// An eval report without its host times, which differ from run to run.
nlohmann::json eval_report(const std::string& model, const std::string& args) {
  static int k = 0;
  const std::string json = tmpdir() + "/eval" + std::to_string(k++) + ".json";
  const test::CliResult r = anvil_cmd("eval " + model + " --dataset npy:" + fixture().data +
                                      " --methods MIN_MAX_ASYM,PERCENTILE_ASYM --json " + json + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  nlohmann::json j = nlohmann::json::parse(read_file(json));
  j.erase("host_seconds");
  j.erase("model");
  for (auto& s : j["summary"]) s.erase("model");
  for (auto& m : j["results"]) m.erase("host_seconds");
  return j;
}

/// Expects two eval reports equal, but the output SQNRs (against the FP32 logits, whose float
/// kernels may sum in another order at another batch size) only within 1e-3 dB.
void expect_same_report(const nlohmann::json& got, const nlohmann::json& want, const std::string& where = "") {
  if (got.is_object() && want.is_object()) {
    ASSERT_EQ(got.size(), want.size()) << where;
    for (const auto& [key, value] : want.items()) {
      ASSERT_TRUE(got.contains(key)) << where << "/" << key;
      if (key.size() >= 7 && key.compare(key.size() - 7, 7, "sqnr_db") == 0)
        EXPECT_NEAR(got.at(key).get<double>(), value.get<double>(), 1e-3) << where << "/" << key;
      else
        expect_same_report(got.at(key), value, where + "/" + key);
    }
  } else if (got.is_array() && want.is_array()) {
    ASSERT_EQ(got.size(), want.size()) << where;
    for (size_t i = 0; i < want.size(); ++i) expect_same_report(got[i], want[i], where + "/" + std::to_string(i));
  } else {
    EXPECT_EQ(got, want) << where;
  }
}

}  // namespace

TEST(CliFixedBatch, CalibrationOfABatchOneModelEqualsTheDynamicBatchOne) {
  const Fixture& f = fixture();
  const std::string a = tmpdir() + "/dynamic.json", b = tmpdir() + "/batch1.json";
  for (const auto& [model, out] : {std::pair{f.dynamic, a}, std::pair{f.batch1, b}}) {
    const test::CliResult r = anvil_cmd("calibrate " + model + " --calib npy:" + f.data + " --calib-count 10 -o " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(read_file(a), read_file(b));
  EXPECT_EQ(nlohmann::json::parse(read_file(b)).at("calibration_images"), 10);
}

TEST(CliFixedBatch, EvalOfABatchOneModelEqualsTheDynamicBatchOne) {
  const Fixture& f = fixture();
  for (const char* backend : {"qdq", "reference", "npu"}) {
    const std::string args = std::string("--backend ") + backend + " --bias-correction --per-tensor-search --search-samples 6";
    const nlohmann::json want = eval_report(f.dynamic, args), got = eval_report(f.batch1, args);
    expect_same_report(got, want, backend);
    EXPECT_EQ(got.at("eval_count"), 10);
    EXPECT_EQ(got.at("batch"), 1);
  }
}

TEST(CliFixedBatch, EvalRunsAFixedBatchOfFourAsTheDynamicModelCompiledForFour) {
  // 10 test images: two full batches and one padded with zeros, whose extra rows are not scored.
  const Fixture& f = fixture();
  const nlohmann::json want = eval_report(f.dynamic, "--backend npu --batch 4 --calib-count 8");
  const nlohmann::json got = eval_report(f.batch4, "--backend npu --calib-count 8");
  expect_same_report(got, want);
  EXPECT_EQ(got.at("batch"), 4);
  for (const char* backend : {"qdq", "reference"})
    expect_same_report(eval_report(f.batch4, std::string("--calib-count 8 --backend ") + backend).at("results"),
                       eval_report(f.dynamic, std::string("--calib-count 8 --backend ") + backend).at("results"),
                       backend);
}

TEST(CliFixedBatch, EvalRefusesABatchTheModelCannotTake) {
  const Fixture& f = fixture();
  const test::CliResult r = anvil_cmd("eval " + f.batch1 + " --dataset npy:" + f.data + " --backend npu --batch 4");
  test::expect_clear_error(r, {"--batch 4: input 'x' of " + f.batch1 + " has a fixed batch of 1"});
  // Its own batch is accepted.
  EXPECT_EQ(anvil_cmd("eval " + f.batch1 + " --dataset npy:" + f.data + " --backend npu --batch 1 --count 2").exit_code, 0);
}

TEST(CliFixedBatch, CalibrationLeavesOutTheImagesPastTheLastWholeBatch) {
  const Fixture& f = fixture();
  const std::string out = tmpdir() + "/batch4.json";
  const test::CliResult r = anvil_cmd("calibrate " + f.batch4 + " --calib npy:" + f.data + " --calib-count 10 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("input 'x' has a fixed batch of 4: using the first 8 of 10 samples"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("on 8 images"), std::string::npos) << r.out;
  EXPECT_EQ(nlohmann::json::parse(read_file(out)).at("calibration_images"), 8);
}

TEST(CliNpyShape, ARankThreeDatasetFeedsAConv1dModelAsItIs) {
  // x [N,2,8] -> Conv1d (3, pad 1) -> Relu -> Flatten -> Gemm -> y [N,3]; train_images.npy is 8 x 2 x 8.
  ModelBuilder b;
  b.input("x", {2, 8}).output("y", {3});
  b.init("w", random_tensor({3, 2, 3}, -0.5f, 0.5f, 11));
  b.init("b", random_tensor({3}, -0.1f, 0.1f, 12));
  b.init("hw", random_tensor({3, 24}, -0.2f, 0.2f, 13));
  b.init("hb", random_tensor({3}, -0.1f, 0.1f, 14));
  set_ints(b.node("Conv", {"x", "w", "b"}, {"c"}), "pads", {1, 1});
  b.node("Relu", {"c"}, {"r"});
  b.node("Flatten", {"r"}, {"f"});
  set_int(b.node("Gemm", {"f", "hw", "hb"}, {"y"}), "transB", 1);
  const std::string model = tmpdir() + "/conv1d.onnx", data = tmpdir() + "/calib1d";
  save_onnx(b.model(), model);
  fs::create_directories(data);
  write_npy(data + "/train_images.npy", random_tensor({8, 2, 8}, 0.0f, 1.0f, 15));
  const test::CliResult r = anvil_cmd("quantize " + model + " --calib npy:" + data + " -o " + tmpdir() + "/conv1d_q.onnx");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Data that fits neither the input nor the input without its channel axis: the file and both shapes.
  write_npy(data + "/train_images.npy", random_tensor({8, 3, 8}, 0.0f, 1.0f, 16));
  test::expect_clear_error(anvil_cmd("calibrate " + model + " --calib npy:" + data + " -o " + tmpdir() + "/c.json"),
                           {data + "/train_images.npy: data of shape [8, 3, 8] does not fit input 'x' of shape [?, 2, 8]"});
}
