// Host fallback with one kHost op per refused node and host values (Int8Value::dtype): the
// lowering of vit-style shape arithmetic, the integer graph's round trip through int8_graph_io
// with those values, an unquantized graph output, and every new error path.
#include <gtest/gtest.h>

#include <cstring>

#include "host_values_model.h"

using namespace anvil;
using anvil::test::ModelBuilder;
using anvil::test::random_tensor;

namespace {

constexpr int64_t kBatch = 2;

ref::LowerOptions fallback() {
  ref::LowerOptions o;
  o.host_fallback = true;
  o.fold_shapes = false;  // the shape arithmetic stays as int64 host values (folded: test_fold_shapes.cc)
  return o;
}

const onnx::ModelProto& model() {
  static const onnx::ModelProto m = anvil::test::calibrated_host_values_model(random_tensor({kBatch, 8}, -1, 1, 7));
  return m;
}

const ref::Int8Graph& graph() {
  static const ref::Int8Graph g = ref::lower_qdq(model(), kBatch, fallback()).value();
  return g;
}

int value(const ref::Int8Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].name == name) return static_cast<int>(i);
  ADD_FAILURE() << "no value " << name;
  return -1;
}

std::string error_of(const onnx::ModelProto& m) {
  auto g = ref::lower_qdq(m, kBatch, fallback());
  if (g.ok()) return "lowered";
  EXPECT_EQ(g.error().code(), ErrorCode::kUnsupported);
  return g.error().what();
}

std::string parse_error(const std::string& bytes) {
  auto g = ref::parse_int8_graph(bytes, "g");
  if (g.ok()) return "parsed";
  EXPECT_EQ(g.error().code(), ErrorCode::kParseError);
  return g.error().what();
}

/// The byte offset just past value `index`'s zero point in a version-2 serialization.
size_t after_zero_point(const std::string& bytes, size_t index) {
  size_t pos = 12;  // magic, version, value count
  for (size_t i = 0;; ++i) {
    uint32_t len, rank;
    std::memcpy(&len, bytes.data() + pos, 4);
    pos += 4 + len;
    std::memcpy(&rank, bytes.data() + pos, 4);
    pos += 4 + 8 * rank + 4 + 4;
    if (i == index) return pos;
    pos += 4;  // dtype
  }
}

}  // namespace

TEST(HostValues, EachRefusedNodeIsOneHostOpInGraphOrder) {
  const ref::Int8Graph& g = graph();
  std::vector<std::string> ops;
  for (const auto& op : g.ops) ops.push_back(op.node + ":" + ref::int8_op_name(op.kind));
  EXPECT_EQ(ops, (std::vector<std::string>{"matmul1:conv", "shape:host", "gather:host", "unsqueeze:host",
                                           "concat1:host", "concat2:host", "reshape1:host", "softmax1:host",
                                           "reshape2:host", "matmul2:conv", "reshape3:host", "softmax2:host"}));
  // The shape arithmetic's values are int64 host values of their real (batch 2) shapes; the
  // Reshape -> Softmax -> Reshape floats are float32 host values; the Q outputs are int8.
  const auto dtype = [&](const std::string& v) { return g.values[value(g, v)].dtype; };
  EXPECT_EQ(dtype("a_shape"), DType::kInt64);
  EXPECT_EQ(g.values[value(g, "n")].shape, Shape{});
  EXPECT_EQ(g.values[value(g, "s1")].shape, Shape{3});
  EXPECT_EQ(dtype("r"), DType::kFloat32);
  EXPECT_EQ(g.values[value(g, "r")].shape, (Shape{kBatch, 3, 4}));
  EXPECT_EQ(dtype("sm"), DType::kFloat32);
  EXPECT_EQ(dtype("f_q"), DType::kInt8);
  EXPECT_EQ(g.values[value(g, "y_q")].shape, (Shape{kBatch, 3, 4}));
  const ref::Int8Op& reshape3 = g.ops[10];
  ASSERT_EQ(reshape3.inputs.size(), 2u);
  EXPECT_EQ(g.values[reshape3.inputs[0]].name, "b_q");  // the int8 value its DequantizeLinear reads
  EXPECT_EQ(g.values[reshape3.inputs[1]].name, "s1");   // the host value, computed before matmul2
  EXPECT_EQ(g.values[reshape3.output].name, "y_q");
  EXPECT_EQ(reshape3.host_reason, "node 'reshape3' (Reshape): shape must be a constant");
  EXPECT_EQ(g.ops[7].host_reason, "node 'softmax1' (Softmax): input 'r' is not a DequantizeLinear of a quantized value");
  for (const auto& op : g.ops) EXPECT_NE(op.node, "dead_shape");  // nothing reads it: no op
  // The float graph output stays float: the host value of the last Softmax.
  ASSERT_EQ(g.output_names, (std::vector<std::string>{"y_dq", "p"}));
  EXPECT_EQ(g.values[g.outputs[1]].dtype, DType::kFloat32);
  EXPECT_EQ(g.values[g.outputs[1]].shape, (Shape{kBatch, 12}));
}

TEST(HostValues, HostOpsAreTheFloatSemanticsOfTheirNodes) {
  // The last two host ops read the int8 output b_q of the NPU MatMul (made a graph output here):
  // y_q = Q(Reshape(DQ(b_q), s1)) with s1 the [N, 3, 4] computed from Shape(a), and the float
  // output p = Softmax(DQ(b_q)), exactly as the float executor computes them.
  onnx::ModelProto m = model();
  auto* out = m.mutable_graph()->add_output();
  out->set_name("b_q");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT8);
  const ref::Int8Graph g = ref::lower_qdq(m, kBatch, fallback()).value();
  const Tensor x = ref::quantize_tensor(random_tensor({kBatch, 8}, -1, 1, 9), g.values[g.inputs[0]].q);
  const TensorMap got = ref::run_int8(g, {{"x", x}}).value();
  const Tensor b = ref::dequantize_tensor(got.at("b_q"), g.values[value(g, "b_q")].q);
  EXPECT_TRUE(got.at("y_dq") == ref::quantize_tensor(b, g.values[value(g, "y_q")].q).reshaped({kBatch, 3, 4}));
  ModelBuilder softmax;
  softmax.input("b", DType::kFloat32, {kBatch, 12});
  ModelBuilder::attr(softmax.node("Softmax", {"b"}, {"p"}, "sm"), "axis", int64_t{1});
  softmax.output("p");
  const Tensor want = ref::Executor::create(softmax.model()).value().run({{"b", b}}).value().at("p");
  ASSERT_EQ(got.at("p").dtype(), DType::kFloat32);
  EXPECT_TRUE(got.at("p") == want);
}

TEST(HostValues, GraphRoundTripsThroughInt8GraphIoWithItsHostValues) {
  const ref::Int8Graph& g = graph();
  const std::string bytes = ref::serialize_int8_graph(g);
  EXPECT_EQ(ref::serialize_int8_graph(ref::lower_qdq(model(), kBatch, fallback()).value()), bytes);  // deterministic
  const ref::Int8Graph back = ref::parse_int8_graph(bytes, "g").value();
  EXPECT_EQ(ref::serialize_int8_graph(back), bytes);
  ASSERT_EQ(back.values.size(), g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i) EXPECT_EQ(back.values[i].dtype, g.values[i].dtype) << g.values[i].name;
  const Tensor x = ref::quantize_tensor(random_tensor({kBatch, 8}, -1, 1, 10), g.values[g.inputs[0]].q);
  const TensorMap a = ref::run_int8(g, {{"x", x}}).value(), b = ref::run_int8(back, {{"x", x}}).value();
  EXPECT_TRUE(a.at("y_dq") == b.at("y_dq"));
  EXPECT_TRUE(a.at("p") == b.at("p"));
}

TEST(HostValues, VersionOneGraphsStillParseAsInt8) {
  // A graph without host values, written in version 1 (no dtype per value), parses as before.
  const ref::Int8Graph& g = graph();
  ref::Int8Graph small;
  small.values = {g.values[value(g, "x_q")], g.values[value(g, "a_q")]};
  small.ops = {g.ops[0]};
  small.ops[0].inputs = {0};
  small.ops[0].output = 1;
  small.inputs = {0};
  small.outputs = {1};
  small.input_names = {"x"};
  small.output_names = {"a"};
  const std::string v2 = ref::serialize_int8_graph(small);
  std::string v1 = v2;
  v1[4] = 1;
  v1.erase(after_zero_point(v2, 1), 4);
  v1.erase(after_zero_point(v2, 0), 4);
  const ref::Int8Graph back = ref::parse_int8_graph(v1, "v1").value();
  EXPECT_EQ(back.values[1].dtype, DType::kInt8);
  EXPECT_EQ(ref::serialize_int8_graph(back), v2);
  std::string later = v2;
  later[4] = 5;
  EXPECT_EQ(parse_error(later), "g: integer graph: version 5, this anvil reads versions 1 to 4 (at byte 8)");
}

TEST(HostValuesErrors, BadValueDtypeAndNonHostOpsOnHostValuesAreParseErrors) {
  const ref::Int8Graph& g = graph();
  const std::string bytes = ref::serialize_int8_graph(g);
  std::string bad = bytes;
  const size_t dtype0 = after_zero_point(bytes, 0);
  bad[dtype0] = 99;
  EXPECT_EQ(parse_error(bad), "g: integer graph: value 'x_q' has the unknown dtype 99 (at byte " +
                                  std::to_string(dtype0 + 4) + ")");
  // An integer op reading or writing a float host value.
  ref::Int8Graph reads = g;
  reads.ops[9].inputs = {value(g, "sm")};
  EXPECT_NE(parse_error(ref::serialize_int8_graph(reads))
                .find("op 'matmul2' (conv) reads the float32 value 'sm'; only host ops take values other than int8"),
            std::string::npos);
  ref::Int8Graph writes = g;
  writes.ops[9].output = value(g, "r");
  EXPECT_NE(parse_error(ref::serialize_int8_graph(writes))
                .find("op 'matmul2' (conv) writes the float32 value 'r'; only host ops produce values other than int8"),
            std::string::npos);
}

TEST(HostValuesErrors, RunInt8ChecksAHostValueInputsDtype) {
  // A host segment's sub-graph takes host values as inputs; the wrong dtype is named.
  const ref::Int8Graph& g = graph();
  ref::Int8Graph sub;
  sub.values = {g.values[value(g, "n")], g.values[value(g, "n1")]};
  sub.ops = {g.ops[3]};  // unsqueeze
  sub.ops[0].inputs = {0};
  sub.ops[0].output = 1;
  sub.ops[0].host_outputs = {1};
  sub.inputs = {0};
  sub.outputs = {1};
  sub.input_names = {"n"};
  sub.output_names = {"n1"};
  const TensorMap ok = ref::run_int8(sub, {{"n", Tensor::scalar<int64_t>(5)}}).value();
  EXPECT_EQ(ok.at("n1").to_vector<int64_t>(), std::vector<int64_t>{5});
  auto bad = ref::run_int8(sub, {{"n", Tensor::scalar<int32_t>(5)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(bad.error().what(), "input 'n': expected int64 [], got int32 []");
}

TEST(HostValuesErrors, HostOpReadingAFloatGraphInput) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4});
  b.node("Softmax", {"x"}, {"s"}, "sm");
  b.initializer("sc", Tensor::scalar<float>(0.01f));
  b.initializer("zp", Tensor::scalar<int8_t>(0));
  b.node("QuantizeLinear", {"s", "sc", "zp"}, {"s_q"}, "q");
  b.node("DequantizeLinear", {"s_q", "sc", "zp"}, {"y"}, "dq");
  b.output("y");
  EXPECT_EQ(error_of(b.model()),
            "node 'sm' (Softmax): runs on the host but reads the float graph input 'x' (host ops read int8 values "
            "and other host ops' outputs; quantize the input)");
}

TEST(HostValuesErrors, NodesOutOfOrderAreNamed) {
  // The lowering walks the ONNX order; a host op reading what a later node produces is an error
  // naming the node and the tensor (the ONNX checker rejects such a graph too).
  const auto common = [](ModelBuilder& b) {
    b.input("x", DType::kFloat32, {-1, 4});
    b.initializer("sc", Tensor::scalar<float>(0.01f));
    b.initializer("zp", Tensor::scalar<int8_t>(0));
    b.initializer("zero", Tensor::scalar<int64_t>(0));
  };
  ModelBuilder shape_after;
  common(shape_after);
  shape_after.node("QuantizeLinear", {"x", "sc", "zp"}, {"x_q"}, "qx");
  shape_after.node("DequantizeLinear", {"x_q", "sc", "zp"}, {"x_dq"}, "dqx");
  shape_after.node("Gather", {"x_shape", "zero"}, {"n"}, "gather");  // reads the Shape below
  shape_after.node("Shape", {"x_dq"}, {"x_shape"}, "shape");
  shape_after.node("Cast", {"n"}, {"nf"}, "cast");
  ModelBuilder::attr(shape_after.last_node(), "to", int64_t{1});
  shape_after.node("Add", {"x_dq", "nf"}, {"s"}, "add");
  shape_after.node("QuantizeLinear", {"s", "sc", "zp"}, {"s_q"}, "q");
  shape_after.node("DequantizeLinear", {"s_q", "sc", "zp"}, {"y"}, "dq");
  shape_after.output("y");
  EXPECT_EQ(error_of(shape_after.model()),
            "node 'gather' (Gather): runs on the host but reads 'x_shape', which is neither an int8 value nor a "
            "host op's output");
  ModelBuilder quantize_after;
  common(quantize_after);
  quantize_after.node("Softmax", {"x_dq"}, {"s"}, "sm");  // before the Q/DQ of its input
  quantize_after.node("QuantizeLinear", {"x", "sc", "zp"}, {"x_q"}, "qx");
  quantize_after.node("DequantizeLinear", {"x_q", "sc", "zp"}, {"x_dq"}, "dqx");
  quantize_after.node("QuantizeLinear", {"s", "sc", "zp"}, {"s_q"}, "q");
  quantize_after.node("DequantizeLinear", {"s_q", "sc", "zp"}, {"y"}, "dq");
  quantize_after.output("y");
  EXPECT_EQ(error_of(quantize_after.model()),
            "node 'dqx' (DequantizeLinear): dequantizes 'x_q', which is neither an int8 value nor a host op's output");
}

TEST(HostValues, DequantizeOfAHostValueBelongsToTheHostOpsThatReadIt) {
  // x -> Q/DQ -> Cast(int8) -> DQ -> Softmax -> Q/DQ -> y: the Cast's int8 output is a host value
  // (no QuantizeLinear made it), so its DequantizeLinear is not lowered on its own but copied into
  // the Softmax's host op, which reads the host value.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4});
  b.initializer("sc", Tensor::scalar<float>(0.05f));
  b.initializer("zp", Tensor::scalar<int8_t>(0));
  b.initializer("sc_out", Tensor::scalar<float>(1.0f / 255));
  b.initializer("zp_out", Tensor::scalar<int8_t>(-128));
  b.node("QuantizeLinear", {"x", "sc", "zp"}, {"x_q"}, "qx");
  b.node("DequantizeLinear", {"x_q", "sc", "zp"}, {"x_dq"}, "dqx");
  ModelBuilder::attr(b.node("Cast", {"x_dq"}, {"c"}, "cast"), "to", int64_t{3});  // int8
  b.node("DequantizeLinear", {"c", "sc", "zp"}, {"c_dq"}, "dqc");
  ModelBuilder::attr(b.node("Softmax", {"c_dq"}, {"s"}, "sm"), "axis", int64_t{1});
  b.node("QuantizeLinear", {"s", "sc_out", "zp_out"}, {"s_q"}, "q");
  b.node("DequantizeLinear", {"s_q", "sc_out", "zp_out"}, {"y"}, "dq");
  b.output("y");
  const ref::Int8Graph g = ref::lower_qdq(b.model(), kBatch, fallback()).value();
  ASSERT_EQ(g.ops.size(), 2u);
  EXPECT_EQ(g.ops[0].node, "cast");
  EXPECT_EQ(g.values[g.ops[0].output].name, "c");
  EXPECT_EQ(g.values[g.ops[0].output].dtype, DType::kInt8);  // a host value that happens to be int8
  EXPECT_EQ(g.ops[1].node, "sm");
  ASSERT_EQ(g.ops[1].inputs.size(), 1u);
  EXPECT_EQ(g.values[g.ops[1].inputs[0]].name, "c");
  const Tensor xf = random_tensor({kBatch, 4}, -3, 3, 4);
  const Tensor x = ref::quantize_tensor(xf, g.values[g.inputs[0]].q);
  const Tensor want = ref::Executor::create(b.model()).value().run({{"x", xf}}).value().at("y");
  EXPECT_TRUE(ref::dequantize_tensor(ref::run_int8(g, {{"x", x}}).value().at("y"), g.values[g.outputs[0]].q) == want);
}
