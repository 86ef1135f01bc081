// `anvil eval --sweep key=v1,v2,...`: after the accuracy run, each method's program is re-run with
// every value of one hardware parameter and its cycles per inference are printed (rt::sweep).
// Needs only files the test writes (no ../shared).
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
  static const std::string dir = test::cli_tmpdir("anvil_cli_eval_sweep");
  return dir;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }

/// A classifier x [N,8,32,32] -> Conv 1x1 (4 channels) -> Relu -> GlobalAveragePool -> y [N,4,1,1]
/// and an npy:DIR dataset with labels. 8 KiB of input per image against 32 Ki MACs keeps the
/// conv layer DRAM-bound, so the DRAM bandwidth visibly moves the cycle count.
struct Fixture {
  std::string model, data;
};
const Fixture& fixture() {
  static const Fixture f = [] {
    ModelBuilder b;
    b.input("x", {8, 32, 32}).output("y", {4, 1, 1});
    b.init("w", random_tensor({4, 8, 1, 1}, -1.0f, 1.0f, 3));
    b.init("b", random_tensor({4}, -0.1f, 0.1f, 4));
    b.node("Conv", {"x", "w", "b"}, {"c"});
    b.node("Relu", {"c"}, {"r"});
    b.node("GlobalAveragePool", {"r"}, {"y"});
    Fixture f;
    f.model = tmpdir() + "/classifier.onnx";
    save_onnx(b.model(), f.model);
    f.data = tmpdir() + "/data";
    fs::create_directories(f.data);
    write_npy(f.data + "/train_images.npy", random_tensor({16, 8, 32, 32}, 0.0f, 1.0f, 5));
    write_npy(f.data + "/test_images.npy", random_tensor({4, 8, 32, 32}, 0.0f, 1.0f, 6));
    write_npy(f.data + "/test_labels.npy", Tensor::from_vector<int64_t>({4}, {0, 1, 2, 3}));
    return f;
  }();
  return f;
}

std::string eval_args() {
  return "eval " + fixture().model + " --dataset npy:" + fixture().data + " --methods MIN_MAX_ASYM,MIN_MAX_SYM";
}

TEST(CliEvalSweep, PrintsCyclesPerInferenceForEachValue) {
  const std::string json = tmpdir() + "/report.json";
  const test::CliResult r = anvil_cmd(eval_args() + " --sweep dram_gbps=66,33,16.5 --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("sweep of dram_gbps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MIN_MAX_SYM cycles/inf"), std::string::npos) << r.out;
  const nlohmann::json report = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(report.at("sweep").at("key"), "dram_gbps");
  const nlohmann::json& points = report.at("sweep").at("points");
  ASSERT_EQ(points.size(), 3u);
  for (const char* method : {"MIN_MAX_ASYM", "MIN_MAX_SYM"}) {
    std::vector<double> cycles;
    for (const auto& p : points) cycles.push_back(p.at(method).at("cycles_per_inference").get<double>());
    // 66 GB/s is the preset's value: the sweep point equals the evaluation's own cycles per inference.
    double eval_cycles = 0;
    for (const auto& m : report.at("results"))
      if (m.at("method") == method) eval_cycles = m.at("cycles_per_inference").get<double>();
    EXPECT_EQ(cycles[0], eval_cycles) << method;
    // Less DRAM bandwidth never speeds the program up, and this DRAM-bound one slows down.
    EXPECT_GT(cycles[1], cycles[0] * 1.2) << method;
    EXPECT_GT(cycles[2], cycles[1] * 1.2) << method;
    // The printed table carries the same numbers.
    for (double c : cycles) EXPECT_NE(r.out.find(std::to_string(static_cast<long long>(c))), std::string::npos) << c;
  }
}

TEST(CliEvalSweep, BadSweepsAreOneClearErrorBeforeTheEvaluation) {
  test::expect_clear_error(anvil_cmd(eval_args() + " --sweep dram_gbps"), {"dram_gbps", "key=v1,v2"});
  test::expect_clear_error(anvil_cmd(eval_args() + " --sweep dram_gbps=66,,33"), {"empty value"});
  test::expect_clear_error(anvil_cmd(eval_args() + " --sweep no_such_key=1"), {"no_such_key"});
  test::expect_clear_error(anvil_cmd(eval_args() + " --sweep dram_gbps=66,-1"), {"dram_gbps"});
}

}  // namespace
