#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "anvil/quantizer/quantizer.h"
#include "model_builder.h"

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
  c.tensors["a"] = TensorStats{-1.5f, 2.25f, 10, {}};
  c.tensors["b/c"] = TensorStats{0.0f, 0.0f, 3, {}};
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
