// `anvil eval`: the three backends, several models with the summary table, the time split, and
// `--sweep key=v1,v2,...` (after the accuracy run, each method's program is re-run with every value
// of one hardware parameter and its cycles per inference are printed, rt::sweep).
// Needs only files the test writes (no ../shared).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
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

const nlohmann::json& method_result(const nlohmann::json& report, const std::string& method) {
  for (const auto& m : report.at("results"))
    if (m.at("method") == method) return m;
  throw std::runtime_error("no result for " + method);
}

TEST(CliEval, NpuAndReferenceBackendsGiveTheSameNumbersQdqHasNoCycles) {
  std::map<std::string, nlohmann::json> reports;
  for (const char* backend : {"npu", "reference", "qdq"}) {
    const std::string json = tmpdir() + "/backend_" + backend + ".json";
    const test::CliResult r = anvil_cmd(eval_args() + " --backend " + backend + " --json " + json);
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    reports[backend] = nlohmann::json::parse(read_file(json));
    EXPECT_EQ(reports[backend].at("backend"), backend);
  }
  for (const char* method : {"MIN_MAX_ASYM", "MIN_MAX_SYM"}) {
    const nlohmann::json& npu = method_result(reports["npu"], method);
    const nlohmann::json& golden = method_result(reports["reference"], method);
    const nlohmann::json& qdq = method_result(reports["qdq"], method);
    EXPECT_EQ(npu.at("golden_bit_exact"), 4) << method;
    // The NPU's outputs equal the reference integer run's bit for bit, so every score is equal.
    for (const char* key : {"int8_top1", "top1_agreement", "output_sqnr_db"})
      EXPECT_EQ(npu.at(key), golden.at(key)) << method << " " << key;
    EXPECT_TRUE(npu.contains("cycles_per_inference"));
    EXPECT_FALSE(golden.contains("cycles_per_inference"));
    EXPECT_FALSE(qdq.contains("cycles_per_inference"));
    // The float QDQ run differs from the integer one only by requantization rounding.
    EXPECT_GT(qdq.at("output_sqnr_db").get<double>(), 20.0) << method;
    EXPECT_NEAR(qdq.at("output_sqnr_db").get<double>(), golden.at("output_sqnr_db").get<double>(), 6.0) << method;
  }
}

TEST(CliEval, TheHeaderNamesTheQuantizerOptionsAndTheReportRecordsThem) {
  const std::string json = tmpdir() + "/options.json";
  const test::CliResult plain = anvil_cmd(eval_args() + " --backend reference");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("quantized with"), std::string::npos) << plain.out;
  const test::CliResult r =
      anvil_cmd(eval_args() + " --backend reference --bias-correction --float-residual-sums --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("training images, quantized with --bias-correction --float-residual-sums\n"), std::string::npos)
      << r.out;
  const nlohmann::json report = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(report.at("bias_correction"), true);
  EXPECT_EQ(report.at("float_residual_sums"), true);
  EXPECT_EQ(report.at("extend_float_regions"), false);
}

TEST(CliEval, PercentileReachesThePercentileRowsAndABadOneFailsBeforeTheRun) {
  const std::string args = "eval " + fixture().model + " --dataset npy:" + fixture().data +
                           " --methods PERCENTILE_ASYM,MIN_MAX_ASYM --backend reference --json ";
  const std::string plain_json = tmpdir() + "/percentile_default.json", json = tmpdir() + "/percentile_90.json";
  const test::CliResult plain = anvil_cmd(args + plain_json);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const test::CliResult r = anvil_cmd(args + json + " --percentile 90");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("training images, quantized with --percentile 90\n"), std::string::npos) << r.out;
  const nlohmann::json base = nlohmann::json::parse(read_file(plain_json)), p90 = nlohmann::json::parse(read_file(json));
  EXPECT_FLOAT_EQ(base.at("percentile").get<float>(), 99.99f);
  EXPECT_FLOAT_EQ(p90.at("percentile").get<float>(), 90.0f);
  // Clipping a tenth of the values changes the PERCENTILE row, and only it.
  EXPECT_NE(method_result(p90, "PERCENTILE_ASYM").at("output_sqnr_db"),
            method_result(base, "PERCENTILE_ASYM").at("output_sqnr_db"));
  EXPECT_EQ(method_result(p90, "MIN_MAX_ASYM").at("output_sqnr_db"), method_result(base, "MIN_MAX_ASYM").at("output_sqnr_db"));
  for (const std::string bad : {"0", "-5", "100.5", "nan"}) {  // usage errors, before anything runs
    const test::CliResult e = anvil_cmd(args + json + " --percentile " + bad);
    test::expect_clear_error(e, {"--percentile: " + bad + " "});
    EXPECT_TRUE(e.out.empty()) << "ran before failing: " << e.out;
  }
}

TEST(CliEval, ImageCountsBelowOneAreUsageErrors) {
  for (const char* option : {"--count", "--calib-count"})
    for (const char* count : {"0", "-3"}) {
      const test::CliResult r = anvil_cmd(eval_args() + " --backend reference " + option + " " + count);
      test::expect_clear_error(r, {std::string(option) + ": Value " + count});
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
}

TEST(CliEval, AReportPathInNoDirectoryFailsBeforeTheEvaluation) {
  const std::string json = tmpdir() + "/no_such_dir/report.json";
  const test::CliResult r = anvil_cmd(eval_args() + " --backend reference --json " + json);
  test::expect_clear_error(r, {"--json: " + json + ": no such directory " + tmpdir() + "/no_such_dir"});
  EXPECT_TRUE(r.out.empty()) << "evaluated before failing: " << r.out;
}

TEST(CliBench, PrintsTheColdRunBesideTheTimedOnes) {
  const test::CliResult r = anvil_cmd("bench " + fixture().model + " --batch 2 --repeat 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("batch"), 2);
  EXPECT_EQ(j.at("input_shape"), (std::vector<int64_t>{2, 8, 32, 32}));
  for (const char* key : {"ms_first", "ms_median", "ms_min"}) EXPECT_GT(j.at(key).get<double>(), 0.0) << key;
  EXPECT_LE(j.at("ms_min").get<double>(), j.at("ms_median").get<double>());
}

TEST(CliEval, SeveralModelsGetTheSummaryTableAndTheTimeSplit) {
  const std::string second = tmpdir() + "/classifier_copy.onnx";
  fs::copy_file(fixture().model, second, fs::copy_options::overwrite_existing);
  const std::string json = tmpdir() + "/two_models.json";
  const test::CliResult r = anvil_cmd("eval " + fixture().model + " " + second + " --dataset npy:" + fixture().data +
                                      " --methods all --backend reference --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("summary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("INT8 top-1 (method)"), std::string::npos) << r.out;
  const nlohmann::json report = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(report.at("models").size(), 2u);
  ASSERT_EQ(report.at("summary").size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const nlohmann::json& model = report.at("models")[i];
    const nlohmann::json& row = report.at("summary")[i];
    ASSERT_EQ(model.at("results").size(), 10u);
    ASSERT_EQ(row.at("methods").size(), 10u);
    double best = 0, worst = 2;
    for (const auto& m : model.at("results")) {
      best = std::max(best, m.at("int8_top1").get<double>());
      worst = std::min(worst, m.at("ratio").get<double>());
    }
    EXPECT_EQ(row.at("int8_top1").get<double>(), best);
    EXPECT_EQ(method_result(model, row.at("method")).at("int8_top1").get<double>(), best);
    EXPECT_EQ(row.at("worst_ratio").get<double>(), worst);
    // One calibration pass for all ten methods; the range searches are timed on their own.
    const nlohmann::json& t = model.at("host_seconds");
    EXPECT_GT(t.at("calibration").get<double>(), 0.0);
    EXPECT_GE(t.at("range_search").get<double>(), 0.0);
  }
}

TEST(CliEval, BadBackendOrModelIsOneClearErrorBeforeTheEvaluation) {
  test::expect_clear_error(anvil_cmd(eval_args() + " --backend gpu"), {"--backend", "gpu"});
  test::expect_clear_error(anvil_cmd(eval_args() + " --backend reference --sweep dram_gbps=33"),
                           {"--sweep", "npu"});
  test::expect_clear_error(anvil_cmd("eval " + fixture().model + " " + tmpdir() + "/missing.onnx --dataset npy:" +
                                     fixture().data),
                           {"missing.onnx"});
}

}  // namespace
