// `anvil ref` from the shell: models with sequence and optional graph inputs and outputs (Identity,
// opset 16) read SequenceProto / OptionalProto input_K.pb files and write the same kind of output_K.pb
// files; tensors as NAME.npy with exporter-style names; every bad input is one clear error naming the file.
#include <gtest/gtest.h>

#include "../reference/model_builder.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "cli_harness.h"

using namespace anvil;
using namespace anvil::test;

namespace {

onnx::TypeProto float_tensor() { return tensor_type(DType::kFloat32); }

/// x (of `type`) -> Identity -> y, and t [2] -> Relu -> r; written to DIR/m.onnx.
std::string write_model(const std::string& dir, const onnx::TypeProto& type) {
  ModelBuilder b(16);
  b.typed_input("x", type);
  b.input("t", DType::kFloat32, {2});
  b.node("Identity", {"x"}, {"y"}, "id");
  b.node("Relu", {"t"}, {"r"}, "relu");
  b.typed_output("y", type);
  onnx::TypeProto r = float_tensor();
  r.mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  b.typed_output("r", r);
  const std::string path = dir + "/m.onnx";
  check_onnx(b.model(), path);
  save_onnx(b.model(), path);
  return path;
}

Tensor floats(Shape shape, float first) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + static_cast<float>(i);
  return t;
}

const Tensor kT = Tensor::from_vector<float>({2}, {-1.0f, 2.0f});

/// Runs `anvil ref` on x and t as .pb files and checks the outputs it writes.
void expect_round_trip(const std::string& tag, const onnx::TypeProto& type, ValueKind kind, const Value& x,
                       const std::string& described) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_" + tag);
  const std::string model = write_model(dir, type);
  write_value_pb(dir + "/input_0.pb", x, "x");
  write_tensor_pb(dir + "/input_1.pb", kT, "t");
  const CliResult r = run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("y " + described + " -> " + dir + "/out/output_0.pb"), std::string::npos) << r.out;
  std::string name;
  EXPECT_EQ(read_value_pb(dir + "/out/output_0.pb", kind, &name), x);
  EXPECT_EQ(name, "y");
  EXPECT_EQ(read_tensor_pb(dir + "/out/output_1.pb"), Tensor::from_vector<float>({2}, {0.0f, 2.0f}));
}

}  // namespace

TEST(CliRefValues, SequenceInAndOut) {
  expect_round_trip("seq", sequence_of(float_tensor()), ValueKind::kSequence,
                    Value::sequence({floats({1, 2}, 1.0f), floats({3}, 4.0f)}),
                    "sequence(2)[float32[1, 2], float32[3]]");
}

TEST(CliRefValues, OptionalInAndOut) {
  const onnx::TypeProto type = optional_of(sequence_of(float_tensor()));
  expect_round_trip("opt", type, ValueKind::kOptional, Value::optional(Value::sequence({floats({5}, 1.0f)})),
                    "optional(sequence(1)[float32[5]])");
  expect_round_trip("opt_empty", type, ValueKind::kOptional, Value::optional(), "optional(empty)");
}

TEST(CliRefValues, SequenceAsNpyIsAClearError) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_npy");
  const std::string model = write_model(dir, sequence_of(float_tensor()));
  write_npy(dir + "/x.npy", floats({2}, 0.0f));
  write_npy(dir + "/t.npy", kT);
  expect_clear_error(run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir),
                     {"no input_0.pb for input 'x' (type sequence)", ".npy holds only tensors"});
}

TEST(CliRefValues, TensorFileForASequenceIsAClearError) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_wrong_kind");
  const std::string model = write_model(dir, sequence_of(float_tensor()));
  write_tensor_pb(dir + "/input_0.pb", floats({2}, 0.0f), "x");
  write_tensor_pb(dir + "/input_1.pb", kT, "t");
  expect_clear_error(run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir),
                     {dir + "/input_0.pb: not a serialized ONNX SequenceProto"});
}

namespace {

/// `in` [2] -> Relu -> `out`, written to DIR/names.onnx.
std::string write_relu_model(const std::string& dir, const std::string& in, const std::string& out) {
  ModelBuilder b(13);
  b.input(in, DType::kFloat32, {2});
  b.node("Relu", {in}, {out}, "relu");
  onnx::TypeProto r = float_tensor();
  r.mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  b.typed_output(out, r);
  const std::string path = dir + "/names.onnx";
  check_onnx(b.model(), path);
  save_onnx(b.model(), path);
  return path;
}

}  // namespace

/// Exporters name values like "/blocks.0/att/Add_output_0": in NAME.npy such a name's '/' (and any
/// other character not portable in a file name) is '_', for inputs and outputs alike.
TEST(CliRef, NpyFileNamesOfNamesWithSlashes) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_npy_names");
  const std::string model = write_relu_model(dir, "/in/x:0", "/blocks.0/y");
  write_npy(dir + "/_in_x_0.npy", kT);
  const CliResult r = run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("/blocks.0/y float32[2] -> " + dir + "/out/_blocks.0_y.npy"), std::string::npos) << r.out;
  EXPECT_EQ(read_npy(dir + "/out/_blocks.0_y.npy"), Tensor::from_vector<float>({2}, {0.0f, 2.0f}));
}

TEST(CliRef, MissingInputFileIsAClearError) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_missing");
  const std::string model = write_relu_model(dir, "/in/x", "y");
  expect_clear_error(run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir),
                     {"no input_0.pb or _in_x.npy for input '/in/x'"});
}

TEST(CliRef, TwoNamesOnOneNpyFileAreAClearError) {
  const std::string dir = cli_tmpdir("anvil_cli_ref_collide");
  ModelBuilder b(13);
  b.input("a/b", DType::kFloat32, {2});
  b.input("a_b", DType::kFloat32, {2});
  b.node("Add", {"a/b", "a_b"}, {"y"}, "add");
  onnx::TypeProto r = float_tensor();
  r.mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  b.typed_output("y", r);
  const std::string model = dir + "/collide.onnx";
  save_onnx(b.model(), model);
  write_npy(dir + "/a_b.npy", kT);
  expect_clear_error(run_anvil("ref " + model + " --input-dir " + dir + " -o " + dir + "/out", dir),
                     {"graph inputs 'a/b' and 'a_b' would both be a_b.npy"});
}
