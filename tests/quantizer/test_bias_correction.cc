// Bias correction (QuantizeOptions::bias_correction): each Conv/Gemm bias, and each MatMul's bias
// Add, loses the mean output shift its weight rounding causes, computed from the calibrated
// per-channel input means.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "histogram.h"
#include "model_builder.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

/// Inputs whose two channels have clearly non-zero means (about 5 and -3).
Tensor conv_inputs(int64_t n, unsigned seed) {
  Tensor x = random_tensor({n, 2, 6, 6}, -0.5f, 0.5f, seed);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] += ((i / 36) % 2 == 0) ? 5.0f : -3.0f;
  return x;
}

/// x [N,2,6,6] -> Conv 3x3 (no padding, so the correction is exact) -> y [N,3,4,4].
onnx::ModelProto conv_model() {
  ModelBuilder b;
  b.input("x", {2, 6, 6}).output("y", {3, 4, 4});
  b.init("w", random_tensor({3, 2, 3, 3}, -1.0f, 1.0f, 11));
  b.init("b", random_tensor({3}, -0.5f, 0.5f, 12));
  b.node("Conv", {"x", "w", "b"}, {"y"});
  return b.model();
}

const onnx::TensorProto* initializer_proto(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

/// The dequantized float value of the DequantizeLinear whose quantized initializer has `dtype`
/// (int8 weight or int32 bias); values x per-channel scale.
std::vector<double> dequantized(const onnx::ModelProto& m, DType dtype, std::vector<float>* scales = nullptr) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "DequantizeLinear") continue;
    const onnx::TensorProto* v = initializer_proto(m, n.input(0));
    if (!v) continue;
    const Tensor q = tensor_from_proto(*v);
    if (q.dtype() != dtype || q.rank() < 1 || (dtype == DType::kInt8 && q.rank() < 2)) continue;
    const Tensor s = tensor_from_proto(*initializer_proto(m, n.input(1)));
    const int64_t channels = s.numel(), per = q.numel() / channels;
    std::vector<double> out(static_cast<size_t>(q.numel()));
    for (int64_t i = 0; i < q.numel(); ++i) {
      const double value = dtype == DType::kInt8 ? q.data<int8_t>()[i] : q.data<int32_t>()[i];
      out[static_cast<size_t>(i)] = value * s.data<float>()[channels == 1 ? 0 : i / per];
    }
    if (scales) *scales = s.to_vector<float>();
    return out;
  }
  ADD_FAILURE() << "no DequantizeLinear of " << dtype_name(dtype);
  return {};
}

onnx::ModelProto quantized(const onnx::ModelProto& opt, const Calibration& calib, bool correct) {
  QuantizeOptions options;
  options.bias_correction = correct;
  auto q = quantize(opt, calib, options);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().what());
  return q.ok() ? q.value() : onnx::ModelProto();
}

}  // namespace

TEST(BiasCorrection, CalibrationRecordsChannelMeans) {
  const onnx::ModelProto opt = optimize(conv_model());
  const Tensor x = conv_inputs(100, 3);
  const Calibration calib = calibrate(opt, x, false);
  const TensorStats& s = calib.tensors.at("x");
  // Only the Conv's input: the output y (rank 4 too) is read by no Conv or Gemm.
  EXPECT_TRUE(calib.tensors.at("y").channel_mean.empty());
  ASSERT_EQ(s.channel_mean.size(), 2u);
  EXPECT_EQ(s.channel_samples, 100 * 36);
  for (int c = 0; c < 2; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < 100; ++n)
      for (int k = 0; k < 36; ++k) sum += x.data<float>()[(n * 2 + c) * 36 + k];
    EXPECT_NEAR(s.channel_mean[c], sum / 3600, 1e-9) << c;  // batches of 64 + 36 combine exactly
  }
  const Calibration back = Calibration::from_json(nlohmann::json::parse(calib.to_json().dump()));
  EXPECT_EQ(back.tensors.at("x").channel_mean, s.channel_mean);
  EXPECT_EQ(back.tensors.at("x").channel_samples, s.channel_samples);
}

TEST(BiasCorrection, ConvBiasLosesTheWeightRoundingShift) {
  const onnx::ModelProto fp32 = conv_model();
  const onnx::ModelProto opt = optimize(fp32);
  const Calibration calib = calibrate(opt, conv_inputs(64, 4), false);
  const onnx::ModelProto plain = quantized(opt, calib, false), corrected = quantized(opt, calib, true);
  // Expected: b_o - sum_{i,k} (Wq - W)[o,i,k] * mean_i, then int32-quantized (half a bias step).
  const Tensor w = tensor_from_proto(*initializer_proto(fp32, "w")), b = tensor_from_proto(*initializer_proto(fp32, "b"));
  const std::vector<double> wq = dequantized(corrected, DType::kInt8);
  std::vector<float> bias_scale;
  const std::vector<double> bias = dequantized(corrected, DType::kInt32, &bias_scale);
  ASSERT_EQ(wq.size(), 54u);
  ASSERT_EQ(bias.size(), 3u);
  const std::vector<double>& mean = calib.tensors.at("x").channel_mean;
  for (int o = 0; o < 3; ++o) {
    double shift = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 9; ++k) {
        const int at = (o * 2 + i) * 9 + k;
        shift += (wq[at] - w.data<float>()[at]) * mean[i];
      }
    EXPECT_NEAR(bias[o], b.data<float>()[o] - shift, bias_scale[o] / 2 + 1e-6) << o;
    EXPECT_GT(std::fabs(shift), 1e-4) << o;  // the test means something: rounding did shift the mean
  }
  // On fresh inputs the corrected model's mean error per output channel is smaller.
  const Tensor x = conv_inputs(64, 9);
  const Tensor y = ref::Executor::create(fp32)->run({{"x", x}})->at("y");
  double err_plain = 0, err_corrected = 0;
  for (const auto* m : {&plain, &corrected}) {
    const Tensor yq = ref::Executor::create(*m)->run({{"x", x}})->at("y");
    double total = 0;
    for (int o = 0; o < 3; ++o) {
      double sum = 0;
      for (int64_t n = 0; n < 64; ++n)
        for (int k = 0; k < 16; ++k) {
          const int64_t at = (n * 3 + o) * 16 + k;
          sum += yq.data<float>()[at] - y.data<float>()[at];
        }
      total += std::fabs(sum / (64 * 16));
    }
    (m == &plain ? err_plain : err_corrected) = total;
  }
  EXPECT_LT(err_corrected, err_plain);
}

TEST(BiasCorrection, GemmUsesAlphaOverBeta) {
  ModelBuilder mb;
  mb.input("x", {8}).output("y", {4});
  mb.init("w", random_tensor({4, 8}, -1.0f, 1.0f, 21));
  mb.init("c", random_tensor({4}, -0.5f, 0.5f, 22));
  onnx::NodeProto& g = mb.node("Gemm", {"x", "w", "c"}, {"y"});
  set_int(g, "transB", 1);
  set_float(g, "alpha", 0.5f);
  set_float(g, "beta", 2.0f);
  const onnx::ModelProto opt = optimize(mb.model());
  Tensor x = random_tensor({64, 8}, 2.0f, 4.0f, 23);
  const Calibration calib = calibrate(opt, x, false);
  const std::vector<double>& mean = calib.tensors.at("x").channel_mean;
  ASSERT_EQ(mean.size(), 8u);
  const onnx::ModelProto plain = quantized(opt, calib, false), corrected = quantized(opt, calib, true);
  const Tensor w = tensor_from_proto(*initializer_proto(mb.model(), "w"));
  const Tensor c = tensor_from_proto(*initializer_proto(mb.model(), "c"));
  const std::vector<double> wq = dequantized(corrected, DType::kInt8);
  std::vector<float> bias_scale;
  const std::vector<double> bias = dequantized(corrected, DType::kInt32, &bias_scale);
  ASSERT_EQ(bias.size(), 4u);
  EXPECT_NE(dequantized(plain, DType::kInt32), bias);
  for (int o = 0; o < 4; ++o) {
    double shift = 0;
    for (int k = 0; k < 8; ++k) shift += (wq[o * 8 + k] - w.data<float>()[o * 8 + k]) * mean[k];
    EXPECT_NEAR(bias[o], c.data<float>()[o] - 0.5 / 2.0 * shift, bias_scale[o] / 2 + 1e-6) << o;
  }
}

TEST(BiasCorrection, MatMulBiasUsesTheMeansOfTheLastAxis) {
  // nn.Linear on a 3-D input as torch exports it: x [N, 5, 8] x W [8, 4], then Add(bias, product).
  // The weight reduces the last axis, so the means are per last-axis channel over all N x 5 rows.
  ModelBuilder mb;
  mb.input("x", {5, 8}).output("y", {5, 4});
  mb.init("w", random_tensor({8, 4}, -1.0f, 1.0f, 31)).init("c", random_tensor({4}, -0.5f, 0.5f, 32));
  mb.node("MatMul", {"x", "w"}, {"h"});
  mb.node("Add", {"c", "h"}, {"y"});
  const onnx::ModelProto opt = optimize(mb.model());
  Tensor x = random_tensor({70, 5, 8}, -0.5f, 0.5f, 33);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 0.5f * static_cast<float>(i % 8) - 1.0f;
  const Calibration calib = calibrate(opt, x, false);
  const TensorStats& s = calib.tensors.at("x");
  EXPECT_EQ(s.channel_axis, -1);
  ASSERT_EQ(s.channel_mean.size(), 8u);
  EXPECT_EQ(s.channel_samples, 70 * 5);
  for (int k = 0; k < 8; ++k) {
    double sum = 0;
    for (int64_t r = 0; r < 70 * 5; ++r) sum += x.data<float>()[r * 8 + k];
    EXPECT_NEAR(s.channel_mean[k], sum / 350, 1e-9) << k;
  }
  EXPECT_TRUE(calib.tensors.at("y").channel_mean.empty());
  const Calibration back = Calibration::from_json(nlohmann::json::parse(calib.to_json().dump()));
  EXPECT_EQ(back.tensors.at("x").channel_axis, -1);
  EXPECT_EQ(back.tensors.at("x").channel_mean, s.channel_mean);
  // The int32 bias: c_o - sum_k (Wq - W)[k, o] * mean_k, W per output channel along axis 1.
  const onnx::ModelProto plain = quantized(opt, calib, false), corrected = quantized(opt, calib, true);
  std::vector<float> bias_scale;
  const std::vector<double> bias = dequantized(corrected, DType::kInt32, &bias_scale);
  ASSERT_EQ(bias.size(), 4u);
  EXPECT_NE(dequantized(plain, DType::kInt32), bias);
  Tensor wq_int8, w_scale;
  for (const auto& n : corrected.graph().node())
    if (n.op_type() == "DequantizeLinear" && initializer_proto(corrected, n.input(0)) &&
        initializer_proto(corrected, n.input(0))->data_type() == onnx::TensorProto::INT8 &&
        initializer_proto(corrected, n.input(0))->dims_size() == 2) {
      wq_int8 = tensor_from_proto(*initializer_proto(corrected, n.input(0)));
      w_scale = tensor_from_proto(*initializer_proto(corrected, n.input(1)));
    }
  ASSERT_EQ(wq_int8.shape(), (Shape{8, 4}));
  ASSERT_EQ(w_scale.numel(), 4);
  const Tensor w = tensor_from_proto(*initializer_proto(mb.model(), "w"));
  const Tensor c = tensor_from_proto(*initializer_proto(mb.model(), "c"));
  for (int o = 0; o < 4; ++o) {
    double shift = 0;
    for (int k = 0; k < 8; ++k)
      shift += (wq_int8.data<int8_t>()[k * 4 + o] * static_cast<double>(w_scale.data<float>()[o]) -
                w.data<float>()[k * 4 + o]) * s.channel_mean[k];
    EXPECT_NEAR(bias[o], c.data<float>()[o] - shift, bias_scale[o] / 2 + 1e-6) << o;
  }
}

TEST(BiasCorrection, ChannelAxisInTheStatisticsFileIsOneOrMinusOne) {
  Calibration calib;
  calib.tensors["x"] = TensorStats{-1.0f, 1.0f, 4, {}, 0.0f, {0.5, -0.5}, 2, -1};
  nlohmann::json j = calib.to_json();
  EXPECT_EQ(j["tensors"]["x"]["channel_axis"], -1);
  j["tensors"]["x"]["channel_axis"] = 2;
  try {
    Calibration::from_json(j);
    FAIL() << "channel_axis 2 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_STREQ(e.what(), "calibration: tensor 'x': channel_axis must be 1 or -1");
  }
  // Axis 1, the default, is not written: files of Conv/Gemm inputs stay as they were.
  calib.tensors["x"].channel_axis = 1;
  EXPECT_FALSE(calib.to_json()["tensors"]["x"].contains("channel_axis"));
}

TEST(BiasCorrection, NeedsTheStatisticsNotOnlyRanges) {
  const onnx::ModelProto opt = optimize(conv_model());
  const Calibration calib = calibrate(opt, conv_inputs(8, 5), false);
  QuantizeOptions options;
  options.bias_correction = true;
  auto q = quantize(opt, calib.ranges(options.method), options);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(q.error().what()).find("bias correction"), std::string::npos) << q.error().what();
  EXPECT_TRUE(quantize(opt, calib.ranges(options.method), options, nullptr, &calib).ok());
}

TEST(BiasCorrection, AnAxisOneThatChangesSizeHasNoChannelMeans) {
  TensorStats s;
  const std::vector<float> v(8, 1.0f);
  accumulate_channel_means(s, v.data(), 2, 2, 2);
  EXPECT_EQ(s.channel_mean, (std::vector<double>{1.0, 1.0}));
  accumulate_channel_means(s, v.data(), 2, 4, 1);  // e.g. the batch on axis 1, last batch partial
  EXPECT_TRUE(s.channel_mean.empty());
  EXPECT_EQ(s.channel_samples, -1);
  accumulate_channel_means(s, v.data(), 2, 2, 2);  // and it stays so
  EXPECT_TRUE(s.channel_mean.empty());
}

TEST(BiasCorrection, CalibrationSurvivesATensorWithTheBatchOnAxisOne) {
  // x [N,3,4] -> Transpose(1,0,2) -> [3,N,4]: axis 1 is 64 for the first executor batch, 36 after.
  ModelBuilder b;
  b.input("x", {3, 4}).output("y", {4});
  set_ints(b.node("Transpose", {"x"}, {"y"}), "perm", {1, 0, 2});
  onnx::ModelProto m = b.model();  // y is [3, N, 4]: its declared shape is rewritten below
  auto* dims = m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  dims->mutable_dim(0)->set_dim_value(3);
  dims->mutable_dim(1)->set_dim_param("N");
  // No Conv or Gemm reads x or y, so calibrate() records no means for them (bias correction is
  // their only reader); accumulate_channel_means' own handling of the size change is tested above.
  const Calibration calib = calibrate(m, random_tensor({100, 3, 4}, -1.0f, 1.0f, 8), false);
  EXPECT_TRUE(calib.tensors.at("x").channel_mean.empty());
  EXPECT_TRUE(calib.tensors.at("y").channel_mean.empty());
  EXPECT_EQ(calib.tensors.at("y").count, 1200);
}
