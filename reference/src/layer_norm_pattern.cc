#include "layer_norm_pattern.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "anvil/common/onnx_model.h"
#include "anvil/reference/patterns.h"
#include "attributes.h"

namespace anvil::ref {

namespace {

bool is_op(const onnx::NodeProto& n, const char* op, int inputs) {
  return n.op_type() == op && (n.domain().empty() || n.domain() == "ai.onnx") && n.input_size() == inputs &&
         n.output_size() == 1 && !n.output(0).empty();
}

/// ReduceMean over the last axis, keeping it (opset <= 17: axes is an attribute).
bool is_last_axis_mean(const onnx::NodeProto& n) {
  return is_op(n, "ReduceMean", 1) && attr_ints(n, "axes") == std::vector<int64_t>{-1} &&
         attr_int(n, "keepdims", 1) == 1;
}

/// One float from an initializer or a Constant node's output.
std::map<std::string, float> scalar_constants(const std::vector<const onnx::NodeProto*>& nodes,
                                              const TensorMap& initializers) {
  std::map<std::string, float> out;
  for (const auto& [name, t] : initializers)
    if (t.dtype() == DType::kFloat32 && t.numel() == 1) out[name] = t.data<float>()[0];
  for (const onnx::NodeProto* n : nodes) {
    if (n->op_type() != "Constant" || n->output_size() != 1 || n->attribute_size() != 1) continue;
    const onnx::AttributeProto& a = n->attribute(0);
    if (a.name() == "value_float") {
      out[n->output(0)] = a.f();
    } else if (a.name() == "value" && a.t().data_type() == onnx::TensorProto::FLOAT) {
      try {
        const Tensor t = tensor_from_proto(a.t());
        if (t.numel() == 1) out[n->output(0)] = t.data<float>()[0];
      } catch (const Error&) {
      }
    }
  }
  return out;
}

}  // namespace

std::vector<LayerNormPattern> find_layer_norm_patterns(const std::vector<const onnx::NodeProto*>& nodes,
                                                       const TensorMap& initializers,
                                                       const std::vector<std::string>& graph_outputs) {
  std::map<std::string, std::vector<size_t>> readers;  // one entry per input slot
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const std::string& in : nodes[i]->input())
      if (!in.empty()) readers[in].push_back(i);
  const std::set<std::string> outputs(graph_outputs.begin(), graph_outputs.end());
  const std::map<std::string, float> scalars = scalar_constants(nodes, initializers);
  // The only reader of node i's output, when it is not a graph output; else -1.
  auto only_reader = [&](size_t i) -> int64_t {
    const std::string& v = nodes[i]->output(0);
    auto it = readers.find(v);
    if (outputs.count(v) || it == readers.end() || it->second.size() != 1) return -1;
    return static_cast<int64_t>(it->second[0]);
  };
  auto scalar_is = [&](const std::string& name, float* value) {
    auto it = scalars.find(name);
    if (it == scalars.end()) return false;
    *value = it->second;
    return true;
  };
  // A float32 initializer of rank <= 1.
  auto vector_init = [&](const std::string& name) -> const Tensor* {
    auto it = initializers.find(name);
    return it != initializers.end() && it->second.dtype() == DType::kFloat32 && it->second.rank() <= 1 ? &it->second
                                                                                                     : nullptr;
  };
  std::vector<LayerNormPattern> found;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto& mean = *nodes[i];
    if (!is_last_axis_mean(mean)) continue;
    const std::string& x = mean.input(0);
    const int64_t sub = only_reader(i);
    if (sub < 0 || !is_op(*nodes[sub], "Sub", 2) || nodes[sub]->input(0) != x || nodes[sub]->input(1) != mean.output(0))
      continue;
    const std::string& d = nodes[sub]->output(0);
    auto dr = readers.find(d);
    if (outputs.count(d) || dr == readers.end() || dr->second.size() != 2) continue;
    size_t pow = dr->second[0], div = dr->second[1];
    if (nodes[pow]->op_type() != "Pow") std::swap(pow, div);
    float two = 0.0f;
    if (!is_op(*nodes[pow], "Pow", 2) || nodes[pow]->input(0) != d || !scalar_is(nodes[pow]->input(1), &two) ||
        two != 2.0f)
      continue;
    if (!is_op(*nodes[div], "Div", 2) || nodes[div]->input(0) != d) continue;
    const int64_t var = only_reader(pow);
    if (var < 0 || !is_last_axis_mean(*nodes[var])) continue;
    const int64_t add_eps = only_reader(static_cast<size_t>(var));
    if (add_eps < 0 || !is_op(*nodes[add_eps], "Add", 2)) continue;
    const onnx::NodeProto& ae = *nodes[add_eps];
    const std::string& v = nodes[var]->output(0);
    float eps = 0.0f;
    if (!((ae.input(0) == v && scalar_is(ae.input(1), &eps)) || (ae.input(1) == v && scalar_is(ae.input(0), &eps))))
      continue;
    const int64_t sqrt = only_reader(static_cast<size_t>(add_eps));
    if (sqrt < 0 || !is_op(*nodes[sqrt], "Sqrt", 1)) continue;
    if (only_reader(static_cast<size_t>(sqrt)) != static_cast<int64_t>(div) || nodes[div]->input(1) != nodes[sqrt]->output(0))
      continue;
    const int64_t mul = only_reader(div);
    if (mul < 0 || !is_op(*nodes[mul], "Mul", 2)) continue;
    const std::string& n = nodes[div]->output(0);
    const onnx::NodeProto& mn = *nodes[mul];
    const Tensor* scale = mn.input(0) == n ? vector_init(mn.input(1)) : mn.input(1) == n ? vector_init(mn.input(0)) : nullptr;
    if (!scale) continue;
    const int64_t add_bias = only_reader(static_cast<size_t>(mul));
    if (add_bias < 0 || !is_op(*nodes[add_bias], "Add", 2)) continue;
    const onnx::NodeProto& ab = *nodes[add_bias];
    const Tensor* bias = ab.input(0) == mn.output(0)   ? vector_init(ab.input(1))
                         : ab.input(1) == mn.output(0) ? vector_init(ab.input(0))
                                                       : nullptr;
    if (!bias) continue;
    LayerNormPattern p;
    p.nodes = {i,
               static_cast<size_t>(sub),
               pow,
               static_cast<size_t>(var),
               static_cast<size_t>(add_eps),
               static_cast<size_t>(sqrt),
               div,
               static_cast<size_t>(mul),
               static_cast<size_t>(add_bias)};
    p.x = x;
    p.y = ab.output(0);
    p.epsilon = eps;
    p.scale = *scale;
    p.bias = *bias;
    found.push_back(std::move(p));
  }
  return found;
}

Tensor run_layer_norm_pattern(const LayerNormPattern& p, const Tensor& x) {
  if (x.dtype() != DType::kFloat32 || x.rank() == 0)
    fail(ErrorCode::kInvalidArgument, "LayerNorm pattern input '" + p.x + "' must be float32 of rank >= 1, got " +
                                          dtype_name(x.dtype()) + " " + shape_str(x.shape()));
  const int64_t d = x.dim(x.rank() - 1);
  for (const Tensor* t : {&p.scale, &p.bias})
    if (t->numel() != 1 && t->numel() != d)
      fail(ErrorCode::kInvalidArgument, "LayerNorm pattern on '" + p.x + "': scale/bias of " +
                                            std::to_string(t->numel()) + " elements for a last axis of " +
                                            std::to_string(d));
  Tensor y = Tensor::uninitialized(DType::kFloat32, x.shape());  // every row is written
  if (y.numel() == 0) return y;
  const int64_t rows = x.numel() / d;
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  const float* sd = p.scale.data<float>();
  const float* bd = p.bias.data<float>();
  const int64_t ss = p.scale.numel() == 1 ? 0 : 1, bs = p.bias.numel() == 1 ? 0 : 1;
  const float eps = p.epsilon, count = static_cast<float>(d);
  // Sums over 8 partial sums so the loops vectorise.
  auto sum8 = [d](auto term) {
    float part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= d; i += 8)
      for (int k = 0; k < 8; ++k) part[k] += term(i + k);
    for (; i < d; ++i) part[0] += term(i);
    float s = 0.0f;
    for (float v : part) s += v;
    return s;
  };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(d, 1))),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t row = r.begin(); row < r.end(); ++row) {
                        const float* in = xd + row * d;
                        float* out = yd + row * d;
                        const float mean = sum8([in](int64_t i) { return in[i]; }) / count;
                        const float var = sum8([in, mean](int64_t i) {
                                            const float c = in[i] - mean;
                                            return c * c;
                                          }) /
                                          count;
                        const float s = std::sqrt(var + eps);
                        for (int64_t i = 0; i < d; ++i) out[i] = (in[i] - mean) / s * sd[i * ss] + bd[i * bs];
                      }
                    });
  return y;
}

std::vector<std::vector<int>> layer_norm_nodes(const onnx::GraphProto& graph) {
  std::vector<const onnx::NodeProto*> nodes;
  bool has_mean = false;
  for (const onnx::NodeProto& n : graph.node()) {
    nodes.push_back(&n);
    has_mean = has_mean || n.op_type() == "ReduceMean";
  }
  if (!has_mean) return {};
  // The matcher reads scalars (2, eps) and the rank <= 1 scale and bias: only those initializers
  // are converted, not a model's weights.
  TensorMap small;
  for (const onnx::TensorProto& t : graph.initializer())
    if (t.data_type() == onnx::TensorProto::FLOAT && t.dims_size() <= 1) small.emplace(t.name(), tensor_from_proto(t));
  std::vector<std::string> outputs;
  for (const auto& o : graph.output()) outputs.push_back(o.name());
  std::vector<std::vector<int>> found;
  for (const LayerNormPattern& p : find_layer_norm_patterns(nodes, small, outputs))
    found.emplace_back(p.nodes.begin(), p.nodes.end());
  return found;
}

}  // namespace anvil::ref
