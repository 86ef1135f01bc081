#pragma once
/// Small helpers over onnx::GraphProto shared by the passes and the QDQ insertion.
#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::quant::graph {

/// Pointer to the initializer named `name`, or nullptr.
const onnx::TensorProto* find_initializer(const onnx::GraphProto& g, const std::string& name);
/// The float32 initializer `name` as a Tensor; throws kInvalidArgument naming `node` when absent
/// or not float32.
Tensor float_initializer(const onnx::GraphProto& g, const std::string& name, const std::string& node);
/// Replaces (or adds) the initializer `name` with `value`.
void set_initializer(onnx::GraphProto& g, const Tensor& value, const std::string& name);

/// Number of node inputs reading `tensor`, plus one if it is a graph output.
int use_count(const onnx::GraphProto& g, const std::string& tensor);
bool is_graph_output(const onnx::GraphProto& g, const std::string& tensor);
bool is_graph_input(const onnx::GraphProto& g, const std::string& tensor);
/// Renames every node input reading `from` to `to`.
void rename_uses(onnx::GraphProto& g, const std::string& from, const std::string& to);

/// Attribute getters with defaults; throw kInvalidArgument naming the node on a wrong type.
int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t dflt);
float attr_float(const onnx::NodeProto& n, const std::string& name, float dflt);
std::string attr_string(const onnx::NodeProto& n, const std::string& name, const std::string& dflt);
/// Sets (adding or replacing) an int / float attribute.
void set_attr_int(onnx::NodeProto& n, const std::string& name, int64_t v);
void set_attr_float(onnx::NodeProto& n, const std::string& name, float v);

/// "name (OpType)", the way errors and reports name a node.
std::string node_label(const onnx::NodeProto& n);

/// Hands out tensor names that do not clash with any name in the graph.
class NameAllocator {
 public:
  explicit NameAllocator(const onnx::GraphProto& g);
  /// `base` when free, else base_1, base_2, ...; the name is reserved.
  std::string make(const std::string& base);

 private:
  std::set<std::string> used_;
};

}  // namespace anvil::quant::graph
