// 3-D Conv and pooling, and MaxPool's Indices output and integer inputs. Values worked out by hand
// from the ONNX specification.
#include <gtest/gtest.h>

#include <numeric>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

std::vector<float> iota_floats(size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  return v;
}

void expect_ints(const Tensor& t, const Shape& shape, const std::vector<int64_t>& want) {
  ASSERT_EQ(t.dtype(), DType::kInt64);
  ASSERT_EQ(t.shape(), shape);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(t.data<int64_t>()[i], want[i]) << "element " << i;
}

}  // namespace

TEST(WindowsNd, Conv3dSumsTheBox) {
  // x[d][h][w] = 9d + 3h + w; a 2x2x2 kernel of ones sums 8 (9d + 3h + w) + 4 (9 + 3 + 1), plus bias 1.
  OneNode n;
  n.in("x", f32({1, 1, 3, 3, 3}, iota_floats(27)))
      .constant("w", f32({1, 1, 2, 2, 2}, std::vector<float>(8, 1.0f)))
      .constant("b", f32({1}, {1}));
  n.node("Conv");
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2, 2}));
  expect_floats(y, {53, 61, 77, 85, 125, 133, 149, 157});
}

TEST(WindowsNd, Conv3dGroupsPadsStrides) {
  // Two groups of one channel, a 1x1x1 kernel [3] and [5], pads 1 and stride 2: the padded input
  // is 4 wide, outputs read input coordinates -1 (padding) and 1 along each axis.
  std::vector<float> x(16, 1.0f);
  std::fill(x.begin() + 8, x.end(), 2.0f);
  OneNode n;
  n.in("x", f32({1, 2, 2, 2, 2}, x)).constant("w", f32({2, 1, 1, 1, 1}, {3, 5}));
  auto& node = n.node("Conv");
  ModelBuilder::attr(node, "group", int64_t{2});
  ModelBuilder::attr(node, "pads", std::vector<int64_t>{1, 1, 1, 1, 1, 1});
  ModelBuilder::attr(node, "strides", std::vector<int64_t>{2, 2, 2});
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 2, 2}));
  expect_floats(y, {0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 10});
}

TEST(WindowsNd, AveragePool3dPadding) {
  // x = 1..8 over 2x2x2, kernel 2x2x2, one pad at the start of the depth axis: the first window
  // holds 1..4 and four pads, the second all of x.
  auto average = [](int64_t count_include_pad) {
    OneNode n;
    n.in("x", f32({1, 1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
    auto& node = n.node("AveragePool");
    ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2, 2, 2});
    ModelBuilder::attr(node, "pads", std::vector<int64_t>{1, 0, 0, 0, 0, 0});
    ModelBuilder::attr(node, "count_include_pad", count_include_pad);
    const Tensor y = n.run1();
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 1, 1}));
    return y;
  };
  expect_floats(average(0), {2.5f, 4.5f});
  expect_floats(average(1), {1.25f, 4.5f});
}

TEST(WindowsNd, MaxPool3dIndicesInBothStorageOrders) {
  // Channel 0's maximum 8 sits at (d, h, w) = (1, 1, 0); channel 1's 9 at (0, 0, 1). Indices are
  // flat over N x C x spatial: row-major 6 and 8 + 1, column-major (w slowest) 1 + 2 = 3 and 8 + 4.
  auto pool = [](int64_t storage_order) {
    OneNode n;
    n.in("x", f32({1, 2, 2, 2, 2}, {5, 1, 7, 3, 2, 4, 8, 6, 0, 9, 0, 0, 0, 0, 0, 0}));
    auto& node = n.node("MaxPool", 2);
    ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2, 2, 2});
    ModelBuilder::attr(node, "storage_order", storage_order);
    TensorMap out = n.run();
    expect_floats(out["y0"], {8, 9});
    return out["y1"];
  };
  expect_ints(pool(0), {1, 2, 1, 1, 1}, {6, 9});
  expect_ints(pool(1), {1, 2, 1, 1, 1}, {3, 12});
}

TEST(WindowsNd, MaxPool1dIndicesAndPadding) {
  // [1 4 2 3], kernel 2, stride 2, one pad at the start: windows [pad 1] [4 2] [3].
  OneNode n;
  n.in("x", f32({1, 1, 4}, {1, 4, 2, 3}));
  auto& node = n.node("MaxPool", 2);
  ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2});
  ModelBuilder::attr(node, "strides", std::vector<int64_t>{2});
  ModelBuilder::attr(node, "pads", std::vector<int64_t>{1, 1});
  TensorMap out = n.run();
  EXPECT_EQ(out["y0"].shape(), (Shape{1, 1, 3}));
  expect_floats(out["y0"], {1, 4, 3});
  expect_ints(out["y1"], {1, 1, 3}, {0, 1, 3});
}

TEST(WindowsNd, MaxPoolUint8KeepsTheType) {
  OneNode n;
  n.in("x", Tensor::from_vector<uint8_t>({1, 1, 2, 2}, {3, 250, 7, 1}));
  ModelBuilder::attr(n.node("MaxPool"), "kernel_shape", std::vector<int64_t>{2, 2});
  const Tensor y = n.run1();
  ASSERT_EQ(y.dtype(), DType::kUInt8);
  EXPECT_EQ(y.data<uint8_t>()[0], 250);
}

TEST(WindowsNd, RejectsFourSpatialAxesAndOtherTypes) {
  OneNode four;
  four.in("x", f32({1, 1, 2, 2, 2, 2}, std::vector<float>(16, 0.0f)));
  ModelBuilder::attr(four.node("MaxPool"), "kernel_shape", std::vector<int64_t>{1, 1, 1, 1});
  EXPECT_EQ(four.error(),
            "node 'n' (MaxPool): attribute 'kernel_shape' must have 1, 2 or 3 values (1-D, 2-D and 3-D windows)");
  OneNode ints;
  ints.in("x", Tensor::from_vector<int32_t>({1, 1, 2, 2}, {1, 2, 3, 4}));
  ModelBuilder::attr(ints.node("MaxPool"), "kernel_shape", std::vector<int64_t>{2, 2});
  EXPECT_EQ(ints.error(), "node 'n' (MaxPool): input X has unsupported type int32");
  OneNode order;
  order.in("x", f32({1, 1, 2, 2}, {1, 2, 3, 4}));
  auto& node = order.node("MaxPool");
  ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(node, "storage_order", int64_t{2});
  EXPECT_EQ(order.error(), "node 'n' (MaxPool): attribute 'storage_order' must be 0 or 1, got 2");
}
