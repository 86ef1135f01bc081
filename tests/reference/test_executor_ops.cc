// Float operator semantics against values worked out by hand or by direct loops written from the
// ONNX specification (not from the executor's code).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "anvil/reference/executor.h"
#include "model_builder.h"
#include "qdq_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;
using anvil::test::random_tensor;

namespace {

/// Runs a one-node model: inputs "a", "b", ... (given tensors), constants as initializers.
Tensor run_node(const ModelBuilder& b, const TensorMap& inputs, const std::string& out = "y") {
  auto e = ref::Executor::create(b.model());
  EXPECT_TRUE(e.ok()) << e.error().what();
  auto r = e->run(inputs);
  EXPECT_TRUE(r.ok()) << r.error().what();
  return r.ok() ? r->at(out) : Tensor();
}

ModelBuilder single(const std::string& op, const std::vector<std::pair<std::string, Tensor>>& inputs,
                    int64_t opset = 13, std::vector<std::string> names = {}) {
  ModelBuilder b(opset);
  for (const auto& [name, t] : inputs) {
    b.input(name, t.dtype(), t.shape());
    names.push_back(name);
  }
  b.output("y");
  b.node(op, names, {"y"}, "node");
  return b;
}

TensorMap as_map(const std::vector<std::pair<std::string, Tensor>>& v) { return TensorMap(v.begin(), v.end()); }

void expect_near(const Tensor& got, const Tensor& want, float tol = 1e-4f) {
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], tol) << "element " << i;
}

/// Conv written from the spec: y[n,m,oy,ox] = b[m] + sum x[n, g*C/G + c, oy*s - p + k*d] w[m,c,k].
Tensor direct_conv(const Tensor& x, const Tensor& w, const Tensor& b, int64_t group, std::array<int64_t, 4> pads,
                   std::array<int64_t, 2> strides, std::array<int64_t, 2> dil) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), m = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t oh = (h + pads[0] + pads[2] - (kh - 1) * dil[0] - 1) / strides[0] + 1;
  const int64_t ow = (wd + pads[1] + pads[3] - (kw - 1) * dil[1] - 1) / strides[1] + 1;
  Tensor y(DType::kFloat32, {n, m, oh, ow});
  const int64_t cg = c / group, mg = m / group;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b.data<float>()[o];
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * strides[0] - pads[0] + ky * dil[0], ix = ox * strides[1] - pads[1] + kx * dil[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x.data<float>()[((i * c + (o / mg) * cg + ci) * h + iy) * wd + ix] *
                       w.data<float>()[((o * cg + ci) * kh + ky) * kw + kx];
              }
          y.data<float>()[((i * m + o) * oh + oy) * ow + ox] = static_cast<float>(acc);
        }
  return y;
}

}  // namespace

TEST(ExecutorOps, ConvMatchesDirectLoopForAllAttributes) {
  struct Case {
    Shape x, w;
    int64_t group;
    std::array<int64_t, 4> pads;
    std::array<int64_t, 2> strides, dil;
  };
  const std::vector<Case> cases = {
      {{2, 3, 10, 9}, {4, 3, 3, 3}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1}},
      {{2, 4, 11, 8}, {6, 2, 3, 2}, 2, {1, 2, 0, 1}, {2, 3}, {1, 1}},
      {{1, 3, 9, 9}, {3, 1, 3, 3}, 3, {2, 2, 2, 2}, {1, 1}, {2, 2}},   // depthwise, dilated
      {{3, 6, 7, 7}, {6, 2, 1, 1}, 3, {0, 0, 0, 0}, {2, 2}, {1, 1}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    SCOPED_TRACE(k);
    const Tensor x = random_tensor(c.x, -1, 1, 1), w = random_tensor(c.w, -1, 1, 2), b = random_tensor({c.w[0]}, -1, 1, 3);
    ModelBuilder m;
    m.input("x", DType::kFloat32, {-1, c.x[1], c.x[2], c.x[3]}).output("y");
    m.initializer("w", w).initializer("b", b);
    auto& n = m.node("Conv", {"x", "w", "b"}, {"y"});
    ModelBuilder::attr(n, "group", c.group);
    ModelBuilder::attr(n, "pads", std::vector<int64_t>(c.pads.begin(), c.pads.end()));
    ModelBuilder::attr(n, "strides", std::vector<int64_t>(c.strides.begin(), c.strides.end()));
    ModelBuilder::attr(n, "dilations", std::vector<int64_t>(c.dil.begin(), c.dil.end()));
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{c.w[2], c.w[3]});
    expect_near(run_node(m, {{"x", x}}), direct_conv(x, w, b, c.group, c.pads, c.strides, c.dil));
  }
}

TEST(ExecutorOps, OneDimensionalConvAndPool) {
  const Tensor x = random_tensor({2, 2, 9}, -1, 1, 14), w = random_tensor({4, 1, 3}, -1, 1, 15);
  const Tensor b = random_tensor({4}, -1, 1, 16);
  ModelBuilder m;
  m.input("x", DType::kFloat32, {-1, 2, 9}).output("y").output("p");
  m.initializer("w", w).initializer("b", b);
  auto& n = m.node("Conv", {"x", "w", "b"}, {"y"});
  ModelBuilder::attr(n, "group", int64_t{2});
  ModelBuilder::attr(n, "pads", std::vector<int64_t>{2, 1});
  ModelBuilder::attr(n, "strides", std::vector<int64_t>{2});
  ModelBuilder::attr(n, "dilations", std::vector<int64_t>{2});
  auto& p = m.node("MaxPool", {"x"}, {"p"});
  ModelBuilder::attr(p, "kernel_shape", std::vector<int64_t>{4});
  ModelBuilder::attr(p, "strides", std::vector<int64_t>{4});
  auto out = ref::Executor::create(m.model()).value().run({{"x", x}}).value();
  const Tensor want = direct_conv(x.reshaped({2, 2, 1, 9}), w.reshaped({4, 1, 1, 3}), b, 2, {0, 2, 0, 1}, {1, 2}, {1, 2});
  expect_near(out["y"], want.reshaped({2, 4, want.dim(3)}));
  ASSERT_EQ(out["p"].shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(out["p"].data<float>()[1], *std::max_element(x.data<float>() + 4, x.data<float>() + 8));
}

TEST(ExecutorOps, ConvAutoPad) {
  // 5 wide, kernel 2, stride 2: output 3, total padding 1, at the end (SAME_UPPER) or start (SAME_LOWER).
  const Tensor x = random_tensor({1, 1, 5, 5}, -1, 1, 4), w = random_tensor({1, 1, 2, 2}, -1, 1, 5);
  const Tensor zero = Tensor(DType::kFloat32, {1});
  for (const std::string mode : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    ModelBuilder m;
    m.input("x", DType::kFloat32, {1, 1, 5, 5}).output("y");
    m.initializer("w", w);
    auto& n = m.node("Conv", {"x", "w"}, {"y"});
    ModelBuilder::attr(n, "auto_pad", mode);
    ModelBuilder::attr(n, "strides", std::vector<int64_t>{2, 2});
    const std::array<int64_t, 4> pads = mode == "SAME_UPPER"   ? std::array<int64_t, 4>{0, 0, 1, 1}
                                        : mode == "SAME_LOWER" ? std::array<int64_t, 4>{1, 1, 0, 0}
                                                               : std::array<int64_t, 4>{0, 0, 0, 0};
    expect_near(run_node(m, {{"x", x}}), direct_conv(x, w, zero, 1, pads, {2, 2}, {1, 1}));
  }
}

TEST(ExecutorOps, MaxPoolCeilModeAndDilations) {
  // 1 x 1 x 4 x 4 input 0..15; kernel 2, stride 2, ceil_mode on a 5-wide padded row.
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  const Tensor x = Tensor::from_vector<float>({1, 1, 4, 4}, v);
  auto b = single("MaxPool", {{"x", x}});
  auto& node = b.last_node();
  ModelBuilder::attr(node, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(node, "strides", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(node, "pads", std::vector<int64_t>{1, 1, 0, 0});
  ModelBuilder::attr(node, "ceil_mode", int64_t{1});
  // Padded extent 5: ceil((5 - 2) / 2) + 1 = 3 outputs per axis; windows start at -1, 1, 3.
  EXPECT_EQ(run_node(b, as_map({{"x", x}})).to_vector<float>(),
            (std::vector<float>{0, 2, 3, 8, 10, 11, 12, 14, 15}));
  auto d = single("MaxPool", {{"x", x}});
  auto& dn = d.last_node();
  ModelBuilder::attr(dn, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(dn, "dilations", std::vector<int64_t>{2, 2});
  // Windows {0,2}x{0,2} etc.: outputs 2 x 2.
  EXPECT_EQ(run_node(d, as_map({{"x", x}})).to_vector<float>(), (std::vector<float>{10, 11, 14, 15}));
}

TEST(ExecutorOps, AveragePoolCountIncludePad) {
  const Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  for (int64_t include : {0, 1}) {
    auto b = single("AveragePool", {{"x", x}});
    auto& n = b.last_node();
    ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 1, 1, 1});
    ModelBuilder::attr(n, "count_include_pad", include);
    const std::vector<float> want = include ? std::vector<float>{0.25f, 0.75f, 0.5f, 1.0f, 2.5f, 1.5f, 0.75f, 1.75f, 1.0f}
                                            : std::vector<float>{1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    expect_near(run_node(b, as_map({{"x", x}})), Tensor::from_vector<float>({1, 1, 3, 3}, want));
  }
}

TEST(ExecutorOps, GlobalAveragePoolAndBatchNorm) {
  const Tensor x = Tensor::from_vector<float>({1, 2, 1, 2}, {1, 3, 10, 20});
  expect_near(run_node(single("GlobalAveragePool", {{"x", x}}), as_map({{"x", x}})),
              Tensor::from_vector<float>({1, 2, 1, 1}, {2, 15}));
  ModelBuilder b;
  b.input("x", DType::kFloat32, {1, 2, 1, 2}).output("y");
  b.initializer("s", Tensor::from_vector<float>({2}, {2, 1}));
  b.initializer("bias", Tensor::from_vector<float>({2}, {1, 0}));
  b.initializer("mean", Tensor::from_vector<float>({2}, {1, 10}));
  b.initializer("var", Tensor::from_vector<float>({2}, {4, 1}));
  auto& n = b.node("BatchNormalization", {"x", "s", "bias", "mean", "var"}, {"y"});
  ModelBuilder::attr(n, "epsilon", 0.0f);
  expect_near(run_node(b, {{"x", x}}), Tensor::from_vector<float>({1, 2, 1, 2}, {1, 3, 0, 10}));
}

TEST(ExecutorOps, GemmAttributesAndBroadcastC) {
  const Tensor a = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});  // transA: A' is 2 x 3
  const Tensor b = Tensor::from_vector<float>({2, 3}, {1, 0, 1, 0, 1, 1});  // transB: B' is 3 x 2
  ModelBuilder m;
  m.input("a", DType::kFloat32, {3, 2}).input("b", DType::kFloat32, {2, 3}).output("y");
  m.initializer("c", Tensor::from_vector<float>({2}, {10, 20}));  // broadcast along M
  auto& n = m.node("Gemm", {"a", "b", "c"}, {"y"});
  ModelBuilder::attr(n, "transA", int64_t{1});
  ModelBuilder::attr(n, "transB", int64_t{1});
  ModelBuilder::attr(n, "alpha", 2.0f);
  ModelBuilder::attr(n, "beta", 0.5f);
  // A' = [[1,3,5],[2,4,6]], B' = [[1,0],[0,1],[1,1]]: A'B' = [[6,8],[8,10]].
  expect_near(run_node(m, {{"a", a}, {"b", b}}), Tensor::from_vector<float>({2, 2}, {17, 26, 21, 30}));
}

TEST(ExecutorOps, MatMulBatchedBroadcastAndVectors) {
  const Tensor a = random_tensor({2, 1, 3, 4}, -1, 1, 6), b = random_tensor({3, 4, 5}, -1, 1, 7);
  const Tensor y = run_node(single("MatMul", {{"a", a}, {"b", b}}),
                            as_map({{"a", a}, {"b", b}}));
  ASSERT_EQ(y.shape(), (Shape{2, 3, 3, 5}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t c = 0; c < 5; ++c) {
          float acc = 0;
          for (int64_t k = 0; k < 4; ++k) acc += a.data<float>()[(i * 3 + r) * 4 + k] * b.data<float>()[(j * 4 + k) * 5 + c];
          ASSERT_NEAR(y.data<float>()[((i * 3 + j) * 3 + r) * 5 + c], acc, 1e-5);
        }
  const Tensor v = Tensor::from_vector<float>({2}, {1, 2}), m = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(run_node(single("MatMul", {{"a", v}, {"b", m}}), as_map({{"a", v}, {"b", m}}))
                .to_vector<float>(), (std::vector<float>{7, 10}));
  EXPECT_EQ(run_node(single("MatMul", {{"a", m}, {"b", v}}), as_map({{"a", m}, {"b", v}}))
                .shape(), (Shape{2}));
}

TEST(ExecutorOps, BinaryBroadcasting) {
  const Tensor a = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}), b = Tensor::from_vector<float>({3}, {1, 2, 4});
  const Tensor col = Tensor::from_vector<float>({2, 1}, {10, 20});
  EXPECT_EQ(run_node(single("Sub", {{"a", a}, {"b", b}}), as_map({{"a", a}, {"b", b}}))
                .to_vector<float>(), (std::vector<float>{0, 0, -1, 3, 3, 2}));
  EXPECT_EQ(run_node(single("Div", {{"a", a}, {"b", b}}), as_map({{"a", a}, {"b", b}}))
                .to_vector<float>(), (std::vector<float>{1, 1, 0.75f, 4, 2.5f, 1.5f}));
  const Tensor sum = run_node(single("Add", {{"a", col}, {"b", b}}),
                              as_map({{"a", col}, {"b", b}}));
  EXPECT_EQ(sum.shape(), (Shape{2, 3}));
  EXPECT_EQ(sum.to_vector<float>(), (std::vector<float>{11, 12, 14, 21, 22, 24}));
  const Tensor i = Tensor::from_vector<int64_t>({2}, {7, -7}), j = Tensor::from_vector<int64_t>({1}, {2});
  EXPECT_EQ(run_node(single("Mul", {{"a", i}, {"b", j}}), as_map({{"a", i}, {"b", j}}))
                .to_vector<int64_t>(), (std::vector<int64_t>{14, -14}));
  const Tensor wrong = Tensor::from_vector<float>({2}, {1, 2});
  auto e = ref::Executor::create(single("Add", {{"a", a}, {"b", wrong}}).model()).value();
  auto r = e.run(as_map({{"a", a}, {"b", wrong}}));
  ASSERT_FALSE(r.ok());
  EXPECT_STREQ(r.error().what(), "node 'node' (Add): shapes [2, 3] and [2] do not broadcast");
}

TEST(ExecutorOps, ClipOpset6AttributesAndOpset11Inputs) {
  const Tensor x = Tensor::from_vector<float>({4}, {-2, 0.5f, 3, 7});
  ModelBuilder b6(6);
  b6.input("x", DType::kFloat32, {4}).output("y");
  auto& n = b6.node("Clip", {"x"}, {"y"});
  ModelBuilder::attr(n, "min", 0.0f);
  ModelBuilder::attr(n, "max", 6.0f);
  EXPECT_EQ(run_node(b6, {{"x", x}}).to_vector<float>(), (std::vector<float>{0, 0.5f, 3, 6}));
  ModelBuilder b11(11);
  b11.input("x", DType::kFloat32, {4}).output("y");
  b11.initializer("hi", Tensor::scalar<float>(1.0f));
  b11.node("Clip", {"x", "", "hi"}, {"y"});  // min omitted
  EXPECT_EQ(run_node(b11, {{"x", x}}).to_vector<float>(), (std::vector<float>{-2, 0.5f, 1, 1}));
  ModelBuilder b13(13);  // integer Clip, bounds of the input's type
  b13.input("x", DType::kInt8, {4}).output("y", DType::kInt8);
  b13.initializer("lo", Tensor::scalar<int8_t>(-1)).initializer("hi", Tensor::scalar<int8_t>(5));
  b13.node("Clip", {"x", "lo", "hi"}, {"y"});
  EXPECT_EQ(run_node(b13, {{"x", Tensor::from_vector<int8_t>({4}, {-128, 0, 3, 127})}}).to_vector<int8_t>(),
            (std::vector<int8_t>{-1, 0, 3, 5}));
}

TEST(ExecutorOps, ReshapeZeroMinusOneAndAllowZero) {
  const Tensor x(DType::kFloat32, {2, 3, 4});
  auto reshape = [&](std::vector<int64_t> shape, int64_t allowzero) {
    ModelBuilder b(14);
    b.input("x", DType::kFloat32, {2, 3, 4}).output("y");
    b.initializer("s", Tensor::from_vector<int64_t>({static_cast<int64_t>(shape.size())}, shape));
    auto& n = b.node("Reshape", {"x", "s"}, {"y"});
    ModelBuilder::attr(n, "allowzero", allowzero);
    auto e = ref::Executor::create(b.model()).value();
    return e.run({{"x", x}});
  };
  EXPECT_EQ(reshape({0, -1}, 0)->at("y").shape(), (Shape{2, 12}));
  EXPECT_EQ(reshape({-1, 0, 2}, 0)->at("y").shape(), (Shape{4, 3, 2}));
  EXPECT_FALSE(reshape({0, -1}, 1).ok());  // allowzero: 0 is a real zero, and cannot mix with -1
  EXPECT_FALSE(reshape({0, 24}, 1).ok());
  EXPECT_FALSE(reshape({-1, -1}, 0).ok());
  ModelBuilder f;
  f.input("x", DType::kFloat32, {2, 3, 4}).output("y");
  auto& n = f.node("Flatten", {"x"}, {"y"});
  ModelBuilder::attr(n, "axis", int64_t{-1});
  EXPECT_EQ(run_node(f, {{"x", x}}).shape(), (Shape{6, 4}));
}

TEST(ExecutorOps, QuantizeLinearPerTensorAndPerAxis) {
  const Tensor x = Tensor::from_vector<float>({2, 3}, {0.5f, 1.5f, 2.5f, -0.5f, 300.0f, -300.0f});
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2, 3}).output("y", DType::kInt8).output("u", DType::kUInt8).output("d");
  b.initializer("s", Tensor::scalar<float>(1.0f)).initializer("z", Tensor::scalar<int8_t>(1));
  b.initializer("zu", Tensor::scalar<uint8_t>(128));
  b.initializer("sa", Tensor::from_vector<float>({2}, {1.0f, 2.0f}));
  b.initializer("za", Tensor::from_vector<int8_t>({2}, {0, -1}));
  b.node("QuantizeLinear", {"x", "s", "z"}, {"y"});
  b.node("QuantizeLinear", {"x", "s", "zu"}, {"u"});
  auto& pa = b.node("QuantizeLinear", {"x", "sa", "za"}, {"qa"});
  ModelBuilder::attr(pa, "axis", int64_t{0});
  auto& da = b.node("DequantizeLinear", {"qa", "sa", "za"}, {"d"});
  ModelBuilder::attr(da, "axis", int64_t{0});
  auto out = ref::Executor::create(b.model()).value().run({{"x", x}}).value();
  // Round half to even, then saturate.
  EXPECT_EQ(out["y"].to_vector<int8_t>(), (std::vector<int8_t>{1, 3, 3, 1, 127, -128}));
  EXPECT_EQ(out["u"].to_vector<uint8_t>(), (std::vector<uint8_t>{128, 130, 130, 128, 255, 0}));
  // Row 1 with scale 2, zero point -1: -0.5 -> -1, 300 -> 127 and -300 -> -128 (saturated).
  EXPECT_EQ(out["d"].to_vector<float>(), (std::vector<float>{0, 2, 2, 0, 256, -254}));
}

TEST(ExecutorOps, DequantizeLinearInt32AndErrors) {
  ModelBuilder b;
  b.input("x", DType::kInt32, {3}).output("y");
  b.initializer("s", Tensor::scalar<float>(0.5f));
  b.node("DequantizeLinear", {"x", "s"}, {"y"});
  EXPECT_EQ(run_node(b, {{"x", Tensor::from_vector<int32_t>({3}, {-4, 0, 1000})}}).to_vector<float>(),
            (std::vector<float>{-2, 0, 500}));
  ModelBuilder bad;
  bad.input("x", DType::kInt8, {2, 3}).output("y");
  bad.initializer("s", Tensor::from_vector<float>({2}, {1, 2}));
  bad.node("DequantizeLinear", {"x", "s"}, {"y"}, "dq");  // default axis 1 has 3 entries, scale has 2
  auto r = ref::Executor::create(bad.model()).value().run({{"x", Tensor(DType::kInt8, {2, 3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_STREQ(r.error().what(), "node 'dq' (DequantizeLinear): scale has 2 values but axis 1 of [2, 3] has 3");
}

TEST(ExecutorOps, ConstantIdentityDropout) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).output("y").output("mask", DType::kBool);
  auto& c = b.node("Constant", {}, {"k"});
  auto* a = c.add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(1.0f);
  a->add_floats(2.0f);
  b.node("Add", {"x", "k"}, {"s"});
  b.node("Dropout", {"s"}, {"d", "mask"});
  b.node("Identity", {"d"}, {"y"});
  auto out = ref::Executor::create(b.model()).value().run({{"x", Tensor::from_vector<float>({2}, {1, 1})}}).value();
  EXPECT_EQ(out["y"].to_vector<float>(), (std::vector<float>{2, 3}));
  EXPECT_EQ(out["mask"].to_vector<bool>(), (std::vector<bool>{true, true}));
}

// Conv keeps its weights reordered for oneDNN in a per-node cache keyed by input shape: runs with
// other batch sizes (which replace the cached entry) and weights given as a graph input (never
// cached) must both match the direct loop.
TEST(ExecutorOps, ConvCachedAndUncachedWeightsAcrossBatchSizes) {
  const Tensor w = random_tensor({8, 4, 3, 3}, -1, 1, 2), b = random_tensor({8}, -1, 1, 3);
  ModelBuilder cached, uncached;
  cached.input("x", DType::kFloat32, {-1, 4, 6, 6}).output("y").initializer("w", w).initializer("b", b);
  uncached.input("x", DType::kFloat32, {-1, 4, 6, 6}).input("w", DType::kFloat32, {8, 4, 3, 3}).output("y");
  uncached.initializer("b", b);
  for (ModelBuilder* m : {&cached, &uncached})
    ModelBuilder::attr(m->node("Conv", {"x", "w", "b"}, {"y"}), "pads", std::vector<int64_t>{1, 1, 1, 1});
  const auto exec_cached = ref::Executor::create(cached.model()).value();
  const auto exec_uncached = ref::Executor::create(uncached.model()).value();
  for (int64_t batch : {2, 5, 2}) {
    SCOPED_TRACE(batch);
    const Tensor x = random_tensor({batch, 4, 6, 6}, -1, 1, static_cast<uint32_t>(batch));
    const Tensor want = direct_conv(x, w, b, 1, {1, 1, 1, 1}, {1, 1}, {1, 1});
    expect_near(exec_cached.run({{"x", x}}).value().at("y"), want);
    expect_near(exec_uncached.run({{"x", x}, {"w", w}}).value().at("y"), want);
  }
}
