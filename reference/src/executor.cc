#include "anvil/reference/executor.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "anvil/common/graph_input.h"
#include "anvil/common/onnx_model.h"
#include "attributes.h"
#include "conv_chain.h"
#include "graph_check.h"
#include "kernels.h"
#include "layer_norm_pattern.h"

namespace anvil::ref {

namespace {

struct GraphInput {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;  ///< -1 for a dynamic (symbolic or unknown) dimension
  bool has_shape = false;
};

struct PreparedNode {
  onnx::NodeProto node;
  const OpSchema* op = nullptr;
  std::vector<std::string> release;  ///< values whose last use is this node
  std::vector<bool> constant_inputs;  ///< input i is an initializer
  std::unique_ptr<NodeCache> cache = std::make_unique<NodeCache>();
  /// Without an observer: a Conv or Gemm applies the Relu/Clip node `fused_into` (its output's only
  /// reader) itself and writes that node's output; the Relu/Clip node then only releases values.
  int fused_into = -1;
  bool fused_away = false;
  KernelContext::Activation activation;
  /// Without an observer, or with RunOptions::observe_fast_paths (the quantizer keeps a LayerNorm
  /// float as one operator, so calibration needs only its output): the first node of LayerNorm
  /// pattern layer_norms[layer_norm] computes the whole pattern; its other nodes are
  /// layer_norm_member.
  int layer_norm = -1;
  bool layer_norm_member = false;
};

GraphInput describe_input(const onnx::ValueInfoProto& vi) {
  GraphInput in;
  in.name = vi.name();
  const auto& tt = vi.type().tensor_type();
  in.dtype = static_cast<DType>(tt.elem_type());
  if (std::string(dtype_name(in.dtype)) == "undefined")  // complex, ...
    fail(ErrorCode::kUnsupported, "graph input '" + vi.name() + "': unsupported data type " +
                                      std::to_string(tt.elem_type()));
  const InputShape shape = input_shape(vi);
  in.has_shape = shape.has_shape;
  in.dims = shape.dims;
  return in;
}

/// Everything run() needs, fixed at create().
struct PreparedModel {
  int64_t opset = 0;
  std::vector<GraphInput> inputs;
  std::vector<std::string> input_names, output_names;
  TensorMap initializers;
  std::vector<PreparedNode> nodes;  ///< topological order
  /// Conv chains (conv_chain.h), used when nobody observes intermediate values; chain_of[i] is
  /// the chain that computes node i, or -1.
  std::vector<ConvChain> chains;
  std::vector<int> chain_of;
  /// LayerNorm written out as nodes (layer_norm_pattern.h), run as one kernel without an observer.
  std::vector<LayerNormPattern> layer_norms;
  /// Sequence and optional values (value.h) by name, with their ONNX type: graph inputs of such a
  /// type and the outputs of the Identity nodes that forward them (no operator the executor
  /// implements makes one). They never enter the tensor loop: run_values keeps them in a side
  /// table and applies `forwards` ((from, to) per Identity node, in topological order).
  std::map<std::string, onnx::TypeProto> value_types;
  std::vector<std::pair<std::string, std::string>> forwards;
};

/// Rejects declared types the executor cannot hold (maps, sparse tensors, unknown element types),
/// down to the element type of sequences and optionals; `what` names the value.
void check_value_type(const onnx::TypeProto& type, const std::string& what) {
  switch (value_kind_of(type, what)) {
    case ValueKind::kTensor:
      if (type.tensor_type().elem_type() != 0 &&
          std::string(dtype_name(static_cast<DType>(type.tensor_type().elem_type()))) == "undefined")
        fail(ErrorCode::kUnsupported,
             what + ": unsupported data type " + std::to_string(type.tensor_type().elem_type()));
      break;
    case ValueKind::kSequence:
      if (type.sequence_type().has_elem_type()) check_value_type(type.sequence_type().elem_type(), what + " element");
      break;
    case ValueKind::kOptional:
      if (type.optional_type().has_elem_type()) check_value_type(type.optional_type().elem_type(), what + " contents");
      break;
  }
}

/// Checks a value given for a graph input against its declared type: the kinds all the way down,
/// and tensor element types where declared. Errors name the input and the element.
void check_value(const Value& v, const onnx::TypeProto& type, const std::string& what) {
  if (type.value_case() == onnx::TypeProto::VALUE_NOT_SET) return;  // an element type left undeclared
  const ValueKind want = value_kind_of(type, what);
  if (v.kind() != want)
    fail(ErrorCode::kInvalidArgument, what + ": expected a value of type " + value_kind_name(want) +
                                          ", got one of type " + value_kind_name(v.kind()));
  switch (want) {
    case ValueKind::kTensor: {
      const auto dtype = static_cast<DType>(type.tensor_type().elem_type());
      if (dtype != DType::kUndefined && v.tensor().dtype() != dtype)
        fail(ErrorCode::kInvalidArgument, what + ": expected " + dtype_name(dtype) + ", got " +
                                              dtype_name(v.tensor().dtype()));
      break;
    }
    case ValueKind::kSequence:
      for (size_t i = 0; i < v.elements().size(); ++i)
        check_value(v.elements()[i], type.sequence_type().elem_type(), what + " element " + std::to_string(i));
      break;
    case ValueKind::kOptional:
      if (v.has_value()) check_value(v.contents(), type.optional_type().elem_type(), what + " contents");
      break;
  }
}

/// Moves the Identity nodes that forward a sequence or optional value out of the tensor graph into
/// impl->forwards. Any other node reading such a value is an error naming the node and the input.
void take_value_forwards(PreparedModel* impl) {
  std::vector<PreparedNode> tensor_nodes;
  for (PreparedNode& p : impl->nodes) {
    const bool identity = p.node.op_type() == "Identity";  // default domain: check_node ran
    for (const std::string& in : p.node.input()) {
      auto it = impl->value_types.find(in);
      if (it == impl->value_types.end() || identity) continue;
      fail(ErrorCode::kInvalidArgument, node_label(p.node) + ": input '" + in + "' is a value of type " +
                                            value_kind_name(value_kind_of(it->second, in)) +
                                            "; only Identity takes sequence or optional values");
    }
    if (identity && impl->value_types.count(p.node.input(0))) {
      const onnx::TypeProto type = impl->value_types.at(p.node.input(0));
      impl->value_types[p.node.output(0)] = type;
      impl->forwards.emplace_back(p.node.input(0), p.node.output(0));
      continue;
    }
    tensor_nodes.push_back(std::move(p));
  }
  impl->nodes = std::move(tensor_nodes);
}

/// A graph output declared as a sequence or optional must be one, and one declared as a tensor
/// must be a tensor (ONNX converts neither way implicitly). An undeclared type is not checked.
void check_output_kind(const PreparedModel& im, const onnx::ValueInfoProto& out) {
  if (out.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) return;
  const std::string what = "graph output '" + out.name() + "'";
  check_value_type(out.type(), what);
  auto it = im.value_types.find(out.name());
  const ValueKind declared = value_kind_of(out.type(), what);
  const ValueKind actual = it == im.value_types.end() ? ValueKind::kTensor : value_kind_of(it->second, what);
  if (declared != actual)
    fail(ErrorCode::kInvalidArgument, what + ": declared of type " + value_kind_name(declared) +
                                          ", but the graph makes a value of type " + value_kind_name(actual));
}

/// Kahn's algorithm over value names. Errors: a node input nobody produces, a cycle.
std::vector<PreparedNode> topological_order(const onnx::GraphProto& graph, const std::set<std::string>& available) {
  const int n = graph.node_size();
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < n; ++i)
    for (const std::string& out : graph.node(i).output()) {
      if (out.empty()) continue;
      if (available.count(out) || !producer.emplace(out, i).second)
        fail(ErrorCode::kInvalidArgument,
             node_label(graph.node(i)) + ": output '" + out + "' is already defined elsewhere in the graph");
    }
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> consumers(n);
  for (int i = 0; i < n; ++i) {
    const onnx::NodeProto& node = graph.node(i);
    for (const std::string& in : node.input()) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        fail(ErrorCode::kNotFound, node_label(node) + ": input '" + in +
                                       "' is not a graph input, an initializer or the output of any node");
      ++pending[i];
      consumers[it->second].push_back(i);
    }
  }
  std::vector<int> ready, order;
  for (int i = n - 1; i >= 0; --i)
    if (pending[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    const int i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (int c : consumers[i])
      if (--pending[c] == 0) ready.push_back(c);
  }
  if (static_cast<int>(order.size()) != n)
    for (int i = 0; i < n; ++i)
      if (pending[i] > 0) fail(ErrorCode::kInvalidArgument, node_label(graph.node(i)) + ": is part of a cycle");
  std::vector<PreparedNode> nodes;
  for (int i : order) {
    nodes.emplace_back();
    nodes.back().node = graph.node(i);
  }
  return nodes;
}

void check_node(const PreparedNode& p, int64_t opset) {
  const onnx::NodeProto& node = p.node;
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    fail(ErrorCode::kUnsupported, node_label(node) + ": operator domain '" + node.domain() +
                                      "' is not supported by the reference executor");
  if (!p.op)
    fail(ErrorCode::kUnsupported, node_label(node) + ": operator not supported by the reference executor");
  if (node.input_size() < p.op->min_inputs || node.input_size() > p.op->max_inputs)
    fail(ErrorCode::kInvalidArgument, node_label(node) + ": has " + std::to_string(node.input_size()) +
                                          " inputs, expected " + std::to_string(p.op->min_inputs) +
                                          (p.op->max_inputs != p.op->min_inputs
                                               ? " to " + std::to_string(p.op->max_inputs)
                                               : std::string()));
  if (node.output_size() < 1 || node.output_size() > p.op->max_outputs)
    fail(ErrorCode::kUnsupported, node_label(node) + ": has " + std::to_string(node.output_size()) +
                                          " outputs, at most " + std::to_string(p.op->max_outputs) + " supported");
  if (p.op->check) {
    try {
      p.op->check(node, opset);
    } catch (const Error& e) {
      throw Error(e.code(), node_label(node) + ": " + e.what());
    }
  }
}

void prepare(const onnx::ModelProto& model, PreparedModel* impl) {
  impl->opset = onnx_opset(model);
  if (impl->opset > 17)
    fail(ErrorCode::kUnsupported, "model opset " + std::to_string(impl->opset) +
                                      " is newer than the reference executor supports (17)");
  const onnx::GraphProto& graph = model.graph();
  std::set<std::string> available{""};
  for (const auto& init : graph.initializer()) {
    impl->initializers[init.name()] = tensor_from_proto(init);
    available.insert(init.name());
  }
  for (const auto& vi : graph.input()) {
    if (impl->initializers.count(vi.name())) continue;  // an initializer listed as input (IR < 4)
    if (!vi.type().has_tensor_type()) {  // a sequence or optional (value.h), or an error
      check_value_type(vi.type(), "graph input '" + vi.name() + "'");
      impl->value_types[vi.name()] = vi.type();
      impl->input_names.push_back(vi.name());
      available.insert(vi.name());
      continue;
    }
    impl->inputs.push_back(describe_input(vi));
    impl->input_names.push_back(vi.name());
    available.insert(vi.name());
  }
  impl->nodes = topological_order(graph, available);
  for (PreparedNode& p : impl->nodes) {
    p.op = find_op(p.node.op_type());
    check_node(p, impl->opset);
    for (const auto& in : p.node.input()) p.constant_inputs.push_back(impl->initializers.count(in) > 0);
  }
  take_value_forwards(impl);
  std::map<std::string, ValueFacts> facts;  // element types and ranks known before any input
  for (const auto& [name, t] : impl->initializers) facts[name] = {t.dtype(), static_cast<int64_t>(t.rank())};
  for (const GraphInput& in : impl->inputs)
    facts[in.name] = {in.dtype, in.has_shape ? static_cast<int64_t>(in.dims.size()) : int64_t{-1}};
  std::vector<const onnx::NodeProto*> order;
  for (const PreparedNode& p : impl->nodes) order.push_back(&p.node);
  check_types_and_ranks(order, std::move(facts));
  std::set<std::string> produced;
  for (const auto& p : impl->nodes)
    for (const auto& out : p.node.output()) produced.insert(out);
  for (const auto& [from, to] : impl->forwards) produced.insert(to);
  for (const auto& out : graph.output()) {
    if (!produced.count(out.name()) && !available.count(out.name()))
      fail(ErrorCode::kNotFound, "graph output '" + out.name() + "' is not produced by any node");
    impl->output_names.push_back(out.name());
    check_output_kind(*impl, out);
  }
  // Free intermediate values after their last consumer: large batches of feature maps add up.
  const std::set<std::string> keep(impl->output_names.begin(), impl->output_names.end());
  std::map<std::string, size_t> last_use;
  for (size_t i = 0; i < impl->nodes.size(); ++i)
    for (const auto& in : impl->nodes[i].node.input())
      if (!in.empty() && !keep.count(in) && !impl->initializers.count(in)) last_use[in] = i;
  for (const auto& [name, i] : last_use) impl->nodes[i].release.push_back(name);
  std::vector<const onnx::NodeProto*> all;
  for (const PreparedNode& p : impl->nodes) all.push_back(&p.node);
  impl->chains = ConvChain::find(all, impl->opset, impl->initializers, impl->output_names);
  impl->chain_of.assign(impl->nodes.size(), -1);
  for (const ConvChain::Fusion& f : ConvChain::fusions(all, impl->opset, impl->initializers, impl->output_names)) {
    impl->nodes[f.conv].fused_into = static_cast<int>(f.activation);
    impl->nodes[f.conv].activation = {true, f.lo, f.hi};
    impl->nodes[f.activation].fused_away = true;
  }
  for (size_t c = 0; c < impl->chains.size(); ++c)
    for (size_t i : impl->chains[c].nodes()) impl->chain_of[i] = static_cast<int>(c);
  for (LayerNormPattern& ln : find_layer_norm_patterns(all, impl->initializers, impl->output_names)) {
    bool free = true;  // no node in a Conv chain or another fusion
    for (size_t k : ln.nodes)
      free = free && impl->chain_of[k] < 0 && impl->nodes[k].fused_into < 0 && !impl->nodes[k].fused_away &&
             !impl->nodes[k].layer_norm_member;
    if (!free) continue;
    impl->nodes[ln.nodes[0]].layer_norm = static_cast<int>(impl->layer_norms.size());
    for (size_t k = 1; k < ln.nodes.size(); ++k) impl->nodes[ln.nodes[k]].layer_norm_member = true;
    impl->layer_norms.push_back(std::move(ln));
  }
}

void check_input(const GraphInput& want, const Tensor& t) {
  if (t.dtype() != want.dtype)
    fail(ErrorCode::kInvalidArgument, "input '" + want.name + "': expected " + dtype_name(want.dtype) + ", got " +
                                          dtype_name(t.dtype()));
  if (!want.has_shape) return;
  bool ok = t.rank() == want.dims.size();
  for (size_t i = 0; ok && i < want.dims.size(); ++i) ok = want.dims[i] < 0 || want.dims[i] == t.dim(i);
  if (!ok) {
    std::string dims;
    for (int64_t d : want.dims) dims += (dims.empty() ? "" : ", ") + (d < 0 ? std::string("?") : std::to_string(d));
    fail(ErrorCode::kInvalidArgument, "input '" + want.name + "': expected shape [" + dims + "], got " +
                                          shape_str(t.shape()));
  }
}

}  // namespace

struct Executor::Impl : PreparedModel {};

Expected<Executor> Executor::create(const onnx::ModelProto& model) {
  return capture([&] {
    Executor e;
    auto impl = std::make_shared<Impl>();
    prepare(model, impl.get());
    e.impl_ = std::move(impl);
    return e;
  });
}

const std::vector<std::string>& Executor::input_names() const { return impl_->input_names; }
const std::vector<std::string>& Executor::output_names() const { return impl_->output_names; }

Expected<TensorMap> Executor::run(const TensorMap& inputs, const RunOptions& options) const {
  const PreparedModel& im = *impl_;
  for (const std::string& name : im.input_names) {  // every sequence or optional comes from an input
    auto it = im.value_types.find(name);
    if (it != im.value_types.end())
      return Error(ErrorCode::kInvalidArgument, "input '" + name + "' is a value of type " +
                                                    value_kind_name(value_kind_of(it->second, name)) +
                                                    ": run this model with Executor::run_values");
  }
  return run_tensors(inputs, options);
}

Expected<ValueMap> Executor::run_values(const ValueMap& inputs, const RunOptions& options) const {
  const PreparedModel& im = *impl_;
  TensorMap tensors;
  ValueMap side;  // the sequence and optional values
  Expected<bool> split = capture([&] {
    for (const auto& [name, v] : inputs) {
      if (std::find(im.input_names.begin(), im.input_names.end(), name) == im.input_names.end())
        fail(ErrorCode::kNotFound, "input '" + name + "' is not an input of the model");
      auto type = im.value_types.find(name);
      if (type != im.value_types.end()) {
        check_value(v, type->second, "input '" + name + "'");
        side[name] = v;
      } else if (!v.is_tensor()) {
        fail(ErrorCode::kInvalidArgument, "input '" + name + "': expected a value of type tensor, got one of type " +
                                              value_kind_name(v.kind()));
      } else {
        tensors[name] = v.tensor();
      }
    }
    for (const std::string& name : im.input_names)
      if (im.value_types.count(name) && !inputs.count(name))
        fail(ErrorCode::kNotFound, "input '" + name + "' was not given");
    return true;
  });
  if (!split) return split.error();
  Expected<TensorMap> out = run_tensors(tensors, options);
  if (!out) return out.error();
  return capture([&] {
    for (const auto& [from, to] : im.forwards) side[to] = side.at(from);
    ValueMap result;
    for (const std::string& name : im.output_names) {
      auto v = side.find(name);
      result[name] = v != side.end() ? v->second : Value(out->at(name));
    }
    return result;
  });
}

Expected<TensorMap> Executor::run_tensors(const TensorMap& inputs, const RunOptions& options) const {
  return capture([&] {
    const PreparedModel& im = *impl_;
    std::unordered_map<std::string, Tensor> values;
    for (const auto& [name, t] : inputs)
      if (std::find(im.input_names.begin(), im.input_names.end(), name) == im.input_names.end())
        fail(ErrorCode::kNotFound, "input '" + name + "' is not an input of the model");
    for (const GraphInput& gi : im.inputs) {
      auto it = inputs.find(gi.name);
      if (it == inputs.end()) fail(ErrorCode::kNotFound, "input '" + gi.name + "' was not given");
      check_input(gi, it->second);
      values[gi.name] = it->second;
      if (options.observe) options.observe(gi.name, it->second);
    }
    auto lookup = [&](const std::string& name) -> const Tensor* {
      if (name.empty()) return nullptr;
      auto v = values.find(name);
      if (v != values.end()) return &v->second;
      auto i = im.initializers.find(name);
      if (i != im.initializers.end()) return &i->second;
      fail(ErrorCode::kInternal, "value '" + name + "' missing at run time");
    };
    const bool fuse = !options.observe || options.observe_fast_paths;
    const bool fuse_layer_norm = fuse;
    auto run_node = [&](const PreparedNode& p) {
      if ((fuse && p.fused_away) || (fuse_layer_norm && p.layer_norm_member)) {
        for (const auto& name : p.release) values.erase(name);
        return;
      }
      if (fuse_layer_norm && p.layer_norm >= 0) {
        const LayerNormPattern& ln = im.layer_norms[p.layer_norm];
        Tensor y;
        try {
          y = run_layer_norm_pattern(ln, *lookup(ln.x));
        } catch (const Error& e) {
          throw Error(e.code(), node_label(p.node) + ": " + e.what());
        }
        for (const auto& name : p.release) values.erase(name);
        if (options.observe) options.observe(ln.y, y);
        values[ln.y] = std::move(y);
        return;
      }
      std::vector<Tensor> outs(p.node.output_size());
      KernelContext ctx{p.node, im.opset, {}, outs, p.cache.get(), p.constant_inputs};
      if (fuse) ctx.activation = p.activation;
      for (const auto& in : p.node.input()) {
        ctx.inputs.push_back(lookup(in));
        // Values read for the last time here (once) may be overwritten by the kernel.
        const bool last = std::count(p.release.begin(), p.release.end(), in) &&
                          std::count(p.node.input().begin(), p.node.input().end(), in) == 1;
        ctx.reusable_inputs.push_back(last ? &values.at(in) : nullptr);
      }
      try {
        check_element_types(*p.op, ctx);
        p.op->run(ctx);
      } catch (const Error& e) {
        throw Error(e.code(), node_label(p.node) + ": " + e.what());
      }
      for (const auto& name : p.release) values.erase(name);
      for (int i = 0; i < p.node.output_size(); ++i) {
        const std::string& name = fuse && p.fused_into >= 0 ? im.nodes[p.fused_into].node.output(0) : p.node.output(i);
        if (name.empty()) continue;
        if (options.observe) options.observe(name, outs[i]);
        values[name] = std::move(outs[i]);
      }
    };
    // Without an observer, a Conv chain runs as one step when its last node comes (its nodes are
    // consecutive but for Constant nodes, which run as usual); when its fast path does not apply
    // to these inputs, its nodes run one by one there.
    const bool chains = fuse;
    for (size_t i = 0; i < im.nodes.size(); ++i) {
      const int c = chains ? im.chain_of[i] : -1;
      if (c < 0) {
        run_node(im.nodes[i]);
        continue;
      }
      const ConvChain& chain = im.chains[c];
      if (chain.nodes().back() != i) continue;
      std::vector<std::pair<std::string, Tensor>> produced;
      // With an observer the chain observes each value it makes: whole, in the order it makes them,
      // or with RunOptions::observe_part in parts, chunk by chunk.
      const bool parts = options.observe && options.observe_fast_paths && options.observe_part;
      if (chain.run(lookup, &produced, options.observe && !parts ? &options.observe : nullptr,
                    parts ? &options.observe_part : nullptr)) {
        for (size_t k : chain.nodes())
          for (const auto& name : im.nodes[k].release) values.erase(name);
        for (auto& [name, t] : produced) values[name] = std::move(t);
      } else {
        for (size_t k : chain.nodes()) run_node(im.nodes[k]);
      }
    }
    TensorMap result;
    for (const auto& name : im.output_names)
      if (!im.value_types.count(name)) result[name] = *lookup(name);
    return result;
  });
}

}  // namespace anvil::ref
