// Executor: graph preparation, errors naming the node, observation, and the demo model's accuracy.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "anvil/common/dataset.h"
#include "anvil/reference/executor.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

ModelBuilder relu_chain() {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 3}).output("y");
  b.node("Relu", {"x"}, {"r"}, "first");
  b.node("Hardmax", {"r"}, {"y"}, "second");  // an operator the executor lacks
  return b;
}

std::string error_of(const onnx::ModelProto& m) {
  auto e = ref::Executor::create(m);
  EXPECT_FALSE(e.ok());
  return e.ok() ? "" : e.error().what();
}

}  // namespace

TEST(Executor, UnsupportedOperatorNamesNode) {
  auto e = ref::Executor::create(relu_chain().model());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(e.error().what(), "node 'second' (Hardmax): operator not supported by the reference executor");
}

TEST(Executor, MissingInputNamesNodeAndValue) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2}).output("y");
  b.node("Add", {"x", "nowhere"}, {"y"}, "adder");
  const std::string msg = error_of(b.model());
  EXPECT_NE(msg.find("node 'adder' (Add)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'nowhere'"), std::string::npos) << msg;
}

TEST(Executor, CycleIsReported) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2}).output("y");
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Relu", {"a"}, {"b"}, "second");
  b.node("Identity", {"a"}, {"y"}, "out");
  const std::string msg = error_of(b.model());
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
}

TEST(Executor, WrongInputCountNamesNode) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {2}).output("y");
  b.node("Relu", {"x", "x"}, {"y"}, "twice");
  EXPECT_EQ(error_of(b.model()), "node 'twice' (Relu): has 2 inputs, expected 1");
}

TEST(Executor, NodesRunInTopologicalOrderAndAreObserved) {
  // Nodes listed in reverse order; every produced tensor and the input is observed once.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 2}).output("y");
  b.node("Relu", {"t"}, {"y"}, "last");
  b.node("Sub", {"x", "one"}, {"t"}, "first");
  b.initializer("one", Tensor::from_vector<float>({2}, {1.0f, 1.0f}));
  auto e = ref::Executor::create(b.model());
  ASSERT_TRUE(e.ok()) << e.error().what();
  EXPECT_EQ(e->input_names(), std::vector<std::string>{"x"});
  EXPECT_EQ(e->output_names(), std::vector<std::string>{"y"});
  std::vector<std::string> seen;
  ref::RunOptions opt;
  opt.observe = [&](const std::string& name, const Tensor&) { seen.push_back(name); };
  auto out = e->run({{"x", Tensor::from_vector<float>({3, 2}, {0, 1, 2, 3, -4, 5})}}, opt);
  ASSERT_TRUE(out.ok()) << out.error().what();
  EXPECT_EQ(out->at("y").to_vector<float>(), (std::vector<float>{0, 0, 1, 2, 0, 4}));
  EXPECT_EQ(seen, (std::vector<std::string>{"x", "t", "y"}));
}

TEST(Executor, RunRejectsBadInputs) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 2}).output("y");
  b.node("Relu", {"x"}, {"y"});
  auto e = ref::Executor::create(b.model()).value();
  auto missing = e.run({});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(missing.error().what()).find("'x'"), std::string::npos);
  auto shape = e.run({{"x", Tensor(DType::kFloat32, {2, 3})}});
  ASSERT_FALSE(shape.ok());
  EXPECT_STREQ(shape.error().what(), "input 'x': expected shape [?, 2], got [2, 3]");
  auto type = e.run({{"x", Tensor(DType::kInt32, {2, 2})}});
  ASSERT_FALSE(type.ok());
  EXPECT_STREQ(type.error().what(), "input 'x': expected float32, got int32");
  auto extra = e.run({{"x", Tensor(DType::kFloat32, {1, 2})}, {"z", Tensor(DType::kFloat32, {1})}});
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.error().code(), ErrorCode::kNotFound);
}

TEST(Executor, KernelErrorsNameTheNode) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4}).output("y");
  b.initializer("shape", Tensor::from_vector<int64_t>({2}, {3, -1}));
  b.node("Reshape", {"x", "shape"}, {"y"}, "reshaper");
  auto e = ref::Executor::create(b.model()).value();
  auto out = e.run({{"x", Tensor(DType::kFloat32, {2, 4})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(out.error().what()).rfind("node 'reshaper' (Reshape): cannot infer -1", 0), 0u)
      << out.error().what();
}

// The demo model must reproduce its training-time accuracy (0.896 top-1 on the Fashion-MNIST
// test set, demo_cnn.json). 2000 images keep the test fast; the bound allows their sampling error.
TEST(Executor, DemoModelAccuracyOnFashionMnist) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz") &&
      !std::filesystem::exists(dir + "/t10k-images-idx3-ubyte"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const Dataset ds = load_dataset("fashion-mnist:" + dir, Split::kTest, 2000, {{0.286f}, {0.353f}});
  auto exec = ref::Executor::create(load_onnx(std::string(ANVIL_SOURCE_DIR) + "/examples/demo/demo_cnn.onnx"));
  ASSERT_TRUE(exec.ok()) << exec.error().what();
  auto out = exec->run({{"input", ds.images}});
  ASSERT_TRUE(out.ok()) << out.error().what();
  const Tensor& logits = out->at("logits");
  ASSERT_EQ(logits.shape(), (Shape{2000, 10}));
  int64_t correct = 0;
  const float* l = logits.data<float>();
  const int64_t* labels = ds.labels.data<int64_t>();
  for (int64_t i = 0; i < 2000; ++i)
    correct += std::max_element(l + i * 10, l + i * 10 + 10) - (l + i * 10) == labels[i];
  const double top1 = static_cast<double>(correct) / 2000.0;
  RecordProperty("top1", std::to_string(top1));
  std::printf("demo_cnn top-1 on 2000 test images: %.4f\n", top1);
  EXPECT_NEAR(top1, 0.896, 0.02);
  // Batch independence: one image alone gives the same logits as inside the batch.
  auto single = exec->run({{"input", ds.images.slice0(7, 8)}});
  ASSERT_TRUE(single.ok());
  for (int j = 0; j < 10; ++j) EXPECT_NEAR(single->at("logits").data<float>()[j], l[70 + j], 1e-4);
}

TEST(Executor, UnsupportedOrInvalidAttributesFailAtCreate) {
  ModelBuilder pool;
  pool.input("x", DType::kFloat32, {-1, 1, 4, 4}).output("y");
  auto& p = pool.node("MaxPool", {"x"}, {"y"}, "pool");
  ModelBuilder::attr(p, "kernel_shape", std::vector<int64_t>{2, 2});
  ModelBuilder::attr(p, "storage_order", int64_t{2});
  auto e = ref::Executor::create(pool.model());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.error().what(), "node 'pool' (MaxPool): attribute 'storage_order' must be 0 or 1, got 2");

  ModelBuilder conv;
  conv.input("x", DType::kFloat32, {-1, 1, 4, 4}).output("y");
  conv.initializer("w", Tensor(DType::kFloat32, {1, 1, 3, 3}));
  ModelBuilder::attr(conv.node("Conv", {"x", "w"}, {"y"}, "conv"), "auto_pad", std::string("SAME"));
  e = ref::Executor::create(conv.model());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.error().what(), "node 'conv' (Conv): attribute 'auto_pad' has unknown value 'SAME'");

  // 1-D, 2-D and 3-D windows are supported; four spatial axes are not.
  ModelBuilder conv4d;
  conv4d.input("x", DType::kFloat32, {-1, 1, 4, 4, 4, 4}).output("y");
  conv4d.initializer("w", Tensor(DType::kFloat32, {1, 1, 3, 3, 3, 3}));
  ModelBuilder::attr(conv4d.node("Conv", {"x", "w"}, {"y"}, "conv"), "kernel_shape",
                     std::vector<int64_t>{3, 3, 3, 3});
  e = ref::Executor::create(conv4d.model());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kUnsupported);
}

TEST(Executor, ConcurrentRunsAgree) {
  // run() is const and keeps its state per call: two threads on one executor give the serial result.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 2, 6, 6}).output("y");
  Tensor w(DType::kFloat32, {3, 2, 3, 3});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = static_cast<float>(i % 7) - 3.0f;
  b.initializer("w", w);
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Relu", {"c"}, {"y"});
  const auto exec = ref::Executor::create(b.model()).value();
  Tensor x(DType::kFloat32, {4, 2, 6, 6});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i % 11) * 0.1f;
  const Tensor serial = exec.run({{"x", x}}).value().at("y");
  std::vector<Tensor> results(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      const ref::Executor copy = exec;  // copies share the prepared model
      for (int r = 0; r < 5; ++r) results[t] = copy.run({{"x", x}}).value().at("y");
    });
  for (auto& t : threads) t.join();
  for (const Tensor& r : results) EXPECT_TRUE(r == serial);
}
