// lower_qdq + run_int8 for quantized ConvTranspose (a zero-inserting kPad + a stride-1 kConv,
// + a cropping kSlice) and for Pad in edge / reflect mode, against the float Executor on random
// QDQ models; the AI8G version 4 fields and their refusal in an older file; refusals.
#include <gtest/gtest.h>

#include "conv_transpose_models_for_tests.h"
#include "int8_agreement_for_tests.h"

using namespace anvil;

namespace {

ref::Int8Graph lower(const onnx::ModelProto& m, int64_t batch) {
  auto g = ref::lower_qdq(m, batch);
  EXPECT_TRUE(g.ok()) << g.error().what();
  return g.ok() ? std::move(g.value()) : ref::Int8Graph{};
}


std::string kinds(const ref::Int8Graph& g) {
  std::string s;
  for (const ref::Int8Op& op : g.ops) s += std::string(s.empty() ? "" : " ") + ref::int8_op_name(op.kind);
  return s;
}

TEST(ConvTransposeInt8, RandomCasesMatchTheFloatExecutorWithinOneStep) {
  std::mt19937 rng(606);
  int strided = 0, grouped = 0, cropped = 0, one_d = 0;
  for (int k = 0; k < 60; ++k) {
    const test::ConvTransposeCase c = test::random_conv_transpose(rng);
    const TensorMap in{{"x", test::random_tensor(c.x, -1.0f, 1.5f, 50 + k)}};
    const onnx::ModelProto model = test::conv_transpose_model(c, in, 90 + k);
    const ref::Int8Graph g = lower(model, c.x[0]);
    ASSERT_FALSE(g.ops.empty()) << c.describe;
    // The int32 sum over the zero-inserted input is the float sum's exact integer form; only the
    // final requantization (fixed-point multiplier vs float division) can round a tie the other way.
    EXPECT_LE(test::int8_agreement(model, g, in).max_diff, 1) << c.describe << ": " << kinds(g);
    int convs = 0;
    for (const ref::Int8Op& op : g.ops) {
      convs += op.kind == ref::Int8OpKind::kConv;
      if (op.kind == ref::Int8OpKind::kConv) {
        EXPECT_EQ(op.strides, (std::array<int, 2>{1, 1})) << c.describe;
        EXPECT_EQ(op.pads, (std::array<int, 4>{0, 0, 0, 0})) << c.describe;
        EXPECT_EQ(op.groups, c.group) << c.describe;
      }
      if (op.kind == ref::Int8OpKind::kPad) {
        EXPECT_EQ(op.pad_value, g.values[op.inputs[0]].q.zero_point) << c.describe;
        strided += !op.pad_interior.empty();
      }
      cropped += op.kind == ref::Int8OpKind::kSlice;
      EXPECT_NE(op.kind, ref::Int8OpKind::kHost) << c.describe;
    }
    EXPECT_EQ(convs, 1) << c.describe;
    grouped += c.group > 1;
    one_d += c.x.size() == 3;
  }
  // The random geometry reached every path.
  EXPECT_GT(strided, 10);
  EXPECT_GT(grouped, 10);
  EXPECT_GT(cropped, 3);
  EXPECT_GT(one_d, 10);
}

/// The exact op chain: 1-D stride 2 with output_padding -> reshape, pad (interior 1), conv, reshape.
TEST(ConvTransposeInt8, LowersToAZeroInsertingPadAndAConv) {
  test::ConvTransposeCase c = test::undilated_conv_transpose({1, 2, 5}, 3, {3}, {2}, {1, 1}, {1});
  const TensorMap in{{"x", test::random_tensor(c.x, -1.0f, 1.0f, 3)}};
  const onnx::ModelProto model = test::conv_transpose_model(c, in);
  const ref::Int8Graph g = lower(model, 1);
  EXPECT_EQ(kinds(g), "reshape pad conv reshape");
  const ref::Int8Op& pad = g.ops[1];
  // begin = 1 * (3 - 1) - 1 = 1, 4 zeros inserted (9 elements), end = 1 + output_padding 1 = 2.
  EXPECT_EQ(pad.pad_begin, (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(pad.pad_interior, (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(g.values[pad.output].shape, (Shape{1, 2, 1, 12}));
  EXPECT_EQ(g.values[g.ops[2].output].shape, (Shape{1, 3, 1, 10}));
  EXPECT_EQ(g.values[g.outputs[0]].shape, (Shape{1, 3, 10}));
  // The kernel is flipped and its channel axes swapped: conv weight [o, c, 0, j] = W[c, o, 2 - j].
  const onnx::TensorProto* w = nullptr;
  for (const auto& t : model.graph().initializer())
    if (t.name() == "w_int8") w = &t;
  ASSERT_NE(w, nullptr);
  const Tensor wt = tensor_from_proto(*w);
  const Tensor& cw = g.ops[2].weight;
  ASSERT_EQ(cw.shape(), (Shape{3, 2, 1, 3}));
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t ci = 0; ci < 2; ++ci)
      for (int64_t j = 0; j < 3; ++j)
        EXPECT_EQ(cw.data<int8_t>()[(o * 2 + ci) * 3 + j], wt.data<int8_t>()[(ci * 3 + o) * 3 + 2 - j]);
  EXPECT_LE(test::int8_agreement(model, g, in).max_diff, 1) << "1-D";
}

/// 3-D goes to the host; a weight scale along the wrong axis is malformed.
TEST(ConvTransposeInt8, RefusalsNameTheNode) {
  // 3-D: kConv is 2-D.
  test::ConvTransposeCase c =
      test::undilated_conv_transpose({1, 2, 3, 3, 3}, 2, {2, 2, 2}, {2, 2, 2}, {0, 0, 0, 0, 0, 0}, {0, 0, 0});
  const TensorMap in{{"x", test::random_tensor(c.x, -1.0f, 1.0f, 3)}};
  const onnx::ModelProto model = test::conv_transpose_model(c, in);
  auto g = ref::lower_qdq(model, 1);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(g.error().what()).find("deconv"), std::string::npos) << g.error().what();
  ref::LowerOptions o;
  o.host_fallback = true;
  auto h = ref::lower_qdq(model, 1, o);
  ASSERT_TRUE(h.ok()) << h.error().what();
  ASSERT_EQ(h->ops.size(), 1u);
  EXPECT_EQ(h->ops[0].kind, ref::Int8OpKind::kHost);
  EXPECT_LE(test::int8_agreement(model, h.value(), in).max_diff, 0) << "3-D on the host";

  // Per-channel weight scales along axis 0 (the input channels) are not the output's.
  c.x = {1, 2, 4, 4};
  c.kernel = {2, 2};
  c.strides = {2, 2};
  c.dilations = {1, 1};
  c.pads = {0, 0, 0, 0};
  c.output_padding = {0, 0};
  onnx::ModelProto bad = test::conv_transpose_model(c, {{"x", test::random_tensor(c.x, -1.0f, 1.0f, 3)}});
  for (auto& n : *bad.mutable_graph()->mutable_node())
    if (n.name() == "w_DQ") n.mutable_attribute(0)->set_i(0);
  g = ref::lower_qdq(bad, 1);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(g.error().what()).find("axis 1"), std::string::npos) << g.error().what();
}

TEST(PadModesInt8, RandomEdgeAndReflectMatchTheFloatExecutor) {
  std::mt19937 rng(707);
  for (const std::string mode : {"edge", "reflect"})
    for (int k = 0; k < 20; ++k) {
      test::MovementCase c = test::random_pad_mode(rng, mode);
      c.shared_scale = k % 2 == 0;
      const onnx::ModelProto model = test::movement_model(c);
      const ref::Int8Graph g = lower(model, c.inputs[0][0]);
      ASSERT_EQ(g.ops.size(), 1u) << c.describe;
      EXPECT_EQ(g.ops[0].kind, ref::Int8OpKind::kPad) << c.describe;
      EXPECT_EQ(g.ops[0].pad_mode, mode == "edge" ? ref::PadMode::kEdge : ref::PadMode::kReflect) << c.describe;
      // Same parameters: the bytes move as they are. Own output scale: one requantize, one step.
      EXPECT_LE(test::int8_agreement(model, g, test::movement_inputs(c, 9 + k)).max_diff, c.shared_scale ? 0 : 1)
          << c.describe;
    }
}

/// A model of one Pad node named "odd" over x [1, 3, 4, 4].
onnx::ModelProto pad_model(const std::vector<int64_t>& pads, const std::string& mode) {
  test::MovementCase c;
  c.inputs = {{1, 3, 4, 4}};
  c.add_node = [=](test::ModelBuilder& b, const std::vector<std::string>& in) {
    b.initializer("pads", Tensor::from_vector<int64_t>({8}, pads));
    test::ModelBuilder::attr(b.node("Pad", {in[0], "pads"}, {"y0"}, "odd"), "mode", mode);
  };
  return test::movement_model(c);
}

TEST(PadModesInt8, RefusalsNameTheNode) {
  auto g = ref::lower_qdq(pad_model({0, 0, 4, 0, 0, 0, 0, 0}, "reflect"), 1);  // pad 4 of an axis of 4
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(g.error().what()).find("odd"), std::string::npos) << g.error().what();
  EXPECT_NE(std::string(g.error().what()).find("smaller than the axis"), std::string::npos) << g.error().what();
  g = ref::lower_qdq(pad_model({0, 0, 1, 0, 0, 0, 0, 0}, "wrap"), 1);  // opset 19's wrap
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(g.error().what()).find("odd"), std::string::npos) << g.error().what();
}

TEST(PadModesInt8, CorruptPadsAreRejectedByRunInt8) {
  ref::Int8Graph g = lower(pad_model({0, 0, 1, 2, 0, 0, 2, 1}, "reflect"), 1);
  const TensorMap in{{"x0", Tensor(DType::kInt8, {1, 3, 4, 4})}};
  ASSERT_TRUE(ref::run_int8(g, in).ok());
  ref::Int8Graph bad = g;
  bad.ops[0].pad_interior = {0, 0, 1, 0};  // interior needs constant mode
  auto r = ref::run_int8(bad, in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.error().what()).find("interior"), std::string::npos) << r.error().what();
  bad = g;
  bad.ops[0].pad_begin[3] = 4;  // 4 + 4 input columns do not fit an output of 7
  r = ref::run_int8(bad, in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

/// Version 4 fields round trip; a plain constant pad writes no extension; a version 3 header on a
/// graph with them is refused naming the op.
TEST(PadModesInt8, SerializationVersion4) {
  test::ConvTransposeCase c = test::undilated_conv_transpose({1, 2, 3, 3}, 2, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1});
  const TensorMap fin{{"x", test::random_tensor(c.x, -1.0f, 1.0f, 3)}};
  for (const ref::Int8Graph& g : {lower(test::conv_transpose_model(c, fin), 1),
                                  lower(pad_model({0, 0, 1, 2, 0, 0, 2, 1}, "reflect"), 1),
                                  lower(pad_model({0, 0, 1, 2, 0, 0, 2, 1}, "edge"), 1)}) {
    const std::string bytes = ref::serialize_int8_graph(g);
    auto back = ref::parse_int8_graph(bytes, "test");
    ASSERT_TRUE(back.ok()) << back.error().what();
    EXPECT_EQ(ref::serialize_int8_graph(back.value()), bytes);
    const ref::Int8Op* pad = nullptr;
    for (size_t i = 0; i < g.ops.size(); ++i)
      if (g.ops[i].kind == ref::Int8OpKind::kPad) {
        pad = &g.ops[i];
        EXPECT_EQ(back->ops[i].pad_mode, g.ops[i].pad_mode);
        EXPECT_EQ(back->ops[i].pad_interior, g.ops[i].pad_interior);
      }
    ASSERT_NE(pad, nullptr);
    TensorMap in;
    in[g.input_names[0]] = ref::quantize_tensor(
        test::random_tensor(g.values[g.inputs[0]].shape, -1.0f, 1.0f, 8), g.values[g.inputs[0]].q);
    EXPECT_TRUE(ref::run_int8(back.value(), in).value().begin()->second ==
                ref::run_int8(g, in).value().begin()->second);
    std::string v3 = bytes;
    v3[4] = 3;  // u32 version, little endian
    auto old = ref::parse_int8_graph(v3, "old.bin");
    ASSERT_FALSE(old.ok());
    EXPECT_EQ(old.error().code(), ErrorCode::kParseError);
    EXPECT_NE(std::string(old.error().what()).find("'" + pad->node + "'"), std::string::npos) << old.error().what();
    EXPECT_NE(std::string(old.error().what()).find("version 4"), std::string::npos) << old.error().what();
  }
  // A constant pad with no interior has no extension: a version 3 header still reads it.
  std::string plain = ref::serialize_int8_graph(lower(pad_model({0, 0, 1, 2, 0, 0, 2, 1}, "constant"), 1));
  plain[4] = 3;
  EXPECT_TRUE(ref::parse_int8_graph(plain, "plain").ok());
}

}  // namespace
