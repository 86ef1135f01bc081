#pragma once
// A QDQ model with vit's attention shape arithmetic between quantized MatMuls, for the host
// fallback's per-node host ops and host values (tests/reference/test_host_values.cc,
// tests/compiler/test_partition.cc):
//
//   x [N,8] -> Q/DQ -> MatMul W1 [8,12] -> Q/DQ = a                                (NPU)
//   n = Unsqueeze(Gather(Shape(a), 0)); s1 = Concat(n, [3,4]); s2 = Concat(n, [12])  (int64, host)
//   Reshape(a, s1) -> Softmax(axis 2) -> Reshape(., s2) -> Q/DQ = f                   (host; the
//                        Reshape -> Softmax -> Reshape floats are not quantized)
//   f -> MatMul W2 [12,12] -> Q/DQ = b                                               (NPU)
//   y = DQ(Q(Reshape(b, s1)))       [N,3,4]  (host; reads s1 across the NPU segment)
//   p = Softmax(b)                  [N,12]   float graph output (host, last node unquantized)
//   Shape(a) -> "unused"                     (a node nothing reads: dropped)
#include "qdq_builder.h"

namespace anvil::test {

inline onnx::ModelProto host_values_model(const ActParams& params) {
  QdqBuilder q(params);
  ModelBuilder& b = q.b;
  b.input("x", DType::kFloat32, {-1, 8});
  std::vector<float> s1, s2;
  const std::string w1 = q.weight("w1", random_tensor({8, 12}, -0.5f, 0.5f, 41), 1, &s1);
  b.node("MatMul", {q.qdq("x"), w1}, {"a"}, "matmul1");
  const std::string a = q.qdq("a");
  b.node("Shape", {a}, {"a_shape"}, "shape");
  b.initializer("zero", Tensor::scalar<int64_t>(0));
  b.initializer("axes0", Tensor::from_vector<int64_t>({1}, {0}));
  b.initializer("dims34", Tensor::from_vector<int64_t>({2}, {3, 4}));
  b.initializer("dims12", Tensor::from_vector<int64_t>({1}, {12}));
  b.node("Gather", {"a_shape", "zero"}, {"n"}, "gather");
  b.node("Unsqueeze", {"n", "axes0"}, {"n1"}, "unsqueeze");
  ModelBuilder::attr(b.node("Concat", {"n1", "dims34"}, {"s1"}, "concat1"), "axis", int64_t{0});
  ModelBuilder::attr(b.node("Concat", {"n1", "dims12"}, {"s2"}, "concat2"), "axis", int64_t{0});
  b.node("Reshape", {a, "s1"}, {"r"}, "reshape1");
  ModelBuilder::attr(b.node("Softmax", {"r"}, {"sm"}, "softmax1"), "axis", int64_t{2});
  b.node("Reshape", {"sm", "s2"}, {"f"}, "reshape2");
  const std::string w2 = q.weight("w2", random_tensor({12, 12}, -0.5f, 0.5f, 42), 1, &s2);
  b.node("MatMul", {q.qdq("f"), w2}, {"b"}, "matmul2");
  const std::string bq = q.qdq("b");
  b.node("Reshape", {bq, "s1"}, {"y"}, "reshape3");
  b.output(q.qdq("y"));
  ModelBuilder::attr(b.node("Softmax", {bq}, {"p"}, "softmax2"), "axis", int64_t{1});
  b.output("p");
  b.node("Shape", {a}, {"unused"}, "dead_shape");
  return b.model();
}

/// The model calibrated on `x` (the quantized tensors' ranges, see calibrate()).
inline onnx::ModelProto calibrated_host_values_model(const Tensor& x) {
  const ActParams p = calibrate(host_values_model, {"x", "a", "f", "b", "y"}, {{"x", x}});
  return host_values_model(p);
}

}  // namespace anvil::test
