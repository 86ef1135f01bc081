#pragma once
// One-node models for the operator tests: inputs given at run time or as initializers.
#include <gtest/gtest.h>

#include "anvil/reference/executor.h"
#include "model_builder.h"

namespace anvil::test {

/// A one-node model whose inputs are graph inputs (given) or initializers (constants).
struct OneNode {
  ModelBuilder b;
  TensorMap feeds;
  std::vector<std::string> names;
  explicit OneNode(int64_t opset = 13) : b(opset) {}
  OneNode& in(const std::string& name, const Tensor& t) {
    b.input(name, t.dtype(), t.shape());
    feeds[name] = t;
    names.push_back(name);
    return *this;
  }
  OneNode& constant(const std::string& name, const Tensor& t) {
    b.initializer(name, t);
    names.push_back(name);
    return *this;
  }
  OneNode& skip() {
    names.push_back("");
    return *this;
  }
  onnx::NodeProto& node(const std::string& op, int outputs = 1) {
    std::vector<std::string> outs;
    for (int i = 0; i < outputs; ++i) {
      outs.push_back("y" + std::to_string(i));
      b.output(outs.back());
    }
    return b.node(op, names, outs, "n");
  }
  TensorMap run() {
    auto e = ref::Executor::create(b.model());
    EXPECT_TRUE(e.ok()) << e.error().what();
    auto r = e->run(feeds);
    EXPECT_TRUE(r.ok()) << r.error().what();
    return r.ok() ? *r : TensorMap{};
  }
  Tensor run1() { return run()["y0"]; }
  /// The message of the error create() or run() returns; empty when both succeed.
  std::string error() {
    auto e = ref::Executor::create(b.model());
    if (!e.ok()) return e.error().what();
    auto r = e->run(feeds);
    return r.ok() ? std::string() : r.error().what();
  }
};

inline Tensor f32(Shape s, std::vector<float> v) { return Tensor::from_vector<float>(std::move(s), v); }
inline Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(std::move(s), v); }

inline void expect_floats(const Tensor& t, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], tol) << "element " << i;
}

}  // namespace anvil::test
