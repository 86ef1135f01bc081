// Host fallback end to end: a quantized CNN with an operator the NPU does not run (LogSoftmax) in the
// middle is lowered with a kHost op, compiled into NPU / host / NPU segments, and run through the
// runtime (synchronously and through the async queue) bit-exact against ref::run_int8. Also: the
// compile is deterministic, the program round-trips, a corrupt segment table is a clear error, and
// an op the compiler refuses (dilated pooling) lands on the host with the compiler's reason.
// And vit's attention shape arithmetic (tests/reference/host_values_model.h): one host op per
// refused node, int64 and float host values between them (one crossing an NPU segment), a float
// graph output, compiled and run through the runtime bit-exact against run_int8.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "../reference/host_values_model.h"
#include "../reference/qdq_builder.h"
#include "anvil/compiler/compiler.h"
#include "anvil/runtime/runtime.h"
#include "graph_builder_for_tests.h"

using namespace anvil;
using anvil::test::ActParams;
using anvil::test::QdqBuilder;
using anvil::test::random_tensor;

namespace {

constexpr int64_t kBatch = 2;

/// x [N,3,6,6] -> Conv 3x3 pad 1 (4 ch) -> Relu -> Q -> DQ -> LogSoftmax(axis 1) -> Q -> DQ -> Conv 1x1
/// (5 ch) -> Q -> DQ -> GlobalAveragePool -> Q -> DQ -> y [N,5,1,1].
onnx::ModelProto softmax_cnn(const ActParams& p) {
  QdqBuilder q(p);
  q.b.input("x", DType::kFloat32, {-1, 3, 6, 6});
  std::vector<float> s1, s2;
  const std::string w1 = q.weight("w1", random_tensor({4, 3, 3, 3}, -0.5f, 0.5f, 1), 0, &s1);
  const std::string b1 = q.bias("b1", {0.1f, -0.2f, 0.05f, 0.0f}, q.params("x").scale, s1);
  auto& conv1 = q.b.node("Conv", {q.qdq("x"), w1, b1}, {"c1_pre"}, "conv1");
  anvil::test::ModelBuilder::attr(conv1, "pads", std::vector<int64_t>{1, 1, 1, 1});
  q.b.node("Relu", {"c1_pre"}, {"c1"}, "relu1");
  auto& sm = q.b.node("LogSoftmax", {q.qdq("c1")}, {"s"}, "softmax");
  anvil::test::ModelBuilder::attr(sm, "axis", int64_t{1});
  const std::string w2 = q.weight("w2", random_tensor({5, 4, 1, 1}, -1.0f, 1.0f, 2), 0, &s2);
  const std::string b2 = q.bias("b2", {0.0f, 0.1f, -0.1f, 0.2f, 0.0f}, q.params("s").scale, s2);
  q.b.node("Conv", {q.qdq("s"), w2, b2}, {"c2"}, "conv2");
  q.b.node("GlobalAveragePool", {q.qdq("c2")}, {"y"}, "gap");
  q.b.output(q.qdq("y"));
  return q.b.model();
}

struct Fixture {
  onnx::ModelProto model;
  ref::Int8Graph graph;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    const TensorMap feeds{{"x", random_tensor({kBatch, 3, 6, 6}, -1.0f, 1.0f, 3)}};
    const ActParams p = anvil::test::calibrate(softmax_cnn, {"x", "c1", "s", "c2", "y"}, feeds);
    Fixture r;
    r.model = softmax_cnn(p);
    ref::LowerOptions lo;
    lo.host_fallback = true;
    r.graph = ref::lower_qdq(r.model, kBatch, lo).value();
    return r;
  }();
  return f;
}

compiler::CompileResult compile_fixture() {
  compiler::CompileOptions o;
  o.batch = kBatch;
  o.model_name = "softmax-cnn";
  auto r = compiler::compile(fixture().model, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().what());
  return std::move(r).value();
}

Tensor int8_input(uint32_t seed) {
  const ref::Int8Graph& g = fixture().graph;
  return ref::quantize_tensor(random_tensor({kBatch, 3, 6, 6}, -1.0f, 1.0f, seed), g.values[g.inputs[0]].q);
}

Tensor golden(const Tensor& x) { return ref::run_int8(fixture().graph, {{"x", x}}).value().at("y_dq"); }

}  // namespace

TEST(HostFallback, LowerQdqPutsTheSoftmaxRegionIntoOneHostOp) {
  const ref::Int8Graph& g = fixture().graph;
  std::vector<std::string> kinds;
  for (const auto& op : g.ops) kinds.push_back(ref::int8_op_name(op.kind));
  EXPECT_EQ(kinds, (std::vector<std::string>{"conv", "host", "conv", "avgpool"}));
  const ref::Int8Op& host = g.ops[1];
  EXPECT_EQ(host.node, "softmax");
  EXPECT_EQ(host.host_nodes, std::vector<std::string>{"softmax"});
  EXPECT_EQ(host.host_reason, "node 'softmax' (LogSoftmax): operator not supported on the NPU");
  ASSERT_EQ(host.inputs.size(), 1u);
  EXPECT_EQ(g.values[host.inputs[0]].name, "c1_q");
  EXPECT_EQ(g.values[host.output].name, "s_q");
  EXPECT_EQ(g.values[host.output].shape, (Shape{kBatch, 4, 6, 6}));
  // Without the fallback the same model is still an error naming the operator.
  auto strict = ref::lower_qdq(fixture().model, kBatch);
  ASSERT_FALSE(strict.ok());
  EXPECT_STREQ(strict.error().what(), "node 'softmax' (LogSoftmax): operator not supported on the NPU");
}

TEST(HostFallback, HostOpIsTheFloatSoftmaxOfTheDequantizedInput) {
  // run_int8's host op against a separate float evaluation of its region: Q(LogSoftmax(DQ(c1_q)))
  // of the int8 value the op reads (the convs around it are integer arithmetic, which may differ
  // from the float model by a step, so the region is checked on its own input).
  ref::Int8Graph g = fixture().graph;
  const ref::Int8Op& host = g.ops[1];
  const int c1 = host.inputs[0], s = host.output;
  g.outputs = {c1, s};
  g.output_names = {"c1", "s"};
  const TensorMap ran = ref::run_int8(g, {{"x", int8_input(7)}}).value();
  QdqBuilder q(ActParams{});
  q.b.input("c", DType::kFloat32, g.values[c1].shape);
  anvil::test::ModelBuilder::attr(q.b.node("LogSoftmax", {"c"}, {"l"}, "ls"), "axis", int64_t{1});
  q.b.output("l");
  const Tensor l = ref::Executor::create(q.b.model()).value()
                       .run({{"c", ref::dequantize_tensor(ran.at("c1"), g.values[c1].q)}}).value().at("l");
  EXPECT_TRUE(ran.at("s") == ref::quantize_tensor(l, g.values[s].q));
}

TEST(HostFallback, CompilesIntoNpuHostNpuSegmentsAndReportsEveryNode) {
  const compiler::CompileResult r = compile_fixture();
  const isa::Program& p = r.program;
  ASSERT_EQ(p.segments.size(), 3u);
  EXPECT_EQ(p.segments[0].kind, isa::SegmentKind::kNpu);
  EXPECT_EQ(p.segments[1].kind, isa::SegmentKind::kHost);
  EXPECT_EQ(p.segments[2].kind, isa::SegmentKind::kNpu);
  EXPECT_EQ(p.segments[1].inputs, std::vector<std::string>{"c1_q"});
  EXPECT_EQ(p.segments[1].outputs, std::vector<std::string>{"s_q"});
  EXPECT_TRUE(p.instructions.empty());
  EXPECT_EQ(p.input_values, std::vector<std::string>{"x_q"});
  EXPECT_EQ(p.output_values, std::vector<std::string>{"y_q"});
  std::vector<std::string> placement;
  for (const auto& n : r.placement) placement.push_back(n.node + ":" + n.runs_on);
  EXPECT_EQ(placement, (std::vector<std::string>{"conv1:npu", "softmax:host", "conv2:npu", "gap:npu"}));
  const nlohmann::json report = r.report();
  EXPECT_EQ(report.at("placement").at(1).at("reason"), "node 'softmax' (LogSoftmax): operator not supported on the NPU");
  EXPECT_EQ(report.at("segments").at(1).at("kind"), "host");
  EXPECT_EQ(report.at("layers").at(1).at("runs_on"), "host");
  EXPECT_NE(r.summary().find("segment 1: host, 1 node(s)"), std::string::npos) << r.summary();
}

TEST(HostFallback, CompileIsDeterministicAndTheProgramRoundTrips) {
  const std::string a = compile_fixture().program.serialize();
  const std::string b = compile_fixture().program.serialize();
  EXPECT_EQ(a, b);
  const isa::Program parsed = isa::Program::parse(a, "softmax-cnn");
  EXPECT_EQ(parsed.serialize(), a);
  ASSERT_EQ(parsed.segments.size(), 3u);
  // The host segment's payload is the integer graph of its ops, and parses back to the same bytes.
  const ref::Int8Graph host = ref::parse_int8_graph(parsed.segments[1].payload, "segment 1").value();
  EXPECT_EQ(ref::serialize_int8_graph(host), parsed.segments[1].payload);
  ASSERT_EQ(host.ops.size(), 1u);
  EXPECT_EQ(host.ops[0].kind, ref::Int8OpKind::kHost);
}

namespace {
/// Rewrites byte `offset` of a serialized program and fixes the checksum.
std::string patched(std::string bytes, size_t offset, char value) {
  bytes[offset] = value;
  std::memset(bytes.data() + 56, 0, 4);
  const uint32_t crc = isa::crc32(bytes.data(), bytes.size());
  std::memcpy(bytes.data() + 56, &crc, 4);
  return bytes;
}

std::string parse_error(const std::string& bytes) {
  try {
    isa::Program::parse(bytes, "p.anvil");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    return e.what();
  }
  ADD_FAILURE() << "parsed";
  return "";
}
}  // namespace

TEST(HostFallback, CorruptSegmentTableIsAClearError) {
  const isa::Program p = compile_fixture().program;
  const std::string bytes = p.serialize();
  uint32_t segments_bytes;
  std::memcpy(&segments_bytes, bytes.data() + 60, 4);
  ASSERT_GT(segments_bytes, 0u);
  const size_t table = bytes.size() - segments_bytes;
  // The table: input values (u32 1, u32 3 "x_q"), output values (u32 1, u32 3 "y_q"), u32 count,
  // then segment 0's kind byte.
  const size_t kind0 = table + 4 + 4 + 3 + 4 + 4 + 3 + 4;
  EXPECT_EQ(parse_error(patched(bytes, kind0, 7)), "p.anvil: segment 0 has unknown kind 7");
  // A segment count of 9 runs past the table.
  EXPECT_EQ(parse_error(patched(bytes, kind0 - 4, 9)).rfind("p.anvil: truncated segment section", 0), 0u);
  // Version 1 has no segment table: its reserved field must be 0.
  EXPECT_EQ(parse_error(patched(bytes, 4, 1)),
            "p.anvil: format version 1 program with a nonzero reserved field (offset 60)");
  // The first segment reading a value nothing produced.
  isa::Program bad = p;
  bad.segments[1].inputs = {"nowhere"};
  EXPECT_EQ(parse_error(bad.serialize()),
            "p.anvil: segment 1 reads value 'nowhere', which no earlier segment or program input produces");
  bad = p;
  bad.segments[0].payload = "junk";
  EXPECT_EQ(parse_error(bad.serialize()), "p.anvil: segment 0: not an anvil program (too short for a header)");
  // A host payload that is not an integer graph fails when the runtime parses it.
  auto g = ref::parse_int8_graph(p.segments[1].payload.substr(0, 40), "segment 1");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(g.error().what()).rfind("segment 1: integer graph: truncated", 0), 0u) << g.error().what();
}

TEST(HostFallback, RuntimeRunsTheChainBitExactSyncAndAsync) {
  const isa::Program p = compile_fixture().program;
  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::SessionOptions so;
  so.queue_depth = 3;
  rt::Session session(device, p, so);
  ASSERT_EQ(session.inputs().size(), 1u);
  EXPECT_EQ(session.inputs()[0].name, "x");
  // Synchronous: int8 input, and the same input as float (quantized by the runtime).
  const Tensor x = int8_input(11);
  const Tensor want = golden(x);
  EXPECT_TRUE(session.run({{"x", x}}).at("y_dq") == want);
  EXPECT_GT(session.last_stats().cycles, 0u);
  EXPECT_GT(session.last_stats().macs, 0u);
  const ref::Int8Graph& g = fixture().graph;
  EXPECT_TRUE(session.run({{"x", ref::dequantize_tensor(x, g.values[g.inputs[0]].q)}}).at("y_dq") == want);
  // Asynchronous: several requests in flight, received in completion order.
  std::vector<Tensor> inputs, wants;
  for (uint32_t i = 0; i < 5; ++i) {
    inputs.push_back(int8_input(20 + i));
    wants.push_back(golden(inputs.back()));
  }
  for (uint32_t i = 0; i < inputs.size(); ++i) session.submit({{"x", inputs[i]}}, i);
  for (size_t k = 0; k < inputs.size(); ++k) {
    rt::Request r = session.receive(120.0);
    ASSERT_EQ(r.state(), rt::RequestState::kCompleted) << r.error_message();
    const uint32_t i = std::any_cast<uint32_t>(r.context());
    EXPECT_TRUE(r.outputs().at("y_dq") == wants[i]) << "request " << i;
  }
  EXPECT_EQ(session.stats().completed, 7u);
  EXPECT_EQ(session.in_flight(), 0u);
  // Bad inputs are still rejected before anything is queued.
  try {
    session.submit({{"x", Tensor(DType::kInt8, {1, 3, 6, 6})}});
    ADD_FAILURE() << "accepted a wrong shape";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(HostFallback, AnOpTheCompilerRefusesRunsOnTheHost) {
  // conv -> dilated max pool (no ISA form) -> conv: the pool becomes a host segment with the
  // compiler's reason, and the chain matches run_int8.
  anvil::testing::GraphBuilder b(5);
  const int x = b.input("x", {1, 2, 7, 7});
  const int c = b.value("c", {1, 3, 7, 7});
  b.conv("conv_a", x, c, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  const int p = b.value("p", {1, 3, 3, 3});
  b.pool(ref::Int8OpKind::kMaxPool, "dilated_pool", c, p, {3, 3}, {1, 1});
  b.graph().ops.back().dilations = {2, 2};
  const int y = b.value("y", {1, 4, 3, 3});
  b.conv("conv_b", p, y, 1, {1, 1});
  b.output(y, "y");
  compiler::CompileOptions o;
  const auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_TRUE(r.ok()) << r.error().what();
  const isa::Program& prog = r.value().program;
  ASSERT_EQ(prog.segments.size(), 3u);
  EXPECT_EQ(prog.segments[1].kind, isa::SegmentKind::kHost);
  EXPECT_NE(r.value().placement.at(1).reason.find("dilated pooling is not supported by the ISA"), std::string::npos)
      << r.value().placement.at(1).reason;
  const TensorMap in = b.random_inputs();
  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, prog);
  EXPECT_TRUE(session.run(in).at("y") == ref::run_int8(b.graph(), in).value().at("y"));
  // Without the fallback it is the compiler's error, as before.
  o.host_fallback = false;
  EXPECT_EQ(compiler::compile_graph(b.graph(), o).error().code(), ErrorCode::kUnsupported);
}

// ---- per-node host ops with host values (vit's attention shape arithmetic) -------------------

namespace {

struct ShapeFixture {
  onnx::ModelProto model;
  ref::Int8Graph graph;
  compiler::CompileResult compiled;
};

const ShapeFixture& shape_fixture() {
  static const ShapeFixture f = [] {
    ShapeFixture r;
    r.model = anvil::test::calibrated_host_values_model(random_tensor({kBatch, 8}, -1.0f, 1.0f, 5));
    ref::LowerOptions lo;
    lo.host_fallback = true;
    lo.fold_shapes = false;  // keep the shape arithmetic as int64 host values (folded: test_fold_shapes)
    r.graph = ref::lower_qdq(r.model, kBatch, lo).value();
    compiler::CompileOptions o;
    o.batch = kBatch;
    o.model_name = "shape-arithmetic";
    o.fold_shapes = false;
    r.compiled = compiler::compile(r.model, o).value();
    return r;
  }();
  return f;
}

}  // namespace

TEST(HostValues, ShapeArithmeticCompilesIntoNpuAndHostSegments) {
  const ShapeFixture& f = shape_fixture();
  const isa::Program& p = f.compiled.program;
  std::vector<std::string> kinds;
  for (const auto& s : p.segments) kinds.push_back(isa::segment_kind_name(s.kind));
  ASSERT_EQ(kinds, (std::vector<std::string>{"npu", "host", "npu", "host"}));
  // The int64 shape s1, computed in segment 1, crosses the NPU segment to the last Reshape.
  EXPECT_EQ(p.segments[1].outputs, (std::vector<std::string>{"s1", "f_q"}));
  EXPECT_EQ(p.segments[3].inputs, (std::vector<std::string>{"b_q", "s1"}));
  EXPECT_EQ(p.output_values, (std::vector<std::string>{"y_q", "p"}));
  // The float graph output is a float32 descriptor; the int8 one keeps its parameters.
  ASSERT_EQ(p.outputs.size(), 2u);
  EXPECT_EQ(p.outputs[0].dtype, DType::kInt8);
  EXPECT_EQ(p.outputs[1].name, "p");
  EXPECT_EQ(p.outputs[1].dtype, DType::kFloat32);
  EXPECT_EQ(p.outputs[1].shape, (Shape{kBatch, 12}));
  std::vector<std::string> placement;
  for (const auto& n : f.compiled.placement) placement.push_back(n.node + ":" + n.runs_on);
  EXPECT_EQ(placement, (std::vector<std::string>{"matmul1:npu", "shape:host", "gather:host", "unsqueeze:host",
                                                 "concat1:host", "concat2:host", "reshape1:host", "softmax1:host",
                                                 "reshape2:host", "matmul2:npu", "reshape3:host", "softmax2:host"}));
  // Deterministic, and the program and its host payloads round-trip.
  compiler::CompileOptions o;
  o.batch = kBatch;
  o.model_name = "shape-arithmetic";
  o.fold_shapes = false;
  const std::string bytes = p.serialize();
  EXPECT_EQ(compiler::compile(f.model, o).value().program.serialize(), bytes);
  const isa::Program parsed = isa::Program::parse(bytes, "shape.anvil");
  EXPECT_EQ(parsed.serialize(), bytes);
  const ref::Int8Graph host = ref::parse_int8_graph(parsed.segments[1].payload, "segment 1").value();
  EXPECT_EQ(ref::serialize_int8_graph(host), parsed.segments[1].payload);
  EXPECT_EQ(host.values[host.outputs[0]].dtype, DType::kInt64);
}

TEST(HostValues, RuntimeRunsShapeArithmeticBitExactWithAFloatOutput) {
  const ShapeFixture& f = shape_fixture();
  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::SessionOptions so;
  so.queue_depth = 2;
  rt::Session session(device, f.compiled.program, so);
  ASSERT_EQ(session.outputs().size(), 2u);
  EXPECT_EQ(session.outputs()[1].dtype, DType::kFloat32);
  const ref::QuantParams in_q = f.graph.values[f.graph.inputs[0]].q;
  for (uint32_t seed : {11u, 12u, 13u}) {
    const Tensor x = ref::quantize_tensor(random_tensor({kBatch, 8}, -1.0f, 1.0f, seed), in_q);
    const TensorMap want = ref::run_int8(f.graph, {{"x", x}}).value();
    const TensorMap got = session.run({{"x", x}});
    ASSERT_EQ(got.at("y_dq").dtype(), DType::kInt8);
    EXPECT_TRUE(got.at("y_dq") == want.at("y_dq")) << "seed " << seed;
    ASSERT_EQ(got.at("p").dtype(), DType::kFloat32);
    EXPECT_TRUE(got.at("p") == want.at("p")) << "seed " << seed;
    EXPECT_GT(session.last_stats().cycles, 0u);
  }
}

// ---- host segments in the compile report: boundary traffic and its transfer estimate --------

namespace {
/// numel x dtype size of the graph value named `name`.
uint64_t value_bytes(const ref::Int8Graph& g, const std::string& name) {
  for (const ref::Int8Value& v : g.values)
    if (v.name == name) return static_cast<uint64_t>(shape_numel(v.shape)) * dtype_size(v.dtype);
  ADD_FAILURE() << "no value " << name;
  return 0;
}
}  // namespace

TEST(HostFallback, HostSegmentTrafficIsTheBytesOfItsBoundaryValues) {
  compiler::CompileOptions o;
  o.batch = kBatch;
  o.target.pcie_gbps = 2.0;  // bytes / ns
  o.target.pcie_latency_ns = 100.0;
  const compiler::CompileResult r = compiler::compile(fixture().model, o).value();
  ASSERT_EQ(r.host_segments.size(), 1u);
  const compiler::HostSegmentReport& h = r.host_segments[0];
  EXPECT_EQ(h.segment, 1);
  EXPECT_EQ(h.nodes, std::vector<std::string>{"softmax"});
  EXPECT_EQ(h.ops, std::vector<std::string>{"host"});
  // c1_q [2,4,6,6] int8 comes from NPU segment 0; s_q [2,4,6,6] int8 goes to NPU segment 2.
  EXPECT_EQ(h.bytes_from_device, 288u);
  EXPECT_EQ(h.bytes_to_device, 288u);
  EXPECT_EQ(h.bytes_from_device, value_bytes(fixture().graph, "c1_q"));
  EXPECT_DOUBLE_EQ(h.est_transfer_us, 2 * (100.0 + 288 / 2.0) / 1000.0);
  const nlohmann::json j = r.report();
  EXPECT_EQ(j.at("host_segments").at(0).at("bytes_to_device"), 288u);
  EXPECT_EQ(j.at("host_transfer").at("bytes_from_device"), 288u);
  EXPECT_DOUBLE_EQ(j.at("host_transfer").at("est_transfer_us").get<double>(), h.est_transfer_us);
  EXPECT_NE(r.summary().find("host segment 1 (1 node(s)): 288 bytes from the device, 288 bytes to the device"),
            std::string::npos)
      << r.summary();
}

TEST(HostFallback, HostSegmentTrafficCountsOnlyValuesCrossingTheDevice) {
  // npu, host, npu, host: segment 1's int64 shape s1 goes to host segment 3 through host memory
  // (not counted), its f_q to NPU segment 2 (counted); segment 3 reads b_q from NPU segment 2
  // (counted) and s1 (not), and its outputs are graph outputs (not counted).
  const ShapeFixture& f = shape_fixture();
  const compiler::CompileResult& r = f.compiled;
  ASSERT_EQ(r.host_segments.size(), 2u);
  const compiler::HostSegmentReport &h1 = r.host_segments[0], &h3 = r.host_segments[1];
  EXPECT_EQ(h1.segment, 1);
  EXPECT_EQ(h3.segment, 3);
  uint64_t in1 = 0;
  for (const std::string& v : r.program.segments[1].inputs) in1 += value_bytes(f.graph, v);
  EXPECT_GT(in1, 0u);
  EXPECT_EQ(h1.bytes_from_device, in1);
  EXPECT_EQ(h1.bytes_to_device, value_bytes(f.graph, "f_q"));
  EXPECT_EQ(h3.bytes_from_device, value_bytes(f.graph, "b_q"));
  EXPECT_EQ(h3.bytes_to_device, 0u);
  EXPECT_EQ(h3.nodes, (std::vector<std::string>{"reshape3", "softmax2"}));
  const nlohmann::json t = r.report().at("host_transfer");
  EXPECT_EQ(t.at("bytes_from_device"), h1.bytes_from_device + h3.bytes_from_device);
  EXPECT_EQ(t.at("bytes_to_device"), h1.bytes_to_device);
}

TEST(HostFallback, UnpartitionedReportHasNoHostSegments) {
  anvil::testing::GraphBuilder b(6);
  const int x = b.input("x", {1, 2, 5, 5});
  const int y = b.value("y", {1, 3, 5, 5});
  b.conv("conv", x, y, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
  b.output(y, "y");
  const compiler::CompileResult r = compiler::compile_graph(b.graph(), compiler::CompileOptions{}).value();
  EXPECT_TRUE(r.program.segments.empty());
  EXPECT_TRUE(r.host_segments.empty());
  EXPECT_FALSE(r.report().contains("host_segments"));
  EXPECT_EQ(r.summary().find("host segment"), std::string::npos);
}

// The same model compiled with the shape arithmetic folded (the default): the folded nodes are
// gone from the program, reshape3 is an integer reshape, no int64 value crosses a segment, and the
// runtime's outputs equal run_int8 of the unfolded lowering (folding changes no result).
// matmul2 + reshape3 form an NPU segment that outputs b_q (read by softmax2) and its reshape y_q,
// two IO tensors holding the same bytes: the second is filled by a copy (DramPlan::io_copies), and
// the SystemC run below checks both against run_int8.
TEST(FoldShapes, FoldedShapeArithmeticLeavesTheProgramAndKeepsTheResults) {
  const ShapeFixture& f = shape_fixture();  // unfolded: f.graph is the reference
  compiler::CompileOptions o;
  o.batch = kBatch;
  o.model_name = "shape-arithmetic";
  const compiler::CompileResult compiled = compiler::compile(f.model, o).value();
  const isa::Program& p = compiled.program;
  std::vector<std::string> placement;
  for (const auto& n : compiled.placement) placement.push_back(n.node + ":" + n.op + ":" + n.runs_on);
  EXPECT_EQ(placement, (std::vector<std::string>{"matmul1:conv:npu", "reshape1:host:host", "softmax1:host:host",
                                                 "reshape2:host:host", "matmul2:conv:npu", "reshape3:reshape:npu",
                                                 "softmax2:host:host"}));
  std::vector<std::string> kinds;
  for (const auto& s : p.segments) kinds.push_back(isa::segment_kind_name(s.kind));
  ASSERT_EQ(kinds, (std::vector<std::string>{"npu", "host", "npu", "host"}));
  EXPECT_EQ(p.segments[2].outputs, (std::vector<std::string>{"b_q", "y_q"}));
  EXPECT_EQ(p.segments[0].outputs, (std::vector<std::string>{"a_q"}));  // no int64 shape crosses
  EXPECT_EQ(compiler::compile(f.model, o).value().program.serialize(), p.serialize());  // deterministic
  rt::Device device = rt::Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  rt::Session session(device, p);
  const ref::QuantParams in_q = f.graph.values[f.graph.inputs[0]].q;
  for (uint32_t seed : {31u, 32u, 33u}) {
    const Tensor x = ref::quantize_tensor(random_tensor({kBatch, 8}, -1.0f, 1.0f, seed), in_q);
    const TensorMap want = ref::run_int8(f.graph, {{"x", x}}).value();
    const TensorMap got = session.run({{"x", x}});
    EXPECT_TRUE(got.at("y_dq") == want.at("y_dq")) << "seed " << seed;
    EXPECT_TRUE(got.at("p") == want.at("p")) << "seed " << seed;
  }
}
