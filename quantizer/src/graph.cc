#include "graph.h"

#include "anvil/common/onnx_model.h"

namespace anvil::quant::graph {

const onnx::TensorProto* find_initializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

Tensor float_initializer(const onnx::GraphProto& g, const std::string& name, const std::string& node) {
  const onnx::TensorProto* t = find_initializer(g, name);
  if (!t) fail(ErrorCode::kInvalidArgument, "node " + node + ": input '" + name + "' is not an initializer");
  Tensor v = tensor_from_proto(*t);
  if (v.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, "node " + node + ": initializer '" + name + "' is " + dtype_name(v.dtype()) +
                                      ", float32 expected");
  return v;
}

void set_initializer(onnx::GraphProto& g, const Tensor& value, const std::string& name) {
  for (auto& t : *g.mutable_initializer())
    if (t.name() == name) {
      t = tensor_to_proto(value, name);
      return;
    }
  *g.add_initializer() = tensor_to_proto(value, name);
}

int use_count(const onnx::GraphProto& g, const std::string& tensor) {
  int n = is_graph_output(g, tensor) ? 1 : 0;
  for (const auto& node : g.node())
    for (const auto& in : node.input())
      if (in == tensor) ++n;
  return n;
}

bool is_graph_output(const onnx::GraphProto& g, const std::string& tensor) {
  for (const auto& o : g.output())
    if (o.name() == tensor) return true;
  return false;
}

bool is_graph_input(const onnx::GraphProto& g, const std::string& tensor) {
  for (const auto& i : g.input())
    if (i.name() == tensor) return true;
  return false;
}

void rename_uses(onnx::GraphProto& g, const std::string& from, const std::string& to) {
  for (auto& node : *g.mutable_node())
    for (auto& in : *node.mutable_input())
      if (in == from) in = to;
}

namespace {
const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
onnx::AttributeProto* mutable_attr(onnx::NodeProto& n, const std::string& name) {
  for (auto& a : *n.mutable_attribute())
    if (a.name() == name) return &a;
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  return a;
}
}  // namespace

int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::INT)
    fail(ErrorCode::kInvalidArgument, "node " + node_label(n) + ": attribute '" + name + "' is not an int");
  return a->i();
}

float attr_float(const onnx::NodeProto& n, const std::string& name, float dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::FLOAT)
    fail(ErrorCode::kInvalidArgument, "node " + node_label(n) + ": attribute '" + name + "' is not a float");
  return a->f();
}

std::string attr_string(const onnx::NodeProto& n, const std::string& name, const std::string& dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::STRING)
    fail(ErrorCode::kInvalidArgument, "node " + node_label(n) + ": attribute '" + name + "' is not a string");
  return a->s();
}

void set_attr_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = mutable_attr(n, name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void set_attr_float(onnx::NodeProto& n, const std::string& name, float v) {
  onnx::AttributeProto* a = mutable_attr(n, name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

std::string node_label(const onnx::NodeProto& n) {
  return "'" + (n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name()) + "' (" +
         n.op_type() + ")";
}

NameAllocator::NameAllocator(const onnx::GraphProto& g) {
  for (const auto& t : g.initializer()) used_.insert(t.name());
  for (const auto& v : g.input()) used_.insert(v.name());
  for (const auto& v : g.output()) used_.insert(v.name());
  for (const auto& v : g.value_info()) used_.insert(v.name());
  for (const auto& n : g.node()) {
    for (const auto& s : n.input()) used_.insert(s);
    for (const auto& s : n.output()) used_.insert(s);
    if (!n.name().empty()) used_.insert(n.name());
  }
}

std::string NameAllocator::make(const std::string& base) {
  std::string name = base;
  for (int i = 1; used_.count(name); ++i) name = base + "_" + std::to_string(i);
  used_.insert(name);
  return name;
}

}  // namespace anvil::quant::graph
