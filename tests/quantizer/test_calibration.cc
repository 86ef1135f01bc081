#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "histogram.h"
#include "model_builder.h"
#include "stats_for_tests.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {
/// x -> Relu -> r -> Div(d) -> y
onnx::ModelProto relu_div_model(float divisor) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  b.init("d", Tensor::from_vector<float>({1}, {divisor}));
  b.node("Relu", {"x"}, {"r"});
  b.node("Div", {"r", "d"}, {"y"});
  return b.model();
}
/// 100 samples of 3 values: a ramp from -1 to 3.
Tensor ramp_inputs() {
  Tensor t(DType::kFloat32, {100, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = -1.0f + 4.0f * i / (t.numel() - 1);
  return t;
}
}  // namespace

TEST(Calibrate, RecordsMinMaxOfEveryTensorAcrossBatches) {
  const Calibration c = calibrate(relu_div_model(2.0f), ramp_inputs(), false);
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_FLOAT_EQ(c.tensors.at("x").min, -1.0f);
  EXPECT_FLOAT_EQ(c.tensors.at("x").max, 3.0f);
  EXPECT_EQ(c.tensors.at("x").count, 300);  // 100 samples in batches of 64 + 36
  EXPECT_FLOAT_EQ(c.tensors.at("r").min, 0.0f);
  EXPECT_FLOAT_EQ(c.tensors.at("y").max, 1.5f);
  const auto asym = c.ranges(Method::kMinMaxAsym);
  EXPECT_FLOAT_EQ(asym.at("x").min, -1.0f);
  EXPECT_FLOAT_EQ(asym.at("x").max, 3.0f);
  const auto sym = c.ranges(Method::kMinMaxSym);
  EXPECT_FLOAT_EQ(sym.at("x").min, -3.0f);
  EXPECT_FLOAT_EQ(sym.at("r").min, 0.0f);  // non-negative stays [0, a]
  EXPECT_FLOAT_EQ(sym.at("r").max, 3.0f);
}

TEST(Calibrate, LargeImagesRunInSmallerBatchesWithTheSameStatistics) {
  // 256 KiB per image: 32 images per executor run (at most 8 MiB of input), 100 = 3 x 32 + 4; the
  // statistics are those of all values at once, and the time split is filled in.
  ModelBuilder b;
  b.input("x", {65536}).output("y", {65536});
  b.node("Relu", {"x"}, {"y"});
  Tensor in(DType::kFloat32, {100, 65536});
  for (int64_t i = 0; i < in.numel(); ++i)
    in.data<float>()[i] = static_cast<float>((i * 7919) % 20011) / 1000.0f - 10.0f + (i >= 96 * 65536 ? 30.0f : 0.0f);
  CalibrationTime time;
  const Calibration c = calibrate(b.model(), in, false, &time);
  TensorStats expect;
  accumulate(expect, in.data<float>(), in.numel());
  const TensorStats& x = c.tensors.at("x");
  EXPECT_EQ(x.count, expect.count);
  EXPECT_EQ(x.min, expect.min);
  EXPECT_EQ(x.max, expect.max);  // only the last, partial batch reaches it
  EXPECT_EQ(x.histogram_half_width, expect.histogram_half_width);
  EXPECT_EQ(x.histogram, expect.histogram);
  EXPECT_GT(time.pass_s, 0.0);
  EXPECT_GT(time.statistics_s, 0.0);
}

TEST(Calibrate, StatisticsRecordedBesideTheModelEqualThoseRecordedInRunOrder) {
  // calibrate() records whole values in tasks while the model goes on; every field, the channel
  // means included, equals what recording each value in the observer, run after run, gives.
  // x [N,4,8] -> MatMul by a constant -> m -> Relu -> r -> Reshape [N,24] -> f -> Gemm -> y; channel
  // means: x (last axis, the MatMul's input) and f (axis 1, the Gemm's input); 300 = 4 x 64 + 44 images.
  ModelBuilder b;
  b.input("x", {4, 8}).output("y", {5});
  b.init("w1", random_tensor({8, 6}, -0.5f, 0.5f, 41)).init("w2", random_tensor({24, 5}, -0.4f, 0.4f, 42));
  b.init("b2", random_tensor({5}, -0.2f, 0.2f, 43)).init("shape", Tensor::from_vector<int64_t>({2}, {-1, 24}));
  b.node("MatMul", {"x", "w1"}, {"m"});
  b.node("Relu", {"m"}, {"r"});
  b.node("Reshape", {"r", "shape"}, {"f"});
  b.node("Gemm", {"f", "w2", "b2"}, {"y"});
  const Tensor inputs = random_tensor({300, 4, 8}, -1.0f, 1.0f, 44);
  const Calibration got = calibrate(b.model(), inputs, false);
  const ref::Executor exec = ref::Executor::create(b.model()).value();
  Calibration want;
  ref::RunOptions o;
  o.observe = [&](const std::string& name, const Tensor& t) {
    TensorStats& s = want.tensors[name];
    const float* p = t.data<float>();
    if (name == "x") {
      accumulate_last_axis(s, p, summarize(p, t.numel()), t.numel() / 8, 8);
    } else if (name == "f") {
      accumulate(s, p, summarize(p, t.numel()), {t.dim(0), t.dim(1), 1});
    } else {
      accumulate(s, p, t.numel());
    }
  };
  for (int64_t begin = 0; begin < inputs.dim(0); begin += 64)
    exec.run({{"x", inputs.slice0(begin, std::min(inputs.dim(0), begin + 64))}}, o).value();
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& [name, w] : want.tensors) {
    SCOPED_TRACE(name);
    const TensorStats& g = got.tensors.at(name);
    expect_same_statistics(g, w);  // channel means folded run by run in the same order
    EXPECT_EQ(g.channel_mean.empty(), name != "x" && name != "f");
  }
}

TEST(Calibrate, NanInputNamesTheTensor) {
  Tensor in = ramp_inputs();
  in.data<float>()[70] = std::numeric_limits<float>::quiet_NaN();
  try {
    calibrate(relu_div_model(2.0f), in, false);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
}

TEST(Calibrate, InfiniteIntermediateNamesTheTensor) {
  try {
    calibrate(relu_div_model(0.0f), ramp_inputs(), false);  // positive / 0 = inf in y
    FAIL() << "inf accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
  }
}

TEST(Calibrate, RejectsWrongInputs) {
  EXPECT_THROW(calibrate(relu_div_model(2.0f), Tensor(DType::kInt8, {4, 3}), false), Error);
  EXPECT_THROW(calibrate(relu_div_model(2.0f), Tensor(DType::kFloat32, {0, 3}), false), Error);
  EXPECT_THROW(calibrate(relu_div_model(2.0f), Tensor(DType::kFloat32, {4, 5}), false), Error);
}

TEST(CalibrationJson, RoundTrips) {
  Calibration c;
  c.tensors["a"] = TensorStats{-1.5f, 2.25f, 10, {}, 0.0f, {}, 0};
  c.tensors["b/c"] = TensorStats{0.0f, 0.0f, 3, {}, 0.0f, {}, 0};
  const Calibration d = Calibration::from_json(nlohmann::json::parse(c.to_json().dump()));
  ASSERT_EQ(d.tensors.size(), 2u);
  EXPECT_EQ(d.tensors.at("a").min, -1.5f);
  EXPECT_EQ(d.tensors.at("a").max, 2.25f);
  EXPECT_EQ(d.tensors.at("b/c").count, 3);
}

TEST(CalibrationJson, RejectsMalformedDocuments) {
  EXPECT_THROW(Calibration::from_json(nlohmann::json::array()), Error);
  nlohmann::json j = Calibration{}.to_json();
  j["version"] = 99;
  EXPECT_THROW(Calibration::from_json(j), Error);
  j = Calibration{}.to_json();
  j["tensors"]["t"] = {{"min", 1.0}, {"max", 0.0}, {"count", 1}};  // min > max
  try {
    Calibration::from_json(j);
    FAIL() << "min > max accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos);
  }
  j["tensors"]["t"] = {{"min", 0.0}, {"count", 1}};
  EXPECT_THROW(Calibration::from_json(j), Error);
}

TEST(CalibrationJson, RejectsAHistogramThatDoesNotAddUpToItsCount) {
  // An all-zero histogram with count 10 would have collapsed the tensor's range without a word;
  // counts near 2^62 would have overflowed the sum.
  const auto refused = [](const std::vector<int64_t>& bins, const std::string& words) {
    nlohmann::json j = Calibration{}.to_json();
    std::vector<int64_t> h(kHistogramBins, 0);
    std::copy(bins.begin(), bins.end(), h.begin() + kHistogramBins / 2);
    j["tensors"]["t"] = {{"min", 0.0}, {"max", 2.0}, {"count", 10}, {"histogram", h}, {"histogram_half_width", 4.0}};
    try {
      Calibration::from_json(j);
      return std::string("accepted");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError);
      EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
      return std::string("refused");
    }
  };
  EXPECT_EQ(refused({}, "add up to 0, not count 10"), "refused");
  EXPECT_EQ(refused({4, 5}, "add up to 9, not count 10"), "refused");
  EXPECT_EQ(refused({int64_t{1} << 62, int64_t{1} << 62}, "more than count 10"), "refused");
  EXPECT_EQ(refused({4, 6}, ""), "accepted");
}

// A NaN or infinite min/max (a NaN put in by a program, or a double beyond float's range that
// becomes +-Inf as a float) is a parse error naming the tensor. (Mutation testing: dropping the
// finiteness check failed no test.)
TEST(CalibrationJson, RejectsNonFiniteMinAndMax) {
  const double bad[] = {std::nan(""), 1e300, -1e300};
  for (double v : bad)
    for (const char* field : {"min", "max"}) {
      SCOPED_TRACE(std::string(field) + " = " + std::to_string(v));
      nlohmann::json j = Calibration{}.to_json();
      j["tensors"]["t"] = {{"min", -1.0}, {"max", 1.0}, {"count", 4}};
      j["tensors"]["t"][field] = v;
      try {
        Calibration::from_json(j);
        ADD_FAILURE() << "accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kParseError);
        EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
      }
    }
}

namespace {
/// x [N,3,8,8] -> Conv 3->8 (3x3, pad 1) -> c1 -> Relu -> r1 -> Conv 8->8 -> c2 -> Add(r1, c2) -> s
/// -> Flatten -> f -> Gemm (B 512 x 10) -> g -> Relu -> y. The executor's fast paths: a Conv chain
/// (c1 fused into r1, c2, s) and the Gemm with its Relu as post-op (g fused into y).
onnx::ModelProto conv_chain_gemm_model() {
  ModelBuilder b;
  b.input("x", {3, 8, 8}).output("y", {10});
  b.init("w1", random_tensor({8, 3, 3, 3}, -0.5f, 0.5f, 1)).init("b1", random_tensor({8}, -0.2f, 0.2f, 2));
  b.init("w2", random_tensor({8, 8, 3, 3}, -0.3f, 0.3f, 3)).init("b2", random_tensor({8}, -0.2f, 0.2f, 4));
  b.init("wg", random_tensor({512, 10}, -0.1f, 0.1f, 5)).init("bg", random_tensor({10}, -0.1f, 0.1f, 6));
  for (const char* c : {"c1", "c2"}) {
    auto& n = b.node("Conv", {c == std::string("c1") ? "x" : "r1", c == std::string("c1") ? "w1" : "w2",
                              c == std::string("c1") ? "b1" : "b2"}, {c});
    set_ints(n, "pads", {1, 1, 1, 1});
    set_ints(n, "kernel_shape", {3, 3});
    if (c == std::string("c1")) b.node("Relu", {"c1"}, {"r1"});
  }
  b.node("Add", {"r1", "c2"}, {"s"});
  b.node("Flatten", {"s"}, {"f"});
  b.node("Gemm", {"f", "wg", "bg"}, {"g"});
  b.node("Relu", {"g"}, {"y"});
  return b.model();
}

/// calibrate()'s statistics gathered on the executor's node-by-node path (every tensor observed).
Calibration node_by_node_calibration(const onnx::ModelProto& model, const Tensor& inputs) {
  const ref::Executor exec = ref::Executor::create(model).value();
  Calibration c;
  ref::RunOptions o;
  o.observe = [&](const std::string& name, const Tensor& t) {
    TensorStats& s = c.tensors[name];
    accumulate(s, t.data<float>(), t.numel());
    accumulate_channel_means(s, t.data<float>(), t.dim(0), t.dim(1), t.numel() / (t.dim(0) * t.dim(1)));
  };
  for (int64_t begin = 0; begin < inputs.dim(0); begin += 64)
    exec.run({{"x", inputs.slice0(begin, std::min(inputs.dim(0), begin + 64))}}, o).value();
  return c;
}

std::vector<std::string> node_summary(const onnx::ModelProto& m) {
  std::vector<std::string> s;
  for (const auto& n : m.graph().node()) s.push_back(n.op_type() + " " + n.name());
  return s;
}
}  // namespace

TEST(Calibrate, ChainValuesWhoseBatchIsNotTheRunsKeepTheirChannelMeans) {
  // x [N,2,8,8] -> Reshape [-1,1,8,8] -> xr [2N,...] -> Conv -> Relu -> r1 -> Conv -> c2 -> Add -> s:
  // the chain's values have twice the run's images, observed in parts; their channel means count
  // every one of them, as the node-by-node path does.
  ModelBuilder b;
  b.input("x", {2, 8, 8}).output("s", {4, 8, 8});
  b.init("shape", Tensor::from_vector<int64_t>({4}, {-1, 1, 8, 8}));
  b.init("w1", random_tensor({4, 1, 3, 3}, -0.5f, 0.5f, 31)).init("b1", random_tensor({4}, -0.2f, 0.2f, 32));
  b.init("w2", random_tensor({4, 4, 3, 3}, -0.3f, 0.3f, 33)).init("b2", random_tensor({4}, -0.2f, 0.2f, 34));
  b.node("Reshape", {"x", "shape"}, {"xr"});
  for (const char* c : {"c1", "c2"}) {
    const bool first = c == std::string("c1");
    auto& n = b.node("Conv", {first ? "xr" : "r1", first ? "w1" : "w2", first ? "b1" : "b2"}, {c});
    set_ints(n, "pads", {1, 1, 1, 1});
    set_ints(n, "kernel_shape", {3, 3});
    if (first) b.node("Relu", {"c1"}, {"r1"});
  }
  b.node("Add", {"r1", "c2"}, {"s"});
  const onnx::ModelProto model = optimize(b.model());
  const Tensor inputs = random_tensor({100, 2, 8, 8}, -1.0f, 1.0f, 35);  // runs of 64 and 36 images
  const Calibration fast = calibrate(model, inputs, false);
  const Calibration slow = node_by_node_calibration(model, inputs);
  for (const char* name : {"xr", "r1"}) {
    SCOPED_TRACE(name);
    const TensorStats& f = fast.tensors.at(name);
    const TensorStats& s = slow.tensors.at(name);
    EXPECT_EQ(f.count, 200 * 64 * (name == std::string("xr") ? 1 : 4));
    EXPECT_EQ(f.channel_samples, 200 * 64);
    ASSERT_EQ(f.channel_mean.size(), s.channel_mean.size());
    for (size_t k = 0; k < f.channel_mean.size(); ++k)
      EXPECT_NEAR(f.channel_mean[k], s.channel_mean[k], 1e-6 * (1 + std::fabs(s.channel_mean[k]))) << k;
  }
}

TEST(Calibrate, InfiniteValueInsideAConvChainNamesTheTensorAndTheSamples) {
  // Image 70 (second executor run, samples 64..99) holds 3e38, finite, but the first Conv makes inf
  // of it: a chain value, observed in parts from the chain's threads.
  Tensor in = random_tensor({100, 3, 8, 8}, -1.0f, 1.0f, 12);
  for (int64_t i = 0; i < 3 * 64; ++i) in.data<float>()[70 * 3 * 64 + i] = 3e38f;
  try {
    calibrate(optimize(conv_chain_gemm_model()), in, false);
    FAIL() << "inf accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(what.find("'r1'") != std::string::npos || what.find("'c2'") != std::string::npos ||
                what.find("'s'") != std::string::npos) << what;
    EXPECT_NE(what.find("NaN or infinite values (samples 64..99)"), std::string::npos) << what;
  }
}

TEST(Calibrate, FastPathsGiveTheNodeByNodeStatisticsOfEveryTensorTheQuantizerReads) {
  const onnx::ModelProto model = optimize(conv_chain_gemm_model());
  const Tensor inputs = random_tensor({100, 3, 8, 8}, -1.0f, 1.0f, 7);  // batches of 64 + 36
  const Calibration fast = calibrate(model, inputs, false);
  const Calibration slow = node_by_node_calibration(model, inputs);
  // The fast paths ran: the Conv and Gemm outputs fused into their Relu were never observed.
  std::vector<std::string> want, got;
  for (const auto& [name, s] : slow.tensors)
    if (name != "c1" && name != "g") want.push_back(name);
  for (const auto& [name, s] : fast.tensors) got.push_back(name);
  ASSERT_EQ(got, want);
  for (const auto& [name, f] : fast.tensors) {
    SCOPED_TRACE(name);
    const TensorStats& s = slow.tensors.at(name);
    EXPECT_EQ(f.count, s.count);
    EXPECT_NEAR(f.min, s.min, 1e-5 * (1 + std::fabs(s.min)));
    EXPECT_NEAR(f.max, s.max, 1e-5 * (1 + std::fabs(s.max)));
    EXPECT_EQ(f.histogram_half_width, s.histogram_half_width);
    ASSERT_EQ(f.histogram.size(), s.histogram.size());
    int64_t moved = 0;  // values on the other side of a bin edge after a different summation order
    for (size_t i = 0; i < f.histogram.size(); ++i) moved += std::abs(f.histogram[i] - s.histogram[i]);
    EXPECT_LE(moved, s.count / 100);
    // Per-channel means only where bias correction reads them: the Conv inputs x, r1 and the Gemm's f.
    const bool read = name == "x" || name == "r1" || name == "f";
    EXPECT_EQ(f.channel_mean.empty(), !read);
    if (!read) continue;
    ASSERT_EQ(f.channel_mean.size(), s.channel_mean.size());
    for (size_t k = 0; k < f.channel_mean.size(); ++k)
      EXPECT_NEAR(f.channel_mean[k], s.channel_mean[k], 1e-5 * (1 + std::fabs(s.channel_mean[k])));
  }
  // The quantizer never needed the dropped tensors: the QDQ models have the same nodes.
  QuantizeOptions options;
  options.bias_correction = true;
  auto q_fast = quantize(model, fast, options);
  auto q_slow = quantize(model, slow, options);
  ASSERT_TRUE(q_fast.ok() && q_slow.ok());
  EXPECT_EQ(node_summary(*q_fast), node_summary(*q_slow));
}
