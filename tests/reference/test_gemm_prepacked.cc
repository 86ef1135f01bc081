// Gemm with B (and C) initializers runs as a oneDNN inner product with B reordered once
// (reference/src/ops_linear.cc). Every test runs the same Gemm twice: B and C as initializers
// (the prepacked path) and as graph inputs fed the same values (the sgemm path), and expects the
// same outputs up to float summation order. gemm_prepacked() tells which path a node takes, so
// a silent fallback cannot pass for the fast path. MatMul with a constant B (one matrix or a batch
// of them, broadcast against A) is checked the same way, with matmul_prepacked().
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "anvil/reference/executor.h"
#include "conv_chain.h"
#include "kernels.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  Tensor t(DType::kFloat32, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen);
  return t;
}

struct GemmCase {
  int64_t m = 7, k = 33, n = 19;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 1.0f;
  bool has_c = false;
  Shape c_shape;
  std::string activation;     ///< "", "Relu" or "Clip" (bounds -0.25, 0.5), reading the Gemm's output
  bool gemm_is_output = false;  ///< the Gemm's output is also a graph output
};

/// The Gemm model: A is input "a"; B and C are initializers when `constant`, else inputs.
ModelBuilder gemm_model(const GemmCase& g, const Tensor& b, const Tensor& c, bool constant) {
  ModelBuilder mb;
  mb.input("a", DType::kFloat32, g.trans_a ? Shape{g.k, g.m} : Shape{g.m, g.k});
  if (constant) {
    mb.initializer("b", b);
    if (g.has_c) mb.initializer("c", c);
  } else {
    mb.input("b", DType::kFloat32, b.shape());
    if (g.has_c) mb.input("c", DType::kFloat32, c.shape());
  }
  std::vector<std::string> in{"a", "b"};
  if (g.has_c) in.push_back("c");
  const std::string gemm_out = g.activation.empty() ? "y" : "g";
  auto& n = mb.node("Gemm", in, {gemm_out}, "gemm");
  ModelBuilder::attr(n, "transA", int64_t{g.trans_a});
  ModelBuilder::attr(n, "transB", int64_t{g.trans_b});
  ModelBuilder::attr(n, "alpha", g.alpha);
  ModelBuilder::attr(n, "beta", g.beta);
  if (g.activation == "Relu") {
    mb.node("Relu", {"g"}, {"y"}, "act");
  } else if (g.activation == "Clip") {
    mb.initializer("lo", Tensor::scalar<float>(-0.25f));
    mb.initializer("hi", Tensor::scalar<float>(0.5f));
    mb.node("Clip", {"g", "lo", "hi"}, {"y"}, "act");
  }
  mb.output("y");
  if (g.gemm_is_output && !g.activation.empty()) mb.output("g");
  return mb;
}

/// Whether the Gemm node of `g` (B and C constant) takes the prepacked path.
bool takes_prepacked_path(const GemmCase& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  const ModelBuilder mb = gemm_model(g, b, c, true);
  const onnx::NodeProto& node = mb.model().graph().node(0);
  std::vector<Tensor> outs(1);
  ref::NodeCache cache;
  ref::KernelContext ctx{node, 13, {&a, &b}, outs, &cache, {false, true, true}};
  if (g.has_c) ctx.inputs.push_back(&c);
  return ref::gemm_prepacked(ctx);
}

/// Runs `g` both ways (twice on the prepacked path, so a cached plan is reused) and compares.
void check(const GemmCase& g, bool expect_prepacked, uint32_t seed) {
  const Tensor a = random_tensor(g.trans_a ? Shape{g.k, g.m} : Shape{g.m, g.k}, seed);
  const Tensor b = random_tensor(g.trans_b ? Shape{g.n, g.k} : Shape{g.k, g.n}, seed + 1);
  const Tensor c = random_tensor(g.c_shape, seed + 2);
  EXPECT_EQ(takes_prepacked_path(g, a, b, c), expect_prepacked);
  auto fast = ref::Executor::create(gemm_model(g, b, c, true).model());
  auto slow = ref::Executor::create(gemm_model(g, b, c, false).model());
  ASSERT_TRUE(fast.ok()) << fast.error().what();
  ASSERT_TRUE(slow.ok()) << slow.error().what();
  TensorMap feeds{{"a", a}, {"b", b}};
  if (g.has_c) feeds["c"] = c;
  auto want = slow->run(feeds);
  ASSERT_TRUE(want.ok()) << want.error().what();
  for (int round = 0; round < 2; ++round) {
    auto got = fast->run({{"a", a}});
    ASSERT_TRUE(got.ok()) << got.error().what();
    ASSERT_EQ(got->size(), want->size());
    for (const auto& [name, w] : *want) {
      const Tensor& t = got->at(name);
      ASSERT_EQ(t.shape(), w.shape()) << name;
      ASSERT_EQ(t.shape(), (Shape{g.m, g.n})) << name;
      double worst = 0;
      for (int64_t i = 0; i < w.numel(); ++i) {
        const double e = w.data<float>()[i], x = t.data<float>()[i];
        worst = std::max(worst, std::abs(x - e) / (1.0 + std::abs(e)));
      }
      EXPECT_LT(worst, 1e-5) << name << " round " << round;
    }
  }
}

}  // namespace

TEST(GemmPrepacked, WithoutCBothLayoutsOfB) {
  GemmCase g;
  check(g, true, 1);
  g.trans_b = true;
  check(g, true, 11);
}

TEST(GemmPrepacked, CBroadcastAlongRowsIsTheBias) {
  for (const Shape& s : {Shape{19}, Shape{1, 19}, Shape{}, Shape{1}, Shape{1, 1}}) {
    GemmCase g;
    g.has_c = true, g.c_shape = s, g.trans_b = true;
    SCOPED_TRACE(shape_str(s));
    check(g, true, 21);
  }
}

TEST(GemmPrepacked, OtherCShapesAndAttributesTakeTheGenericPath) {
  for (const Shape& s : {Shape{7, 19}, Shape{7, 1}}) {
    GemmCase g;
    g.has_c = true, g.c_shape = s;
    SCOPED_TRACE(shape_str(s));
    check(g, false, 31);
  }
  GemmCase g;
  g.has_c = true, g.c_shape = {19};
  g.beta = 0.5f;
  check(g, false, 41);
  g.beta = 1.0f, g.alpha = 2.0f;
  check(g, false, 42);
  g.alpha = 1.0f, g.trans_a = true;
  check(g, false, 43);
  // beta = 0: C is ignored, so the prepacked path runs without a bias.
  g.trans_a = false, g.beta = 0.0f, g.c_shape = {7, 19};
  check(g, true, 44);
}

TEST(GemmPrepacked, FollowedByReluOrClip) {
  for (const char* act : {"Relu", "Clip"}) {
    for (bool gemm_is_output : {false, true}) {
      GemmCase g;
      g.m = 5, g.k = 17, g.n = 23, g.trans_b = true;
      g.has_c = true, g.c_shape = {23};
      g.activation = act, g.gemm_is_output = gemm_is_output;
      SCOPED_TRACE(std::string(act) + (gemm_is_output ? " gemm output is a graph output" : ""));
      check(g, true, 51);
    }
  }
}

/// The executor's fusions of the model of `g` (B and C constant): "gemm>act lo hi" each.
std::vector<std::string> gemm_fusions(const GemmCase& g) {
  const Tensor b = random_tensor(g.trans_b ? Shape{g.n, g.k} : Shape{g.k, g.n}, 1);
  const Tensor c = random_tensor(g.c_shape, 2);
  const ModelBuilder mb = gemm_model(g, b, c, true);
  TensorMap inits;
  for (const auto& t : mb.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : mb.model().graph().node()) nodes.push_back(&n);
  std::vector<std::string> outputs;
  for (const auto& o : mb.model().graph().output()) outputs.push_back(o.name());
  std::vector<std::string> found;
  for (const auto& f : ref::ConvChain::fusions(nodes, 13, inits, outputs))
    found.push_back(nodes[f.conv]->name() + ">" + nodes[f.activation]->name() + " " + std::to_string(f.lo) + " " +
                    std::to_string(f.hi));
  return found;
}

TEST(GemmFusion, ReluOrClipOnlyReaderOfAGemmIsFusedOnBothPaths) {
  // The fused Gemm (B constant, no observer) against the unfused one (B a graph input): on the
  // prepacked path (oneDNN post-op) and on the sgemm path (C per element: clamped after sgemm).
  for (const char* act : {"Relu", "Clip"}) {
    for (const Shape& c_shape : {Shape{23}, Shape{5, 23}}) {
      GemmCase g;
      g.m = 5, g.k = 17, g.n = 23, g.trans_b = true;
      g.has_c = true, g.c_shape = c_shape;
      g.activation = act;
      SCOPED_TRACE(std::string(act) + " C " + shape_str(c_shape));
      EXPECT_EQ(gemm_fusions(g), (std::vector<std::string>{std::string("gemm>act ") +
                                                           (g.activation == "Relu" ? "0.000000 inf"
                                                                                   : "-0.250000 0.500000")}));
      check(g, c_shape.size() == 1, 101);
    }
  }
  GemmCase g;  // the Gemm's output is also a graph output: not fused
  g.has_c = true, g.c_shape = {19}, g.activation = "Relu", g.gemm_is_output = true;
  EXPECT_TRUE(gemm_fusions(g).empty());
}

TEST(GemmPrepacked, MlpSizedLayer) {
  GemmCase g;
  g.m = 100, g.k = 784, g.n = 256, g.trans_b = true;
  g.has_c = true, g.c_shape = {256};
  g.activation = "Relu";
  check(g, true, 61);
}

namespace {

/// MatMul y = a b with B an initializer (the prepacked path) and with B a graph input fed the same
/// values (the sgemm path); expects the same output up to float summation order, on two runs (the
/// second reuses the cached plan), and that matmul_prepacked() says which path the first takes.
void check_matmul(const Shape& a_shape, const Shape& b_shape, bool expect_prepacked, uint32_t seed) {
  SCOPED_TRACE(shape_str(a_shape) + " x " + shape_str(b_shape));
  const Tensor a = random_tensor(a_shape, seed), b = random_tensor(b_shape, seed + 1);
  auto model = [&](bool constant) {
    ModelBuilder mb;
    mb.input("a", DType::kFloat32, a_shape);
    if (constant)
      mb.initializer("b", b);
    else
      mb.input("b", DType::kFloat32, b_shape);
    mb.node("MatMul", {"a", "b"}, {"y"}, "matmul");
    mb.output("y");
    return mb;
  };
  {
    const ModelBuilder mb = model(true);
    std::vector<Tensor> outs(1);
    ref::NodeCache cache;
    ref::KernelContext ctx{mb.model().graph().node(0), 13, {&a, &b}, outs, &cache, {false, true}};
    EXPECT_EQ(ref::matmul_prepacked(ctx), expect_prepacked);
  }
  auto fast = ref::Executor::create(model(true).model());
  auto slow = ref::Executor::create(model(false).model());
  ASSERT_TRUE(fast.ok()) << fast.error().what();
  ASSERT_TRUE(slow.ok()) << slow.error().what();
  auto want = slow->run({{"a", a}, {"b", b}});
  ASSERT_TRUE(want.ok()) << want.error().what();
  const Tensor& w = want->at("y");
  for (int round = 0; round < 2; ++round) {
    auto got = fast->run({{"a", a}});
    ASSERT_TRUE(got.ok()) << got.error().what();
    const Tensor& t = got->at("y");
    ASSERT_EQ(t.shape(), w.shape());
    double worst = 0;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double e = w.data<float>()[i], x = t.data<float>()[i];
      worst = std::max(worst, std::abs(x - e) / (1.0 + std::abs(e)));
    }
    EXPECT_LT(worst, 1e-5) << "round " << round;
  }
}

}  // namespace

TEST(MatMulPrepacked, OneMatrixBForAnyRankOfA) {
  check_matmul({7, 33}, {33, 19}, true, 71);
  check_matmul({3, 7, 33}, {33, 19}, true, 72);
  check_matmul({2, 3, 5, 17}, {17, 9}, true, 73);
  check_matmul({4, 5, 17}, {1, 17, 9}, true, 74);  // B's batch of one is one matrix
}

TEST(MatMulPrepacked, BatchedBBroadcastsAgainstA) {
  check_matmul({3, 7, 33}, {3, 33, 19}, true, 81);
  check_matmul({7, 33}, {2, 3, 33, 19}, true, 82);      // A broadcast over B's batch
  check_matmul({2, 1, 5, 17}, {4, 17, 9}, true, 83);    // both broadcast: batch [2, 4]
  check_matmul({1, 3, 5, 17}, {2, 1, 17, 9}, true, 84);  // batch [2, 3]
}

TEST(MatMulPrepacked, VectorOperandsTakeTheGenericPath) {
  check_matmul({33}, {33, 19}, false, 91);
  check_matmul({3, 7, 33}, {33}, false, 92);
}
