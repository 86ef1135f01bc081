// ModelEditor (edit_model): uint8 inputs (plain and with the pixel normalisation folded), int8
// outputs; checked against the unedited QDQ model and the FP32 model on the reference executor.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "anvil/common/onnx_model.h"
#include "anvil/common/requant.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"
#include "model_builder.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

constexpr float kMean = 0.286f, kStd = 0.353f;

/// x [N,1,6,6] -> Conv 3x3 -> Relu -> MaxPool -> Conv 1x1 -> Relu -> GAP -> Flatten -> Gemm -> y [N,3]
/// With `relu_out`, the first Relu's output r1 is also a graph output (read inside too).
onnx::ModelProto cnn(bool relu_out = false) {
  ModelBuilder b;
  b.input("x", {1, 6, 6}).output("y", {3});
  if (relu_out) b.output("r1", {4, 6, 6});
  b.init("w1", random_tensor({4, 1, 3, 3}, -0.5f, 0.5f, 11)).init("b1", random_tensor({4}, -0.2f, 0.2f, 12));
  b.init("w2", random_tensor({4, 4, 1, 1}, -0.5f, 0.5f, 13)).init("b2", random_tensor({4}, -0.2f, 0.2f, 14));
  b.init("B", random_tensor({3, 4}, -1.0f, 1.0f, 15)).init("C", random_tensor({3}, -0.2f, 0.2f, 16));
  auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"});
  set_ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto& pool = b.node("MaxPool", {"r1"}, {"p"});
  set_ints(pool, "kernel_shape", {2, 2});
  set_ints(pool, "strides", {2, 2});
  b.node("Conv", {"p", "w2", "b2"}, {"c2"});
  b.node("Relu", {"c2"}, {"r2"});
  b.node("GlobalAveragePool", {"r2"}, {"gap"});
  b.node("Flatten", {"gap"}, {"f"});
  auto& gemm = b.node("Gemm", {"f", "B", "C"}, {"y"});
  set_int(gemm, "transB", 1);
  return b.model();
}

/// Raw pixels (uint8) and their normalised float form, (p / 255 - mean) / std. Pixels 0 and 255
/// appear, so calibration's input range is the whole pixel range.
struct Images {
  Tensor pixels, normalised;
};
Images images(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, 255);
  Images im{Tensor(DType::kUInt8, {n, 1, 6, 6}), Tensor(DType::kFloat32, {n, 1, 6, 6})};
  for (int64_t i = 0; i < im.pixels.numel(); ++i) {
    const int p = i == 0 ? 0 : i == 1 ? 255 : d(rng);
    im.pixels.data<uint8_t>()[i] = static_cast<uint8_t>(p);
    im.normalised.data<float>()[i] = (p / 255.0f - kMean) / kStd;
  }
  return im;
}

onnx::ModelProto qdq_model(bool relu_out = false) {
  QuantizeOptions o;
  o.method = Method::kMinMaxAsym;
  return quantize_model(cnn(relu_out), images(64, 1).normalised, o).value();
}

Tensor run(const onnx::ModelProto& m, const Tensor& x, const std::string& output = "y") {
  auto exec = ref::Executor::create(m);
  if (!exec.ok()) throw exec.error();
  auto out = exec->run({{"x", x}});
  if (!out.ok()) throw out.error();
  return out->at(output);
}

std::string meta(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props())
    if (p.key() == key) return p.value();
  return "";
}

float max_abs(const Tensor& t) {
  float m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data<float>()[i]));
  return m;
}

}  // namespace

TEST(ModelEditor, Uint8InputIsTheInt8CodeShiftedBy128) {
  const onnx::ModelProto q = qdq_model();
  EditOptions o;
  o.input_uint8 = true;
  const EditResult e = edit_model(q, o).value();
  EXPECT_NO_THROW(check_onnx(e.model, "edited"));
  EXPECT_EQ(count_ops(e.model, "QuantizeLinear"), count_ops(q, "QuantizeLinear") - 1);  // the input Q is gone
  EXPECT_EQ(e.model.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::UINT8);
  ASSERT_EQ(e.inputs.size(), 1u);
  EXPECT_EQ(meta(e.model, "anvil.input.x.dtype"), "uint8");
  EXPECT_EQ(meta(e.model, "anvil.input.x.zero_point"), std::to_string(e.inputs[0].zero_point));
  // Feeding u = quantize(x) + 128 with the printed parameters gives exactly the QDQ model's outputs.
  const Images im = images(32, 2);
  Tensor u(DType::kUInt8, im.normalised.shape());
  const BoundaryParams& b = e.inputs[0];
  for (int64_t i = 0; i < u.numel(); ++i) {
    const int code = math::quantize_float(im.normalised.data<float>()[i], b.scale, b.zero_point - 128) + 128;
    u.data<uint8_t>()[i] = static_cast<uint8_t>(code);
  }
  const Tensor want = run(q, im.normalised), got = run(e.model, u);
  ASSERT_EQ(want.shape(), got.shape());
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(want.data<float>()[i], got.data<float>()[i]) << i;
}

TEST(ModelEditor, FoldedNormalisationTakesRawPixels) {
  const onnx::ModelProto fp32 = cnn(), q = qdq_model();
  EditOptions o;
  o.input_uint8 = o.fold_normalization = true;
  o.mean = kMean, o.std = kStd;
  const EditResult e = edit_model(q, o).value();
  EXPECT_NO_THROW(check_onnx(e.model, "edited"));
  // The first Q/DQ is one uint8 DequantizeLinear: scale 1/(255 std), zero point round(255 mean) = 73.
  const auto readers = consumers(e.model, "x");
  ASSERT_EQ(readers.size(), 1u);
  ASSERT_EQ(readers[0]->op_type(), "DequantizeLinear");
  const Tensor s = initializer(e.model, readers[0]->input(1)), z = initializer(e.model, readers[0]->input(2));
  ASSERT_EQ(z.dtype(), DType::kUInt8);
  EXPECT_EQ(z.data<uint8_t>()[0], 73);
  EXPECT_FLOAT_EQ(s.data<float>()[0], 1.0f / (255.0f * kStd));
  // Per pixel value, the DQ reproduces the float normalisation to within the zero point's rounding.
  for (int p = 0; p <= 255; ++p)
    EXPECT_NEAR((p - 73) * s.data<float>()[0], (p / 255.0f - kMean) / kStd, 0.5f / (255.0f * kStd) + 1e-6f) << p;
  // The Conv reading it got its int32 bias re-quantized: bias scale = new input scale * weight scale.
  const onnx::NodeProto* conv = consumers(e.model, readers[0]->output(0))[0];
  ASSERT_EQ(conv->op_type(), "Conv");
  const onnx::NodeProto* bdq = producer(e.model, conv->input(2));
  const onnx::NodeProto* wdq = producer(e.model, conv->input(1));
  const Tensor bs = initializer(e.model, bdq->input(1)), ws = initializer(e.model, wdq->input(1));
  for (int c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(bs.data<float>()[c], s.data<float>()[0] * ws.data<float>()[c]);

  // Raw pixels into the edited model vs normalised floats into the QDQ model and the FP32 model.
  const Images im = images(64, 3);
  const Tensor folded = run(e.model, im.pixels), qdq = run(q, im.normalised), ref = run(fp32, im.normalised);
  const float range = max_abs(ref);
  float err_qdq = 0, err_fp32 = 0, err_base = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    err_qdq = std::max(err_qdq, std::fabs(folded.data<float>()[i] - qdq.data<float>()[i]));
    err_fp32 = std::max(err_fp32, std::fabs(folded.data<float>()[i] - ref.data<float>()[i]));
    err_base = std::max(err_base, std::fabs(qdq.data<float>()[i] - ref.data<float>()[i]));
  }
  EXPECT_LT(err_qdq, 0.05f * range) << "folded vs QDQ";
  EXPECT_LT(err_fp32, 0.05f * range) << "folded vs FP32";
  EXPECT_LT(err_fp32, err_base + 0.02f * range) << "folding costs at most a little over quantization itself";
}

TEST(ModelEditor, FoldedNormalisationRequantizesTheBiasOfAMatMulAndOfAConvTranspose) {
  // The input's readers whose int32 bias is tied to its scale: a MatMul through its bias Add
  // ([N,1,6,6] x [6,2] + c) and a ConvTranspose.
  ModelBuilder mm;
  mm.input("x", {1, 6, 6}).output("y", {1, 6, 2});
  mm.init("W", random_tensor({6, 2}, -0.5f, 0.5f, 21)).init("c", random_tensor({2}, -0.5f, 0.5f, 22));
  mm.node("MatMul", {"x", "W"}, {"h"});
  mm.node("Add", {"h", "c"}, {"y"});
  ModelBuilder ct;
  ct.input("x", {1, 6, 6}).output("y", {2, 12, 12});
  ct.init("W", random_tensor({1, 2, 2, 2}, -0.5f, 0.5f, 23)).init("c", random_tensor({2}, -0.5f, 0.5f, 24));
  set_ints(ct.node("ConvTranspose", {"x", "W", "c"}, {"y"}), "strides", {2, 2});
  for (const onnx::ModelProto& fp32 : {mm.model(), ct.model()}) {
    const std::string op = fp32.graph().node(0).op_type();
    SCOPED_TRACE(op);
    QuantizeOptions qo;
    qo.method = Method::kMinMaxAsym;
    const onnx::ModelProto q = quantize_model(fp32, images(64, 1).normalised, qo).value();
    EditOptions o;
    o.input_uint8 = o.fold_normalization = true;
    o.mean = kMean, o.std = kStd;
    const EditResult e = edit_model(q, o).value();
    EXPECT_NO_THROW(check_onnx(e.model, "edited"));
    const onnx::NodeProto* in_dq = consumers(e.model, "x").at(0);
    const float in_scale = initializer(e.model, in_dq->input(1)).data<float>()[0];
    const onnx::NodeProto* node = consumers(e.model, in_dq->output(0)).at(0);
    ASSERT_EQ(node->op_type(), op);
    const onnx::NodeProto* bias_reader = op == "MatMul" ? consumers(e.model, node->output(0)).at(0) : node;
    const onnx::NodeProto* bdq = producer(e.model, bias_reader->input(op == "MatMul" ? 1 : 2));
    const onnx::NodeProto* wdq = producer(e.model, node->input(1));
    ASSERT_TRUE(bdq && wdq);
    ASSERT_EQ(bdq->op_type(), "DequantizeLinear");
    const Tensor bs = initializer(e.model, bdq->input(1)), ws = initializer(e.model, wdq->input(1));
    ASSERT_EQ(bs.numel(), 2);
    for (int c = 0; c < 2; ++c) EXPECT_FLOAT_EQ(bs.data<float>()[c], in_scale * ws.data<float>()[c]) << c;
    // Raw pixels into the edited model give the QDQ model's outputs on normalised floats.
    const Images im = images(16, 5);
    const Tensor folded = run(e.model, im.pixels), qdq = run(q, im.normalised);
    ASSERT_EQ(folded.shape(), qdq.shape());
    const float range = max_abs(qdq);
    for (int64_t i = 0; i < qdq.numel(); ++i)
      ASSERT_NEAR(folded.data<float>()[i], qdq.data<float>()[i], 0.05f * range) << i;
  }
}

// The folded zero point is round(255 mean) and every pixel's DQ value is its normalisation within
// half a step, for means where round(255 mean) and round(256 mean) differ (0.75: 191 and 192).
// (Mutation testing: 256 instead of 255 survived, as kMean gives 73 either way.)
TEST(ModelEditor, FoldedZeroPointIsRound255TimesTheMean) {
  const onnx::ModelProto q = qdq_model();
  for (float mean : {0.0f, 0.5f, 0.75f, 0.9f, 1.0f}) {
    SCOPED_TRACE(mean);
    EditOptions o;
    o.input_uint8 = o.fold_normalization = true;
    o.mean = mean, o.std = kStd;
    const EditResult e = edit_model(q, o).value();
    const onnx::NodeProto* dq = consumers(e.model, "x").at(0);
    const float s = initializer(e.model, dq->input(1)).data<float>()[0];
    const int z = initializer(e.model, dq->input(2)).data<uint8_t>()[0];
    EXPECT_EQ(z, std::lround(255.0 * mean));
    ASSERT_EQ(e.inputs.size(), 1u);
    EXPECT_EQ(e.inputs[0].zero_point, z);
    for (int p = 0; p <= 255; ++p)
      ASSERT_NEAR((p - z) * s, (p / 255.0f - mean) / kStd, 0.5f / (255.0f * kStd) + 1e-6f) << p;
  }
}

// Calibration saw only pixels 64..191, so the QDQ model's input scale is about half the folded
// 1/(255 std): the Conv's int32 bias must be re-quantized to the new input scale x its weight
// scales, keeping its float value. (Mutation testing: skipping rescale_bias survived, because in
// the other tests calibration covers 0..255 and the two input scales agree to a few ULPs.)
TEST(ModelEditor, FoldedNormalisationRequantizesTheBiasWhenTheInputScaleChanges) {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> d(64, 191);
  Tensor pixels(DType::kUInt8, {64, 1, 6, 6}), normalised(DType::kFloat32, {64, 1, 6, 6});
  for (int64_t i = 0; i < pixels.numel(); ++i) {
    const int p = i == 0 ? 64 : i == 1 ? 191 : d(rng);
    pixels.data<uint8_t>()[i] = static_cast<uint8_t>(p);
    normalised.data<float>()[i] = (p / 255.0f - kMean) / kStd;
  }
  QuantizeOptions qo;
  qo.method = Method::kMinMaxAsym;
  const onnx::ModelProto q = quantize_model(cnn(), normalised, qo).value();
  EditOptions o;
  o.input_uint8 = o.fold_normalization = true;
  o.mean = kMean, o.std = kStd;
  const EditResult e = edit_model(q, o).value();
  EXPECT_NO_THROW(check_onnx(e.model, "edited"));
  const float old_scale = initializer(q, consumers(q, "x").at(0)->input(1)).data<float>()[0];
  const onnx::NodeProto* in_dq = consumers(e.model, "x").at(0);
  const float s = initializer(e.model, in_dq->input(1)).data<float>()[0];
  ASSERT_GT(s / old_scale, 1.5f);  // the scales really differ
  const onnx::NodeProto* conv = consumers(e.model, in_dq->output(0)).at(0);
  ASSERT_EQ(conv->op_type(), "Conv");
  const onnx::NodeProto* bdq = producer(e.model, conv->input(2));
  const onnx::NodeProto* wdq = producer(e.model, conv->input(1));
  ASSERT_TRUE(bdq && wdq);
  const Tensor qb = initializer(e.model, bdq->input(0)), bs = initializer(e.model, bdq->input(1));
  const Tensor ws = initializer(e.model, wdq->input(1));
  const Tensor b1 = random_tensor({4}, -0.2f, 0.2f, 12);  // cnn()'s first bias
  ASSERT_EQ(qb.dtype(), DType::kInt32);
  for (int c = 0; c < 4; ++c) {
    EXPECT_FLOAT_EQ(bs.data<float>()[c], s * ws.data<float>()[c]) << c;
    EXPECT_NEAR(qb.data<int32_t>()[c] * bs.data<float>()[c], b1.data<float>()[c], bs.data<float>()[c]) << c;
  }
  // Raw pixels into the edited model give the QDQ model's outputs on normalised floats.
  const Tensor folded = run(e.model, pixels), qdq = run(q, normalised);
  const float range = max_abs(qdq);
  for (int64_t i = 0; i < qdq.numel(); ++i) ASSERT_NEAR(folded.data<float>()[i], qdq.data<float>()[i], 0.05f * range) << i;
}

TEST(ModelEditor, Int8OutputDropsTheFinalDequantize) {
  const onnx::ModelProto q = qdq_model();
  EditOptions o;
  o.output_int8 = true;
  const EditResult e = edit_model(q, o).value();
  EXPECT_NO_THROW(check_onnx(e.model, "edited"));
  EXPECT_EQ(e.model.graph().output(0).name(), "y");
  EXPECT_EQ(e.model.graph().output(0).type().tensor_type().elem_type(), onnx::TensorProto::INT8);
  ASSERT_EQ(e.outputs.size(), 1u);
  EXPECT_EQ(meta(e.model, "anvil.output.y.dtype"), "int8");
  const Images im = images(16, 4);
  const Tensor want = run(q, im.normalised), got = run(e.model, im.normalised);
  ASSERT_EQ(got.dtype(), DType::kInt8);
  for (int64_t i = 0; i < want.numel(); ++i)
    EXPECT_EQ(math::dequantize(got.data<int8_t>()[i], e.outputs[0].scale, e.outputs[0].zero_point),
              want.data<float>()[i]);
}

TEST(ModelEditor, Int8OutputThatIsAlsoReadInsideKeepsADequantizeForItsReaders) {
  // r1 is a graph output and the MaxPool's input: the MaxPool must go on reading float r1, through
  // a DequantizeLinear of the int8 output, and both outputs must equal the unedited model's.
  const onnx::ModelProto q = qdq_model(true);
  EditOptions o;
  o.output_int8 = true;
  const EditResult e = edit_model(q, o).value();
  EXPECT_NO_THROW(check_onnx(e.model, "edited"));
  ASSERT_EQ(e.outputs.size(), 2u);
  const Images im = images(16, 6);
  for (const BoundaryParams& b : e.outputs) {
    const Tensor want = run(q, im.normalised, b.tensor), got = run(e.model, im.normalised, b.tensor);
    ASSERT_EQ(got.dtype(), DType::kInt8) << b.tensor;
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(math::dequantize(got.data<int8_t>()[i], b.scale, b.zero_point), want.data<float>()[i]) << b.tensor;
  }
  // The lowered integer graph takes it too (anvil compile does the same).
  const auto lowered = ref::lower_qdq(e.model, 2);
  EXPECT_TRUE(lowered.ok()) << lowered.error().what();
}

TEST(ModelEditor, LoweringTakesInt8OutputsAndNamesUint8Inputs) {
  const onnx::ModelProto q = qdq_model();
  EditOptions o;
  o.output_int8 = true;
  auto plain = ref::lower_qdq(q, 2), edited = ref::lower_qdq(edit_model(q, o)->model, 2);
  ASSERT_TRUE(plain.ok()) << plain.error().what();
  ASSERT_TRUE(edited.ok()) << edited.error().what();
  const Tensor x = ref::quantize_tensor(images(2, 5).normalised, plain->values[plain->inputs[0]].q);
  auto want = ref::run_int8(*plain, {{"x", x}}), got = ref::run_int8(*edited, {{"x", x}});
  ASSERT_TRUE(want.ok()) << want.error().what();
  ASSERT_TRUE(got.ok()) << got.error().what();
  EXPECT_EQ(want->at("y"), got->at("y"));
  o.input_uint8 = true;
  const auto u8 = ref::lower_qdq(edit_model(q, o)->model, 2);
  ASSERT_FALSE(u8.ok());
  EXPECT_EQ(u8.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(u8.error().what()).find("'x'"), std::string::npos) << u8.error().what();
  EXPECT_NE(std::string(u8.error().what()).find("uint8"), std::string::npos) << u8.error().what();
}

TEST(ModelEditor, Errors) {
  EditOptions fold_only;
  fold_only.fold_normalization = true;
  EXPECT_FALSE(edit_model(qdq_model(), fold_only).ok());
  EditOptions bad_std;
  bad_std.input_uint8 = bad_std.fold_normalization = true;
  bad_std.std = 0.0f;
  EXPECT_FALSE(edit_model(qdq_model(), bad_std).ok());
  // A float model has no input QuantizeLinear / output DequantizeLinear to remove.
  EditOptions in;
  in.input_uint8 = true;
  const auto r = edit_model(cnn(), in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(r.error().what()).find("'x'"), std::string::npos) << r.error().what();
  EditOptions out;
  out.output_int8 = true;
  const auto r2 = edit_model(cnn(), out);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(std::string(r2.error().what()).find("'y'"), std::string::npos) << r2.error().what();
}
