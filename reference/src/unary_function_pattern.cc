// unary_function_nodes and values_leaving (anvil/reference/patterns.h): the element-wise functions
// of one value that the quantizer keeps float as one operator and the lowering makes one table.
#include <algorithm>
#include <set>

#include "anvil/reference/patterns.h"

namespace anvil::ref {

namespace {

bool is_function_op(const onnx::NodeProto& n) {
  static const std::set<std::string> kOps = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf"};
  return kOps.count(n.op_type()) && (n.domain().empty() || n.domain() == "ai.onnx") && n.output_size() == 1 &&
         !n.output(0).empty();
}

}  // namespace

std::vector<int> unary_function_nodes(const onnx::GraphProto& graph, int first, const std::string& x,
                                      const ConstantLookup& constant, int x_rank) {
  std::set<std::string> made;
  // Node n computes from x and `made` only, reading at least one value that is not a constant.
  const auto computes = [&](const onnx::NodeProto& n, bool from_made) {
    if (!is_function_op(n)) return false;
    bool reads = false;
    for (const std::string& in : n.input()) {
      if (from_made ? made.count(in) > 0 : in == x) reads = true;
      if (in == x || made.count(in)) continue;
      const Tensor* c = in.empty() ? nullptr : constant(in);
      if (!c || c->dtype() != DType::kFloat32 || c->numel() != 1 || (x_rank >= 0 && c->rank() > x_rank)) return false;
    }
    return reads;
  };
  if (first < 0 || first >= graph.node_size() || !computes(graph.node(first), false)) return {};
  std::vector<int> nodes{first};
  made.insert(graph.node(first).output(0));
  for (int j = first + 1; j < graph.node_size(); ++j)
    if (computes(graph.node(j), true)) {
      nodes.push_back(j);
      made.insert(graph.node(j).output(0));
    }
  return nodes;
}

std::vector<std::string> values_leaving(const onnx::GraphProto& graph, const std::vector<int>& nodes) {
  const std::set<int> inside(nodes.begin(), nodes.end());
  std::set<std::string> outputs;
  for (int k : nodes)
    for (const std::string& out : graph.node(k).output()) outputs.insert(out);
  std::vector<std::string> leaving;
  const auto leaves = [&](const std::string& t) {
    if (outputs.count(t) && std::find(leaving.begin(), leaving.end(), t) == leaving.end()) leaving.push_back(t);
  };
  for (int i = 0; i < graph.node_size(); ++i)
    if (!inside.count(i))
      for (const std::string& in : graph.node(i).input()) leaves(in);
  for (const auto& o : graph.output()) leaves(o.name());
  return leaving;
}

}  // namespace anvil::ref
