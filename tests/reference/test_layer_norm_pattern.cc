// LayerNorm written out as nodes (reference/src/layer_norm_pattern.h): found in the graph and run
// as one kernel when nobody observes. Every test compares against the node-by-node path (the
// executor takes it when an observer is set) and checks that the fused kernel really produced
// the executor's output.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "anvil/common/onnx_model.h"
#include "anvil/reference/executor.h"
#include "kernels.h"
#include "layer_norm_pattern.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

Tensor random_floats(const Shape& shape, uint32_t seed, float scale, float offset = 0.0f) {
  Tensor t(DType::kFloat32, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen) + offset;
  return t;
}

void constant(ModelBuilder& b, const std::string& name, float v) {
  auto& n = b.node("Constant", {}, {name}, name);
  auto* a = n.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = tensor_to_proto(Tensor::scalar<float>(v), name);
}

/// x -> LayerNorm as torch exports it (Constant nodes for 2 and eps, bias first in the last Add,
/// as torch writes it for MatMul biases) -> y; `mean_axis` and `exponent` vary it.
ModelBuilder pattern_model(int64_t d, int64_t mean_axis = -1, float exponent = 2.0f, int64_t scale_size = -1) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 5, d}).output("y");
  b.initializer("w", random_floats({scale_size < 0 ? d : scale_size}, 7, 1.0f, 1.0f));
  b.initializer("b", random_floats({d}, 8, 0.5f));
  auto& m = b.node("ReduceMean", {"x"}, {"m"}, "mean");
  ModelBuilder::attr(m, "axes", std::vector<int64_t>{mean_axis});
  b.node("Sub", {"x", "m"}, {"dev"}, "sub");
  constant(b, "two", exponent);
  b.node("Pow", {"dev", "two"}, {"sq"}, "pow");
  auto& v = b.node("ReduceMean", {"sq"}, {"var"}, "var");
  ModelBuilder::attr(v, "axes", std::vector<int64_t>{-1});
  constant(b, "eps", 1e-5f);
  b.node("Add", {"var", "eps"}, {"ve"}, "add_eps");
  b.node("Sqrt", {"ve"}, {"sd"}, "sqrt");
  b.node("Div", {"dev", "sd"}, {"n"}, "div");
  b.node("Mul", {"n", "w"}, {"scaled"}, "mul");
  b.node("Add", {"b", "scaled"}, {"y"}, "add_bias");
  return b;
}

std::vector<ref::LayerNormPattern> find(const onnx::ModelProto& model, const std::vector<std::string>& outputs) {
  TensorMap inits;
  for (const auto& t : model.graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : model.graph().node()) nodes.push_back(&n);
  return ref::find_layer_norm_patterns(nodes, inits, outputs);
}

}  // namespace

TEST(LayerNormPattern, FusedKernelMatchesTheNodes) {
  // d = 20: two blocks of 8 partial sums and a tail of 4.
  const ModelBuilder b = pattern_model(20);
  const auto found = find(b.model(), {"y"});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].nodes.size(), 9u);
  EXPECT_EQ(found[0].x, "x");
  EXPECT_EQ(found[0].y, "y");
  EXPECT_FLOAT_EQ(found[0].epsilon, 1e-5f);
  auto exec = ref::Executor::create(b.model());
  ASSERT_TRUE(exec.ok()) << exec.error().what();
  for (int64_t n : {1, 7}) {
    const Tensor x = random_floats({n, 5, 20}, 40 + static_cast<uint32_t>(n), 3.0f, 1.5f);
    ref::RunOptions observed;
    observed.observe = [](const std::string&, const Tensor&) {};
    auto plain = exec->run({{"x", x}}, observed);
    auto fast = exec->run({{"x", x}});
    ASSERT_TRUE(plain.ok()) << plain.error().what();
    ASSERT_TRUE(fast.ok()) << fast.error().what();
    const Tensor& want = plain->at("y");
    const Tensor& got = fast->at("y");
    ASSERT_EQ(got.shape(), want.shape());
    double worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double e = want.data<float>()[i];
      worst = std::max(worst, std::abs(got.data<float>()[i] - e) / (1.0 + std::abs(e)));
    }
    EXPECT_LT(worst, 2e-5);
    // The executor's output is the fused kernel's, bit for bit; on this data the kernel's
    // summation order gives other last bits than the nodes', so equality with the node path
    // would mean the pattern did not run.
    EXPECT_EQ(got, ref::run_layer_norm_pattern(found[0], x));
    if (n == 7) {
      EXPECT_FALSE(got == want);
    }
  }
}

TEST(LayerNormPattern, CalibrationSeesTheOutputOfTheOneKernel) {
  // observe_fast_paths (calibration) keeps the fast paths: the quantizer keeps a LayerNorm float as
  // one operator, so the pattern runs as one kernel and only its output is observed (its input
  // is the graph input here, observed as every input is).
  const ModelBuilder b = pattern_model(20);
  auto exec = ref::Executor::create(b.model());
  ASSERT_TRUE(exec.ok()) << exec.error().what();
  const Tensor x = random_floats({7, 5, 20}, 47, 3.0f, 1.5f);
  std::map<std::string, Tensor> seen;
  ref::RunOptions calibration;
  calibration.observe = [&](const std::string& name, const Tensor& t) { seen[name] = t; };
  calibration.observe_fast_paths = true;
  auto out = exec->run({{"x", x}}, calibration);
  ASSERT_TRUE(out.ok()) << out.error().what();
  for (const char* v : {"m", "dev", "sq", "var", "ve", "sd", "n", "scaled"}) EXPECT_FALSE(seen.count(v)) << v;
  ASSERT_TRUE(seen.count("y"));
  const auto found = find(b.model(), {"y"});
  ASSERT_EQ(found.size(), 1u);
  const Tensor fused = ref::run_layer_norm_pattern(found[0], x);
  EXPECT_EQ(seen.at("y"), fused);  // the observed value is the kernel's output
  EXPECT_EQ(out->at("y"), fused);
  // Without observe_fast_paths every inner value is observed, node by node.
  seen.clear();
  ref::RunOptions every;
  every.observe = [&](const std::string& name, const Tensor& t) { seen[name] = t; };
  ASSERT_TRUE(exec->run({{"x", x}}, every).ok());
  for (const char* v : {"m", "dev", "sq", "var", "ve", "sd", "n", "scaled", "y"}) EXPECT_TRUE(seen.count(v)) << v;
}

TEST(LayerNormPattern, NotFoundWhenItDoesNotMatch) {
  EXPECT_EQ(find(pattern_model(16).model(), {"y"}).size(), 1u);
  EXPECT_EQ(find(pattern_model(16).model(), {"y", "var"}).size(), 0u);  // an intermediate is observed
  EXPECT_EQ(find(pattern_model(16, 1).model(), {"y"}).size(), 0u);     // mean over another axis
  EXPECT_EQ(find(pattern_model(16, -1, 3.0f).model(), {"y"}).size(), 0u);
}

TEST(LayerNormPattern, ScaleOfTheWrongSizeIsAnErrorNamingTheNode) {
  auto exec = ref::Executor::create(pattern_model(16, -1, 2.0f, 5).model());
  ASSERT_TRUE(exec.ok()) << exec.error().what();
  const Tensor x = random_floats({2, 5, 16}, 3, 1.0f);
  for (bool observe : {false, true}) {
    ref::RunOptions options;
    if (observe) options.observe = [](const std::string&, const Tensor&) {};
    auto out = exec->run({{"x", x}}, options);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
    // Fused: the pattern's first node; node by node: the Mul.
    EXPECT_NE(std::string(out.error().what()).find(observe ? "'mul'" : "'mean'"), std::string::npos)
        << out.error().what();
  }
}

// Reshape (and Flatten/Squeeze/Unsqueeze, which share with_shape) moves an input the executor
// marks reusable instead of copying it, and copies one it does not.
TEST(ReshapeKernel, MovesAReusableInputAndCopiesOtherwise) {
  onnx::NodeProto node;
  node.set_op_type("Reshape");
  node.add_input("x");
  node.add_input("shape");
  node.add_output("y");
  const Tensor shape = Tensor::from_vector<int64_t>({2}, {3, -1});
  for (bool reusable : {false, true}) {
    Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
    const uint8_t* bytes = x.raw();
    std::vector<Tensor> outs(1);
    ref::KernelContext ctx{node, 13, {&x, &shape}, outs};
    if (reusable) ctx.reusable_inputs = {&x, nullptr};
    ref::reshape_kernel(ctx);
    EXPECT_EQ(outs[0], Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(outs[0].raw() == bytes, reusable);  // the same storage only when moved
  }
}
