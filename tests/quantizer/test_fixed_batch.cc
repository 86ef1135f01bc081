/// A model whose input has a fixed batch (exported without a dynamic batch axis, e.g. [1, 1, 8, 8])
/// is run on batches of exactly that size by calibration and the per-tensor search, with the
/// results of the same model with a dynamic batch.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "anvil/quantizer/quantizer.h"
#include "model_builder.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

/// The small classifier of model_builder.h, with a dynamic batch.
onnx::ModelProto small_cnn() { return test::small_cnn(0.5f); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(FixedBatch, CalibrationOfABatchOneModelEqualsTheDynamicBatchOne) {
  const onnx::ModelProto dynamic = optimize(small_cnn()), fixed = optimize(with_fixed_batch(small_cnn(), 1));
  const Tensor x = random_tensor({10, 1, 8, 8}, 0.0f, 1.0f, 5);
  const Calibration want = calibrate(dynamic, x, false), got = calibrate(fixed, x, false);
  EXPECT_EQ(got.to_json(), want.to_json());
  EXPECT_EQ(got.tensors.at("x").count, 10 * 64);
  // Bias correction reads the calibrated channel means: the same corrected biases.
  QuantizeOptions o;
  o.bias_correction = true;
  const onnx::ModelProto qd = quantize(dynamic, want, o).value(), qf = quantize(fixed, got, o).value();
  ASSERT_EQ(qd.graph().initializer_size(), qf.graph().initializer_size());
  for (int i = 0; i < qd.graph().initializer_size(); ++i)
    EXPECT_EQ(qd.graph().initializer(i).SerializeAsString(), qf.graph().initializer(i).SerializeAsString())
        << qd.graph().initializer(i).name();
}

TEST(FixedBatch, CalibrationUsesWholeBatchesOnly) {
  // A fixed batch of 4 and 10 images: the first 8 are used (two runs), as a dynamic batch on those 8.
  const onnx::ModelProto dynamic = optimize(small_cnn()), fixed = optimize(with_fixed_batch(small_cnn(), 4));
  const Tensor x = random_tensor({10, 1, 8, 8}, 0.0f, 1.0f, 6);
  const Calibration got = calibrate(fixed, x, false);
  EXPECT_EQ(got.tensors.at("x").count, 8 * 64);
  EXPECT_EQ(got.samples, 8);
  EXPECT_EQ(got.to_json(), calibrate(dynamic, x.slice0(0, 8), false).to_json());
  // Fewer images than one batch: an error naming the input and its batch.
  const std::string e = error_of([&] { calibrate(fixed, x.slice0(0, 3), false); });
  EXPECT_NE(e.find("calibrate: input 'x' has a fixed batch of 4, and 3 samples are less than one batch"),
            std::string::npos) << e;
}

TEST(FixedBatch, PerTensorSearchOfABatchOneModelEqualsTheDynamicBatchOne) {
  const onnx::ModelProto dynamic = optimize(small_cnn()), fixed = optimize(with_fixed_batch(small_cnn(), 1));
  const Tensor x = random_tensor({12, 1, 8, 8}, 0.0f, 1.0f, 7);
  const Calibration calib = calibrate(dynamic, x, false);
  TensorSearchOptions o;
  o.candidates = {Method::kMinMaxAsym, Method::kPercentileAsym, Method::kMseAsym};
  o.samples = 8;
  o.holdout = 4;
  const TensorSearchResult want = search_tensor_ranges(dynamic, calib, x, o).value();
  const TensorSearchResult got = search_tensor_ranges(fixed, calib, x, o).value();
  // The SQNRs agree up to the float kernels' summation order, which may depend on the batch size.
  EXPECT_NEAR(got.sqnr_db, want.sqnr_db, 1e-3);
  EXPECT_NEAR(got.holdout_db, want.holdout_db, 1e-3);
  ASSERT_EQ(got.method_sqnr_db.size(), want.method_sqnr_db.size());
  for (size_t i = 0; i < want.method_sqnr_db.size(); ++i)
    EXPECT_NEAR(got.method_sqnr_db[i].second, want.method_sqnr_db[i].second, 1e-3);
  EXPECT_EQ(got.choices.size(), want.choices.size());
  EXPECT_EQ(got.samples, 8);
  EXPECT_EQ(got.holdout, 4);
  ASSERT_EQ(got.ranges.size(), want.ranges.size());
  for (const auto& [name, r] : want.ranges) {
    EXPECT_EQ(got.ranges.at(name).min, r.min) << name;
    EXPECT_EQ(got.ranges.at(name).max, r.max) << name;
  }
  const auto sens_want = tensor_sensitivity(dynamic, calib, x, {}, Method::kMseAsym, 8).value();
  const auto sens_got = tensor_sensitivity(fixed, calib, x, {}, Method::kMseAsym, 8).value();
  ASSERT_EQ(sens_got.size(), sens_want.size());
  for (size_t i = 0; i < sens_want.size(); ++i) EXPECT_NEAR(sens_got[i].sqnr_db, sens_want[i].sqnr_db, 1e-3) << sens_want[i].tensor;
  // A fixed batch of 3: the 8 scoring and 4 held-out inputs are cut to whole batches.
  const onnx::ModelProto batch3 = optimize(with_fixed_batch(small_cnn(), 3));
  const TensorSearchResult cut = search_tensor_ranges(batch3, calib, x, o).value();
  EXPECT_EQ(cut.samples, 6);
  EXPECT_EQ(cut.holdout, 3);
  // A fixed batch larger than the scoring inputs: an error naming it.
  const onnx::ModelProto batch16 = optimize(with_fixed_batch(small_cnn(), 16));
  o.holdout = 0;
  const auto r = search_tensor_ranges(batch16, calib, x, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.error().what()).find("input 'x' has a fixed batch of 16"), std::string::npos)
      << r.error().what();
}
