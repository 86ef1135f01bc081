#pragma once
/// Hand-built tiny ONNX models for the quantizer tests.
#include <onnx/onnx_pb.h>

#include <random>
#include <string>
#include <vector>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor.h"

namespace anvil::quant::test {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13) {
    model_.set_ir_version(7);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  /// A float input/output with a dynamic batch "N" and the given trailing dims.
  ModelBuilder& input(const std::string& name, const Shape& dims) {
    value(model_.mutable_graph()->add_input(), name, dims);
    return *this;
  }
  ModelBuilder& output(const std::string& name, const Shape& dims) {
    value(model_.mutable_graph()->add_output(), name, dims);
    return *this;
  }
  ModelBuilder& init(const std::string& name, const Tensor& t) {
    *model_.mutable_graph()->add_initializer() = tensor_to_proto(t, name);
    return *this;
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
    onnx::NodeProto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(model_.graph().node_size()));
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  const onnx::ModelProto& model() const { return model_; }

 private:
  static void value(onnx::ValueInfoProto* v, const std::string& name, const Shape& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("N");
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::ModelProto model_;
};

inline void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void set_float(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void set_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

/// A copy of `model` whose graph inputs and outputs have the fixed leading dimension `batch` in place
/// of the dynamic one, as a model exported without a dynamic batch axis has.
inline onnx::ModelProto with_fixed_batch(onnx::ModelProto model, int64_t batch) {
  auto fix = [batch](onnx::ValueInfoProto& v) {
    v.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_value(batch);
  };
  for (auto& v : *model.mutable_graph()->mutable_input()) fix(v);
  for (auto& v : *model.mutable_graph()->mutable_output()) fix(v);
  return model;
}

/// Uniform random float32 tensor in [lo, hi) from a fixed seed.
inline Tensor random_tensor(const Shape& shape, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

/// Count of nodes of a type.
inline int count_ops(const onnx::ModelProto& m, const std::string& op) {
  int n = 0;
  for (const auto& node : m.graph().node()) n += node.op_type() == op;
  return n;
}

/// The node writing `tensor`, or nullptr.
inline const onnx::NodeProto* producer(const onnx::ModelProto& m, const std::string& tensor) {
  for (const auto& node : m.graph().node())
    for (const auto& o : node.output())
      if (o == tensor) return &node;
  return nullptr;
}

/// The nodes reading `tensor`.
inline std::vector<const onnx::NodeProto*> consumers(const onnx::ModelProto& m, const std::string& tensor) {
  std::vector<const onnx::NodeProto*> out;
  for (const auto& node : m.graph().node())
    for (const auto& i : node.input())
      if (i == tensor) out.push_back(&node);
  return out;
}

/// The initializer `name` as a Tensor (empty Tensor when absent).
inline Tensor initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return tensor_from_proto(t);
  return Tensor();
}

/// x [N,1,8,8] -> Conv 3x3 (4) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (3, weights in
/// [-gemm_range, gemm_range]) -> y [N,3], with a dynamic batch: a small classifier.
inline onnx::ModelProto small_cnn(float gemm_range) {
  ModelBuilder b;
  b.input("x", {1, 8, 8}).output("y", {3});
  b.init("w", random_tensor({4, 1, 3, 3}, -0.5f, 0.5f, 1));
  b.init("b", random_tensor({4}, -0.1f, 0.1f, 2));
  b.init("g", random_tensor({3, 4}, -gemm_range, gemm_range, 3));
  b.init("gb", random_tensor({3}, -0.1f, 0.1f, 4));
  b.node("Conv", {"x", "w", "b"}, {"c"});
  b.node("Relu", {"c"}, {"r"});
  b.node("GlobalAveragePool", {"r"}, {"p"});
  b.node("Flatten", {"p"}, {"f"});
  set_int(b.node("Gemm", {"f", "g", "gb"}, {"y"}), "transB", 1);
  return b.model();
}

}  // namespace anvil::quant::test
