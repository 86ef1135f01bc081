#pragma once
// Builds small ONNX models by hand for the reference tests.
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor.h"

namespace anvil::test {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13) {
    model_.set_ir_version(8);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  /// A graph input; a negative dim is dynamic ("N").
  ModelBuilder& input(const std::string& name, DType dtype, const Shape& shape) {
    value_info(model_.mutable_graph()->add_input(), name, dtype, shape);
    return *this;
  }
  ModelBuilder& output(const std::string& name, DType dtype = DType::kFloat32) {
    auto* vi = model_.mutable_graph()->add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(static_cast<int>(dtype));
    return *this;
  }
  /// A graph input or output of any ONNX type (a sequence, an optional: value.h).
  ModelBuilder& typed_input(const std::string& name, const onnx::TypeProto& type) {
    auto* vi = model_.mutable_graph()->add_input();
    vi->set_name(name);
    *vi->mutable_type() = type;
    return *this;
  }
  ModelBuilder& typed_output(const std::string& name, const onnx::TypeProto& type) {
    auto* vi = model_.mutable_graph()->add_output();
    vi->set_name(name);
    *vi->mutable_type() = type;
    return *this;
  }
  ModelBuilder& initializer(const std::string& name, const Tensor& t) {
    *model_.mutable_graph()->add_initializer() = tensor_to_proto(t, name);
    return *this;
  }
  /// Adds a node and returns it so attributes can be added.
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  /// The node added last, to add attributes after the fact.
  onnx::NodeProto& last_node() { return *model_.mutable_graph()->mutable_node()->rbegin(); }
  const onnx::ModelProto& model() const { return model_; }

  static void attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

 private:
  static void value_info(onnx::ValueInfoProto* vi, const std::string& name, DType dtype, const Shape& shape) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(static_cast<int>(dtype));
    auto* s = tt->mutable_shape();
    for (int64_t d : shape) {
      auto* dim = s->add_dim();
      if (d < 0) dim->set_dim_param("N");
      else dim->set_dim_value(d);
    }
  }
  onnx::ModelProto model_;
};

/// ONNX types for typed_input / typed_output: a tensor of `dtype` (no shape), a sequence of
/// `elem`, an optional of `elem`.
inline onnx::TypeProto tensor_type(DType dtype) {
  onnx::TypeProto t;
  t.mutable_tensor_type()->set_elem_type(static_cast<int>(dtype));
  return t;
}
inline onnx::TypeProto sequence_of(const onnx::TypeProto& elem) {
  onnx::TypeProto t;
  *t.mutable_sequence_type()->mutable_elem_type() = elem;
  return t;
}
inline onnx::TypeProto optional_of(const onnx::TypeProto& elem) {
  onnx::TypeProto t;
  *t.mutable_optional_type()->mutable_elem_type() = elem;
  return t;
}

}  // namespace anvil::test
