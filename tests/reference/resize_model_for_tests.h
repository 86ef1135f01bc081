#pragma once
// A QDQ model with one Resize (x -> Q -> DQ -> Resize -> Q -> DQ -> y), for the kResize tests of
// the reference, the compiler and the platform.
#include "qdq_builder.h"

namespace anvil::test {

struct ResizeCase {
  Shape in;
  std::string mode = "nearest", transform = "half_pixel", nearest_mode = "round_prefer_floor";
  std::vector<float> scales;   ///< empty: sizes
  std::vector<int64_t> sizes;
  int64_t opset = 13;
  int64_t exclude_outside = 0;
  std::string extra_attr;      ///< an int attribute set to 1 (refusal tests), or ""
};

/// The model of `c` (output "y_dq") with the activation parameters of "x" and "y"; scales or sizes are initializers.
inline std::function<onnx::ModelProto(const ActParams&)> resize_model(const ResizeCase& c) {
  return [=](const ActParams& p) {
    QdqBuilder q(p, c.opset);
    Shape dyn = c.in;
    dyn[0] = -1;
    q.b.input("x", DType::kFloat32, dyn);
    const std::string x = q.qdq("x");
    const auto n = static_cast<int64_t>(c.in.size());
    std::vector<std::string> inputs{x};
    if (c.opset < 11) {
      q.b.initializer("scales", Tensor::from_vector<float>({n}, c.scales));
      inputs.push_back("scales");
    } else if (!c.scales.empty()) {
      q.b.initializer("scales", Tensor::from_vector<float>({n}, c.scales));
      std::string roi;
      if (c.transform == "tf_crop_and_resize") {  // the whole input
        std::vector<float> box(2 * n, 0.0f);
        std::fill(box.begin() + n, box.end(), 1.0f);
        q.b.initializer(roi = "roi", Tensor::from_vector<float>({2 * n}, box));
      }
      inputs.insert(inputs.end(), {roi, "scales"});
    } else {
      q.b.initializer("sizes", Tensor::from_vector<int64_t>({n}, c.sizes));
      inputs.insert(inputs.end(), {"", "", "sizes"});
    }
    auto& r = q.b.node("Resize", inputs, {"y"}, "resize");
    ModelBuilder::attr(r, "mode", c.mode);
    if (c.opset >= 11) {
      ModelBuilder::attr(r, "coordinate_transformation_mode", c.transform);
      ModelBuilder::attr(r, "nearest_mode", c.nearest_mode);
      if (c.exclude_outside) ModelBuilder::attr(r, "exclude_outside", c.exclude_outside);
    }
    if (!c.extra_attr.empty()) ModelBuilder::attr(r, c.extra_attr, int64_t{1});
    q.b.output(q.qdq("y"));
    return q.b.model();
  };
}

}  // namespace anvil::test
