// Resize: nearest modes, linear and cubic interpolation, coordinate transformations, scales and
// sizes, tf_crop_and_resize and exclude_outside; values worked out by hand from the ONNX spec.
#include <gtest/gtest.h>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

/// Resize (opset 13) of x with `scales` or `sizes` and string attributes.
Tensor resize(const Tensor& x, const std::vector<float>& scales, const std::vector<int64_t>& sizes,
              const std::vector<std::pair<std::string, std::string>>& attrs, const std::vector<float>& roi = {},
              float extrapolation = 0.0f, float cubic_a = -0.75f, bool exclude_outside = false) {
  OneNode n;
  n.in("x", x);
  if (roi.empty()) n.skip();
  else n.constant("roi", f32({static_cast<int64_t>(roi.size())}, roi));
  if (scales.empty()) n.skip();
  else n.constant("scales", f32({static_cast<int64_t>(scales.size())}, scales));
  if (!sizes.empty()) n.constant("sizes", i64({static_cast<int64_t>(sizes.size())}, sizes));
  auto& node = n.node("Resize");
  for (const auto& [k, v] : attrs) ModelBuilder::attr(node, k, v);
  if (extrapolation != 0.0f) ModelBuilder::attr(node, "extrapolation_value", extrapolation);
  if (cubic_a != -0.75f) ModelBuilder::attr(node, "cubic_coeff_a", cubic_a);
  if (exclude_outside) ModelBuilder::attr(node, "exclude_outside", int64_t{1});
  return n.run1();
}

const Tensor kPair = f32({1, 1, 1, 2}, {1, 2});

}  // namespace

TEST(Resize, NearestModesWithAsymmetricCoordinates) {
  // Upsampling [1, 2] by 2: input coordinates o / 2 = 0, 0.5, 1, 1.5 (indices past the end clamp).
  auto nearest = [&](const std::string& mode) {
    return resize(kPair, {1, 1, 1, 2}, {},
                  {{"mode", "nearest"}, {"coordinate_transformation_mode", "asymmetric"}, {"nearest_mode", mode}});
  };
  expect_floats(nearest("round_prefer_floor"), {1, 1, 2, 2});
  expect_floats(nearest("round_prefer_ceil"), {1, 2, 2, 2});
  expect_floats(nearest("floor"), {1, 1, 2, 2});
  expect_floats(nearest("ceil"), {1, 2, 2, 2});
}

TEST(Resize, LinearHalfPixelAndAlignCorners) {
  // half_pixel: (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, edge values outside.
  expect_floats(resize(kPair, {1, 1, 1, 2}, {}, {{"mode", "linear"}}), {1, 1.25f, 1.75f, 2});
  // align_corners with sizes: o * (2 - 1) / (3 - 1) = 0, 0.5, 1.
  const Tensor y =
      resize(kPair, {}, {1, 1, 1, 3}, {{"mode", "linear"}, {"coordinate_transformation_mode", "align_corners"}});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1, 3}));
  expect_floats(y, {1, 1.5f, 2});
  // Downsampling 2 x 2 -> 1 x 1 with scales 0.5 (floor(2 * 0.5) = 1): half_pixel centre 0.5, 0.5.
  expect_floats(resize(f32({1, 1, 2, 2}, {1, 2, 3, 4}), {1, 1, 0.5f, 0.5f}, {}, {{"mode", "linear"}}), {2.5f});
}

TEST(Resize, TfCropAndResizeExtrapolates) {
  // roi [0.5, 1.5] of [1, 2, 3]: coordinate 0.5 * 2 + o * 2 / 2 = 1, 2, 3; 3 is outside -> 9.
  const Tensor y = resize(f32({3}, {1, 2, 3}), {}, {3},
                          {{"mode", "linear"}, {"coordinate_transformation_mode", "tf_crop_and_resize"}}, {0.5f, 1.5f},
                          9.0f);
  expect_floats(y, {2, 3, 9});
}

TEST(Resize, CubicReproducesARampAndExcludeOutsideRenormalises) {
  // Keys' kernel with A = -0.5 reproduces linear functions where all four taps are inside:
  // coordinates (3 + 0.5) / 2 - 0.5 = 1.25 and 1.75 read the ramp [0, 1, 2, 3] at those points.
  // (The default A = -0.75 reproduces constants only: it gives 1.296875 there.)
  const Tensor ramp = f32({4}, {0, 1, 2, 3});
  const Tensor y = resize(ramp, {2}, {}, {{"mode", "cubic"}}, {}, 0.0f, -0.5f);
  EXPECT_NEAR(y.data<float>()[3], 1.25f, 1e-6f);
  EXPECT_NEAR(y.data<float>()[4], 1.75f, 1e-6f);
  // Output 0 sits at -0.25 (r = 0.75): with A = -0.5 only taps 0 and 1 are inside, weights
  // near(0.25) = 0.8671875 and far(1.25) = -0.0703125, renormalised: -0.0703125 / 0.796875.
  const Tensor e = resize(ramp, {2}, {}, {{"mode", "cubic"}}, {}, 0.0f, -0.5f, true);
  EXPECT_NEAR(e.data<float>()[0], -0.0703125f / 0.796875f, 1e-6f);
}

TEST(Resize, Opset10ScalesInput) {
  // Opset 10: (X, scales), asymmetric coordinates; nearest rounds down when upsampling.
  OneNode n(10);
  n.in("x", kPair).constant("scales", f32({4}, {1, 1, 1, 2}));
  n.node("Resize");
  expect_floats(n.run1(), {1, 1, 2, 2});
}

TEST(Resize, ErrorsNameTheNode) {
  OneNode mode;
  mode.in("x", kPair).skip().constant("scales", f32({4}, {1, 1, 1, 2}));
  ModelBuilder::attr(mode.node("Resize"), "mode", std::string("bilinear"));
  EXPECT_EQ(mode.error(), "node 'n' (Resize): attribute 'mode' has unknown value 'bilinear'");
  OneNode count;
  count.in("x", kPair).skip().constant("scales", f32({2}, {1, 2}));
  count.node("Resize");
  EXPECT_EQ(count.error(), "node 'n' (Resize): scales must be float32 with 4 values, got float32 [2]");
}
