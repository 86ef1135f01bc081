// `anvil run --layers / --stats / --repeat`: the per-layer roofline table of a compiled model, the
// same numbers in --stats, host timing fields, and a program without a layer list as one clear
// error. Needs only files the test writes (no ../shared).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../quantizer/model_builder.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/isa/program.h"
#include "cli_harness.h"
#include "copy_program.h"

using namespace anvil;
using namespace anvil::quant::test;
namespace fs = std::filesystem;

namespace {

std::string tmpdir() {
  static const std::string dir = test::cli_tmpdir("anvil_cli_run_layers");
  return dir;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }

/// x [1,8,16,16] -> Conv 3x3 (16) -> Relu -> Conv 1x1 (8) -> y, quantized and compiled by the CLI.
std::string compiled_program() {
  ModelBuilder b;
  b.input("x", {8, 16, 16}).output("y", {8, 16, 16});
  b.init("w1", random_tensor({16, 8, 3, 3}, -0.5f, 0.5f, 1));
  b.init("b1", random_tensor({16}, -0.1f, 0.1f, 2));
  b.init("w2", random_tensor({8, 16, 1, 1}, -0.5f, 0.5f, 3));
  b.init("b2", random_tensor({8}, -0.1f, 0.1f, 4));
  onnx::NodeProto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"});
  set_ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  b.node("Conv", {"r1", "w2", "b2"}, {"y"});
  const std::string model = tmpdir() + "/two_convs.onnx", data = tmpdir() + "/data";
  save_onnx(b.model(), model);
  fs::create_directories(data);
  write_npy(data + "/train_images.npy", random_tensor({8, 8, 16, 16}, 0.0f, 1.0f, 5));
  write_npy(tmpdir() + "/x.npy", random_tensor({1, 8, 16, 16}, 0.0f, 1.0f, 6));
  test::CliResult r = anvil_cmd("quantize " + model + " -o " + tmpdir() + "/q.onnx --calib npy:" + data);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = anvil_cmd("compile " + tmpdir() + "/q.onnx -o " + tmpdir() + "/p.anvil");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return tmpdir() + "/p.anvil";
}

TEST(CliRunLayers, TableStatsAndTiming) {
  const std::string prog = compiled_program(), stats = tmpdir() + "/stats.json";
  const test::CliResult r =
      anvil_cmd("run " + prog + " --input " + tmpdir() + "/x.npy --layers --repeat 2 --threads 1 --stats " + stats);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"roofline", "simulated", "ratio", "lowest simulated / roofline ratio", "host wall time"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in " << r.out;
  const nlohmann::json j = nlohmann::json::parse(read_file(stats));
  ASSERT_TRUE(j.contains("layers"));
  int convs = 0;
  uint64_t macs = 0;
  for (const auto& l : j.at("layers")) {
    macs += l.at("macs").get<uint64_t>();
    if (l.at("op") != "conv") continue;
    ++convs;
    EXPECT_GE(l.at("simulated_cycles").get<double>(), l.at("roofline_cycles").get<double>()) << l.dump();
    EXPECT_GE(l.at("ratio").get<double>(), 1.0);
    EXPECT_NE(r.out.find(l.at("node").get<std::string>()), std::string::npos);
  }
  EXPECT_EQ(convs, 2);
  EXPECT_EQ(macs, j.at("macs").get<uint64_t>());
  EXPECT_EQ(j.at("host").at("repeat"), 2);
  EXPECT_GT(j.at("host").at("median_ms").get<double>(), 0.0);
  EXPECT_EQ(j.at("input_shape"), nlohmann::json::array({1, 8, 16, 16}));
}

TEST(CliRunLayers, ProgramWithoutLayerListIsOneClearError) {
  isa::Program p = test::copy_program(4);  // its I/O, with no instructions and no layer list
  p.instructions.clear();
  p.sram_bytes = 0;
  p.metadata = "{}";
  const std::string prog = tmpdir() + "/no_layers.anvil";
  p.save(prog);
  write_npy(tmpdir() + "/x4.npy", Tensor::from_vector<int8_t>({1, 4}, {1, 2, 3, 4}));
  test::expect_clear_error(anvil_cmd("run " + prog + " --input " + tmpdir() + "/x4.npy --layers"), {"layers"});
  // --stats alone still works: it adds the layer table only when the program lists its layers.
  const test::CliResult r = anvil_cmd("run " + prog + " --input " + tmpdir() + "/x4.npy --stats " + tmpdir() + "/s.json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(read_file(tmpdir() + "/s.json")).contains("layers"));
}

}  // namespace
