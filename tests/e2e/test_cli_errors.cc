// Bad input to the `anvil` command gets one clear line on stderr and a non-zero exit, never a
// crash or a hang: missing files, files that are not ONNX, unsupported operators, corrupt
// programs, and input tensors of the wrong shape or dtype.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "cli_harness.h"
#include "copy_program.h"
#include "anvil/isa/program.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

std::string tmpdir() {
  static const std::string dir = test::cli_tmpdir("anvil_cli");
  return dir;
}

test::CliResult anvil_cmd(const std::string& args) { return test::run_anvil(args, tmpdir()); }
using test::expect_clear_error;

onnx::TensorProto init_scalar_f(const std::string& name, float v) { return tensor_to_proto(Tensor::scalar<float>(v), name); }
onnx::TensorProto init_scalar_i8(const std::string& name, int8_t v) { return tensor_to_proto(Tensor::scalar<int8_t>(v), name); }

/// x -> Q -> DQ -> Exp -> Q -> DQ -> y: a valid QDQ model whose middle operator the NPU cannot run.
std::string write_qdq_model_with_exp() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("exp_graph");
  auto add_io = [](onnx::ValueInfoProto* v, const std::string& name) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("N");
    t->mutable_shape()->add_dim()->set_dim_value(4);
  };
  add_io(g->add_input(), "x");
  add_io(g->add_output(), "y");
  *g->add_initializer() = init_scalar_f("s", 0.05f);
  *g->add_initializer() = init_scalar_i8("zp", 0);
  auto node = [&](const std::string& op, const std::string& name, std::vector<std::string> in, const std::string& out) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
  };
  node("QuantizeLinear", "q_in", {"x", "s", "zp"}, "xq");
  node("DequantizeLinear", "dq_in", {"xq", "s", "zp"}, "xd");
  node("Exp", "exp_node", {"xd"}, "e");
  node("QuantizeLinear", "q_out", {"e", "s", "zp"}, "eq");
  node("DequantizeLinear", "dq_out", {"eq", "s", "zp"}, "y");
  const std::string path = tmpdir() + "/exp_qdq.onnx";
  check_onnx(m, path);
  save_onnx(m, path);
  return path;
}

/// The copy program (cli_harness.h) for x [1, 4].
std::string write_copy_program() {
  const std::string path = tmpdir() + "/copy.anvil";
  test::copy_program(4).save(path);
  return path;
}

}  // namespace

TEST(CliErrors, UsageErrorsAreOneLineWithExitCodeOneAndHelpStillWorks) {
  test::expect_clear_error(anvil_cmd(""), {"A subcommand is required", "--help"});
  test::expect_clear_error(anvil_cmd("quantize"), {"model is required"});
  test::expect_clear_error(anvil_cmd("compile x.onnx -o p.anvil --batch 0"), {"--batch: Value 0 not in range"});
  test::expect_clear_error(anvil_cmd("no-such-command"), {"no-such-command"});
  const test::CliResult help = anvil_cmd("eval --help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--percentile"), std::string::npos) << help.out;
}

TEST(CliErrors, MissingModelFile) {
  expect_clear_error(anvil_cmd("compile /nonexistent/model.onnx -o " + tmpdir() + "/x.anvil"), {"/nonexistent/model.onnx"});
}

TEST(CliErrors, FileThatIsNotOnnx) {
  const std::string path = tmpdir() + "/junk.onnx";
  write_file(path, "certainly not a protobuf model\n");
  expect_clear_error(anvil_cmd("compile " + path + " -o " + tmpdir() + "/x.anvil"), {path, "not an ONNX model"});
}

TEST(CliErrors, UnsupportedOperatorNamesOperatorAndNode) {
  const std::string model = write_qdq_model_with_exp();
  expect_clear_error(anvil_cmd("compile " + model + " -o " + tmpdir() + "/x.anvil --npu-only"), {"Exp", "exp_node"});
  // With the host fallback (the default) the Exp runs on the host and the partition says why.
  const test::CliResult r = anvil_cmd("compile " + model + " -o " + tmpdir() + "/x.anvil");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("host: exp_node"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(Exp): operator not supported on the NPU"), std::string::npos) << r.out;
}

TEST(CliErrors, CopyProgramRunsAndReturnsItsInput) {
  const std::string prog = write_copy_program();
  write_npy(tmpdir() + "/x.npy", Tensor::from_vector<int8_t>({1, 4}, {-128, -1, 5, 127}));
  const test::CliResult r = anvil_cmd("run " + prog + " --input " + tmpdir() + "/x.npy -o " + tmpdir() + "/y.npy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_npy(tmpdir() + "/y.npy"), read_npy(tmpdir() + "/x.npy"));
}

TEST(CliErrors, TruncatedProgram) {
  std::string bytes = read_file(write_copy_program());
  const std::string path = tmpdir() + "/truncated.anvil";
  write_file(path, bytes.substr(0, bytes.size() - 7));
  write_npy(tmpdir() + "/x.npy", Tensor(DType::kInt8, {1, 4}));
  expect_clear_error(anvil_cmd("run " + path + " --input " + tmpdir() + "/x.npy"), {path, "truncated"});
}

TEST(CliErrors, ProgramWithAFlippedByte) {
  std::string bytes = read_file(write_copy_program());
  bytes[bytes.size() / 2] ^= 0x10;
  const std::string path = tmpdir() + "/flipped.anvil";
  write_file(path, bytes);
  write_npy(tmpdir() + "/x.npy", Tensor(DType::kInt8, {1, 4}));
  expect_clear_error(anvil_cmd("run " + path + " --input " + tmpdir() + "/x.npy"), {path, "checksum"});
}

TEST(CliErrors, InputOfTheWrongShape) {
  const std::string prog = write_copy_program();
  write_npy(tmpdir() + "/wrong_shape.npy", Tensor(DType::kInt8, {1, 5}));
  expect_clear_error(anvil_cmd("run " + prog + " --input " + tmpdir() + "/wrong_shape.npy"), {"'x'", "[1, 5]", "[1, 4]"});
}

TEST(CliErrors, InputOfTheWrongDtype) {
  const std::string prog = write_copy_program();
  write_npy(tmpdir() + "/wrong_dtype.npy", Tensor(DType::kInt32, {1, 4}));
  expect_clear_error(anvil_cmd("run " + prog + " --input " + tmpdir() + "/wrong_dtype.npy"), {"'x'", "int32"});
}

TEST(CliErrors, MissingInputFile) {
  expect_clear_error(anvil_cmd("run " + write_copy_program() + " --input /nonexistent/x.npy"), {"/nonexistent/x.npy"});
}

TEST(CliErrors, UnknownCalibrationMethod) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  fs::create_directories(tmpdir() + "/calib");
  write_npy(tmpdir() + "/calib/a.npy", Tensor(DType::kFloat32, {1, 1, 28, 28}));
  expect_clear_error(anvil_cmd("quantize " + model + " -o " + tmpdir() + "/q.onnx --calib npy:" + tmpdir() +
                               "/calib --method MAX_MIN"),
                     {"MAX_MIN"});
}

TEST(CliErrors, UnknownTarget) {
  const std::string model = write_qdq_model_with_exp();
  expect_clear_error(anvil_cmd("compile " + model + " -o " + tmpdir() + "/x.anvil --target tpu"), {"tpu"});
}

TEST(CliErrors, MissingDatasetDirectory) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  expect_clear_error(anvil_cmd("quantize " + model + " -o " + tmpdir() + "/q.onnx --calib npy:/nonexistent/dir"),
                     {"/nonexistent/dir"});
}

namespace {
/// An npy:DIR dataset of `n` uint8 28x28 training and test images, the test images labelled `labels`.
std::string write_npy_dataset(const std::string& name, int64_t n, const std::vector<int64_t>& labels) {
  const std::string dir = tmpdir() + "/" + name;
  fs::create_directories(dir);
  write_npy(dir + "/train_images.npy", Tensor(DType::kUInt8, {n, 28, 28}));
  write_npy(dir + "/test_images.npy", Tensor(DType::kUInt8, {n, 28, 28}));
  write_npy(dir + "/test_labels.npy", Tensor::from_vector<int64_t>({static_cast<int64_t>(labels.size())}, labels));
  return dir;
}
}  // namespace

TEST(CliErrors, EvalTestLabelsMustMatchTheImagesAndTheModelsClasses) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  const std::string eval = "eval " + model + " --methods MIN_MAX_ASYM --calib-count 2 --backend reference --dataset npy:";
  std::string dir = write_npy_dataset("ds_one_label", 4, {1});
  expect_clear_error(anvil_cmd(eval + dir), {dir + "/test_labels.npy", "1 labels for 4 images"});
  dir = write_npy_dataset("ds_label_200", 4, {1, 2, 200, 3});
  expect_clear_error(anvil_cmd(eval + dir), {dir + "/test_labels.npy", "label 200 (image 2)", "10 classes", model});
}

TEST(CliErrors, RunTakesEachInputOnce) {
  const std::string prog = write_copy_program(), x = tmpdir() + "/x.npy";
  write_npy(x, Tensor(DType::kInt8, {1, 4}));
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " " + x), {prog, "has 1 input, 2 given"});
  expect_clear_error(anvil_cmd("run " + prog + " --input x=" + x + " x=" + x), {prog, "has 1 input, 2 given"});
  // Two inputs, x2 at IO offset 8 (the program is not run): naming one of them twice.
  isa::Program two = test::copy_program(4);
  isa::TensorDesc x2 = two.inputs[0];
  x2.name = "x2";
  x2.io_offset = 8;
  two.inputs.push_back(x2);
  const std::string two_path = tmpdir() + "/two_inputs.anvil";
  two.save(two_path);
  expect_clear_error(anvil_cmd("run " + two_path + " --input x=" + x + " x=" + x), {"input 'x' given twice"});
}

TEST(CliErrors, RunInputWithoutAFileName) {
  expect_clear_error(anvil_cmd("run " + write_copy_program() + " --input x="), {"--input 'x='", "no file name", "'x'"});
}

TEST(CliErrors, RunSweepRejectsTheOutputsItDoesNotMake) {
  const std::string prog = write_copy_program(), x = tmpdir() + "/x.npy", run = "run " + prog + " --input " + x;
  write_npy(x, Tensor(DType::kInt8, {1, 4}));
  for (const std::string& option : {"-o " + tmpdir() + "/sw.npy", "--stats " + tmpdir() + "/sw.json",
                                    "--trace " + tmpdir() + "/sw_trace.json", std::string("--layers")})
    expect_clear_error(anvil_cmd(run + " --sweep dram_gbps=33,66 " + option),
                       {option.substr(0, option.find(' ')) + " and --sweep cannot be combined"});
}

TEST(CliErrors, BadAnvilDevicesNamesTheVariable) {
  const std::string prog = write_copy_program(), x = tmpdir() + "/x.npy";
  write_npy(x, Tensor(DType::kInt8, {1, 4}));
  const char* saved = std::getenv("ANVIL_DEVICES");
  const std::string saved_value = saved ? saved : "";
  setenv("ANVIL_DEVICES", "bogus", 1);
  const test::CliResult from_env = anvil_cmd("run " + prog + " --input " + x);
  const test::CliResult from_option = anvil_cmd("run " + prog + " --input " + x + " --device bogus2");
  if (saved) setenv("ANVIL_DEVICES", saved_value.c_str(), 1);
  else unsetenv("ANVIL_DEVICES");
  expect_clear_error(from_env, {"ANVIL_DEVICES: ", "'bogus'"});
  expect_clear_error(from_option, {"'bogus2'"});
  EXPECT_EQ(from_option.err.find("ANVIL_DEVICES"), std::string::npos) << from_option.err;
}

TEST(CliErrors, ThreadCountsAreRangeChecked) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  for (const std::string n : {"-1", "0", "100000"})
    expect_clear_error(anvil_cmd("bench " + model + " --batch 1 --repeat 1 --threads " + n), {"--threads", n});
  expect_clear_error(anvil_cmd("run " + write_copy_program() + " --input x.npy --threads 0"), {"--threads", "0"});
}

TEST(CliErrors, NormalisationValuesMustBeFiniteAndStdPositive) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  const std::string dir = write_npy_dataset("ds_norm", 2, {0, 1});
  const std::vector<std::string> commands = {
      "quantize " + model + " -o " + tmpdir() + "/q.onnx --calib npy:" + dir,
      "calibrate " + model + " -o " + tmpdir() + "/r.json --calib npy:" + dir,
      "eval " + model + " --dataset npy:" + dir + " --backend reference"};
  for (const std::string& cmd : commands) {
    expect_clear_error(anvil_cmd(cmd + " --std inf"), {"--std", "inf is not finite"});
    expect_clear_error(anvil_cmd(cmd + " --std 0.3 0"), {"--std", "0 is not positive"});
    expect_clear_error(anvil_cmd(cmd + " --mean=-inf"), {"--mean", "-inf is not finite"});
  }
}

TEST(CliErrors, RefOutputFolderThatIsAFile) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  const std::string in = tmpdir() + "/ref_in", file = tmpdir() + "/ref_out_file";
  fs::create_directories(in);
  write_npy(in + "/input.npy", Tensor(DType::kFloat32, {1, 1, 28, 28}));
  write_file(file, "");
  const std::string ref = "ref " + model + " --input-dir " + in + " -o ";
  expect_clear_error(anvil_cmd(ref + file), {file + ": not a directory"});
  expect_clear_error(anvil_cmd(ref + file + "/sub"), {file + "/sub: " + file + " is not a directory"});
  const test::CliResult ok = anvil_cmd(ref + tmpdir() + "/ref_out/new");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(CliErrors, OutputThatIsTheInputModelIsRefused) {
  const std::string model = write_qdq_model_with_exp(), link = tmpdir() + "/exp_link.onnx";
  const std::string before = read_file(model);
  fs::remove(link);
  fs::create_symlink(model, link);
  expect_clear_error(anvil_cmd("compile " + model + " -o " + model), {"-o " + model, "is the input model"});
  expect_clear_error(anvil_cmd("compile " + model + " -o " + link), {"-o " + link, "is the input model"});
  const std::string dir = write_npy_dataset("ds_same", 2, {0, 1});
  expect_clear_error(anvil_cmd("quantize " + link + " -o " + model + " --calib npy:" + dir), {"is the input model"});
  expect_clear_error(anvil_cmd("calibrate " + model + " -o " + model + " --calib npy:" + dir), {"is the input model"});
  EXPECT_EQ(read_file(model), before);
}

TEST(CliErrors, CompileOfAFloatModelSaysToQuantizeFirst) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  expect_clear_error(anvil_cmd("compile " + model + " -o " + tmpdir() + "/fp32.anvil"),
                     {model + " is not a quantized (QDQ) model: run anvil quantize first"});
}

TEST(CliErrors, QuantizeAndCalibrateRefuseAQuantizedModel) {
  const std::string model = write_qdq_model_with_exp(), dir = write_npy_dataset("ds_quantized", 2, {0, 1});
  for (const std::string& cmd : {"quantize " + model + " -o " + tmpdir() + "/qq.onnx --calib npy:" + dir,
                                 "calibrate " + model + " -o " + tmpdir() + "/qq.json --calib npy:" + dir})
    expect_clear_error(anvil_cmd(cmd), {model + ": node 'q_in' (QuantizeLinear): the model is already quantized"});
}

TEST(CliErrors, DeviceServeTakesAPresetOrAHardwareConfigNotBoth) {
  expect_clear_error(anvil_cmd("device serve --socket " + tmpdir() + "/s.sock --preset warboy --hw-config x.json"),
                     {"--hw-config", "--preset"});
}

TEST(CliErrors, PerTensorSearchSummaryNamesTheSearchNotTheIgnoredMethod) {
  const std::string model = std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx";
  const std::string dir = tmpdir() + "/ds_search";
  fs::create_directories(dir);
  Tensor px(DType::kUInt8, {4, 28, 28});
  for (int64_t i = 0; i < px.numel(); ++i) px.data<uint8_t>()[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  write_npy(dir + "/train_images.npy", px);
  const test::CliResult r = anvil_cmd("quantize " + model + " -o " + tmpdir() + "/search.onnx --calib npy:" + dir +
                                      " --calib-count 4 --search-samples 2 --per-tensor-search --method MSE_SYM");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("with the per-tensor search ("), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("with MSE_SYM"), std::string::npos) << r.out;
}

TEST(CliErrors, RunRequestsRefusesLayersAndRepeat) {
  // They were silently ignored: a stream prints throughput and latency percentiles only.
  const std::string prog = write_copy_program(), x = tmpdir() + "/x_stream.npy";
  write_npy(x, Tensor(DType::kInt8, {1, 4}));
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 3 --layers"), {"--layers", "--requests"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --requests 3 --repeat 2"), {"--repeat", "--requests"});
}

TEST(CliErrors, RunTimeoutBoundsAHungPeWhoseWatchdogIsFarAway) {
  // A PE hang with a watchdog of 10^6 simulated s: without --timeout `anvil run` waits for the
  // runtime's deadlines (60 s, then 300 s); with it, one clear error after about that long.
  const std::string prog = write_copy_program(), x = tmpdir() + "/x_hang.npy";
  write_npy(x, Tensor(DType::kInt8, {1, 4}));
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x +
                               " --set fault_pe_hang_at=1 --set watchdog_cycles=2000000000000000 --timeout 1"),
                     {"no completion for command", "before its deadline", "the device was reset"});
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x + " --timeout 0"), {"--timeout"});
  // The same with --requests: the stream's receive waits past the device deadline, so the device
  // fault is what is reported, not a "queue timeout" racing it.
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x +
                               " --set fault_pe_hang_at=1 --set watchdog_cycles=2000000000000000 --timeout 0.5"
                               " --requests 3"),
                     {"no completion for command", "before its deadline", "the device was reset"});
  // The same with --sweep: every point's session has the deadline.
  expect_clear_error(anvil_cmd("run " + prog + " --input " + x +
                               " --set fault_pe_hang_at=1 --set watchdog_cycles=2000000000000000 --timeout 1"
                               " --sweep dram_gbps=66,33"),
                     {"no completion for command", "before its deadline", "the device was reset"});
}
