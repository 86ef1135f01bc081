// MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv and DynamicQuantizeLinear: values worked
// out by hand from the ONNX specification and requant.h's rounding rule.
#include <gtest/gtest.h>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

template <typename T>
Tensor q(Shape s, std::vector<T> v) { return Tensor::from_vector<T>(std::move(s), v); }
Tensor u8(Shape s, std::vector<uint8_t> v) { return q<uint8_t>(std::move(s), std::move(v)); }
Tensor s8(Shape s, std::vector<int8_t> v) { return q<int8_t>(std::move(s), std::move(v)); }

}  // namespace

TEST(IntegerOps, MatMulIntegerPerTensorAndPerColumnZeroPoints) {
  // A - 1 = [[0, 1, 2], [3, 4, 5]]; B - [1, 0] per column = [[0, 0], [-1, 1], [1, 2]].
  OneNode n;
  n.in("a", u8({2, 3}, {1, 2, 3, 4, 5, 6}))
      .in("b", u8({3, 2}, {1, 0, 0, 1, 2, 2}))
      .constant("az", u8({}, {1}))
      .constant("bz", u8({2}, {1, 0}));
  n.node("MatMulInteger");
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(y.to_vector<int32_t>(), (std::vector<int32_t>{1, 5, 1, 14}));
}

TEST(IntegerOps, MatMulIntegerInt8PerRowZeroPointAndBatchBroadcast) {
  // Two batches of A [1 x 2] against one B [2 x 1]; a_zero_point per row (one row).
  OneNode n;
  n.in("a", s8({2, 1, 2}, {-1, 2, 3, -4})).in("b", s8({2, 1}, {5, -6})).constant("az", s8({1}, {-1}));
  n.node("MatMulInteger");
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(y.to_vector<int32_t>(), (std::vector<int32_t>{0 * 5 + 3 * -6, 4 * 5 + -3 * -6}));
}

TEST(IntegerOps, QLinearMatMulRequantizesAndSaturates) {
  // acc = [10 * 2 + -20 * 0, 10 * 126 + -20 * -129] = [20, 3840]; M = 0.5 * 0.25 / 0.125 = 1.
  OneNode n;
  n.in("a", s8({1, 2}, {10, -20}))
      .constant("as", f32({}, {0.5f}))
      .constant("az", s8({}, {0}))
      .in("b", s8({2, 2}, {3, 127, 1, -128}))
      .constant("bs", f32({}, {0.25f}))
      .constant("bz", s8({}, {1}))
      .constant("ys", f32({}, {0.125f}))
      .constant("yz", s8({}, {-3}));
  n.node("QLinearMatMul");
  EXPECT_EQ(n.run1().to_vector<int8_t>(), (std::vector<int8_t>{17, 127}));
}

TEST(IntegerOps, QLinearConvBiasAndTiesToEven) {
  // x - 2 = [[-2, -1, 0], [1, 2, 3], [4, 5, 6]], w - 1 = 2 everywhere (2 x 2): window sums
  // [0, 4, 12, 16] * 2 + bias 1 = [1, 9, 25, 33]; M = 1 * 1 / 2 gives 0.5, 4.5, 12.5, 16.5, which
  // requant.h rounds to even, as ONNX defines QLinearConv's rounding: [0, 4, 12, 16], plus
  // y_zero_point 10.
  OneNode n;
  n.in("x", u8({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8}))
      .constant("xs", f32({}, {1.0f}))
      .constant("xz", u8({}, {2}))
      .constant("w", u8({1, 1, 2, 2}, {3, 3, 3, 3}))
      .constant("ws", f32({1}, {1.0f}))
      .constant("wz", u8({}, {1}))
      .constant("ys", f32({}, {2.0f}))
      .constant("yz", u8({}, {10}))
      .constant("bias", q<int32_t>({1}, {1}));
  n.node("QLinearConv");
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.to_vector<uint8_t>(), (std::vector<uint8_t>{10, 14, 22, 26}));
}

TEST(IntegerOps, ConvIntegerPadsWithTheZeroPoint) {
  // x - 5 = [[0, 1], [2, 3]]; pads contribute x_zero_point, i.e. 0 after centering.
  OneNode n;
  n.in("x", u8({1, 1, 2, 2}, {5, 6, 7, 8})).constant("w", u8({1, 1, 2, 2}, {1, 1, 1, 1})).constant("xz", u8({}, {5}));
  ModelBuilder::attr(n.node("ConvInteger"), "pads", std::vector<int64_t>{1, 1, 1, 1});
  const Tensor y = n.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(y.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 1, 2, 6, 4, 2, 5, 3}));
}

TEST(IntegerOps, ConvInteger1dStridesDilationsAnd3dGroups) {
  // 1-D: x [1, 2, 3, 4, 5], w [1, 1], dilation 2, stride 2: x[0]+x[2], x[2]+x[4].
  OneNode d1;
  d1.in("x", s8({1, 1, 5}, {1, 2, 3, 4, 5})).constant("w", s8({1, 1, 2}, {1, 1}));
  auto& n1 = d1.node("ConvInteger");
  ModelBuilder::attr(n1, "dilations", std::vector<int64_t>{2});
  ModelBuilder::attr(n1, "strides", std::vector<int64_t>{2});
  EXPECT_EQ(d1.run1().to_vector<int32_t>(), (std::vector<int32_t>{4, 8}));
  // 3-D, two groups of one channel: each map sees only its own channel.
  OneNode d3;
  d3.in("x", s8({1, 2, 1, 1, 2}, {1, 2, 3, 4})).constant("w", s8({2, 1, 1, 1, 1}, {2, -1}));
  ModelBuilder::attr(d3.node("ConvInteger"), "group", int64_t{2});
  const Tensor y = d3.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 1, 2}));
  EXPECT_EQ(y.to_vector<int32_t>(), (std::vector<int32_t>{2, 4, -3, -4}));
  // SAME_UPPER on 1-D: 3 outputs for 3 inputs with a kernel of 2 (one pad at the end).
  OneNode same;
  same.in("x", s8({1, 1, 3}, {1, 2, 3})).constant("w", s8({1, 1, 2}, {1, 10}));
  ModelBuilder::attr(same.node("ConvInteger"), "auto_pad", std::string("SAME_UPPER"));
  EXPECT_EQ(same.run1().to_vector<int32_t>(), (std::vector<int32_t>{21, 32, 3}));
}

TEST(IntegerOps, DynamicQuantizeLinearRoundsHalfToEven) {
  // range [-255, 255] -> scale 510 / 255 = 2, zero point round(127.5) = 128 (half to even);
  // 1 / 2 = 0.5 -> 0, 3 / 2 = 1.5 -> 2, 5 / 2 = 2.5 -> 2; 255 / 2 -> 128 + 128 saturates to 255.
  OneNode n;
  n.in("x", f32({6}, {-255, 0, 1, 3, 5, 255}));
  n.node("DynamicQuantizeLinear", 3);
  TensorMap out = n.run();
  EXPECT_EQ(out["y0"].to_vector<uint8_t>(), (std::vector<uint8_t>{0, 128, 128, 130, 130, 255}));
  EXPECT_EQ(out["y1"].to_vector<float>(), std::vector<float>{2.0f});
  EXPECT_EQ(out["y2"].to_vector<uint8_t>(), std::vector<uint8_t>{128});
  // All zeros: the range is [0, 0]; scale 0 and every output 0.
  OneNode zeros;
  zeros.in("x", f32({2}, {0, 0}));
  zeros.node("DynamicQuantizeLinear", 3);
  out = zeros.run();
  EXPECT_EQ(out["y0"].to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(out["y1"].to_vector<float>(), std::vector<float>{0.0f});
}

TEST(IntegerOps, BadOperandsNameTheNode) {
  OneNode mixed;  // zero point type differs from its tensor
  mixed.in("a", u8({1, 1}, {1})).in("b", u8({1, 1}, {1})).constant("az", s8({}, {0}));
  mixed.node("MatMulInteger");
  EXPECT_EQ(mixed.error(), "node 'n' (MatMulInteger): a_zero_point is int8 but its tensor is uint8");
  OneNode wrong;  // W's channels do not match X's
  wrong.in("x", u8({1, 2, 2, 2}, std::vector<uint8_t>(8, 0))).constant("w", u8({1, 1, 1, 1}, {0}));
  wrong.node("ConvInteger");
  EXPECT_EQ(wrong.error(), "node 'n' (ConvInteger): W [1, 1, 1, 1] does not match X [1, 2, 2, 2] with group 1");
  OneNode scale;  // y_scale must be positive
  scale.in("a", s8({1, 1}, {1}))
      .constant("as", f32({}, {1}))
      .constant("az", s8({}, {0}))
      .in("b", s8({1, 1}, {1}))
      .constant("bs", f32({}, {1}))
      .constant("bz", s8({}, {0}))
      .constant("ys", f32({}, {0}))
      .constant("yz", s8({}, {0}));
  scale.node("QLinearMatMul");
  EXPECT_EQ(scale.error(), "node 'n' (QLinearMatMul): y_scale must be positive and finite");
}
