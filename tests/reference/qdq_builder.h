#pragma once
// Builds small QDQ models the way a static quantizer emits them, and calibrates their activation
// parameters with the float Executor, for the int8 lowering tests.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "anvil/common/requant.h"
#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"
#include "model_builder.h"

namespace anvil::test {

/// Activation parameters by the name of the float value being quantized; missing ones default to
/// scale 1, zero point 0 (the first calibration pass).
using ActParams = std::map<std::string, ref::QuantParams>;

inline Tensor random_tensor(Shape shape, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

class QdqBuilder {
 public:
  QdqBuilder(const ActParams& params, int64_t opset = 13) : b(opset), params_(params) {}

  /// Q(value) -> int8 "value_q" and DQ -> float "value_dq"; returns the DQ output.
  std::string qdq(const std::string& value) {
    const ref::QuantParams q = params(value);
    b.initializer(value + "_scale", Tensor::scalar<float>(q.scale));
    b.initializer(value + "_zp", Tensor::scalar<int8_t>(static_cast<int8_t>(q.zero_point)));
    b.node("QuantizeLinear", {value, value + "_scale", value + "_zp"}, {value + "_q"}, value + "_Q");
    b.node("DequantizeLinear", {value + "_q", value + "_scale", value + "_zp"}, {value + "_dq"}, value + "_DQ");
    return value + "_dq";
  }

  /// Symmetric int8 weight quantized per channel along `axis`, behind a DequantizeLinear.
  std::string weight(const std::string& name, const Tensor& w, int64_t axis, std::vector<float>* scales) {
    const int64_t channels = w.dim(axis);
    int64_t inner = 1;
    for (size_t i = axis + 1; i < w.rank(); ++i) inner *= w.dim(i);
    scales->assign(channels, 0.0f);
    const float* wd = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) {
      float& s = (*scales)[(i / inner) % channels];
      s = std::max(s, std::abs(wd[i]) / 127.0f);
    }
    Tensor q(DType::kInt8, w.shape());
    for (int64_t i = 0; i < w.numel(); ++i)
      q.data<int8_t>()[i] = math::quantize_float(wd[i], (*scales)[(i / inner) % channels], 0);
    b.initializer(name + "_int8", q);
    b.initializer(name + "_scale", Tensor::from_vector<float>({channels}, *scales));
    b.initializer(name + "_zp", Tensor(DType::kInt8, {channels}));
    auto& dq = b.node("DequantizeLinear", {name + "_int8", name + "_scale", name + "_zp"}, {name + "_dq"},
                      name + "_DQ");
    ModelBuilder::attr(dq, "axis", axis);
    return name + "_dq";
  }

  /// int32 bias with scale in_scale * w_scale[o], zero point 0, behind a DequantizeLinear.
  std::string bias(const std::string& name, const std::vector<float>& b_float, float in_scale,
                   const std::vector<float>& w_scales) {
    const int64_t o = static_cast<int64_t>(b_float.size());
    std::vector<float> scale;
    std::vector<int32_t> q;
    for (int64_t i = 0; i < o; ++i) {
      scale.push_back(in_scale * w_scales[i]);
      q.push_back(static_cast<int32_t>(std::nearbyint(b_float[i] / scale.back())));
    }
    b.initializer(name + "_int32", Tensor::from_vector<int32_t>({o}, q));
    b.initializer(name + "_scale", Tensor::from_vector<float>({o}, scale));
    b.initializer(name + "_zp", Tensor(DType::kInt32, {o}));
    auto& dq = b.node("DequantizeLinear", {name + "_int32", name + "_scale", name + "_zp"}, {name + "_dq"},
                      name + "_DQ");
    ModelBuilder::attr(dq, "axis", int64_t{0});
    return name + "_dq";
  }

  ref::QuantParams params(const std::string& value) const {
    auto it = params_.find(value);
    return it == params_.end() ? ref::QuantParams{} : it->second;
  }

  ModelBuilder b;

 private:
  const ActParams& params_;
};

/// Calibrates `names` (in order) by running the float Executor on `input` and taking each value's
/// min/max (widened to include 0) as an asymmetric int8 range. One pass per name, so a value is
/// observed with every earlier value already quantized as it will be.
inline ActParams calibrate(const std::function<onnx::ModelProto(const ActParams&)>& build,
                           const std::vector<std::string>& names, const TensorMap& input) {
  ActParams params;
  for (const std::string& name : names) {
    auto exec = ref::Executor::create(build(params)).value();
    float lo = 0.0f, hi = 0.0f;
    ref::RunOptions opt;
    opt.observe = [&](const std::string& n, const Tensor& t) {
      if (n != name) return;
      for (float v : t.to_vector<float>()) lo = std::min(lo, v), hi = std::max(hi, v);
    };
    exec.run(input, opt).value();
    ref::QuantParams q;
    q.scale = std::max(hi - lo, 1e-3f) / 255.0f;
    q.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-128.0f - lo / q.scale), -128.0f, 127.0f));
    params[name] = q;
  }
  return params;
}

}  // namespace anvil::test
