#include <gtest/gtest.h>

#include "anvil/common/tensor.h"

using namespace anvil;

TEST(Tensor, ZeroFilledWithShape) {
  Tensor t(DType::kInt8, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 6u);
  for (int8_t v : t.to_vector<int8_t>()) EXPECT_EQ(v, 0);
}

TEST(Tensor, TypedAccessChecksDtype) {
  Tensor t(DType::kFloat32, {4});
  EXPECT_THROW(t.data<int8_t>(), Error);
}

TEST(Tensor, ReshapeInfersOneDimension) {
  Tensor t = Tensor::from_vector<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.reshaped({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_THROW(t.reshaped({4, 2}), Error);
}

TEST(Tensor, ReshapeInPlaceKeepsBytes) {
  Tensor t = Tensor::from_vector<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  const uint8_t* bytes = t.raw();
  t.reshape({-1, 2}).reshape({6});
  EXPECT_EQ(t.shape(), (Shape{6}));
  EXPECT_EQ(t.raw(), bytes);  // no copy
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_EQ(t.shape(), (Shape{6}));  // unchanged by the failed reshape
}

TEST(Tensor, UninitializedHasShapeAndStorage) {
  Tensor t = Tensor::uninitialized(DType::kFloat32, {2, 5});
  EXPECT_EQ(t.dtype(), DType::kFloat32);
  EXPECT_EQ(t.shape(), (Shape{2, 5}));
  EXPECT_EQ(t.nbytes(), 40u);
  for (int i = 0; i < 10; ++i) t.data<float>()[i] = static_cast<float>(i);
  EXPECT_EQ(t, Tensor::from_vector<float>({2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  Tensor s = Tensor::uninitialized(DType::kString, {3});
  EXPECT_EQ(s.to_vector<std::string>(), (std::vector<std::string>{"", "", ""}));
  EXPECT_THROW(Tensor::uninitialized(DType::kInt8, {-1}), Error);
}

TEST(Tensor, CastConvertsElements) {
  Tensor t = Tensor::from_vector<float>({3}, {1.5f, -2.0f, 7.0f});
  EXPECT_EQ(t.cast(DType::kInt32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 7}));
}

TEST(Tensor, Slice0AndConcat0RoundTrip) {
  Tensor t = Tensor::from_vector<int32_t>({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor a = t.slice0(0, 1), b = t.slice0(1, 3);
  EXPECT_EQ(b.to_vector<int32_t>(), (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(Tensor::concat0({a, b}), t);
  EXPECT_THROW(t.slice0(2, 4), Error);
}

TEST(Tensor, FromVectorRejectsWrongCount) {
  EXPECT_THROW(Tensor::from_vector<float>({2, 2}, {1.0f}), Error);
}

TEST(Tensor, NegativeDimensionIsAnError) { EXPECT_THROW(Tensor(DType::kInt8, {-1, 2}), Error); }

TEST(Tensor, BoolTensorsFromVector) {
  Tensor t = Tensor::from_vector<bool>({3}, {true, false, true});
  EXPECT_EQ(t.dtype(), DType::kBool);
  EXPECT_TRUE(t.data<bool>()[0]);
  EXPECT_FALSE(t.data<bool>()[1]);
}

TEST(Tensor, ResizeUninitializedKeepsStorageWhenShrinking) {
  Tensor t = Tensor::uninitialized(DType::kFloat32, {6});
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = static_cast<float>(i);
  const uint8_t* bytes = t.raw();
  t.resize_uninitialized({2, 2});  // smaller: same storage, the first bytes kept
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.numel(), 4);
  EXPECT_EQ(t.nbytes(), 16u);
  EXPECT_EQ(t.raw(), bytes);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  t.resize_uninitialized({1, 5});  // larger again, within what it held: no new storage
  EXPECT_EQ(t.raw(), bytes);
  EXPECT_EQ(t.shape(), (Shape{1, 5}));
  EXPECT_THROW(t.resize_uninitialized({-2}), Error);
  EXPECT_EQ(t.shape(), (Shape{1, 5}));  // unchanged by the failed resize
  Tensor s = Tensor::uninitialized(DType::kString, {3});
  EXPECT_THROW(s.resize_uninitialized({2}), Error);
  Tensor none;
  EXPECT_THROW(none.resize_uninitialized({2}), Error);
}
