// Attributes the other operator tests leave out: auto_pad of pooling (with count_include_pad),
// Pad's modes over two axes and the opset-2 attribute form, and broadcasting across three
// operands and across ranks. Values worked out by hand from the ONNX specification.
#include <gtest/gtest.h>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

/// 1-D pooling of [1, 2, 3, 4, 6] with kernel 2, stride 2 and the given auto_pad: 3 outputs, one
/// pad at the end (SAME_UPPER) or the start (SAME_LOWER).
Tensor pool(const std::string& op, const std::string& auto_pad, int64_t count_include_pad = 0) {
  OneNode n;
  n.in("x", f32({1, 1, 5}, {1, 2, 3, 4, 6}));
  auto& node = n.node(op);
  ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2});
  ModelBuilder::attr(node, "strides", std::vector<int64_t>{2});
  ModelBuilder::attr(node, "auto_pad", auto_pad);
  if (op == "AveragePool") ModelBuilder::attr(node, "count_include_pad", count_include_pad);
  return n.run1();
}

}  // namespace

TEST(WindowAttributes, PoolingAutoPad) {
  expect_floats(pool("MaxPool", "SAME_UPPER"), {2, 4, 6});  // windows [1 2] [3 4] [6 pad]
  expect_floats(pool("MaxPool", "SAME_LOWER"), {1, 3, 6});  // windows [pad 1] [2 3] [4 6]
  expect_floats(pool("MaxPool", "VALID"), {2, 4});
  // The pad is left out of the average unless count_include_pad counts it (as a zero).
  expect_floats(pool("AveragePool", "SAME_UPPER"), {1.5f, 3.5f, 6});
  expect_floats(pool("AveragePool", "SAME_UPPER", 1), {1.5f, 3.5f, 3});
  expect_floats(pool("AveragePool", "SAME_LOWER"), {1, 2.5f, 5});
  expect_floats(pool("AveragePool", "SAME_LOWER", 1), {0.5f, 2.5f, 5});
}

TEST(WindowAttributes, PadModesOverTwoAxes) {
  const Tensor x = f32({2, 2}, {1, 2, 3, 4});
  auto pad = [&](const std::string& mode) {
    OneNode n;
    n.in("x", x).constant("pads", i64({4}, {1, 1, 1, 1}));
    ModelBuilder::attr(n.node("Pad"), "mode", mode);
    const Tensor y = n.run1();
    EXPECT_EQ(y.shape(), (Shape{4, 4}));
    return y;
  };
  expect_floats(pad("constant"), {0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0});
  expect_floats(pad("edge"), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // reflect mirrors about the edge element without repeating it: index -1 reads 1, index 2 reads 0.
  expect_floats(pad("reflect"), {4, 3, 4, 3, 2, 1, 2, 1, 4, 3, 4, 3, 2, 1, 2, 1});
  // Opset 2: pads and the constant value are attributes.
  OneNode old(2);
  old.in("x", x);
  auto& node = old.node("Pad");
  ModelBuilder::attr(node, "pads", std::vector<int64_t>{0, 1, 0, 0});
  ModelBuilder::attr(node, "value", 7.0f);
  expect_floats(old.run1(), {7, 1, 2, 7, 3, 4});
}

TEST(WindowAttributes, BroadcastingAcrossOperandsAndRanks) {
  // Where: condition [2, 1, 1], X [1, 3], Y a scalar -> [2, 1, 3].
  OneNode w;
  w.in("c", Tensor::from_vector<bool>({2, 1, 1}, {true, false})).in("x", f32({1, 3}, {1, 2, 3})).in("y", f32({}, {9}));
  w.node("Where");
  const Tensor y = w.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 1, 3}));
  expect_floats(y, {1, 2, 3, 9, 9, 9});
  // Add: [2, 1, 3] + [4, 1] -> [2, 4, 3]; element (i, j, k) = a[i, 0, k] + b[j].
  OneNode add;
  add.in("a", f32({2, 1, 3}, {0, 1, 2, 3, 4, 5})).in("b", f32({4, 1}, {10, 20, 30, 40}));
  add.node("Add");
  const Tensor s = add.run1();
  ASSERT_EQ(s.shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(s.data<float>()[(1 * 4 + 2) * 3 + 0], 33.0f);
  EXPECT_EQ(s.data<float>()[(0 * 4 + 3) * 3 + 2], 42.0f);
}
