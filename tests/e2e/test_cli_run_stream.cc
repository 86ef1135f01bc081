// anvil run --requests / --queue-depth / --device: a stream of requests through the runtime's
// queue, its throughput and simulated latency percentiles on the terminal and in --stats; and a
// clear one-line error for each bad value.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"
#include "anvil/common/tensor_io.h"
#include "anvil/isa/program.h"
#include "cli_harness.h"
#include "copy_program.h"
#include "serve_process_for_tests.h"

using namespace anvil;
using anvil::test::expect_clear_error;

namespace {

std::string tmpdir() {
  static const std::string d = anvil::test::cli_tmpdir("anvil_cli_run_stream");
  return d;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }

/// The copy program (cli_harness.h) for x [1, 16].
std::string copy_program() {
  const std::string path = tmpdir() + "/copy16.anvil";
  anvil::test::copy_program(16).save(path);
  return path;
}

std::string input_file() {
  std::vector<int8_t> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<int8_t>(i * 7 - 50);
  const std::string path = tmpdir() + "/x16.npy";
  write_npy(path, Tensor::from_vector<int8_t>({1, 16}, v));
  return path;
}

using test::ServeProcess;

}  // namespace

TEST(CliRunStream, FiguresOfADeviceServerUseTheServersChipNotTheLocalConfiguration) {
  const std::string socket = tmpdir() + "/clock.sock";
  ServeProcess server({"--socket", socket, "--preset", "warboy", "--set", "clock_ghz=1.0"});
  ASSERT_NE(server.first_line().find("listening"), std::string::npos);
  const std::string prog = copy_program(), x = input_file(), stats = tmpdir() + "/remote.json";
  // The local configuration (the program's preset) runs at 2 GHz; the server's chip at 1 GHz.
  test::CliResult r = anvil_cmd("run " + prog + " --input " + x + " --device unix:" + socket + " --stats " + stats);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("at 1.00 GHz"), std::string::npos) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(stats));
  EXPECT_EQ(j.at("clock_ghz").get<double>(), 1.0);
  EXPECT_EQ(j.at("hw_config").at("clock_ghz").get<double>(), 1.0);
  r = anvil_cmd("run " + prog + " --input " + x + " --device unix:" + socket + " --requests 2 --stats " + stats);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(read_file(stats));
  EXPECT_EQ(j.at("clock_ghz").get<double>(), 1.0);
  EXPECT_EQ(j.at("hw_config").at("clock_ghz").get<double>(), 1.0);
}

TEST(CliRunStream, ThroughputAndLatencyPercentilesOnTheTerminalAndInStats) {
  const std::string prog = copy_program(), x = input_file();
  const std::string stats = tmpdir() + "/stream.json", out = tmpdir() + "/y.npy";
  const test::CliResult r = anvil_cmd("run " + prog + " --input " + x + " --requests 20 --queue-depth 4 --device 'warboy(2)*1'" +
                                      " --stats " + stats + " -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("20 requests on warboy(2)*1 (2 unit(s), queue depth 4)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("inferences per simulated second"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p99"), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(read_file(stats));
  EXPECT_GT(j.at("throughput_per_sim_s").get<double>(), 0.0);
  EXPECT_GT(j.at("throughput_per_host_s").get<double>(), 0.0);
  const auto& lat = j.at("latency_sim_us");
  EXPECT_GT(lat.at("p50").get<double>(), 0.0);
  EXPECT_LE(lat.at("p50").get<double>(), lat.at("p95").get<double>());
  EXPECT_LE(lat.at("p95").get<double>(), lat.at("p99").get<double>());
  EXPECT_EQ(j.at("requests").get<int>(), 20);
  const auto per_unit = j.at("requests_per_unit").get<std::vector<uint64_t>>();
  ASSERT_EQ(per_unit.size(), 2u);
  EXPECT_EQ(per_unit[0] + per_unit[1], 20u);
  EXPECT_GT(per_unit[0], 0u);
  EXPECT_GT(per_unit[1], 0u);
  EXPECT_TRUE(read_npy(out) == read_npy(x));  // the program copies its input
}

TEST(CliRunStream, DeviceSpecAlsoSelectsThePeOfASingleRun) {
  const test::CliResult r = anvil_cmd("run " + copy_program() + " --input " + input_file() + " --device npu0pe1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliRunStream, BadValuesAreClearErrors) {
  const std::string prog = copy_program(), x = input_file();
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 0"), {"--requests"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests abc"), {"--requests"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 4 --queue-depth 64"), {"--queue-depth"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --queue-depth 2"), {"--queue-depth needs --requests"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 2 --device 'warboy(3)*1'"),
                     {"device spec", "warboy(3)*1"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 2 --device npu0pe0,npu0pe0"),
                     {"names a PE twice"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 2 --sweep dram_gbps=10,20"),
                     {"--requests and --sweep"});
}
