// `anvil calibrate` and `anvil quantize --ranges`: one FP32 pass writes the statistics and every
// method's ranges; quantizing from the file gives the same model as calibrating again, and a bad
// ranges file is one clear error line. Needs only files the test writes (no ../shared).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
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
  static const std::string dir = test::cli_tmpdir("anvil_cli_quantize");
  return dir;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }
using test::expect_clear_error;

/// x [N,1,4,4] -> Conv 1x1 (2 channels) -> Relu -> y; and a dataset npy:DIR of 40 samples.
struct Fixture {
  std::string model, data;
};
const Fixture& fixture() {
  static const Fixture f = [] {
    ModelBuilder b;
    b.input("x", {1, 4, 4}).output("y", {2, 4, 4});
    b.init("w", Tensor::from_vector<float>({2, 1, 1, 1}, {0.5f, -1.5f}));
    b.init("b", Tensor::from_vector<float>({2}, {0.1f, 0.2f}));
    b.node("Conv", {"x", "w", "b"}, {"c"});
    b.node("Relu", {"c"}, {"y"});
    Fixture f;
    f.model = tmpdir() + "/conv.onnx";
    save_onnx(b.model(), f.model);
    f.data = tmpdir() + "/data";
    fs::create_directories(f.data);
    write_npy(f.data + "/train_images.npy", random_tensor({40, 1, 4, 4}, 0.0f, 1.0f, 5));
    write_npy(f.data + "/test_images.npy", random_tensor({8, 1, 4, 4}, 0.0f, 1.0f, 6));
    return f;
  }();
  return f;
}

std::string write_ranges() {
  const std::string out = tmpdir() + "/ranges.json";
  const test::CliResult r = anvil_cmd("calibrate " + fixture().model + " --calib npy:" + fixture().data + " -o " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

}  // namespace

TEST(CliCalibrate, PrintsTheTimeSplit) {
  const test::CliResult r = anvil_cmd("calibrate " + fixture().model + " --calib npy:" + fixture().data + " -o " +
                                      tmpdir() + "/split.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wall time: one FP32 pass with statistics "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" s, range searches "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" s (statistics: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" s of thread time)"), std::string::npos) << r.out;
}

TEST(CliCalibrate, WritesStatisticsAndEveryMethodsRanges) {
  const nlohmann::json j = nlohmann::json::parse(read_file(write_ranges()));
  EXPECT_EQ(j["format"], "anvil-calibration");
  EXPECT_EQ(j["tensors"]["x"]["count"], 40 * 16);
  ASSERT_EQ(j["ranges"].size(), 10u);
  for (const char* m : {"MIN_MAX_ASYM", "ENTROPY_SYM", "PERCENTILE_ASYM", "SQNR_SYM", "MSE_ASYM"}) {
    ASSERT_TRUE(j["ranges"].contains(m)) << m;
    for (const char* t : {"x", "y"}) {
      const auto& r = j["ranges"][m][t];
      ASSERT_EQ(r.size(), 2u) << m << " " << t;
      EXPECT_LE(r[0].get<float>(), 0.0f);
      EXPECT_GE(r[1].get<float>(), 0.0f);
    }
  }
  EXPECT_EQ(j["ranges"]["MIN_MAX_ASYM"]["x"][1].get<float>(), j["tensors"]["x"]["max"].get<float>());
}

TEST(CliQuantize, FromRangesEqualsFromCalibration) {
  const std::string ranges = write_ranges();
  for (const char* m : {"MIN_MAX_SYM", "PERCENTILE_ASYM", "ENTROPY_ASYM"}) {
    const std::string a = tmpdir() + "/a.onnx", b = tmpdir() + "/b.onnx";
    test::CliResult r = anvil_cmd("quantize " + fixture().model + " -o " + a + " --ranges " + ranges + " --method " + m +
                         " --percentile 99.5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = anvil_cmd("quantize " + fixture().model + " -o " + b + " --calib npy:" + fixture().data + " --method " + m +
                  " --percentile 99.5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_file(a), read_file(b)) << m;
  }
}

TEST(CliQuantize, FromRangesThePercentileMethodsTakeTheFilesPercentileUnlessOneIsGiven) {
  const std::string ranges = tmpdir() + "/ranges_p90.json";
  test::CliResult r = anvil_cmd("calibrate " + fixture().model + " --calib npy:" + fixture().data + " -o " + ranges +
                                " --percentile 90");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto quantize = [&](const std::string& out, const std::string& args) {
    const test::CliResult q = anvil_cmd("quantize " + fixture().model + " -o " + out + " --method PERCENTILE_ASYM " + args);
    EXPECT_EQ(q.exit_code, 0) << q.err;
    return q.out;
  };
  const std::string from_file = tmpdir() + "/p_file.onnx", at_90 = tmpdir() + "/p_90.onnx",
                    overridden = tmpdir() + "/p_override.onnx", at_default = tmpdir() + "/p_default.onnx";
  EXPECT_NE(quantize(from_file, "--ranges " + ranges).find("PERCENTILE_ASYM (percentile 90)"), std::string::npos);
  quantize(at_90, "--calib npy:" + fixture().data + " --percentile 90");
  EXPECT_EQ(read_file(from_file), read_file(at_90)) << "the file lists 90th-percentile ranges";
  quantize(overridden, "--ranges " + ranges + " --percentile 99.99");
  quantize(at_default, "--calib npy:" + fixture().data);
  EXPECT_EQ(read_file(overridden), read_file(at_default)) << "--percentile wins over the file's";
  EXPECT_NE(read_file(at_90), read_file(at_default));
  // A percentile outside (0, 100]: a usage error before anything runs; in a file, an error naming it.
  for (const char* cmd : {"calibrate", "quantize"}) {
    const std::string args = std::string(cmd) == "calibrate" ? " -o " + tmpdir() + "/unused.json"
                                                             : " -o " + tmpdir() + "/unused.onnx --method PERCENTILE_SYM";
    const test::CliResult e =
        anvil_cmd(std::string(cmd) + " " + fixture().model + " --calib npy:" + fixture().data + args + " --percentile 0");
    expect_clear_error(e, {"--percentile: 0 outside (0, 100]"});
    EXPECT_TRUE(e.out.empty()) << e.out;
  }
  nlohmann::json j = nlohmann::json::parse(read_file(ranges));
  j["percentile"] = 150;
  const std::string bad = tmpdir() + "/ranges_p150.json";
  write_file(bad, j.dump());
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + bad +
                               " --method PERCENTILE_ASYM"),
                     {bad, "\"percentile\" 150"});
}

TEST(CliCalibrate, ACalibrationCountBelowOneIsAUsageErrorNotAllImages) {
  // A negative count used to reach load_dataset's "all images" (60,000 on Fashion-MNIST).
  for (const char* count : {"0", "-5"})
    for (const std::string& cmd : {"calibrate " + fixture().model + " -o " + tmpdir() + "/unused.json",
                                  "quantize " + fixture().model + " -o " + tmpdir() + "/unused.onnx"}) {
      const test::CliResult r = anvil_cmd(cmd + " --calib npy:" + fixture().data + " --calib-count " + count);
      expect_clear_error(r, {"--calib-count: Value " + std::string(count)});
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
}

TEST(CliCalibrate, OutputPathsInNoDirectoryFailBeforeTheCalibrationPass) {
  const std::string dir = tmpdir() + "/no_such_dir";
  for (const std::string& cmd : {"calibrate " + fixture().model + " -o " + dir + "/r.json",
                                 "quantize " + fixture().model + " -o " + dir + "/q.onnx"}) {
    const test::CliResult r = anvil_cmd(cmd + " --calib npy:" + fixture().data);
    expect_clear_error(r, {"no such directory " + dir});
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(CliQuantize, RangesFileThatIsNotJson) {
  const std::string path = tmpdir() + "/broken.json";
  write_file(path, "{\"format\": \"anvil-calibration\", ");
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path),
                     {path, "not JSON"});
}

TEST(CliQuantize, RangesFileOfAnotherFormat) {
  const std::string path = tmpdir() + "/other.json";
  write_file(path, "{\"format\": \"something-else\", \"version\": 1, \"tensors\": {}}\n");
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path),
                     {path, "anvil-calibration"});
}

TEST(CliQuantize, RangesFileWithABadTensorEntry) {
  nlohmann::json j = nlohmann::json::parse(read_file(write_ranges()));
  // (c, the Conv output fused into its Relu, is not recorded: the quantizer never reads it.)
  ASSERT_FALSE(j["tensors"].contains("c"));
  j["tensors"]["x"]["histogram"] = {1, 2, 3};  // not kHistogramBins counts
  const std::string path = tmpdir() + "/bad_hist.json";
  write_file(path, j.dump());
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path +
                               " --method ENTROPY_SYM"),
                     {path, "'x'", "histogram"});
}

TEST(CliQuantize, FromRangesAnEditedRangeTakesEffect) {
  // The file's listed ranges are what --ranges quantizes with: widening y's MIN_MAX_ASYM range to
  // [0, 100] gives y the scale 100 / 255, and the command says that one range differs.
  nlohmann::json j = nlohmann::json::parse(read_file(write_ranges()));
  j["ranges"]["MIN_MAX_ASYM"]["y"] = {0.0, 100.0};
  const std::string path = tmpdir() + "/edited.json", out = tmpdir() + "/edited.onnx";
  write_file(path, j.dump());
  const test::CliResult r =
      anvil_cmd("quantize " + fixture().model + " -o " + out + " --ranges " + path + " --method MIN_MAX_ASYM");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1 of " + std::to_string(j["ranges"]["MIN_MAX_ASYM"].size()) + " differ"), std::string::npos)
      << r.out;
  // The scale of the output's last DequantizeLinear.
  const onnx::ModelProto q = load_onnx(out);
  const onnx::NodeProto* dq = nullptr;
  for (const auto& n : q.graph().node())
    if (n.op_type() == "DequantizeLinear" && n.output(0) == "y") dq = &n;
  ASSERT_NE(dq, nullptr);
  float scale = 0.0f;
  for (const auto& init : q.graph().initializer())
    if (init.name() == dq->input(1)) scale = tensor_from_proto(init).data<float>()[0];
  EXPECT_FLOAT_EQ(scale, 100.0f / 255.0f);
}

TEST(CliQuantize, RangesFileWithABadListedRange) {
  const nlohmann::json good = nlohmann::json::parse(read_file(write_ranges()));
  const auto expect_refused = [&](const std::string& tag, const nlohmann::json& j, std::vector<std::string> words) {
    const std::string path = tmpdir() + "/listed_" + tag + ".json";
    write_file(path, j.dump());
    words.push_back(path);
    words.push_back("\"ranges\"");
    expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path +
                                 " --method MSE_SYM"),
                       words);
  };
  nlohmann::json j = good;
  j["ranges"]["MSE_SYM"]["y"] = {5.0, -5.0};
  expect_refused("inverted", j, {"'y'", "min <= max"});
  j = good;
  j["ranges"]["MSE_SYM"]["y"] = "wide";
  expect_refused("string", j, {"'y'", "[min, max]"});
  j = good;
  j["ranges"]["MSE_SYM"].erase("y");
  expect_refused("missing", j, {"'y'", "no range"});
  j = good;
  j["ranges"].erase("MSE_SYM");
  expect_refused("no_method", j, {"MSE_SYM"});
  j = good;
  j["ranges"] = "all";
  expect_refused("not_object", j, {"object"});
}

TEST(CliQuantize, FromRangesBiasCorrectionNeedsTheChannelMeans) {
  nlohmann::json j = nlohmann::json::parse(read_file(write_ranges()));
  for (auto& [name, t] : j["tensors"].items()) t.erase("channel_mean"), t.erase("channel_samples");
  const std::string path = tmpdir() + "/no_means.json";
  write_file(path, j.dump());
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path +
                               " --bias-correction"),
                     {"--bias-correction", "per-channel means", path});
  // Means of the wrong count for the Conv: it is quantized without the correction, and says so.
  j = nlohmann::json::parse(read_file(write_ranges()));
  ASSERT_TRUE(j["tensors"]["x"].contains("channel_mean"));
  j["tensors"]["x"]["channel_mean"] = {0.1, 0.2};
  const std::string wrong = tmpdir() + "/wrong_means.json";
  write_file(wrong, j.dump());
  const test::CliResult r = anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + wrong +
                                      " --bias-correction");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no bias correction, 'x' has 2 per-channel means, the weight reads 1 channels"), std::string::npos)
      << r.err;
}

TEST(CliQuantize, RangesFileOfAnotherModel) {
  nlohmann::json j = nlohmann::json::parse(read_file(write_ranges()));
  j["tensors"].erase("y");
  const std::string path = tmpdir() + "/missing.json";
  write_file(path, j.dump());
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + path),
                     {"'y'", "calibration"});
}

TEST(CliQuantize, MissingRangesFile) {
  expect_clear_error(
      anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + tmpdir() + "/nope.json"),
      {"nope.json"});
}

TEST(CliQuantize, NeedsExactlyOneSource) {
  expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx"), {"--calib", "--ranges"});
  const test::CliResult both = anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges r.json --calib npy:x");
  EXPECT_NE(both.exit_code, 0);
}

namespace {
/// The first line of a per-tensor search's summary.
std::string search_line(const std::string& out) {
  const size_t at = out.find("per-tensor search, ");
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}
}  // namespace

TEST(CliQuantize, PerTensorSearchScoresTheModelItWrites) {
  // With --exclude-nodes the scored models keep the Conv in float, with its float weights, as the
  // written model does: their SQNR differs from that of the models with the int8 Conv.
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y", {2, 4, 4});
  b.init("w", random_tensor({2, 1, 3, 3}, -1.0f, 1.0f, 7));
  set_ints(b.node("Conv", {"x", "w"}, {"c"}), "pads", {1, 1, 1, 1});
  b.node("Relu", {"c"}, {"y"});
  const std::string model = tmpdir() + "/conv3x3.onnx";
  save_onnx(b.model(), model);
  const std::string base = "quantize " + model + " -o " + tmpdir() + "/pts.onnx --calib npy:" + fixture().data +
                           " --per-tensor-search --search-samples 20";
  const test::CliResult all = anvil_cmd(base);
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const test::CliResult excluded = anvil_cmd(base + " --exclude-nodes Conv");
  ASSERT_EQ(excluded.exit_code, 0) << excluded.err;
  ASSERT_FALSE(search_line(all.out).empty()) << all.out;
  EXPECT_NE(search_line(excluded.out), search_line(all.out)) << all.out << excluded.out;
}

TEST(CliQuantize, PerTensorSearchWithHeldOutImages) {
  const std::string base = "quantize " + fixture().model + " -o " + tmpdir() + "/pts.onnx --calib npy:" +
                           fixture().data + " --per-tensor-search --search-samples 20";
  const test::CliResult r = anvil_cmd(base + " --search-holdout 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("on the 20 held-out images after them: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("change(s) refused by the held-out images"), std::string::npos) << r.out;
  // 40 calibration images: 20 + 30 do not fit.
  expect_clear_error(anvil_cmd(base + " --search-holdout 30"), {"20 scoring + 30 held-out inputs asked, 40 given"});
  const test::CliResult negative = anvil_cmd(base + " --search-holdout -1");
  EXPECT_NE(negative.exit_code, 0);
}

TEST(CliQuantize, SearchAndSensitivityNeedTheCalibrationImages) {
  // From a ranges file there are no images to run the model on.
  const std::string ranges = write_ranges();
  for (const char* flag : {" --per-tensor-search", " --sensitivity MSE_ASYM"})
    expect_clear_error(anvil_cmd("quantize " + fixture().model + " -o " + tmpdir() + "/o.onnx --ranges " + ranges +
                                 " --method MIN_MAX_ASYM" + flag),
                       {"need --calib"});
}

namespace {
/// Quantizes `model` (written under `tag`) with the 40-image dataset of fixture(), then runs the
/// FP32 model and the quantized one with `anvil ref` on 8 images of the same distribution.
/// Returns the quantizer's stderr (ANVIL_LOG=info) and both outputs named `y`.
struct QuantizedRun {
  std::string log;
  Tensor fp32, quantized;
};
QuantizedRun quantize_and_run(const onnx::ModelProto& model, const std::string& tag) {
  QuantizedRun r;
  const std::string dir = tmpdir() + "/" + tag;
  fs::create_directories(dir + "/in");
  save_onnx(model, dir + "/fp32.onnx");
  write_npy(dir + "/in/x.npy", random_tensor({8, 1, 4, 4}, 0.0f, 1.0f, 17));
  setenv("ANVIL_LOG", "info", 1);  // the quantizer names the nodes that stay float
  const test::CliResult q =
      anvil_cmd("quantize " + dir + "/fp32.onnx --calib npy:" + fixture().data + " -o " + dir + "/q.onnx");
  unsetenv("ANVIL_LOG");
  EXPECT_EQ(q.exit_code, 0) << q.err;
  r.log = q.err;
  for (const char* which : {"fp32", "q"}) {
    const test::CliResult run = anvil_cmd(std::string("ref ") + dir + "/" + which + ".onnx --input-dir " + dir +
                                          "/in -o " + dir + "/out_" + which);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    if (run.exit_code != 0) return r;
  }
  r.fp32 = read_npy(dir + "/out_fp32/y.npy");
  r.quantized = read_npy(dir + "/out_q/y.npy");
  return r;
}

/// Largest |a - b| in units of one quantization step of b's range over 255 levels.
double max_diff_in_steps(const Tensor& a, const Tensor& b) {
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  const auto [lo, hi] = std::minmax_element(vb.begin(), vb.end());
  const double step = (std::max(*hi, 0.0f) - std::min(*lo, 0.0f)) / 255.0;
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(double(va[i]) - vb[i]) / step);
  return worst;
}
}  // namespace

TEST(CliQuantize, ConstantNegMinRangeSubgraphIsFolded) {
  // A bias computed from constants: Neg(k), Min(-k, 0.1) and Range(0, 2, 1) * 0.05, added to the
  // Conv's output. Constant folding runs them on the reference executor.
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y", {2, 4, 4});
  b.init("w", Tensor::from_vector<float>({2, 1, 1, 1}, {0.5f, -1.5f}));
  b.init("k", Tensor::from_vector<float>({2, 1, 1}, {0.3f, -0.2f}));
  b.init("cap", Tensor::scalar<float>(0.1f));
  b.init("start", Tensor::scalar<float>(0.0f));
  b.init("limit", Tensor::scalar<float>(2.0f));
  b.init("delta", Tensor::scalar<float>(1.0f));
  b.init("shape", Tensor::from_vector<int64_t>({3}, {2, 1, 1}));
  b.init("tenth", Tensor::scalar<float>(0.05f));
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Neg", {"k"}, {"nk"});
  b.node("Min", {"nk", "cap"}, {"m"});
  b.node("Range", {"start", "limit", "delta"}, {"r"});
  b.node("Reshape", {"r", "shape"}, {"r3"});
  b.node("Mul", {"r3", "tenth"}, {"rs"});
  b.node("Add", {"m", "rs"}, {"bias"});
  b.node("Add", {"c", "bias"}, {"y"});
  const QuantizedRun r = quantize_and_run(b.model(), "fold");
  ASSERT_EQ(r.fp32.shape(), r.quantized.shape());
  EXPECT_LE(max_diff_in_steps(r.quantized, r.fp32), 3.0);
  // The folded subgraph leaves nothing to keep in float.
  EXPECT_NE(r.log.find("quantizer:"), std::string::npos) << r.log;
  EXPECT_EQ(r.log.find("stays float"), std::string::npos) << r.log;
}

TEST(CliQuantize, AbsAndPReluBetweenConvsStayFloat) {
  // Conv -> Abs -> Conv -> PRelu (a slope per channel) -> Conv: Abs and PRelu have no int8 form,
  // so they run in float between DequantizeLinear and QuantizeLinear.
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y", {2, 4, 4});
  b.init("w1", Tensor::from_vector<float>({2, 1, 1, 1}, {0.5f, -1.5f}));
  b.init("w2", Tensor::from_vector<float>({2, 2, 1, 1}, {1.0f, -0.5f, 0.25f, -1.0f}));
  b.init("w3", Tensor::from_vector<float>({2, 2, 1, 1}, {0.75f, 0.5f, -0.25f, 1.0f}));
  b.init("slope", Tensor::from_vector<float>({2, 1, 1}, {0.1f, 0.3f}));
  b.node("Conv", {"x", "w1"}, {"c1"});
  b.node("Abs", {"c1"}, {"a"});
  b.node("Conv", {"a", "w2"}, {"c2"});
  b.node("PRelu", {"c2", "slope"}, {"p"});
  b.node("Conv", {"p", "w3"}, {"y"});
  const QuantizedRun r = quantize_and_run(b.model(), "float_ops");
  EXPECT_NE(r.log.find("stays float: 'Abs_2' (Abs)"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("stays float: 'PRelu_4' (PRelu)"), std::string::npos) << r.log;
  ASSERT_EQ(r.fp32.shape(), r.quantized.shape());
  EXPECT_LE(max_diff_in_steps(r.quantized, r.fp32), 4.0);
}

TEST(CliQuantize, ConvThenClipWithMinAboveMaxGivesMaxEverywhere) {
  // ONNX: Clip(0.5, 0.1) makes every element 0.1. Calibration runs the Conv and Clip fused; the
  // quantized model, its compiled program on the NPU emulator and the FP32 model all give 0.1.
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y", {2, 4, 4});
  b.init("w", Tensor::from_vector<float>({2, 1, 1, 1}, {0.5f, -1.5f}));
  b.init("lo", Tensor::scalar<float>(0.5f));
  b.init("hi", Tensor::scalar<float>(0.1f));
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Clip", {"c", "lo", "hi"}, {"y"});
  const QuantizedRun r = quantize_and_run(b.model(), "clip_min_above_max");
  ASSERT_EQ(r.quantized.numel(), 8 * 2 * 4 * 4);
  for (int64_t i = 0; i < r.fp32.numel(); ++i) ASSERT_EQ(r.fp32.data<float>()[i], 0.1f) << i;
  for (int64_t i = 0; i < r.quantized.numel(); ++i) ASSERT_NEAR(r.quantized.data<float>()[i], 0.1f, 1e-6f) << i;
  const std::string dir = tmpdir() + "/clip_min_above_max";
  const test::CliResult c = anvil_cmd("compile " + dir + "/q.onnx --batch 8 -o " + dir + "/q.anvil");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const test::CliResult run =
      anvil_cmd("run " + dir + "/q.anvil --input " + dir + "/in/x.npy --dequantize -o " + dir + "/npu.npy");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const Tensor npu = read_npy(dir + "/npu.npy");
  ASSERT_EQ(npu.numel(), r.quantized.numel());
  for (int64_t i = 0; i < npu.numel(); ++i) ASSERT_NEAR(npu.data<float>()[i], 0.1f, 1e-6f) << i;
}
