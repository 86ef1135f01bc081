/// QuantizeLinear/DequantizeLinear insertion (the TFLite int8 scheme in ONNX QDQ form).
///
/// The pass works on the original tensor names in two steps:
///  1. choose the int8 parameters of every float activation, in topological order (Concat-joined
///     tensors first get one common range);
///  2. rebuild the node list in the same order: before each node, the DequantizeLinear of its
///     quantized constants (per-channel int8 weights, int32 biases, int8 Add operands); the node
///     reads the DequantizeLinear output of its quantized inputs; each quantized output is
///     followed by Q -> DQ.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/requant.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/patterns.h"
#include "graph.h"
#include "passes.h"
#include "qdq.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {

const std::set<std::string> kFusableProducers = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"};
const std::set<std::string> kFusedActivations = {"Relu", "Clip"};
/// Pure data movement or max selection: the output keeps the input's parameters.
const std::set<std::string> kSameScale = {"MaxPool", "AveragePool", "Reshape", "Flatten", "Transpose",
                                          "Squeeze", "Unsqueeze", "Slice", "Pad", "Resize"};
/// Operators with an int8 form (the integer lowering, or a fixed output scale); others stay float.
/// (Mul(x, Sigmoid(x)) and Mul(x, HardSigmoid(x)) are quantized as their parts.)
const std::set<std::string> kQuantizable = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Relu",
                                            "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "MaxPool",
                                            "AveragePool", "GlobalAveragePool", "Reshape", "Flatten",
                                            "Transpose", "Squeeze", "Unsqueeze", "Slice", "Pad", "Resize",
                                            "Concat", "Sigmoid", "Softmax", "Tanh"};

/// A constant operand replaced by int8/int32 values behind a DequantizeLinear.
struct QuantizedConstant {
  std::string dq_output;
  std::vector<onnx::NodeProto> dq_nodes;  ///< the DequantizeLinear to emit before the node
};

/// The Add that adds a MatMul's bias (QdqBuilder::find_bias_adds).
struct BiasAdd {
  int node = -1;   ///< the Add's index
  int input = -1;  ///< which of its inputs is the bias
};

/// "quantizer: node 'name' (Op), constant 'input'": what errors about a node's constant input name.
std::string constant_label(const onnx::NodeProto& n, int input) {
  return "quantizer: node " + graph::node_label(n) + ", constant '" + n.input(input) + "'";
}

/// Warns once per tensor name (per process) that its calibrated range is below what kMinScale resolves.
void warn_floored(const std::string& t, Range r) {
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (!warned.insert(t).second) return;
  log().warn("quantizer: tensor '{}' has the calibrated range [{:g}, {:g}]; its scale is floored at {:g}, so it "
             "quantizes to (nearly) all zeros", t, r.min, r.max, kMinScale);
}

class QdqBuilder {
 public:
  QdqBuilder(const onnx::ModelProto& model, std::map<std::string, Range> ranges, const QuantizeOptions& options,
             const Calibration* stats)
      : model_(model), symmetric_(is_symmetric(options.method)),
        qdq_between_float_nodes_(options.qdq_between_float_nodes),
        extend_float_regions_(options.extend_float_regions), float_residual_sums_(options.float_residual_sums),
        exclude_nodes_(options.exclude_nodes),
        names_(model_.graph()), ranges_(std::move(ranges)),
        stats_(options.bias_correction ? stats : nullptr) {
    if (options.bias_correction && !stats)
      fail(ErrorCode::kInvalidArgument, "bias correction needs the calibration statistics, not only ranges");
    passes::upgrade_opset(model_);
    const onnx::GraphProto& g = model_.graph();
    for (const auto& v : g.input()) record_type(v);
    for (const auto& v : g.output()) record_type(v);
    for (const auto& v : g.value_info()) record_type(v);
    if (const onnx::NodeProto* n = first_qdq_node(model_))
      fail(ErrorCode::kInvalidArgument, "node " + graph::node_label(*n) + ": the model is already quantized");
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      if (!n.domain().empty() && n.domain() != "ai.onnx")
        fail(ErrorCode::kUnsupported, "node " + graph::node_label(n) + ": domain '" + n.domain() + "' not supported");
      for (const auto& in : n.input()) consumers_[in].push_back(i);
      for (const auto& out : n.output()) producers_[out] = i;
    }
  }

  /// The tensors whose parameters come from their calibrated range, in topological order.
  std::vector<std::string> calibrated_tensors() {
    choose_activation_params();
    return calibrated_order_;
  }

  onnx::ModelProto run(std::vector<std::string>* float_nodes) {
    choose_activation_params();
    rebuild();
    passes::remove_dead_initializers(model_);
    passes::infer_shapes(model_);
    check_onnx(model_, "quantized model");
    if (float_nodes) *float_nodes = float_nodes_;
    return std::move(model_);
  }

 private:
  void record_type(const onnx::ValueInfoProto& v) {
    if (v.type().has_tensor_type()) elem_type_[v.name()] = v.type().tensor_type().elem_type();
  }

  /// A float activation: typed float by shape inference, or (untyped) seen by calibration.
  bool is_float_activation(const std::string& t) const {
    if (t.empty() || graph::find_initializer(model_.graph(), t)) return false;
    auto it = elem_type_.find(t);
    if (it != elem_type_.end()) return it->second == onnx::TensorProto::FLOAT;
    return ranges_.count(t) > 0;
  }

  /// Conv/ConvTranspose/Gemm/MatMul/Add output read only by a Relu/Clip: the activation is fused, so the
  /// quantization point is after it. Also a MatMul output read only by its bias Add (find_bias_adds).
  bool is_fused(const onnx::NodeProto& producer, const std::string& t) const {
    if (!kFusableProducers.count(producer.op_type()) || graph::is_graph_output(model_.graph(), t)) return false;
    if (producer.op_type() == "MatMul" && bias_of_.count(t)) return true;
    auto it = consumers_.find(t);
    return it != consumers_.end() && it->second.size() == 1 &&
           kFusedActivations.count(model_.graph().node(it->second[0]).op_type());
  }

  /// Marks the nodes that compute a float activation in float: those outside kQuantizable, the nodes
  /// of a LayerNorm written out as nodes, those --exclude-nodes matches and, with
  /// QuantizeOptions::extend_float_regions, an Add/Mul of a constant and a float node's output.
  /// Records the float activations they produce.
  void mark_float_nodes() {
    const onnx::GraphProto& g = model_.graph();
    float_node_.assign(static_cast<size_t>(g.node_size()), false);
    std::regex excluded;
    if (!exclude_nodes_.empty()) {
      try {
        excluded = std::regex(exclude_nodes_, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        fail(ErrorCode::kInvalidArgument,
             "exclude-nodes pattern '" + exclude_nodes_ + "' is not a valid regular expression (" + e.what() + ")");
      }
    }
    // A LayerNorm written out as nodes is one operator without an int8 form (LayerNormalization):
    // its Add eps, Mul scale and Add bias stay float with the rest, so it is quantized only at its
    // input and output, as the executor runs it (one kernel) and as PyTorch's quantized layer_norm
    // does. The matcher is the executor's (anvil/reference/patterns.h).
    std::set<int> layer_norm;
    for (const std::vector<int>& pattern : ref::layer_norm_nodes(g)) {
      layer_norm.insert(pattern.begin(), pattern.end());
      for (size_t k = 0; k + 1 < pattern.size(); ++k) layer_norm_inside_.insert(g.node(pattern[k]).output(0));
    }
    // A function of one activation written as element-wise nodes and one-element constants, one of
    // them without an int8 form (GELU: x * (1 + erf(x / sqrt 2)) * 0.5), is one operator too: all
    // float, quantized at its input and output only, as the lowering runs it (one table, no
    // rounding inside; reference/src/lower_qdq.cc).
    unary_ = unary_float_regions();
    const std::set<int>& unary = unary_;
    // A Relu/Clip fused into a producer that stays float (is_fused) stays float too when the value
    // between them has no calibrated range: the FP32 fast path runs a Conv/Gemm and its activation
    // as one kernel and calibration does not observe that value (calibrate.cc), so the activation
    // could not be quantized at its input.
    std::map<int, int> fused_producer;  // activation node -> its producer
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      if (n.output_size() >= 1 && is_fused(n, n.output(0))) fused_producer[consumers_.at(n.output(0))[0]] = i;
    }
    bool excluded_any = false;
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      const bool exclude = !exclude_nodes_.empty() && std::regex_search(n.name(), excluded);
      excluded_any = excluded_any || exclude;
      // (Index and shape arithmetic on int64 tensors is not quantization's business.)
      bool float_compute = false;
      for (const auto& out : n.output()) float_compute = float_compute || is_float_activation(out);
      bool stays_float = exclude || !kQuantizable.count(n.op_type()) || layer_norm.count(i) || unary.count(i);
      auto producer = fused_producer.find(i);
      if (producer != fused_producer.end() && float_node_[static_cast<size_t>(producer->second)] &&
          !ranges_.count(n.input(0)))
        stays_float = true;
      if (extend_float_regions_ && (n.op_type() == "Add" || n.op_type() == "Mul") && n.input_size() == 2)
        for (int k = 0; k < 2; ++k)
          stays_float = stays_float || (graph::find_initializer(g, n.input(k)) && float_produced_.count(n.input(1 - k)));
      if (!stays_float || !float_compute) continue;
      float_node_[static_cast<size_t>(i)] = true;
      for (const auto& out : n.output())
        if (is_float_activation(out)) float_produced_.insert(out);
    }
    if (!exclude_nodes_.empty() && !excluded_any)
      fail(ErrorCode::kInvalidArgument,
           "exclude-nodes pattern '" + exclude_nodes_ + "' matches no node name of the model");
  }

  /// Each function of one float activation x that starts at a node without an int8 form and is
  /// written as element-wise nodes and one-element constants (ref::unary_function_nodes, GELU's
  /// x * (1 + erf(x / sqrt 2)) * 0.5) with one value leaving it: its nodes.
  std::set<int> unary_float_regions() const {
    const onnx::GraphProto& g = model_.graph();
    std::map<std::string, Tensor> one_element;  // the float initializers of one element
    for (const onnx::TensorProto& t : g.initializer()) {
      int64_t n = 1;
      for (int64_t d : t.dims()) n *= d;
      if (t.data_type() == onnx::TensorProto::FLOAT && n == 1) one_element.emplace(t.name(), tensor_from_proto(t));
    }
    const ref::ConstantLookup constant = [&](const std::string& t) -> const Tensor* {
      auto it = one_element.find(t);
      return it == one_element.end() ? nullptr : &it->second;
    };
    std::set<int> found;
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& seed = g.node(i);
      if (found.count(i) || kQuantizable.count(seed.op_type()) || seed.output_size() != 1 ||
          !is_float_activation(seed.output(0)))
        continue;
      std::string x;  // the one input that is not a constant
      bool one_input = true;
      for (const auto& in : seed.input()) {
        if (constant(in)) continue;
        one_input = one_input && (x.empty() || x == in);
        x = in;
      }
      if (!one_input || !is_float_activation(x)) continue;
      const std::vector<int> region = ref::unary_function_nodes(g, i, x, constant, known_rank(x));
      if (!region.empty() && ref::values_leaving(g, region).size() == 1) found.insert(region.begin(), region.end());
    }
    return found;
  }

  /// Output t of float node n needs Q -> DQ only where it leaves the float region: a graph output,
  /// or read by a node that is quantized. (Unless QuantizeOptions::qdq_between_float_nodes.)
  bool leaves_float_region(const std::string& t) const {
    // Inside a LayerNorm nothing is between two operators (and calibration does not observe it).
    if (layer_norm_inside_.count(t)) return false;
    if (qdq_between_float_nodes_ || graph::is_graph_output(model_.graph(), t)) return true;
    auto it = consumers_.find(t);
    if (it == consumers_.end()) return false;
    for (int c : it->second)
      if (!float_node_[static_cast<size_t>(c)]) return true;
    return false;
  }

  QuantParams calibrated(const std::string& t, const std::string& what) const {
    auto it = ranges_.find(t);
    if (it == ranges_.end())
      fail(ErrorCode::kNotFound, "no calibration statistics for tensor '" + t + "' (" + what +
                                     "): was the calibration made on this optimized model?");
    calibrated_order_.push_back(t);
    if (scale_is_floored(it->second, symmetric_)) warn_floored(t, it->second);
    return activation_params(it->second, symmetric_);
  }

  /// Concat needs one set of parameters for its inputs and output (TFLite's rule; the int8 concat
  /// is then a copy). Every tensor joined by Concat nodes, transitively, gets the union of their
  /// ranges. A joined tensor produced by a same-scale op keeps its producer's input parameters
  /// (a requantization remains there).
  void unify_concat_ranges() {
    const onnx::GraphProto& g = model_.graph();
    std::map<std::string, std::string> parent;  // union-find over tensor names
    std::function<std::string(const std::string&)> root = [&](const std::string& t) -> std::string {
      auto it = parent.find(t);
      if (it == parent.end() || it->second == t) return t;
      return it->second = root(it->second);
    };
    for (const auto& n : g.node()) {
      if (n.op_type() != "Concat" || !ranges_.count(n.output(0))) continue;
      for (const auto& in : n.input())
        if (ranges_.count(in)) parent[root(in)] = root(n.output(0));
    }
    std::map<std::string, Range> joined;
    for (const auto& [t, unused] : parent) {
      const Range r = ranges_.at(t);
      auto [it, fresh] = joined.try_emplace(root(t), r);
      it->second = {std::min(it->second.min, r.min), std::max(it->second.max, r.max)};
    }
    for (const auto& [t, unused] : parent) ranges_[t] = joined.at(root(t));
  }

  /// The rank of activation t from shape inference, or -1.
  int known_rank(const std::string& t) const {
    const onnx::GraphProto& g = model_.graph();
    for (const auto* list : {&g.value_info(), &g.input(), &g.output()})
      for (const auto& v : *list)
        if (v.name() == t && v.type().tensor_type().has_shape()) return v.type().tensor_type().shape().dim_size();
    return -1;
  }

  /// The bias of a fully connected layer that the exporter wrote as MatMul + Add (nn.Linear on a
  /// 3-D input): MatMul(x, W) with a constant K x O weight, read only by an Add of a constant with O
  /// values along its last axis (shape [O] or [1, ..., 1, O], no more axes than the product). As
  /// TFLite's FullyConnected and ONNX's Gemm, the bias becomes int32 on the accumulator's scale and
  /// the pair gets one output range: no Q/DQ between the product and the bias.
  void find_bias_adds() {
    const onnx::GraphProto& g = model_.graph();
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& add = g.node(i);
      if (add.op_type() != "Add" || add.input_size() != 2 || float_node_[static_cast<size_t>(i)]) continue;
      for (int k = 0; k < 2; ++k) {
        const onnx::TensorProto* b = graph::find_initializer(g, add.input(k));
        const std::string& product = add.input(1 - k);
        auto producer = producers_.find(product);
        if (!b || b->data_type() != onnx::TensorProto::FLOAT || producer == producers_.end()) continue;
        const onnx::NodeProto& mm = g.node(producer->second);
        const onnx::TensorProto* w = mm.op_type() == "MatMul" && mm.input_size() == 2
                                         ? graph::find_initializer(g, mm.input(1)) : nullptr;
        if (!w || w->dims_size() != 2 || float_node_[static_cast<size_t>(producer->second)] ||
            graph::is_graph_output(g, product) || consumers_.at(product).size() != 1)
          continue;
        const int64_t outputs = w->dims(1);
        bool bias_shape = b->dims_size() >= 1 && b->dims(b->dims_size() - 1) == outputs;
        for (int d = 0; d + 1 < b->dims_size(); ++d) bias_shape = bias_shape && b->dims(d) == 1;
        if (!bias_shape || (b->dims_size() > 1 && b->dims_size() > known_rank(product))) continue;
        bias_of_[product] = {i, k};
        break;
      }
    }
  }

  /// Mul or Div of a quantized activation x by a positive, finite scalar constant c (the 1/sqrt(d)
  /// of attention, GELU's 0.5): returns c (Mul) or 1/c (Div) and sets *x, else 0. Its output takes
  /// x's grid scaled by that factor with x's zero point, so every int8 value maps to itself: the node
  /// adds no rounding, where a calibrated output range would put values already on x's grid onto
  /// another grid (a second rounding, as much noise again as x's own).
  float scalar_factor(int node, std::string* x) const {
    const onnx::GraphProto& g = model_.graph();
    const onnx::NodeProto& n = g.node(node);
    const std::string& op = n.op_type();
    if ((op != "Mul" && op != "Div") || n.input_size() != 2) return 0.0f;
    for (int k = op == "Div" ? 1 : 0; k < 2; ++k) {
      const onnx::TensorProto* c = graph::find_initializer(g, n.input(k));
      const std::string& in = n.input(1 - k);
      if (!c || c->data_type() != onnx::TensorProto::FLOAT || !params_.count(in)) continue;
      // A float node reads a float node's output as it is, not on its grid (rebuild).
      if (float_node_[static_cast<size_t>(node)] && float_produced_.count(in) && !qdq_between_float_nodes_) continue;
      const Tensor t = tensor_from_proto(*c);
      if (t.numel() != 1) continue;
      const float v = t.data<float>()[0];
      if (!std::isfinite(v) || v <= 0.0f) continue;
      const float factor = op == "Mul" ? v : 1.0f / v;
      if (!std::isfinite(factor) || factor <= 0.0f) continue;
      *x = in;
      return factor;
    }
    return 0.0f;
  }

  /// False for the same-scale ops whose output can leave the input's range, which then get their
  /// own calibrated parameters (a requantization): a cubic Resize (its kernel overshoots) and a
  /// constant Pad whose value the input's parameters cannot represent (it would be clamped).
  bool stays_in_input_range(const onnx::NodeProto& n) const {
    if (n.op_type() == "Resize") return graph::attr_string(n, "mode", "nearest") != "cubic";
    if (n.op_type() != "Pad" || graph::attr_string(n, "mode", "constant") != "constant") return true;
    float value = graph::attr_float(n, "value", 0.0f);  // opset < 11
    if (n.input_size() > 2 && !n.input(2).empty()) {
      const onnx::TensorProto* c = graph::find_initializer(model_.graph(), n.input(2));
      if (!c || c->data_type() != onnx::TensorProto::FLOAT) return true;  // the lowering says what it takes
      const Tensor t = tensor_from_proto(*c);
      if (t.numel() != 1) return true;
      value = t.data<float>()[0];
    }
    const QuantParams& in = params_.at(n.input(0));
    return value >= math::dequantize(-128, in.scale, in.zero_point) && value <= math::dequantize(127, in.scale, in.zero_point);
  }

  void choose_activation_params() {
    const onnx::GraphProto& g = model_.graph();
    mark_float_nodes();
    find_bias_adds();
    unify_concat_ranges();
    for (const auto& in : g.input())
      if (is_float_activation(in.name())) params_[in.name()] = calibrated(in.name(), "graph input");
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      const std::string& op = n.op_type();
      const bool float_node = float_node_[static_cast<size_t>(i)];
      if (float_node) float_nodes_.push_back(graph::node_label(n));
      for (const auto& out : n.output()) {
        if (!is_float_activation(out)) continue;
        if (float_node && !leaves_float_region(out)) continue;  // float -> float: no Q/DQ
        if (!float_node && is_fused(n, out)) continue;
        std::string x;
        const float factor = scalar_factor(i, &x);
        if (kSameScale.count(op) && params_.count(n.input(0)) && stays_in_input_range(n)) {
          params_[out] = params_.at(n.input(0));
        } else if (factor > 0.0f) {
          const QuantParams& in = params_.at(x);
          params_[out] = QuantParams{std::max(in.scale * factor, kMinScale), in.zero_point};
        } else if (op == "Sigmoid" || op == "Softmax") {
          params_[out] = QuantParams{1.0f / 256.0f, -128};  // [0, 1)
        } else if (op == "Tanh") {
          params_[out] = QuantParams{1.0f / 128.0f, 0};  // [-1, 1)
        } else {
          params_[out] = calibrated(out, "output of node " + graph::node_label(n));
        }
      }
    }
    if (float_residual_sums_) find_float_residual_sums();
  }

  /// QuantizeOptions::float_residual_sums: each Add of two int8 operands (activations or constants)
  /// whose output a float node reads (a residual Add before a LayerNorm) computes in float, on the
  /// DequantizeLinear outputs of its operands, and its float readers read that sum; its int8 readers
  /// and a graph output read Q -> DQ of it, as from the int8 Add (QuantizeLinear of the same exact
  /// sum). Not for a MatMul's bias Add (its int32 bias belongs to the MatMul's accumulator), and the
  /// reader of a function of one activation (unary_float_regions: GELU), which runs as an int8
  /// table, is an int8 reader. Without an int8 reader the sum gets no Q -> DQ.
  void find_float_residual_sums() {
    const onnx::GraphProto& g = model_.graph();
    float_sum_.assign(static_cast<size_t>(g.node_size()), FloatSum::kNone);
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      if (n.op_type() != "Add" || n.input_size() != 2 || float_node_[static_cast<size_t>(i)] ||
          !params_.count(n.output(0)) || bias_add(n))
        continue;
      auto readers = consumers_.find(n.output(0));
      if (readers == consumers_.end()) continue;
      bool float_reader = false, int8_reader = graph::is_graph_output(g, n.output(0));
      for (int c : readers->second) {
        const bool reads_float = float_node_[static_cast<size_t>(c)] && !unary_.count(c);
        float_reader = float_reader || reads_float;
        int8_reader = int8_reader || !reads_float;
      }
      if (!float_reader) continue;
      float_sum_[static_cast<size_t>(i)] = int8_reader ? FloatSum::kAlsoInt8 : FloatSum::kFloatOnly;
      float_nodes_.push_back(graph::node_label(n) + ": float, on its int8 operands, for its float readers");
    }
  }

  // ---- constants -------------------------------------------------------------------------------

  onnx::NodeProto make_node(const std::string& op, std::vector<std::string> inputs, const std::string& output) {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(names_.make(output + "_" + op));
    for (auto& in : inputs) n.add_input(in);
    n.add_output(output);
    return n;
  }

  std::string add_init(const Tensor& t, const std::string& base) {
    const std::string name = names_.make(base);
    graph::set_initializer(*model_.mutable_graph(), t, name);
    return name;
  }

  /// DequantizeLinear(values, scales, zero points [, axis]) of a new initializer.
  QuantizedConstant dequantized_constant(const std::string& base, const Tensor& values, const Tensor& scales,
                                         const Tensor& zero_points, int axis) {
    const std::string v = add_init(values, base + "_quantized");
    const std::string s = add_init(scales, base + "_scale");
    const std::string z = add_init(zero_points, base + "_zero_point");
    QuantizedConstant c;
    c.dq_output = names_.make(base + "_dequantized");
    c.dq_nodes.push_back(make_node("DequantizeLinear", {v, s, z}, c.dq_output));
    if (axis >= 0) graph::set_attr_int(c.dq_nodes.back(), "axis", axis);
    return c;
  }

  /// Per-output-channel weight, each scale at least min_scales' (bias_weight_scales: room for the
  /// int32 bias); returns the scales in `scales`.
  QuantizedConstant quantize_weight(const onnx::NodeProto& n, int axis, const std::vector<float>& min_scales,
                                    std::vector<float>* scales) {
    const Tensor w = graph::float_initializer(model_.graph(), n.input(1), graph::node_label(n));
    ChannelQuantized q = quantize_per_channel(w, axis, min_scales, constant_label(n, 1));
    if (q.raised_channels > 0)
      log().warn("quantizer: {}: the weight scale of {} channel(s) is raised so that the int32 bias fits (the input "
                 "scale is {:g})", graph::node_label(n), q.raised_channels, params_.at(n.input(0)).scale);
    *scales = q.scales;
    const int64_t channels = static_cast<int64_t>(q.scales.size());
    return dequantized_constant(n.input(1), q.values, Tensor::from_vector<float>({channels}, q.scales),
                                Tensor(DType::kInt8, {channels}), axis);
  }

  /// Bias correction (QuantizeOptions::bias_correction): the bias minus the mean output shift that
  /// rounding the weight `w` (per-channel along `axis`, as quantize_weight does) causes, given the
  /// calibrated per-channel mean of the node's input (a MatMul: `axis` 1, means over the input's
  /// last axis). Returns `b` unchanged when the statistics do not fit (no mean recorded, over
  /// another axis, another channel count, Gemm with transA or beta = 0).
  Tensor corrected_bias(const onnx::NodeProto& n, const Tensor& w, int axis, const std::vector<float>& min_scales,
                        Tensor b) const {
    const std::string& op = n.op_type();
    if (!stats_ || (op != "Conv" && op != "Gemm" && op != "MatMul")) return b;
    // Statistics without the means this layer needs (hand-made, or of another model) skip it, said.
    const auto skipped = [&](const std::string& why) {
      log().warn("quantizer: {}: no bias correction, {}", graph::node_label(n), why);
      return b;
    };
    auto it = stats_->tensors.find(n.input(0));
    if (it == stats_->tensors.end() || it->second.channel_mean.empty())
      return skipped("the statistics have no per-channel means of its input '" + n.input(0) + "'");
    // The means must be over the axis the weight reduces: axis 1 for Conv and Gemm, the last for a
    // MatMul (the same axis for a 2-D input).
    const bool last_axis = it->second.channel_axis == -1 || known_rank(n.input(0)) == 2;
    if (op == "MatMul" ? !last_axis : it->second.channel_axis != 1)
      return skipped("the per-channel means of '" + n.input(0) + "' are over another axis");
    const std::vector<double>& mean = it->second.channel_mean;
    const auto wrong_count = [&](int64_t want) {
      return skipped("'" + n.input(0) + "' has " + std::to_string(mean.size()) + " per-channel means, the weight reads " +
                     std::to_string(want) + " channels");
    };
    const ChannelQuantized q = quantize_per_channel(w, axis, min_scales);
    const float* pw = w.data<float>();
    const int8_t* pq = q.values.data<int8_t>();
    const int64_t outputs = static_cast<int64_t>(q.scales.size());
    std::vector<double> shift(static_cast<size_t>(outputs), 0.0);
    double gain = 1.0;  // Gemm: alpha / beta
    if (n.op_type() == "Conv") {
      const int64_t groups = graph::attr_int(n, "group", 1), in_per_group = w.dim(1);
      const int64_t window = w.numel() / (outputs * in_per_group);
      if (outputs % groups) return b;
      if (static_cast<int64_t>(mean.size()) != groups * in_per_group) return wrong_count(groups * in_per_group);
      for (int64_t o = 0; o < outputs; ++o)
        for (int64_t i = 0; i < in_per_group; ++i) {
          const double m = mean[static_cast<size_t>((o / (outputs / groups)) * in_per_group + i)];
          for (int64_t k = 0; k < window; ++k) {
            const int64_t at = (o * in_per_group + i) * window + k;
            shift[static_cast<size_t>(o)] += (pq[at] * static_cast<double>(q.scales[o]) - pw[at]) * m;
          }
        }
    } else {  // Gemm: A [N, K] x W ([O, K] with transB, else [K, O]); MatMul: A [..., K] x W [K, O]
      const float alpha = graph::attr_float(n, "alpha", 1.0f), beta = graph::attr_float(n, "beta", 1.0f);
      const int64_t k_size = w.numel() / outputs;
      if (graph::attr_int(n, "transA", 0) || beta == 0.0f) return b;
      if (static_cast<int64_t>(mean.size()) != k_size) return wrong_count(k_size);
      gain = static_cast<double>(alpha) / beta;
      for (int64_t o = 0; o < outputs; ++o)
        for (int64_t k = 0; k < k_size; ++k) {
          const int64_t at = axis == 0 ? o * k_size + k : k * outputs + o;
          shift[static_cast<size_t>(o)] += (pq[at] * static_cast<double>(q.scales[o]) - pw[at]) * mean[static_cast<size_t>(k)];
        }
    }
    float* pb = b.data<float>();
    for (int64_t o = 0; o < outputs; ++o) pb[o] = static_cast<float>(pb[o] - gain * shift[static_cast<size_t>(o)]);
    return b;
  }

  /// The BiasAdd entry when n is the bias Add of a MatMul, else nullptr.
  const BiasAdd* bias_add(const onnx::NodeProto& n) const {
    if (n.op_type() != "Add" || n.input_size() != 2) return nullptr;
    for (int k = 0; k < 2; ++k) {
      auto it = bias_of_.find(n.input(k));
      if (it != bias_of_.end() && it->second.input == 1 - k &&
          model_.graph().node(it->second.node).output(0) == n.output(0))
        return &it->second;
    }
    return nullptr;
  }

  /// The constant operands of node n, replaced in `inputs` (its input names) by DQ outputs.
  std::vector<onnx::NodeProto> quantize_constants(const onnx::NodeProto& n, std::vector<std::string>* inputs) {
    const onnx::GraphProto& g = model_.graph();
    std::vector<onnx::NodeProto> dq;
    auto take = [&](QuantizedConstant c, int input) {
      (*inputs)[input] = c.dq_output;
      dq.insert(dq.end(), c.dq_nodes.begin(), c.dq_nodes.end());
    };
    const std::string& op = n.op_type();
    const bool has_const_weight = n.input_size() >= 2 && graph::find_initializer(g, n.input(1));
    if ((op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul") && has_const_weight) {
      const Tensor w = graph::float_initializer(g, n.input(1), graph::node_label(n));
      int axis = 0;  // Conv: O x I x KH x KW
      // ConvTranspose: I x O/group x KH x KW, per channel along axis 1. With groups, scale m serves
      // output channel m of every group (g * O/group + m): the finest split a per-axis
      // DequantizeLinear can express for these weights.
      if (op == "ConvTranspose") axis = 1;
      if (op == "Gemm") axis = graph::attr_int(n, "transB", 0) ? 0 : 1;  // [O, K] or [K, O]
      if (op == "MatMul") {
        if (w.rank() != 2) {
          float_nodes_.push_back(graph::node_label(n) + ": weight of rank " + std::to_string(w.rank()));
          return dq;
        }
        axis = 1;  // [K, O]
      }
      auto in_params = params_.find(n.input(0));
      // The bias this weight's scales must leave room for: the node's own (Conv, ConvTranspose,
      // Gemm) or, for a MatMul, its bias Add's.
      std::optional<Tensor> bias;
      if (op != "MatMul" && n.input_size() >= 3 && graph::find_initializer(g, n.input(2))) {
        bias = graph::float_initializer(g, n.input(2), graph::node_label(n));
        check_finite(*bias, constant_label(n, 2));
      } else if (auto add = bias_of_.find(n.output(0)); op == "MatMul" && add != bias_of_.end()) {
        const onnx::NodeProto& a = g.node(add->second.node);
        bias = graph::float_initializer(g, a.input(add->second.input), graph::node_label(a));
        check_finite(*bias, constant_label(a, add->second.input));
      }
      const int64_t w_channels = w.dim(axis);
      const int64_t groups = op == "ConvTranspose" ? graph::attr_int(n, "group", 1) : 1;
      // One bias per output channel; a grouped ConvTranspose's weight scale m serves channel m of every group.
      const bool bias_per_channel = bias && in_params != params_.end() && bias->numel() == w_channels * groups &&
                             (bias->rank() == 1 || (bias->rank() == 2 && bias->dim(0) == 1));
      std::vector<float> min_scales;
      if (bias_per_channel) {
        const std::vector<float> need = bias_weight_scales(*bias, in_params->second.scale);
        min_scales.assign(static_cast<size_t>(w_channels), 0.0f);
        for (size_t c = 0; c < need.size(); ++c)
          min_scales[c % min_scales.size()] = std::max(min_scales[c % min_scales.size()], need[c]);
      }
      std::vector<float> w_scales;
      take(quantize_weight(n, axis, min_scales, &w_scales), 1);
      if (op == "MatMul") {
        weight_scales_[n.output(0)] = w_scales;
        weight_min_scales_[n.output(0)] = min_scales;
      }
      if (op != "MatMul" && bias_per_channel) {
        std::vector<float> out_scales = w_scales;  // one weight scale per output channel
        for (int64_t k = 1; k < groups; ++k) out_scales.insert(out_scales.end(), w_scales.begin(), w_scales.end());
        const int64_t channels = static_cast<int64_t>(out_scales.size());
        std::vector<float> b_scales;
        const Tensor qb = quantize_bias(corrected_bias(n, w, axis, min_scales, bias->reshaped({channels})),
                                        in_params->second.scale, out_scales, &b_scales);
        take(dequantized_constant(n.input(2), qb, Tensor::from_vector<float>({channels}, b_scales),
                                  Tensor(DType::kInt32, {channels}), 0),
             2);
      }
    } else if (const BiasAdd* bias = bias_add(n)) {
      const std::string& product = n.input(1 - bias->input);
      const onnx::NodeProto& mm = g.node(producers_.at(product));
      auto in_params = params_.find(mm.input(0));
      auto w_scales = weight_scales_.find(product);
      if (in_params != params_.end() && w_scales != weight_scales_.end()) {
        const Tensor b = graph::float_initializer(g, n.input(bias->input), graph::node_label(n));
        const int64_t channels = static_cast<int64_t>(w_scales->second.size());
        std::vector<float> b_scales;
        const Tensor w = graph::float_initializer(g, mm.input(1), graph::node_label(mm));
        const Tensor qb = quantize_bias(corrected_bias(mm, w, 1, weight_min_scales_[product], b.reshaped({channels})),
                                        in_params->second.scale, w_scales->second, &b_scales);
        take(dequantized_constant(n.input(bias->input), qb.reshaped(b.shape()),
                                  Tensor::from_vector<float>({channels}, b_scales), Tensor(DType::kInt32, {channels}),
                                  static_cast<int>(b.rank()) - 1),
             bias->input);
      }
    } else if (op == "Add" || op == "Mul") {
      for (int i = 0; i < n.input_size(); ++i) {
        const onnx::TensorProto* init = graph::find_initializer(g, n.input(i));
        if (!init || init->data_type() != onnx::TensorProto::FLOAT) continue;
        const Tensor c = tensor_from_proto(*init);
        check_finite(c, constant_label(n, i));
        Range r{0.0f, 0.0f};
        for (float v : c.to_vector<float>()) r = {std::min(r.min, v), std::max(r.max, v)};
        const QuantParams q = activation_params(symmetric_ ? symmetric(r) : r, symmetric_);
        Tensor qc(DType::kInt8, c.shape());
        for (int64_t k = 0; k < c.numel(); ++k)
          qc.data<int8_t>()[k] = math::quantize_float(c.data<float>()[k], q.scale, q.zero_point);
        take(dequantized_constant(n.input(i), qc, Tensor::scalar<float>(q.scale),
                                  Tensor::scalar<int8_t>(static_cast<int8_t>(q.zero_point)), -1),
             i);
      }
    }
    return dq;
  }

  // ---- graph rebuild ---------------------------------------------------------------------------

  /// Q -> DQ of activation t (read from `source`), the DQ writing `dq_output`.
  void emit_qdq(const std::string& t, const std::string& source, const std::string& dq_output,
                std::vector<onnx::NodeProto>* out) {
    const QuantParams& q = params_.at(t);
    const std::string s = add_init(Tensor::scalar<float>(q.scale), t + "_scale");
    const std::string z = add_init(Tensor::scalar<int8_t>(static_cast<int8_t>(q.zero_point)), t + "_zero_point");
    const std::string quantized = names_.make(t + "_quantized");
    out->push_back(make_node("QuantizeLinear", {source, s, z}, quantized));
    out->push_back(make_node("DequantizeLinear", {quantized, s, z}, dq_output));
  }

  void rebuild() {
    onnx::GraphProto& g = *model_.mutable_graph();
    std::vector<onnx::NodeProto> nodes;
    std::map<std::string, std::string> reads;  // activation -> the DQ output its readers use
    std::map<std::string, std::string> float_source;  // float node's output -> its name before any Q
    std::map<std::string, std::string> float_sum;  // float_residual_sums: Add output -> its float name
    for (const auto& in : g.input())
      if (params_.count(in.name())) {
        reads[in.name()] = names_.make(in.name() + "_dequantized");
        emit_qdq(in.name(), in.name(), reads[in.name()], &nodes);
      }
    const std::vector<onnx::NodeProto> original(g.node().begin(), g.node().end());
    for (size_t i = 0; i < original.size(); ++i) {
      const onnx::NodeProto& n = original[i];
      std::vector<std::string> inputs(n.input().begin(), n.input().end());
      // A float node reads its constants as they are.
      const std::vector<onnx::NodeProto> dq = float_node_[i] ? std::vector<onnx::NodeProto>{} : quantize_constants(n, &inputs);
      nodes.insert(nodes.end(), dq.begin(), dq.end());
      onnx::NodeProto node = n;
      // A float node reads a float node's output as it is, not its Q -> DQ (which only the
      // quantized readers use), unless QuantizeOptions::qdq_between_float_nodes.
      const bool is_float = float_node_[i];
      const bool reads_float = !qdq_between_float_nodes_ && is_float;
      for (int k = 0; k < node.input_size(); ++k) {
        auto raw = float_source.find(inputs[k]);
        auto it = reads.find(inputs[k]);
        auto sum = float_sum.find(inputs[k]);
        if (is_float && !unary_.count(static_cast<int>(i)) && sum != float_sum.end()) node.set_input(k, sum->second);
        else if (reads_float && raw != float_source.end()) node.set_input(k, raw->second);
        else node.set_input(k, it != reads.end() ? it->second : inputs[k]);
      }
      const FloatSum float_sum_kind = i < float_sum_.size() ? float_sum_[i] : FloatSum::kNone;
      std::vector<onnx::NodeProto> after;
      for (auto& out : *node.mutable_output()) {
        if (float_produced_.count(out)) float_source[out] = out;
        if (!params_.count(out) || float_sum_kind == FloatSum::kFloatOnly) continue;
        const std::string t = out;
        if (graph::is_graph_output(g, t)) {  // keep the output's name: ... -> Q -> DQ -> t
          out = names_.make(t + "_float");
          if (float_produced_.count(t)) float_source[t] = out;
          emit_qdq(t, out, t, &after);
        } else {
          reads[t] = names_.make(t + "_dequantized");
          emit_qdq(t, t, reads[t], &after);
        }
      }
      // QuantizeOptions::float_residual_sums: float readers take the Add's own output (renamed when
      // it is a graph output), the others its Q -> DQ.
      if (float_sum_kind != FloatSum::kNone) float_sum[n.output(0)] = node.output(0);
      nodes.push_back(std::move(node));
      nodes.insert(nodes.end(), after.begin(), after.end());
    }
    g.clear_node();
    for (auto& n : nodes) *g.add_node() = std::move(n);
    for (const std::string& f : float_nodes_) log().info("quantizer: stays float: {}", f);
  }

  onnx::ModelProto model_;
  bool symmetric_;
  bool qdq_between_float_nodes_;
  bool extend_float_regions_;
  bool float_residual_sums_;
  std::set<int> unary_;  ///< nodes of the functions of one activation (unary_float_regions)
  enum class FloatSum { kNone, kAlsoInt8, kFloatOnly };  ///< an Add computed in float, with int8 readers or not
  std::vector<FloatSum> float_sum_;  ///< node index -> (find_float_residual_sums)
  std::string exclude_nodes_;
  graph::NameAllocator names_;
  std::map<std::string, Range> ranges_;
  const Calibration* stats_;  ///< set when bias correction is on
  std::map<std::string, int32_t> elem_type_;
  std::map<std::string, std::vector<int>> consumers_;  // tensor -> indices of nodes reading it
  std::map<std::string, int> producers_;               // tensor -> index of the node writing it
  std::map<std::string, BiasAdd> bias_of_;  ///< MatMul output -> the Add that adds its bias (find_bias_adds)
  std::map<std::string, std::vector<float>> weight_min_scales_;  ///< MatMul output -> its weight's bias floor
  std::map<std::string, std::vector<float>> weight_scales_;  ///< MatMul output -> its weight's scales
  std::map<std::string, QuantParams> params_;          // float activation -> its int8 parameters
  std::vector<std::string> float_nodes_;
  std::vector<bool> float_node_;          ///< by node index: the node computes in float
  std::set<std::string> float_produced_;  ///< float activations computed by a node that stays float
  std::set<std::string> layer_norm_inside_;  ///< values a LayerNorm pattern computes before its output
  mutable std::vector<std::string> calibrated_order_;  ///< tensors given a calibrated range, in order
};

}  // namespace

const onnx::NodeProto* first_qdq_node(const onnx::ModelProto& model) {
  for (const onnx::NodeProto& n : model.graph().node())
    if (n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear") return &n;
  return nullptr;
}

Expected<onnx::ModelProto> quantize(const onnx::ModelProto& optimized, const Calibration& calib,
                                    const QuantizeOptions& options, std::vector<std::string>* float_nodes) {
  return capture([&] {
    return QdqBuilder(optimized, calib.ranges(options.method, options.percentile), options, &calib).run(float_nodes);
  });
}

Expected<onnx::ModelProto> quantize(const onnx::ModelProto& optimized, const std::map<std::string, Range>& ranges,
                                    const QuantizeOptions& options, std::vector<std::string>* float_nodes,
                                    const Calibration* stats) {
  return capture([&] { return QdqBuilder(optimized, ranges, options, stats).run(float_nodes); });
}

std::vector<std::string> calibrated_tensors(const onnx::ModelProto& optimized,
                                           const std::map<std::string, Range>& ranges, const QuantizeOptions& options) {
  QuantizeOptions plain = options;
  plain.bias_correction = false;
  return QdqBuilder(optimized, ranges, plain, nullptr).calibrated_tensors();
}

Expected<onnx::ModelProto> quantize_model(const onnx::ModelProto& fp32, const Tensor& calibration_inputs,
                                          const QuantizeOptions& options, std::vector<std::string>* float_nodes) {
  return capture([&] {
    const onnx::ModelProto optimized = optimize(fp32);
    const Calibration calib = calibrate(optimized, calibration_inputs, false);
    return QdqBuilder(optimized, calib.ranges(options.method, options.percentile), options, &calib).run(float_nodes);
  });
}

}  // namespace anvil::quant
