// `anvil compile --report` and `anvil run --layers` on a partitioned program: a quantized CNN with a
// LogSoftmax (no NPU lowering) between two convs compiles into NPU / host / NPU segments. The report
// states the host segment's boundary traffic (the bytes of the values crossing it) and its estimated
// transfer time; `run --layers` prints a layer table per NPU segment and the host segment's nodes
// and measured wall time, and --stats carries the same per segment. An NPU segment without a layer
// list is one clear error naming the segment. Needs only files the test writes (no ../shared).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../reference/qdq_builder.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/isa/program.h"
#include "cli_harness.h"

using namespace anvil;
using namespace anvil::test;

namespace {

/// x [N,3,6,6] -> Conv 3x3 pad 1 (4 ch) -> Relu -> LogSoftmax(axis 1) -> Conv 1x1 (5 ch) ->
/// GlobalAveragePool -> y [N,5,1,1], every tensor between nodes quantized.
onnx::ModelProto log_softmax_cnn(const ActParams& p) {
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 3, 6, 6});
  std::vector<float> s1, s2;
  const std::string w1 = q.weight("w1", random_tensor({4, 3, 3, 3}, -0.5f, 0.5f, 71), 0, &s1);
  const std::string b1 = q.bias("b1", {0.1f, -0.2f, 0.05f, 0.0f}, q.params("x").scale, s1);
  auto& conv1 = q.b.node("Conv", {q.qdq("x"), w1, b1}, {"c1_pre"}, "conv1");
  ModelBuilder::attr(conv1, "pads", std::vector<int64_t>{1, 1, 1, 1});
  q.b.node("Relu", {"c1_pre"}, {"c1"}, "relu1");
  ModelBuilder::attr(q.b.node("LogSoftmax", {q.qdq("c1")}, {"s"}, "softmax"), "axis", int64_t{1});
  const std::string w2 = q.weight("w2", random_tensor({5, 4, 1, 1}, -1.0f, 1.0f, 72), 0, &s2);
  const std::string b2 = q.bias("b2", {0.0f, 0.1f, -0.1f, 0.2f, 0.0f}, q.params("s").scale, s2);
  q.b.node("Conv", {q.qdq("s"), w2, b2}, {"c2"}, "conv2");
  q.b.node("GlobalAveragePool", {q.qdq("c2")}, {"y"}, "gap");
  q.b.output(q.qdq("y"));
  onnx::ModelProto m = q.b.model();  // the file needs the output's shape (ONNX checker): [N, 5, 1, 1]
  auto* shape = m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (int64_t d : {5, 1, 1}) shape->add_dim()->set_dim_value(d);
  return m;
}

std::string dir() {
  static const std::string d = cli_tmpdir("anvil_cli_run_layers_partitioned");
  return d;
}

/// The model compiled by the CLI (with --report), once.
const CliResult& compiled() {
  static const CliResult r = [] {
    const Tensor x = random_tensor({1, 3, 6, 6}, -1.0f, 1.0f, 73);
    const onnx::ModelProto m = log_softmax_cnn(calibrate(log_softmax_cnn, {"x", "c1", "s", "c2", "y"}, {{"x", x}}));
    save_onnx(m, dir() + "/m.onnx");
    write_npy(dir() + "/x.npy", x);
    return run_anvil("compile " + dir() + "/m.onnx -o " + dir() + "/m.anvil --report " + dir() + "/report.json", dir());
  }();
  return r;
}

}  // namespace

TEST(CliRunLayersPartitioned, ReportStatesTheHostSegmentsBoundaryTraffic) {
  ASSERT_EQ(compiled().exit_code, 0) << compiled().err;
  const nlohmann::json j = nlohmann::json::parse(read_file(dir() + "/report.json"));
  ASSERT_EQ(j.at("segments").size(), 3u);
  ASSERT_EQ(j.at("host_segments").size(), 1u);
  const nlohmann::json& h = j.at("host_segments").at(0);
  EXPECT_EQ(h.at("segment"), 1);
  EXPECT_EQ(h.at("nodes"), nlohmann::json::array({"softmax"}));
  // In: c1 (int8 [1,4,6,6], from NPU segment 0); out: s (int8 [1,4,6,6], read by NPU segment 2).
  EXPECT_EQ(h.at("bytes_from_device"), 144u);
  EXPECT_EQ(h.at("bytes_to_device"), 144u);
  const double want_us = 2 * (1000.0 + 144 / 15.75) / 1000.0;  // warboy: 15.75 GB/s, 1000 ns per transfer
  EXPECT_NEAR(h.at("est_transfer_us").get<double>(), want_us, 1e-9);
  const nlohmann::json& t = j.at("host_transfer");
  EXPECT_EQ(t.at("bytes_from_device"), 144u);
  EXPECT_EQ(t.at("bytes_to_device"), 144u);
  EXPECT_NEAR(t.at("est_transfer_us").get<double>(), want_us, 1e-9);
  const std::string& out = compiled().out;
  EXPECT_NE(out.find("host segment 1 (1 node(s)): 144 bytes from the device, 144 bytes to the device"),
            std::string::npos) << out;
  EXPECT_NE(out.find("host segments total: 144 bytes from / 144 to the device"), std::string::npos) << out;
}

TEST(CliRunLayersPartitioned, LayersPrintsEverySegment) {
  ASSERT_EQ(compiled().exit_code, 0) << compiled().err;
  const std::string stats = dir() + "/stats.json";
  const CliResult r = run_anvil("run " + dir() + "/m.anvil --input " + dir() + "/x.npy --layers --repeat 1 --stats " + stats,
                                dir());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"segment 0 (npu):", "segment 1 (host):", "1 node(s): softmax", "segment 2 (npu):", "conv1", "conv2",
                        "gap", "roofline"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in " << r.out;
  EXPECT_LT(r.out.find("segment 0 (npu):"), r.out.find("conv1"));
  EXPECT_LT(r.out.find("conv1"), r.out.find("segment 1 (host):"));
  EXPECT_LT(r.out.find("segment 2 (npu):"), r.out.find("conv2"));
  const nlohmann::json j = nlohmann::json::parse(read_file(stats));
  ASSERT_EQ(j.at("segments").size(), 3u);
  const nlohmann::json& host = j.at("segments").at(1);
  EXPECT_EQ(host.at("kind"), "host");
  EXPECT_EQ(host.at("nodes"), nlohmann::json::array({"softmax"}));
  EXPECT_EQ(host.at("host_us").get<double>(), j.at("host_us").get<double>());  // the only host segment
  uint64_t macs = 0, cycles = 0;
  for (int i : {0, 2}) {
    const nlohmann::json& seg = j.at("segments").at(i);
    EXPECT_EQ(seg.at("kind"), "npu");
    cycles += seg.at("cycles").get<uint64_t>();
    ASSERT_FALSE(seg.at("layers").empty());
    for (const auto& l : seg.at("layers")) {
      macs += l.at("macs").get<uint64_t>();
      if (l.at("op") == "conv") {
        EXPECT_GE(l.at("simulated_cycles").get<double>(), l.at("roofline_cycles").get<double>());
      }
    }
  }
  EXPECT_EQ(j.at("segments").at(0).at("layers").at(0).at("node"), "conv1");
  EXPECT_EQ(macs, j.at("macs").get<uint64_t>());
  EXPECT_EQ(cycles, j.at("cycles").get<uint64_t>());
}

TEST(CliRunLayersPartitioned, NpuSegmentWithoutLayerListIsOneClearError) {
  ASSERT_EQ(compiled().exit_code, 0) << compiled().err;
  isa::Program p = isa::Program::load(dir() + "/m.anvil");
  isa::Program seg = isa::Program::parse(p.segments.at(2).payload, "segment 2");
  seg.metadata = "{}";
  p.segments.at(2).payload = seg.serialize();
  p.save(dir() + "/no_layers.anvil");
  expect_clear_error(run_anvil("run " + dir() + "/no_layers.anvil --input " + dir() + "/x.npy --layers", dir()),
                     {"no_layers.anvil: segment 2", "layers"});
  // Without --layers the same program runs.
  EXPECT_EQ(run_anvil("run " + dir() + "/no_layers.anvil --input " + dir() + "/x.npy", dir()).exit_code, 0);
}
