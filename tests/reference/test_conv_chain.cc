// Conv chains (reference/src/conv_chain.h): Conv / Relu / Clip / Add / MaxPool run chunk by chunk in
// oneDNN's layouts, Relu/Clip fused into the Conv they follow. Every test compares against the
// node-by-node path (the executor takes it when an observer is set) and checks that the chain
// really ran (ConvChain::run returned true), so a silent fallback cannot pass for the fast path.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "anvil/common/onnx_model.h"
#include "anvil/reference/executor.h"
#include "conv_chain.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed, float scale = 1.0f) {
  Tensor t(DType::kFloat32, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen);
  return t;
}

void conv(ModelBuilder& b, const std::string& x, const std::string& y, int64_t c, int64_t m, int64_t k,
          int64_t group, int64_t stride, int64_t pad, bool bias, uint32_t seed) {
  const std::string w = y + "_w", bname = y + "_b";
  b.initializer(w, random_tensor({m, c / group, k, k}, seed, 0.5f));
  std::vector<std::string> in{x, w};
  if (bias) {
    b.initializer(bname, random_tensor({m}, seed + 1, 0.5f));
    in.push_back(bname);
  }
  auto& n = b.node("Conv", in, {y}, y);
  ModelBuilder::attr(n, "group", group);
  ModelBuilder::attr(n, "strides", std::vector<int64_t>{stride, stride});
  ModelBuilder::attr(n, "pads", std::vector<int64_t>{pad, pad, pad, pad});
  ModelBuilder::attr(n, "kernel_shape", std::vector<int64_t>{k, k});
}

/// Clip(0, 6) with bounds from Constant nodes (as torch exports ReLU6) or initializers.
void relu6(ModelBuilder& b, const std::string& x, const std::string& y, bool constant_nodes) {
  if (constant_nodes) {
    for (const char* which : {"_lo", "_hi"}) {
      auto& n = b.node("Constant", {}, {y + which});
      auto* a = n.add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      *a->mutable_t() = tensor_to_proto(Tensor::scalar<float>(which[1] == 'l' ? 0.0f : 6.0f), y + which);
    }
  } else {
    b.initializer(y + "_lo", Tensor::scalar<float>(0.0f));
    b.initializer(y + "_hi", Tensor::scalar<float>(6.0f));
  }
  b.node("Clip", {x, y + "_lo", y + "_hi"}, {y}, y);
}

/// Runs the model's chains directly (returns how many ran) and through the executor with and
/// without an observer; expects the same outputs up to float summation order.
int check_against_unfused(const onnx::ModelProto& model, const Tensor& x) {
  auto exec = ref::Executor::create(model);
  EXPECT_TRUE(exec.ok()) << exec.error().what();
  if (!exec.ok()) return -1;
  ref::RunOptions observed;
  observed.observe = [](const std::string&, const Tensor&) {};
  auto plain = exec->run({{"x", x}}, observed);
  auto fast = exec->run({{"x", x}});
  EXPECT_TRUE(plain.ok()) << plain.error().what();
  EXPECT_TRUE(fast.ok()) << fast.error().what();
  if (!plain.ok() || !fast.ok()) return -1;
  for (const auto& [name, want] : *plain) {
    const Tensor& got = fast->at(name);
    EXPECT_EQ(got.shape(), want.shape()) << name;
    if (got.shape() != want.shape()) continue;
    double worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float a = got.data<float>()[i], e = want.data<float>()[i];
      worst = std::max(worst, std::abs(double(a) - e) / (1.0 + std::abs(double(e))));
    }
    EXPECT_LT(worst, 2e-5) << name;
  }
  // The chains on their own, over the same input: count those that took the fast path.
  TensorMap inits;
  for (const auto& t : model.graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : model.graph().node()) nodes.push_back(&n);
  std::vector<std::string> outs;
  for (const auto& o : model.graph().output()) outs.push_back(o.name());
  if (x.rank() != 4) return 0;  // chains take N x C x H x W inputs only
  TensorMap values = {{"x", x}};
  int ran = 0;
  for (const ref::ConvChain& chain : ref::ConvChain::find(nodes, 13, inits, outs)) {
    std::vector<std::pair<std::string, Tensor>> produced;
    auto lookup = [&](const std::string& name) -> const Tensor* {
      auto it = values.find(name);
      if (it != values.end()) return &it->second;
      it = inits.find(name);
      return it != inits.end() ? &it->second : nullptr;
    };
    // A chain fed by values of nodes outside it would need them: the test models start at x.
    if (chain.run(lookup, &produced)) ++ran;
    for (auto& [name, t] : produced) {
      EXPECT_EQ(t.shape(), fast->count(name) ? fast->at(name).shape() : t.shape()) << name;
      values[name] = std::move(t);
    }
  }
  return ran;
}

/// An inverted-residual block and more: stem Conv (stride 2, bias) + Clip(0, 6) from Constant
/// nodes, depthwise 3x3 + Clip (initializer bounds), pointwise 1x1 without bias, residual Add,
/// Relu, MaxPool (ceil_mode, padding), grouped Conv + Relu. Channel counts (24, 10) are not
/// multiples of oneDNN's 16-channel blocks; spatial sizes are odd.
ModelBuilder block_model() {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3, 13, 11}).output("y").output("pooled");
  conv(b, "x", "stem", 3, 24, 3, 1, 2, 1, true, 1);
  relu6(b, "stem", "stem6", true);
  conv(b, "stem6", "dw", 24, 24, 3, 24, 1, 1, true, 3);
  relu6(b, "dw", "dw6", false);
  conv(b, "dw6", "pw", 24, 24, 1, 1, 1, 0, false, 5);
  b.node("Add", {"stem6", "pw"}, {"sum"}, "sum");
  b.node("Relu", {"sum"}, {"act"}, "act");
  auto& pool = b.node("MaxPool", {"act"}, {"pool"}, "pool");
  ModelBuilder::attr(pool, "kernel_shape", std::vector<int64_t>{3, 3});
  ModelBuilder::attr(pool, "strides", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(pool, "pads", std::vector<int64_t>{1, 1, 1, 1});
  ModelBuilder::attr(pool, "ceil_mode", int64_t{1});
  conv(b, "pool", "grouped", 24, 10, 3, 2, 1, 1, true, 7);
  b.node("Relu", {"grouped"}, {"y"}, "y");
  b.node("GlobalAveragePool", {"y"}, {"pooled"}, "gap");
  return b;
}

}  // namespace

TEST(ConvChain, BlockMatchesNodeByNodePath) {
  const ModelBuilder b = block_model();
  for (int64_t n : {2, 7, 16}) {
    SCOPED_TRACE("batch " + std::to_string(n));
    EXPECT_EQ(check_against_unfused(b.model(), random_tensor({n, 3, 13, 11}, 100 + n, 3.0f)), 1);
  }
}

TEST(ConvChain, FindsOneChainUpToTheFirstNodeItCannotRun) {
  const ModelBuilder b = block_model();
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  const auto chains = ref::ConvChain::find(nodes, 13, inits, {"y", "pooled"});
  ASSERT_EQ(chains.size(), 1u);
  // Every node but the two Constant nodes and GlobalAveragePool.
  std::vector<size_t> want;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i]->op_type() != "Constant" && nodes[i]->op_type() != "GlobalAveragePool") want.push_back(i);
  EXPECT_EQ(chains[0].nodes(), want);
}

TEST(ConvChain, ObservedOrReadTwiceConvOutputIsNotFusedAway) {
  // "c" is a graph output and read by the Relu: it must be materialised unclipped; "r" is read by
  // two nodes (the next Conv and the Add), so the Relu stays a node of its own.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4, 9, 9}).output("c").output("y");
  conv(b, "x", "c", 4, 16, 3, 1, 1, 1, true, 11);
  b.node("Relu", {"c"}, {"r"}, "r");
  conv(b, "r", "d", 16, 16, 3, 1, 1, 1, true, 13);
  b.node("Add", {"r", "d"}, {"y"}, "y");
  EXPECT_EQ(check_against_unfused(b.model(), random_tensor({5, 4, 9, 9}, 21, 2.0f)), 1);
}

TEST(ConvChain, ClipWithPositiveMinimumEndsTheChain) {
  // Clip(0.5, 6) would turn the zero padding channels of a blocked layout into 0.5: not chained.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3, 8, 8}).output("y");
  conv(b, "x", "a", 3, 8, 3, 1, 1, 1, true, 31);
  b.initializer("lo", Tensor::scalar<float>(0.5f));
  b.initializer("hi", Tensor::scalar<float>(6.0f));
  b.node("Clip", {"a", "lo", "hi"}, {"y"}, "y");
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  EXPECT_TRUE(ref::ConvChain::find(nodes, 13, inits, {"y"}).empty());
  EXPECT_EQ(check_against_unfused(b.model(), random_tensor({4, 3, 8, 8}, 33, 2.0f)), 0);
}

/// Wider than block_model so that every Conv and the MaxPool of a single image split into several
/// channel ranges, with a last range that ends in a padded 16-channel block (40 channels): stem
/// Conv 5 -> 40 + Clip(0, 6), depthwise 40 (its bias through an Identity of an initializer, as
/// torch exports shared constants) + Clip, pointwise 1x1, residual Add, Relu, MaxPool (ceil_mode),
/// grouped Conv 40 -> 80 in 5 groups (ranges of 2 groups: 16 input, 32 output channels) + Relu.
ModelBuilder wide_model() {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 5, 15, 13}).output("y").output("pooled");
  conv(b, "x", "stem", 5, 40, 3, 1, 2, 1, true, 201);
  relu6(b, "stem", "stem6", true);
  b.initializer("dw_shared_b", random_tensor({40}, 203, 0.5f));
  b.node("Identity", {"dw_shared_b"}, {"dw_b"}, "dw_b");
  b.initializer("dw_w", random_tensor({40, 1, 3, 3}, 204, 0.5f));
  auto& dw = b.node("Conv", {"stem6", "dw_w", "dw_b"}, {"dw"}, "dw");
  ModelBuilder::attr(dw, "group", int64_t{40});
  ModelBuilder::attr(dw, "pads", std::vector<int64_t>{1, 1, 1, 1});
  relu6(b, "dw", "dw6", false);
  conv(b, "dw6", "pw", 40, 40, 1, 1, 1, 0, false, 205);
  b.node("Add", {"stem6", "pw"}, {"sum"}, "sum");
  b.node("Relu", {"sum"}, {"act"}, "act");
  auto& pool = b.node("MaxPool", {"act"}, {"pool"}, "pool");
  ModelBuilder::attr(pool, "kernel_shape", std::vector<int64_t>{3, 3});
  ModelBuilder::attr(pool, "strides", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(pool, "pads", std::vector<int64_t>{1, 1, 1, 1});
  ModelBuilder::attr(pool, "ceil_mode", int64_t{1});
  conv(b, "pool", "grouped", 40, 80, 3, 5, 1, 1, true, 207);
  b.node("Relu", {"grouped"}, {"y"}, "y");
  b.node("GlobalAveragePool", {"y"}, {"pooled"}, "gap");
  return b;
}

TEST(ConvChain, SingleImageRunsSplitByChannelsOnEveryThreadCount) {
  // One image: on several threads each Conv / MaxPool is split by 16-channel blocks (the sliced
  // plan; 8-channel blocks where oneDNN has no nChw16c kernel); on one thread, or where a step has no
  // real kernel for the slices, the image is the one chunk.
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    tbb::task_arena arena(threads);
    arena.execute([&] {
      EXPECT_EQ(check_against_unfused(wide_model().model(), random_tensor({1, 5, 15, 13}, 211, 3.0f)), 1);
      EXPECT_EQ(check_against_unfused(block_model().model(), random_tensor({1, 3, 13, 11}, 41, 3.0f)), 1);
    });
  }
}

TEST(ConvChain, IdentityOfAnInitializerIsAConstantOfTheChain) {
  const ModelBuilder b = wide_model();
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  const auto chains = ref::ConvChain::find(nodes, 13, inits, {"y", "pooled"});
  ASSERT_EQ(chains.size(), 1u);
  std::vector<size_t> want;  // every node but the Constant and Identity nodes and GlobalAveragePool
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i]->op_type() != "Constant" && nodes[i]->op_type() != "Identity" &&
        nodes[i]->op_type() != "GlobalAveragePool")
      want.push_back(i);
  EXPECT_EQ(chains[0].nodes(), want);
}

TEST(ConvChain, FewerImagesThanThreadsButMoreThanOneRunNodeByNode) {
  tbb::task_arena arena(3);
  arena.execute([&] {
    EXPECT_EQ(check_against_unfused(wide_model().model(), random_tensor({2, 5, 15, 13}, 221, 3.0f)), 0);
  });
}

TEST(ConvChain, BadWeightsAreReportedByTheNode) {
  // W has 5 input channels, X 3: the chain declines and the node reports the mismatch.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3, 8, 8}).output("y");
  b.initializer("w", random_tensor({4, 5, 3, 3}, 51));
  b.node("Conv", {"x", "w"}, {"c"}, "bad_conv");
  b.node("Relu", {"c"}, {"y"}, "y");
  auto exec = ref::Executor::create(b.model());
  ASSERT_TRUE(exec.ok()) << exec.error().what();
  auto out = exec->run({{"x", random_tensor({4, 3, 8, 8}, 52)}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(out.error().what()).find("node 'bad_conv' (Conv)"), std::string::npos) << out.error().what();
}

TEST(ConvFusion, ReluAndClipOnlyReadersOfAConvAreFused) {
  // Node-by-node path (where no chain runs): the stem's Clip (Constant bounds), the
  // depthwise Conv's Clip (initializer bounds) and the grouped Conv's Relu fuse; the pointwise
  // Conv's output is read by Add, and "y" (the grouped Relu's output) stays a graph output.
  const ModelBuilder b = block_model();
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  std::vector<std::string> fused;
  for (const auto& f : ref::ConvChain::fusions(nodes, 13, inits, {"y", "pooled"}))
    fused.push_back(nodes[f.conv]->name() + ">" + nodes[f.activation]->name() + " " + std::to_string(f.lo) + " " +
                    std::to_string(f.hi));
  EXPECT_EQ(fused, (std::vector<std::string>{"stem>stem6 0.000000 6.000000", "dw>dw6 0.000000 6.000000",
                                             "grouped>y 0.000000 inf"}));
  // 2 images on 3 threads: no chain runs.
  tbb::task_arena arena(3);
  arena.execute([&] { EXPECT_EQ(check_against_unfused(b.model(), random_tensor({2, 3, 13, 11}, 61, 3.0f)), 0); });
}

TEST(ConvFusion, ConvOutputThatIsAGraphOutputIsNotFused) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4, 9, 9}).output("c").output("y");
  conv(b, "x", "c", 4, 16, 3, 1, 1, 1, true, 71);
  b.node("Relu", {"c"}, {"y"}, "y");
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  EXPECT_TRUE(ref::ConvChain::fusions(nodes, 13, inits, {"c", "y"}).empty());
  tbb::task_arena arena(3);
  arena.execute([&] { EXPECT_EQ(check_against_unfused(b.model(), random_tensor({2, 4, 9, 9}, 72, 2.0f)), 0); });
}

TEST(ConvFusion, OneDimensionalConvWithClipAboveZero) {
  // A 1-D Conv (lifted to 2-D inside) with Clip(0.25, 1): fused on the node-by-node path.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3, 17}).output("y");
  b.initializer("w", random_tensor({6, 3, 3}, 81, 0.5f));
  auto& n = b.node("Conv", {"x", "w"}, {"c"}, "c");
  ModelBuilder::attr(n, "strides", std::vector<int64_t>{2});
  ModelBuilder::attr(n, "pads", std::vector<int64_t>{1, 1});
  b.initializer("lo", Tensor::scalar<float>(0.25f));
  b.initializer("hi", Tensor::scalar<float>(1.0f));
  b.node("Clip", {"c", "lo", "hi"}, {"y"}, "y");
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& node : b.model().graph().node()) nodes.push_back(&node);
  EXPECT_EQ(ref::ConvChain::fusions(nodes, 13, inits, {"y"}).size(), 1u);
  EXPECT_EQ(check_against_unfused(b.model(), random_tensor({3, 3, 17}, 82, 2.0f)), 0);
}

namespace {
/// RunOptions::observe_fast_paths on block_model or wide_model (same value names): every tensor is
/// observed once except the Conv outputs fused into their Relu/Clip ("stem", "dw", "grouped"), and
/// the chain's values are observed exactly as ConvChain::run materialises them. Returns how many
/// observed values differ in their bits from the node-by-node path's (-1 on a failure).
int observe_fast_paths(const ModelBuilder& b, const Tensor& x) {
  auto exec = ref::Executor::create(b.model());
  EXPECT_TRUE(exec.ok()) << exec.error().what();
  if (!exec.ok()) return -1;
  std::map<std::string, Tensor> node_by_node, fast;
  std::vector<std::string> fast_order;
  ref::RunOptions plain_opt, fast_opt;
  plain_opt.observe = [&](const std::string& n, const Tensor& t) { node_by_node[n] = t; };
  fast_opt.observe = [&](const std::string& n, const Tensor& t) { fast[n] = t, fast_order.push_back(n); };
  fast_opt.observe_fast_paths = true;
  auto plain_out = exec->run({{"x", x}}, plain_opt);
  auto fast_out = exec->run({{"x", x}}, fast_opt);
  EXPECT_TRUE(plain_out.ok() && fast_out.ok());
  if (!plain_out.ok() || !fast_out.ok()) return -1;
  EXPECT_EQ(fast_order.size(), fast.size()) << "a tensor observed twice";
  std::set<std::string> want;
  for (const auto& [name, t] : node_by_node)
    if (name != "stem" && name != "dw" && name != "grouped") want.insert(name);
  std::set<std::string> got;
  for (const auto& [name, t] : fast) got.insert(name);
  EXPECT_EQ(got, want);

  // The same run with observe_part: the chain's values come in image slices, from both threads
  // (several parts per value when there are several chunks), every image once; put together they
  // are the whole values bit for bit, and the outputs are the same.
  std::mutex mu;
  std::map<std::string, Tensor> assembled;
  std::map<std::string, std::vector<int>> images_seen;
  int parts = 0;
  ref::RunOptions part_opt = fast_opt;
  part_opt.observe = [&](const std::string& n, const Tensor& t) {
    std::lock_guard<std::mutex> lock(mu);
    assembled[n] = t;
  };
  part_opt.observe_part = [&](const std::string& n, const Tensor& part, int64_t first) {
    std::lock_guard<std::mutex> lock(mu);
    ++parts;
    const auto whole = fast.find(n);
    if (whole == fast.end() || part.rank() != 4 || first < 0 || first + part.dim(0) > x.dim(0)) {
      ADD_FAILURE() << "unexpected part " << n << " at " << first;
      return;
    }
    Tensor& a = assembled.try_emplace(n, DType::kFloat32, whole->second.shape()).first->second;
    std::vector<int>& seen = images_seen[n];
    seen.resize(static_cast<size_t>(x.dim(0)), 0);
    const int64_t per_image = whole->second.numel() / x.dim(0);
    EXPECT_EQ(part.numel(), part.dim(0) * per_image) << n;
    const int64_t copied = std::min(part.numel(), part.dim(0) * per_image);
    std::copy_n(part.data<float>(), copied, a.data<float>() + first * per_image);
    for (int64_t i = 0; i < part.dim(0); ++i) ++seen[static_cast<size_t>(first + i)];
  };
  auto part_out = exec->run({{"x", x}}, part_opt);
  EXPECT_TRUE(part_out.ok()) << (part_out.ok() ? "" : part_out.error().what());
  if (!part_out.ok()) return -1;
  EXPECT_EQ(part_out.value(), fast_out.value());
  std::set<std::string> assembled_names;
  for (const auto& [name, t] : assembled) {
    assembled_names.insert(name);
    EXPECT_TRUE(fast.count(name) && fast.at(name) == t) << name << ": parts differ from the whole value";
  }
  EXPECT_EQ(assembled_names, want);
  EXPECT_FALSE(images_seen.empty()) << "no value came in parts";
  for (const auto& [name, seen] : images_seen)
    EXPECT_EQ(seen, std::vector<int>(static_cast<size_t>(x.dim(0)), 1)) << name << ": each image once";
  if (x.dim(0) > 8) {
    EXPECT_GT(parts, 7) << "a chain of several chunks hands its values over in parts";
  }

  // The chain on its own, every value materialised.
  TensorMap inits;
  for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : b.model().graph().node()) nodes.push_back(&n);
  const auto chains = ref::ConvChain::find(nodes, 13, inits, {"y", "pooled"});
  EXPECT_EQ(chains.size(), 1u);
  if (chains.size() != 1) return -1;
  // Observed by the chain (copies: the values only the chain reads come in one reused scratch).
  std::vector<std::pair<std::string, Tensor>> outputs, observed, unobserved_outputs;
  const ref::ConvChain::Observe keep = [&](const std::string& n, const Tensor& t) { observed.emplace_back(n, t); };
  auto lookup = [&](const std::string& name) -> const Tensor* {
    if (name == "x") return &x;
    auto it = inits.find(name);
    return it != inits.end() ? &it->second : nullptr;
  };
  EXPECT_TRUE(chains[0].run(lookup, &outputs, &keep));
  EXPECT_EQ(outputs.size(), 1u);  // "y", read by GlobalAveragePool
  // Step by step (observed) and chunk by chunk (not observed) give the same bits.
  EXPECT_TRUE(chains[0].run(lookup, &unobserved_outputs));
  EXPECT_TRUE(unobserved_outputs.size() == 1 && !outputs.empty() && unobserved_outputs[0].second == outputs[0].second);
  int differ = 0;
  for (const auto* list : {&observed})
    for (const auto& [name, t] : *list) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(fast.count(name));
      if (!fast.count(name)) return -1;
      const Tensor& seen = fast.at(name);
      const Tensor& ref = node_by_node.at(name);
      EXPECT_EQ(seen.shape(), t.shape());
      if (seen.shape() != t.shape()) return -1;
      double worst = 0;
      bool same_bits = true, differs = false;
      for (int64_t i = 0; i < t.numel(); ++i) {
        const float a = seen.data<float>()[i], c = t.data<float>()[i], e = ref.data<float>()[i];
        same_bits = same_bits && a == c;
        differs = differs || a != e;
        worst = std::max(worst, std::abs(double(a) - e) / (1.0 + std::abs(double(e))));
      }
      EXPECT_TRUE(same_bits);
      EXPECT_LT(worst, 2e-5);
      differ += differs;
    }
  EXPECT_EQ(observed.size(), 7u);  // stem6, dw6, pw, sum, act, pool, y
  return differ;
}
}  // namespace

TEST(ConvChain, ObserverOnTheFastPathsSeesTheChainValues) {
  // On two threads: batches of 16 (two chunks of 8) and 17 (chunks of 8 and 9, two chunk plans)
  // run by chunks, a single image runs sliced by channels (or as one chunk where oneDNN has no real
  // kernel for some step's slices).
  tbb::task_arena arena(2);
  int differ = 0;
  arena.execute([&] {
    for (int64_t n : {16, 17, 1}) {
      SCOPED_TRACE("batch " + std::to_string(n));
      const int a = observe_fast_paths(block_model(), random_tensor({n, 3, 13, 11}, 116, 3.0f));
      const int b = observe_fast_paths(wide_model(), random_tensor({n, 5, 15, 13}, 216, 3.0f));
      EXPECT_GE(a, 0);
      EXPECT_GE(b, 0);
      differ += a + b;
    }
  });
  // That the chain ran, not a fallback, is shown by the parts (observe_fast_paths expects some);
  // whether any bits differ from the node-by-node path depends on the kernels oneDNN picks for the
  // CPU (with the image as one chunk they can be the same), so `differ` is only reported.
  RecordProperty("values_differing_from_node_by_node", differ);
}

TEST(ConvFusion, ClipWithMinimumAboveMaximumGivesMaximum) {
  // ONNX: Clip(min=0.5, max=0.1) makes every element 0.1. Fused into the Conv (and its oneDNN clip
  // post-op, which needs lo <= hi) it must give the same, opset 13 bounds and opset 6 attributes alike.
  for (const int64_t opset : {13, 6}) {
    ModelBuilder b(opset);
    b.input("x", DType::kFloat32, {-1, 2, 6, 6}).output("y");
    conv(b, "x", "c", 2, 4, 3, 1, 1, 1, true, 91);
    if (opset >= 11) {
      b.initializer("lo", Tensor::scalar<float>(0.5f));
      b.initializer("hi", Tensor::scalar<float>(0.1f));
      b.node("Clip", {"c", "lo", "hi"}, {"y"}, "y");
    } else {
      auto& n = b.node("Clip", {"c"}, {"y"}, "y");
      ModelBuilder::attr(n, "min", 0.5f);
      ModelBuilder::attr(n, "max", 0.1f);
    }
    TensorMap inits;
    for (const auto& t : b.model().graph().initializer()) inits[t.name()] = tensor_from_proto(t);
    std::vector<const onnx::NodeProto*> nodes;
    for (const auto& node : b.model().graph().node()) nodes.push_back(&node);
    ASSERT_EQ(ref::ConvChain::fusions(nodes, opset, inits, {"y"}).size(), 1u) << "opset " << opset;
    auto exec = ref::Executor::create(b.model());
    ASSERT_TRUE(exec.ok()) << exec.error().what();
    auto out = exec->run({{"x", random_tensor({2, 2, 6, 6}, 92, 2.0f)}});
    ASSERT_TRUE(out.ok()) << "opset " << opset << ": " << out.error().what();
    const Tensor& y = out->at("y");
    ASSERT_EQ(y.numel(), 2 * 4 * 6 * 6);
    for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data<float>()[i], 0.1f) << "opset " << opset << ", element " << i;
  }
}
