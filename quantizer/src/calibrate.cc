#include <algorithm>
#include <cmath>
#include <mutex>

#include "anvil/common/log.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"

namespace anvil::quant {

namespace {
constexpr int64_t kBatch = 64;  // images per Executor::run
}  // namespace

Calibration calibrate(const onnx::ModelProto& optimized, const Tensor& inputs, bool show_progress) {
  const ref::Executor exec = ref::Executor::create(optimized).value();
  if (exec.input_names().size() != 1)
    fail(ErrorCode::kInvalidArgument, "calibrate: the model has " + std::to_string(exec.input_names().size()) +
                                          " inputs; calibration feeds exactly one");
  const std::string& input_name = exec.input_names()[0];
  if (inputs.dtype() != DType::kFloat32 || inputs.rank() < 1 || inputs.dim(0) == 0)
    fail(ErrorCode::kInvalidArgument, "calibrate: input '" + input_name + "': non-empty float32 N x ... expected, got " +
                                          dtype_name(inputs.dtype()) + " " + shape_str(inputs.shape()));
  // Pass 1: min/max (and NaN/Inf detection). Pass 2: histograms over [-a, a], a = max(|min|, |max|),
  // which needs pass 1's extremes; the executor is deterministic, so both passes see equal values.
  Calibration calib;
  std::mutex mu;  // the executor's contract does not promise observe() is called from one thread
  std::string bad_tensor;
  ref::RunOptions minmax;
  minmax.observe = [&](const std::string& name, const Tensor& value) {
    if (value.dtype() != DType::kFloat32 || value.numel() == 0) return;
    const float* p = value.data<float>();
    float lo = p[0], hi = p[0];
    bool finite = true;
    for (int64_t i = 0; i < value.numel(); ++i) {
      finite = finite && std::isfinite(p[i]);
      lo = std::min(lo, p[i]);
      hi = std::max(hi, p[i]);
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!finite) {
      if (bad_tensor.empty()) bad_tensor = name;
      return;
    }
    auto [it, fresh] = calib.tensors.try_emplace(name, TensorStats{lo, hi, 0, {}});
    it->second.min = std::min(it->second.min, lo);
    it->second.max = std::max(it->second.max, hi);
    it->second.count += value.numel();
  };
  ref::RunOptions histogram;
  histogram.observe = [&](const std::string& name, const Tensor& value) {
    auto it = calib.tensors.find(name);
    if (value.dtype() != DType::kFloat32 || it == calib.tensors.end()) return;
    TensorStats& s = it->second;
    const double a = std::max(std::fabs(s.min), std::fabs(s.max));
    if (a == 0.0) return;  // all zero: no histogram
    std::vector<int64_t> local(kHistogramBins, 0);
    const float* p = value.data<float>();
    for (int64_t i = 0; i < value.numel(); ++i) {
      const int64_t bin = static_cast<int64_t>(std::floor((p[i] + a) / (2.0 * a) * kHistogramBins));
      ++local[std::clamp<int64_t>(bin, 0, kHistogramBins - 1)];
    }
    std::lock_guard<std::mutex> lock(mu);
    if (s.histogram.empty()) s.histogram.assign(kHistogramBins, 0);
    for (int b = 0; b < kHistogramBins; ++b) s.histogram[b] += local[b];
  };

  const int64_t n = inputs.dim(0);
  Progress progress("calibrating", 2 * n, !show_progress);
  for (const ref::RunOptions* pass : {&minmax, &histogram})
    for (int64_t begin = 0; begin < n; begin += kBatch) {
      const int64_t end = std::min(n, begin + kBatch);
      exec.run({{input_name, inputs.slice0(begin, end)}}, *pass).value();
      if (!bad_tensor.empty())
        fail(ErrorCode::kInvalidArgument, "calibrate: tensor '" + bad_tensor + "' has NaN or infinite values (samples " +
                                              std::to_string(begin) + ".." + std::to_string(end - 1) + ")");
      progress.advance(end - begin);
    }
  progress.done();
  log().info("quantizer: calibrated {} tensors on {} samples", calib.tensors.size(), n);
  return calib;
}

}  // namespace anvil::quant
