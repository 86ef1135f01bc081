// ref::unary_function_nodes and ref::values_leaving (anvil/reference/patterns.h): which nodes form
// a function of one value, the matcher the quantizer and the integer lowering share.
#include <gtest/gtest.h>

#include <map>

#include "anvil/common/onnx_model.h"
#include "anvil/reference/patterns.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;

namespace {

/// x -> GELU as torch exports it -> g -> Relu -> y (z: a second input, for nodes tests add).
ModelBuilder gelu_model() {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 4}).input("z", DType::kFloat32, {-1, 4}).output("y");
  b.node("Div", {"x", "sqrt2"}, {"d"}, "div");
  b.node("Erf", {"d"}, {"e"}, "erf");
  b.node("Add", {"e", "one"}, {"a"}, "add");
  b.node("Mul", {"x", "a"}, {"m"}, "mul");
  b.node("Mul", {"m", "half"}, {"g"}, "half");
  b.node("Relu", {"g"}, {"y"}, "relu");
  return b;
}

struct Constants {
  std::map<std::string, Tensor> values{{"sqrt2", Tensor::scalar<float>(1.4142135f)},
                                       {"one", Tensor::scalar<float>(1.0f)},
                                       {"half", Tensor::from_vector<float>({1, 1, 1}, {0.5f})},
                                       {"wide", Tensor::from_vector<float>({4}, {1, 2, 3, 4})}};
  ref::ConstantLookup lookup() const {
    return [this](const std::string& t) -> const Tensor* {
      auto it = values.find(t);
      return it == values.end() ? nullptr : &it->second;
    };
  }
};

}  // namespace

TEST(UnaryFunctionPattern, GeluFromItsDivIsOneFunctionWithOneValueLeaving) {
  const onnx::ModelProto m = gelu_model().model();
  const Constants c;
  const std::vector<int> nodes = ref::unary_function_nodes(m.graph(), 0, "x", c.lookup(), -1);
  EXPECT_EQ(nodes, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ref::values_leaving(m.graph(), nodes), std::vector<std::string>{"g"});
  // From the Erf, x is d: the Mul reads the GELU's input, which is not d, so it ends at the Add,
  // whose value leaves.
  const std::vector<int> from_erf = ref::unary_function_nodes(m.graph(), 1, "d", c.lookup(), -1);
  EXPECT_EQ(from_erf, (std::vector<int>{1, 2}));
  EXPECT_EQ(ref::values_leaving(m.graph(), from_erf), std::vector<std::string>{"a"});
}

TEST(UnaryFunctionPattern, WhatEndsOrRefusesAFunction) {
  const Constants c;
  // The half of rank 3 exceeds a rank-2 x: the last Mul is not part of it, so m leaves.
  const onnx::ModelProto m = gelu_model().model();
  EXPECT_EQ(ref::unary_function_nodes(m.graph(), 0, "x", c.lookup(), 2), (std::vector<int>{0, 1, 2, 3}));
  // A first node that does not read x, a Relu, or a node past the end: none.
  EXPECT_TRUE(ref::unary_function_nodes(m.graph(), 1, "x", c.lookup(), -1).empty());
  EXPECT_TRUE(ref::unary_function_nodes(m.graph(), 5, "g", c.lookup(), -1).empty());
  EXPECT_TRUE(ref::unary_function_nodes(m.graph(), 6, "x", c.lookup(), -1).empty());
  // A constant of four elements, or a second activation: the node is not part of the function.
  ModelBuilder b = gelu_model();
  b.node("Mul", {"g", "wide"}, {"w"}, "wide");
  b.node("Add", {"g", "z"}, {"s"}, "second");
  b.output("w").output("s");
  const onnx::ModelProto more = b.model();
  const std::vector<int> nodes = ref::unary_function_nodes(more.graph(), 0, "x", c.lookup(), -1);
  EXPECT_EQ(nodes, (std::vector<int>{0, 1, 2, 3, 4}));
  // g is read by the Relu, the wide Mul and the Add: it leaves once.
  EXPECT_EQ(ref::values_leaving(more.graph(), nodes), std::vector<std::string>{"g"});
  // A value inside that is also a graph output leaves too.
  ModelBuilder out = gelu_model();
  out.output("e");
  const onnx::ModelProto two = out.model();
  EXPECT_EQ(ref::values_leaving(two.graph(), ref::unary_function_nodes(two.graph(), 0, "x", c.lookup(), -1)),
            (std::vector<std::string>{"g", "e"}));
}
