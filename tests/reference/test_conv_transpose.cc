// ConvTranspose: strides, pads, output_padding, dilations, groups, auto_pad and output_shape in
// 1-D, 2-D and 3-D; values worked out by hand from the ONNX specification.
#include <gtest/gtest.h>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

/// ConvTranspose of x [1, 1, 3] = [1, 2, 3] by w [1, 1, k] with the attributes `set` adds.
Tensor transpose_1d(const std::vector<float>& w, const std::function<void(onnx::NodeProto&)>& set,
                    const Tensor* bias = nullptr) {
  OneNode n;
  n.in("x", f32({1, 1, 3}, {1, 2, 3})).constant("w", f32({1, 1, static_cast<int64_t>(w.size())}, w));
  if (bias) n.constant("b", *bias);
  set(n.node("ConvTranspose"));
  return n.run1();
}

}  // namespace

TEST(ConvTranspose, StridesPadsAndOutputPadding) {
  // Full output, stride 2, kernel [1, 1]: o = 2i + k -> [1, 1, 2, 2, 3, 3].
  auto strides2 = [](onnx::NodeProto& n) { ModelBuilder::attr(n, "strides", std::vector<int64_t>{2}); };
  expect_floats(transpose_1d({1, 1}, strides2), {1, 1, 2, 2, 3, 3});
  expect_floats(transpose_1d({1, 1},
                             [&](onnx::NodeProto& n) {
                               strides2(n);
                               ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 0});
                             }),
                {1, 2, 2, 3, 3});
  // output_padding adds one position at the end, which only the bias reaches.
  const Tensor bias = f32({1}, {0.5f});
  expect_floats(transpose_1d({1, 1},
                             [&](onnx::NodeProto& n) {
                               strides2(n);
                               ModelBuilder::attr(n, "output_padding", std::vector<int64_t>{1});
                             },
                             &bias),
                {1.5f, 1.5f, 2.5f, 2.5f, 3.5f, 3.5f, 0.5f});
}

TEST(ConvTranspose, Dilations) {
  // Kernel [1, 10] with dilation 2 reaches o = i and o = i + 2.
  OneNode n;
  n.in("x", f32({1, 1, 2}, {1, 2})).constant("w", f32({1, 1, 2}, {1, 10}));
  ModelBuilder::attr(n.node("ConvTranspose"), "dilations", std::vector<int64_t>{2});
  expect_floats(n.run1(), {1, 2, 10, 20});
}

TEST(ConvTranspose, AutoPadAndOutputShape) {
  // Kernel 3 of ones, stride 2: full output [1, 1, 3, 2, 5, 3, 3] (7 = 2 * 2 + 3); SAME makes it
  // 3 * 2 = 6 long, dropping the extra position at the end (SAME_UPPER) or the start (SAME_LOWER).
  auto with = [](const std::string& auto_pad, const std::vector<int64_t>& output_shape) {
    return [=](onnx::NodeProto& n) {
      ModelBuilder::attr(n, "strides", std::vector<int64_t>{2});
      if (!auto_pad.empty()) ModelBuilder::attr(n, "auto_pad", auto_pad);
      if (!output_shape.empty()) ModelBuilder::attr(n, "output_shape", output_shape);
    };
  };
  expect_floats(transpose_1d({1, 1, 1}, with("", {})), {1, 1, 3, 2, 5, 3, 3});
  expect_floats(transpose_1d({1, 1, 1}, with("SAME_UPPER", {})), {1, 1, 3, 2, 5, 3});
  expect_floats(transpose_1d({1, 1, 1}, with("SAME_LOWER", {})), {1, 3, 2, 5, 3, 3});
  // output_shape 8 > 7: the total padding is -1, the extra position is at the end.
  expect_floats(transpose_1d({1, 1, 1}, with("", {8})), {1, 1, 3, 2, 5, 3, 3, 0});
  // output_shape 5 < 7: total padding 2, one at each end.
  expect_floats(transpose_1d({1, 1, 1}, with("", {5})), {1, 3, 2, 5, 3});
}

TEST(ConvTranspose, GroupsIn2d) {
  // Two groups, each one input channel to two maps: y = [x0 * 1, x0 * 2, x1 * 3, x1 * 4].
  OneNode n;
  n.in("x", f32({1, 2, 1, 1}, {1, 2})).constant("w", f32({2, 2, 1, 1}, {1, 2, 3, 4}));
  ModelBuilder::attr(n.node("ConvTranspose"), "group", int64_t{2});
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 4, 1, 1}));
  expect_floats(y, {1, 2, 6, 8});
}

TEST(ConvTranspose, ThreeDimensional) {
  // x [1, 1, 2, 1, 1], kernel 2 x 1 x 1 of [1, 10], stride 1: depth 3 = [1, 10 + 2, 20].
  OneNode n;
  n.in("x", f32({1, 1, 2, 1, 1}, {1, 2})).constant("w", f32({1, 1, 2, 1, 1}, {1, 10}));
  n.node("ConvTranspose");
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 1, 1}));
  expect_floats(y, {1, 12, 20});
}

TEST(ConvTranspose, ErrorsNameTheNode) {
  OneNode rank;  // 2-D X: no spatial dimension (found at create, from the input's declared shape)
  rank.in("x", f32({1, 2}, {1, 2})).constant("w", f32({1, 1}, {1}));
  rank.node("ConvTranspose");
  EXPECT_EQ(rank.error(), "node 'n' (ConvTranspose): X 'x' has rank 2, expected 3 to 5");
  OneNode channels;  // W's first dimension is X's channel count
  channels.in("x", f32({1, 2, 1}, {1, 2})).constant("w", f32({1, 1, 1}, {1}));
  channels.node("ConvTranspose");
  EXPECT_EQ(channels.error(), "node 'n' (ConvTranspose): W [1, 1, 1] does not match X [1, 2, 1] with group 1");
  OneNode pad;
  pad.in("x", f32({1, 1, 2}, {1, 2})).constant("w", f32({1, 1, 1}, {1}));
  ModelBuilder::attr(pad.node("ConvTranspose"), "auto_pad", std::string("SAME"));
  EXPECT_EQ(pad.error(), "node 'n' (ConvTranspose): attribute 'auto_pad' has unknown value 'SAME'");
}
