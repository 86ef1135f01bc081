// lower_qdq: recognises the QDQ patterns of a quantized ONNX model and builds the Int8Graph.
//
// The walk follows the ONNX node order (the checker guarantees it is topological). A quantized
// value is the output of a QuantizeLinear (or of a Flatten/Reshape applied to one); a
// DequantizeLinear of a quantized value makes a "dequantized" float that patterns consume. Each
// pattern starts at its compute node, claims the activation and QuantizeLinear that follow it,
// and emits one Int8Op whose multipliers are computed here, once.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "activations.h"
#include "anvil/common/onnx_model.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/reference/patterns.h"
#include "attributes.h"
#include "broadcast.h"
#include "geometry.h"
#include "kernels.h"
#include "kernels_ext.h"

namespace anvil::ref {

const char* int8_op_name(Int8OpKind k) {
  switch (k) {
    case Int8OpKind::kConv: return "conv";
    case Int8OpKind::kAdd: return "add";
    case Int8OpKind::kMaxPool: return "maxpool";
    case Int8OpKind::kAvgPool: return "avgpool";
    case Int8OpKind::kRequant: return "requant";
    case Int8OpKind::kReshape: return "reshape";
    case Int8OpKind::kLut: return "lut";
    case Int8OpKind::kHost: return "host";
    case Int8OpKind::kTranspose: return "transpose";
    case Int8OpKind::kSlice: return "slice";
    case Int8OpKind::kConcat: return "concat";
    case Int8OpKind::kPad: return "pad";
    case Int8OpKind::kResize: return "resize";
    case Int8OpKind::kMatMul: return "matmul";
    case Int8OpKind::kSoftmax: return "softmax";
    case Int8OpKind::kMul: return "mul";
    case Int8OpKind::kSub: return "sub";
  }
  return "?";
}

namespace {

/// Largest |x - in_zp| * |w| term of a conv accumulator: int8 activations and zero points give
/// |x - in_zp| <= 255, int8 weights give |w| <= 128.
constexpr int64_t kMaxProduct = 255 * 128;

[[noreturn]] void malformed(const onnx::NodeProto& node, const std::string& what) {
  fail(ErrorCode::kInvalidArgument, node_label(node) + ": " + what);
}

/// A valid model whose value has a rank the NPU ops do not take (e.g. a batched 3-D MatMul).
[[noreturn]] void unsupported_shape(const onnx::NodeProto& node, const std::string& want, const Shape& got) {
  fail(ErrorCode::kUnsupported, node_label(node) + ": input must be " + want + " on the NPU, got " + shape_str(got));
}

/// Protobuf bytes that depend only on the message (deterministic map order), for reproducible programs.
std::string serialize_deterministic(const onnx::ModelProto& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return bytes;
}

class QdqLowering {
 public:
  QdqLowering(const onnx::ModelProto& model, int64_t batch, const LowerOptions& options = {})
      : model_(model), graph_(model.graph()), opset_(onnx_opset(model)), batch_(batch), options_(options) {}

  Int8Graph run() {
    if (batch_ < 1) fail(ErrorCode::kInvalidArgument, "batch must be >= 1, got " + std::to_string(batch_));
    for (const auto& init : graph_.initializer()) constants_[init.name()] = tensor_from_proto(init);
    for (int i = 0; i < graph_.node_size(); ++i)
      for (const auto& in : graph_.node(i).input()) consumers_[in].push_back(i);
    for (const auto& vi : graph_.input())
      if (!constants_.count(vi.name())) float_inputs_[vi.name()] = &vi;
    for (int i = 0; i < graph_.node_size(); ++i)
      if (!claimed_.count(i)) lower_node_or_host(i);
    for (const auto& out : graph_.output()) {
      int v = -1;
      if (auto it = dequantized_.find(out.name()); it != dequantized_.end()) {
        v = it->second;
      } else if (auto h = host_values_.find(out.name()); h != host_values_.end()) {
        v = h->second;  // unquantized: a kHost op computes it (host fallback)
      } else {
        // An int8 output (the quantizer's --output-type int8 edit) is the quantized value itself.
        auto q = quantized_.find(out.name());
        if (q == quantized_.end() || out.type().tensor_type().elem_type() != onnx::TensorProto::INT8)
          fail(ErrorCode::kUnsupported, "graph output '" + out.name() +
                                            "' is neither a DequantizeLinear of a quantized value nor an int8 quantized value");
        v = q->second;
      }
      g_.outputs.push_back(v);
      g_.output_names.push_back(out.name());
    }
    // Inputs in the float graph's order (they were found in node order).
    std::vector<int> inputs;
    std::vector<std::string> names;
    for (const auto& vi : graph_.input()) {
      if (!float_inputs_.count(vi.name())) continue;
      auto it = std::find(g_.input_names.begin(), g_.input_names.end(), vi.name());
      if (it == g_.input_names.end())
        fail(ErrorCode::kUnsupported, "graph input '" + vi.name() + "' does not feed a QuantizeLinear");
      inputs.push_back(g_.inputs[it - g_.input_names.begin()]);
      names.push_back(vi.name());
    }
    g_.inputs = std::move(inputs);
    g_.input_names = std::move(names);
    return std::move(g_);
  }

 private:
  // ---- helpers -----------------------------------------------------------------------------

  /// An initializer or the output of a Constant node; nullptr otherwise.
  const Tensor* constant(const std::string& name) {
    auto it = constants_.find(name);
    if (it != constants_.end()) return &it->second;
    for (int i = 0; i < graph_.node_size(); ++i) {
      const auto& n = graph_.node(i);
      if (n.op_type() == "Constant" && n.output_size() == 1 && n.output(0) == name) {
        const auto* a = find_attribute(n, "value");
        if (!a) return nullptr;
        claimed_.insert(i);
        return &(constants_[name] = tensor_from_proto(a->t()));
      }
    }
    return nullptr;
  }

  /// Per-tensor int8 quantization parameters of a Q/DQ node (inputs 1 and 2).
  QuantParams per_tensor_params(const onnx::NodeProto& node) {
    const Tensor* scale = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
    if (!scale || scale->dtype() != DType::kFloat32 || scale->numel() != 1)
      malformed(node, "scale must be a constant float32 scalar (per-tensor activation quantization)");
    QuantParams q;
    q.scale = scale->data<float>()[0];
    if (!(q.scale > 0.0f) || !std::isfinite(q.scale)) malformed(node, "scale must be positive and finite");
    const Tensor* zp = node.input_size() > 2 && !node.input(2).empty() ? constant(node.input(2)) : nullptr;
    if (!zp || zp->dtype() != DType::kInt8 || zp->numel() != 1)
      fail(ErrorCode::kUnsupported, node_label(node) + ": activations must be int8 with a constant zero point");
    q.zero_point = zp->data<int8_t>()[0];
    return q;
  }

  bool is_graph_output(const std::string& name) const {
    for (const auto& out : graph_.output())
      if (out.name() == name) return true;
    return false;
  }

  /// The only consumer of `value`, or -1 when it has none or several (or is a graph output).
  int single_consumer(const std::string& value) {
    auto it = consumers_.find(value);
    if (it == consumers_.end() || it->second.size() != 1 || is_graph_output(value)) return -1;
    return it->second[0];
  }

  const onnx::NodeProto& node(int i) const { return graph_.node(i); }

  /// The node's name, or its first output for an unnamed node (as in error messages).
  static std::string node_name(const onnx::NodeProto& n) {
    return n.name().empty() && n.output_size() ? n.output(0) : n.name();
  }

  int add_value(const std::string& name, Shape shape, QuantParams q) {
    g_.values.push_back({name, std::move(shape), q});
    quantized_[name] = static_cast<int>(g_.values.size()) - 1;
    return static_cast<int>(g_.values.size()) - 1;
  }

  /// An unquantized kHost op output (Int8Value::dtype), read by later kHost ops.
  int add_host_value(const std::string& name, Shape shape, DType dtype) {
    g_.values.push_back({name, std::move(shape), QuantParams{}, dtype});
    host_values_[name] = static_cast<int>(g_.values.size()) - 1;
    return static_cast<int>(g_.values.size()) - 1;
  }

  /// The int8 value behind a dequantized float input of `n`.
  int dequantized_input(const onnx::NodeProto& n, int i) {
    if (i >= n.input_size()) malformed(n, "missing input " + std::to_string(i));
    auto it = dequantized_.find(n.input(i));
    if (it == dequantized_.end())
      malformed(n, "input '" + n.input(i) + "' is not a DequantizeLinear of a quantized value");
    return it->second;
  }

  /// Follows `value` through an optional Relu/Clip to the QuantizeLinear that ends a pattern.
  /// Returns the Q node; sets act_min/act_max (in the output's int8 domain) for the activation.
  int follow_to_quantize(const onnx::NodeProto& from, const std::string& value, bool allow_activation,
                         Int8Op& op, QuantParams* out_q) {
    int next = single_consumer(value);
    int activation = -1;
    if (allow_activation && next >= 0 && (node(next).op_type() == "Relu" || node(next).op_type() == "Clip")) {
      activation = next;
      next = single_consumer(node(next).output(0));
    }
    if (next < 0 || node(next).op_type() != "QuantizeLinear")
      malformed(from, "output must feed exactly one QuantizeLinear" +
                          std::string(allow_activation ? " (optionally through one Relu or Clip)" : ""));
    *out_q = per_tensor_params(node(next));
    if (activation >= 0) {
      activation_bounds(node(activation), *out_q, &op.act_min, &op.act_max);
      claimed_.insert(activation);
    }
    claimed_.insert(next);
    return next;
  }

  /// Relu -> [out_zp, 127]; Clip(lo, hi) -> [quantize(lo), quantize(hi)] within int8.
  void activation_bounds(const onnx::NodeProto& act, QuantParams q, int32_t* lo, int32_t* hi) {
    if (act.op_type() == "Relu") {
      *lo = std::max(-128, q.zero_point);
      *hi = 127;
      return;
    }
    float fmin = -std::numeric_limits<float>::infinity(), fmax = std::numeric_limits<float>::infinity();
    if (opset_ < 11) {
      fmin = attr_float(act, "min", fmin);
      fmax = attr_float(act, "max", fmax);
    } else {
      for (int i = 1; i < act.input_size() && i < 3; ++i) {
        if (act.input(i).empty()) continue;
        const Tensor* t = constant(act.input(i));
        if (!t) malformed(act, "Clip bounds must be constants");
        (i == 1 ? fmin : fmax) = float_scalar(*t, i == 1 ? "min" : "max");
      }
    }
    // ONNX: with min > max every element becomes max, as the clamp to [max, max] gives.
    fmin = std::min(fmin, fmax);
    // quantize_float saturates to int8, so infinite bounds become -128 / 127; it is monotonic, so lo <= hi.
    *lo = math::quantize_float(fmin, q.scale, q.zero_point);
    *hi = math::quantize_float(fmax, q.scale, q.zero_point);
  }

  /// Concrete shape of a graph input: the dynamic first dimension becomes the batch.
  Shape input_shape(const onnx::ValueInfoProto& vi) {
    const auto& tt = vi.type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::FLOAT)
      fail(ErrorCode::kUnsupported, "graph input '" + vi.name() + "' must be float32");
    if (!tt.has_shape()) fail(ErrorCode::kUnsupported, "graph input '" + vi.name() + "' has no shape");
    Shape s;
    for (int i = 0; i < tt.shape().dim_size(); ++i) {
      const auto& d = tt.shape().dim(i);
      if (d.has_dim_value() && d.dim_value() > 0) {
        if (i == 0 && d.dim_value() != batch_)
          fail(ErrorCode::kInvalidArgument, "graph input '" + vi.name() + "' has a fixed batch of " +
                                                std::to_string(d.dim_value()) + ", asked for " +
                                                std::to_string(batch_));
        s.push_back(d.dim_value());
      } else if (i == 0) {
        s.push_back(batch_);
      } else {
        fail(ErrorCode::kUnsupported, "graph input '" + vi.name() + "': only the first dimension may be dynamic");
      }
    }
    return s;
  }

  // ---- dispatch ----------------------------------------------------------------------------

  void lower_node(int i) {
    const onnx::NodeProto& n = node(i);
    const std::string& t = n.op_type();
    if (!n.domain().empty() && n.domain() != "ai.onnx")
      fail(ErrorCode::kUnsupported, node_label(n) + ": operator not supported on the NPU");
    if (t == "QuantizeLinear") return lower_quantize(n);
    if (t == "DequantizeLinear") return lower_dequantize(n);
    if (t == "Constant") return;  // consumed through constant()
    if (lower_elementwise_region(i)) return;
    if (t == "MatMul" && n.input_size() == 2 && dequantized_.count(n.input(1))) return lower_matmul(n);
    if (t == "Conv" || t == "Gemm" || t == "MatMul") return lower_linear(n);
    if (t == "ConvTranspose") return lower_conv_transpose(n);
    if (t == "Softmax") return lower_softmax(n);
    if (t == "Add" || t == "Sub" || t == "Mul") return lower_binary(n);
    if (t == "MaxPool" || t == "AveragePool" || t == "GlobalAveragePool") return lower_pool(n);
    if (t == "Relu" || t == "Clip") return lower_activation(n);
    if (t == "Flatten" || t == "Reshape" || t == "Squeeze" || t == "Unsqueeze") return lower_reshape(n);
    if (t == "Transpose") return lower_transpose(n);
    if (t == "Slice") return lower_slice(n);
    if (t == "Split") return lower_split(n);
    if (t == "Concat") return lower_concat(n);
    if (t == "Pad") return lower_pad(n);
    if (t == "Resize") return lower_resize(n);
    if (t == "Sigmoid" || t == "Tanh" || t == "HardSigmoid" || t == "HardSwish" || t == "LeakyRelu")
      return lower_lut(n);
    fail(ErrorCode::kUnsupported, node_label(n) + ": operator not supported on the NPU");
  }

  /// A QuantizeLinear not claimed by a pattern must quantize a float graph input.
  void lower_quantize(const onnx::NodeProto& n) {
    auto in = float_inputs_.find(n.input(0));
    if (in == float_inputs_.end())
      malformed(n, "quantizes '" + n.input(0) + "', which is neither a graph input nor the output of a pattern");
    if (std::find(g_.input_names.begin(), g_.input_names.end(), n.input(0)) != g_.input_names.end())
      malformed(n, "graph input '" + n.input(0) + "' is quantized twice");
    const int v = add_value(n.output(0), input_shape(*in->second), per_tensor_params(n));
    g_.inputs.push_back(v);
    g_.input_names.push_back(n.input(0));
  }

  /// DQ of a quantized value defines a dequantized float; DQ of a constant is read by its consumer.
  void lower_dequantize(const onnx::NodeProto& n) {
    if (constant(n.input(0))) return;
    if (float_inputs_.count(n.input(0)))
      fail(ErrorCode::kUnsupported, node_label(n) + ": graph input '" + n.input(0) +
                                        "' is dequantized directly (a uint8 input edit); the NPU lowering takes "
                                        "float inputs quantized by a QuantizeLinear");
    auto it = quantized_.find(n.input(0));
    if (it == quantized_.end()) malformed(n, "input '" + n.input(0) + "' is not a quantized value");
    const QuantParams q = per_tensor_params(n);
    const QuantParams& have = g_.values[it->second].q;
    if (q.scale != have.scale || q.zero_point != have.zero_point)
      malformed(n, "parameters differ from the QuantizeLinear that produced '" + n.input(0) + "'");
    dequantized_[n.output(0)] = it->second;
  }

  /// Conv, Gemm, MatMul with constant int8 weights (per-channel or per-tensor, zero point 0).
  void lower_linear(const onnx::NodeProto& n) {
    const std::string& t = n.op_type();
    Int8Op op;
    op.kind = Int8OpKind::kConv;
    op.node = node_name(n);
    const int x = dequantized_input(n, 0);
    op.inputs = {x};
    const Int8Value& in = g_.values[x];
    std::vector<float> w_scale;
    Tensor w = constant_weight(n, &w_scale);  // O x I/groups x KH x KW
    const int64_t o = w.dim(0);
    Shape out_shape;
    if (t == "Conv") {
      if (in.shape.size() != 4) unsupported_shape(n, "N x C x H x W", in.shape);
      op.groups = static_cast<int>(attr_int(n, "group", 1));
      if (op.groups < 1 || in.shape[1] % op.groups || o % op.groups || w.dim(1) != in.shape[1] / op.groups)
        malformed(n, "weight " + shape_str(w.shape()) + " does not match input " + shape_str(in.shape));
      const Window2d g = window_geometry(n, in.shape[2], in.shape[3], {w.dim(2), w.dim(3)}, false);
      set_window(op, g);
      out_shape = {in.shape[0], o, g.out[0], g.out[1]};
    } else {
      if (in.shape.size() != 2 && !(t == "MatMul" && in.shape.size() > 2))
        unsupported_shape(n, "2-D N x K", in.shape);
      if (in.shape.back() != w.dim(1))
        malformed(n, "input " + shape_str(in.shape) + " does not match weight of " + std::to_string(w.dim(1)) +
                         " inputs");
      out_shape = {shape_numel(in.shape) / in.shape.back(), o};
    }
    const int bias_input = t == "MatMul" ? -1 : 2;
    op.bias = bias_input >= 0 && n.input_size() > bias_input && !n.input(bias_input).empty()
                  ? constant_bias(n, n.input(bias_input), in.q.scale, w_scale, o)
                  : Tensor(DType::kInt32, {o});
    // MatMul -> Add(DQ(int32 bias)): the bias of a fully connected layer written as two nodes, on the
    // accumulator's scale as Gemm's (the quantizer's find_bias_adds); the pattern goes on from the Add.
    const onnx::NodeProto* end = &n;
    if (const int add = t == "MatMul" ? bias_add(n.output(0), o) : -1; add >= 0) {
      const onnx::NodeProto& a = node(add);
      op.bias = constant_bias(a, a.input(a.input(0) == n.output(0) ? 1 : 0), in.q.scale, w_scale, o);
      claimed_.insert(add);
      end = &a;
    }
    check_accumulator(n, w, op.bias);
    op.weight = std::move(w);
    QuantParams out_q;
    const int q = follow_to_quantize(*end, end->output(0), true, op, &out_q);
    for (int64_t c = 0; c < o; ++c)
      op.multipliers.push_back(
          math::quantize_multiplier(static_cast<double>(in.q.scale) * w_scale[c] / out_q.scale));
    if (t == "MatMul" && in.shape.size() > 2) {
      // MatMul of a [..., M, K] activation by a constant K x O weight: the rows of all leading
      // dimensions are one N x K matrix (same bytes, row major), so the op is a kReshape to
      // [rows, K], the 1x1 conv, and a kReshape of its [rows, O] result to [..., M, O].
      Shape full = in.shape;
      full.back() = o;
      const std::string y = node(q).output(0);
      Int8Op to_rows;
      to_rows.kind = Int8OpKind::kReshape;
      to_rows.node = op.node;
      to_rows.inputs = {x};
      to_rows.output = add_value(y + "/rows_in", {out_shape[0], in.shape.back()}, in.q);
      op.inputs = {to_rows.output};
      g_.ops.push_back(std::move(to_rows));
      op.output = add_value(y + "/rows_out", out_shape, out_q);
      Int8Op back;
      back.kind = Int8OpKind::kReshape;
      back.node = op.node;
      back.inputs = {op.output};
      g_.ops.push_back(std::move(op));
      back.output = add_value(y, full, out_q);
      g_.ops.push_back(std::move(back));
      return;
    }
    op.output = add_value(node(q).output(0), out_shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// The DequantizeLinear behind node n's weight (input 1) and its int8 initializer.
  std::pair<const onnx::NodeProto*, const Tensor*> int8_weight(const onnx::NodeProto& n) {
    if (n.input_size() < 2) malformed(n, "missing weight input");
    const onnx::NodeProto* dq = dequantize_of_constant(n.input(1));
    if (!dq) malformed(n, "weight '" + n.input(1) + "' must be a DequantizeLinear of an int8 initializer");
    const Tensor* w = constant(dq->input(0));
    if (w->dtype() != DType::kInt8) malformed(*dq, "weight must be int8, got " + std::string(dtype_name(w->dtype())));
    return {dq, w};
  }

  /// The scale of each of `outputs` output channels from the weight's DequantizeLinear `dq`: one
  /// scale for all, or `count` along weight axis `axis` (`wrong_axis` is the error otherwise), output
  /// channel c taking scale c % count. Scales must be positive and finite, zero points 0.
  std::vector<float> weight_scales(const onnx::NodeProto& dq, const Tensor& w, int64_t axis, int64_t count,
                                   int64_t outputs, const std::string& wrong_axis) {
    const Tensor* scale = dq.input_size() > 1 ? constant(dq.input(1)) : nullptr;
    if (!scale || scale->dtype() != DType::kFloat32 || (scale->numel() != 1 && scale->numel() != count))
      malformed(dq, "weight scale must be float32 with 1 or " + std::to_string(count) + " values");
    if (scale->numel() != 1 && count != 1 &&
        normalize_axis(attr_int(dq, "axis", 1), static_cast<int64_t>(w.rank()), "axis") != axis)
      malformed(dq, wrong_axis);
    std::vector<float> scales;
    for (int64_t c = 0; c < outputs; ++c) scales.push_back(scale->data<float>()[scale->numel() == 1 ? 0 : c % count]);
    for (float v : scales)
      if (!(v > 0.0f) || !std::isfinite(v)) malformed(dq, "weight scales must be positive and finite");
    if (dq.input_size() > 2 && !dq.input(2).empty()) {
      const Tensor* zp = constant(dq.input(2));
      if (!zp || zp->dtype() != DType::kInt8) malformed(dq, "weight zero point must be an int8 constant");
      for (int8_t z : zp->to_vector<int8_t>())
        if (z != 0) malformed(dq, "weight zero point must be 0 (symmetric weights)");
    }
    return scales;
  }

  /// The int8 weight of a Conv/Gemm/MatMul as O x I x KH x KW (Gemm/MatMul: O x K x 1 x 1) and
  /// its per-output-channel scales.
  Tensor constant_weight(const onnx::NodeProto& n, std::vector<float>* scales) {
    const std::string& t = n.op_type();
    if (t == "Gemm") {
      if (attr_int(n, "transA", 0) != 0) malformed(n, "transA must be 0");
      if (attr_float(n, "alpha", 1.0f) != 1.0f || attr_float(n, "beta", 1.0f) != 1.0f)
        malformed(n, "alpha and beta must be 1");
    }
    const auto [dq, weight] = int8_weight(n);
    const Tensor& w = *weight;
    // Which weight axis holds the output channels: Conv W[O,I,KH,KW] and Gemm transB=1 W[O,K]
    // use axis 0; Gemm transB=0 and MatMul W[K,O] use axis 1.
    const bool k_by_o = t == "MatMul" || (t == "Gemm" && attr_int(n, "transB", 0) == 0);
    if (t == "Conv" ? w.rank() != 4 : w.rank() != 2)
      malformed(*dq, "weight has unexpected shape " + shape_str(w.shape()));
    const int64_t out_axis = k_by_o ? 1 : 0, o = w.dim(out_axis);
    *scales =
        weight_scales(*dq, w, out_axis, o, o, "per-channel weight scale must be along axis " + std::to_string(out_axis));
    if (t == "Conv") return w;
    const int64_t k = w.dim(1 - out_axis);
    Tensor oi(DType::kInt8, {o, k, 1, 1});
    const int8_t* src = w.data<int8_t>();
    int8_t* dst = oi.data<int8_t>();
    for (int64_t c = 0; c < o; ++c)
      for (int64_t j = 0; j < k; ++j) dst[c * k + j] = k_by_o ? src[j * o + c] : src[c * k + j];
    return oi;
  }

  /// The Add that alone reads MatMul output `product` and adds to it a DequantizeLinear of an int32
  /// constant with o values, or -1. (Only the bias's last axis may exceed 1: a bias with more axes than
  /// the product would broadcast the result to another shape, which the quantizer does not fuse.)
  int bias_add(const std::string& product, int64_t o) {
    const int a = single_consumer(product);
    if (a < 0 || node(a).op_type() != "Add" || node(a).input_size() != 2) return -1;
    const onnx::NodeProto& add = node(a);
    const std::string& other = add.input(add.input(0) == product ? 1 : 0);
    const onnx::NodeProto* dq = dequantize_of_constant(other);
    if (!dq || add.input(0) == add.input(1)) return -1;
    const Tensor& b = *constant(dq->input(0));
    if (b.dtype() != DType::kInt32 || b.numel() != o || b.rank() < 1 || b.dim(b.rank() - 1) != o) return -1;
    return a;
  }

  /// The int32 bias behind DQ(b) with scale in_scale * w_scale[o] and zero point 0.
  Tensor constant_bias(const onnx::NodeProto& n, const std::string& name, float in_scale,
                       const std::vector<float>& w_scale, int64_t o) {
    const onnx::NodeProto* dq = dequantize_of_constant(name);
    if (!dq) malformed(n, "bias '" + name + "' must be a DequantizeLinear of an int32 initializer");
    const Tensor& b = *constant(dq->input(0));
    if (b.dtype() != DType::kInt32 || b.numel() != o)
      malformed(*dq, "bias must be int32 with " + std::to_string(o) + " values");
    const Tensor* scale = dq->input_size() > 1 ? constant(dq->input(1)) : nullptr;
    if (!scale || scale->dtype() != DType::kFloat32 || (scale->numel() != 1 && scale->numel() != o))
      malformed(*dq, "bias scale must be float32 with 1 or " + std::to_string(o) + " values");
    if (dq->input_size() > 2 && !dq->input(2).empty()) {
      const Tensor* zp = constant(dq->input(2));
      if (!zp || zp->dtype() != DType::kInt32) malformed(*dq, "bias zero point must be an int32 constant");
      for (int32_t z : zp->to_vector<int32_t>())
        if (z != 0) malformed(*dq, "bias zero point must be 0");
    }
    // The accumulator's scale is in_scale * w_scale[o]; a bias on another scale would need its own
    // rescaling. Quantizers compute the product in float32, so allow float rounding.
    for (int64_t c = 0; c < o; ++c) {
      const double want = static_cast<double>(in_scale) * w_scale[c];
      const double have = scale->data<float>()[scale->numel() == 1 ? 0 : c];
      if (std::abs(have - want) > 1e-5 * want)
        malformed(*dq, "bias scale " + std::to_string(have) + " of channel " + std::to_string(c) +
                           " is not input scale * weight scale (" + std::to_string(want) + ")");
    }
    return b.reshaped({o});
  }

  /// The DequantizeLinear producing `name` from a constant, or nullptr.
  const onnx::NodeProto* dequantize_of_constant(const std::string& name) {
    for (int i = 0; i < graph_.node_size(); ++i) {
      const auto& d = node(i);
      if (d.op_type() == "DequantizeLinear" && d.output_size() == 1 && d.output(0) == name)
        return constant(d.input(0)) ? &d : nullptr;
    }
    return nullptr;
  }

  /// Proves run_int8's int32 accumulator cannot overflow: each term |x - in_zp| * |w| is at most
  /// 255 * 128, so |acc| <= |bias| + K * 255 * 128 where K = I/groups * KH * KW. Weights whose
  /// bound exceeds INT32_MAX (K above ~65,000 with no bias) are rejected.
  void check_accumulator(const onnx::NodeProto& n, const Tensor& w, const Tensor& bias) {
    const int64_t k = w.dim(1) * w.dim(2) * w.dim(3);
    int64_t max_bias = 0;
    for (int32_t b : bias.to_vector<int32_t>()) max_bias = std::max<int64_t>(max_bias, std::abs(int64_t{b}));
    if (max_bias + k * kMaxProduct > std::numeric_limits<int32_t>::max())
      fail(ErrorCode::kUnsupported, node_label(n) + ": " + std::to_string(k) +
                                        " products per output could overflow the int32 accumulator");
  }

  static void set_window(Int8Op& op, const Window2d& g) {
    for (int i = 0; i < 2; ++i) {
      op.kernel[i] = static_cast<int>(g.kernel[i]);
      op.strides[i] = static_cast<int>(g.strides[i]);
      op.dilations[i] = static_cast<int>(g.dilations[i]);
    }
    for (int i = 0; i < 4; ++i) op.pads[i] = static_cast<int>(g.pads[i]);
  }

  /// Add, Sub, Mul of two int8 operands with numpy broadcasting [-> Relu|Clip] -> Q. An operand
  /// may be a DQ of a constant int8 tensor (per-tensor parameters): it becomes Int8Op::weight, the
  /// second operand (Add and Mul commute; a constant first operand of Sub stays first:
  /// Int8Op::constant_first).
  /// Add of two equal-shape values gives exactly the kAdd op it always gave.
  void lower_binary(const onnx::NodeProto& n) {
    const std::string& t = n.op_type();
    Int8Op op;
    op.kind = t == "Add" ? Int8OpKind::kAdd : t == "Sub" ? Int8OpKind::kSub : Int8OpKind::kMul;
    op.node = node_name(n);
    if (n.input_size() != 2) malformed(n, "expects 2 inputs");
    struct Operand {
      int value = -1;  ///< the int8 value, or -1 for a constant
      Tensor constant;
      Shape shape;
      QuantParams q;
    } x[2];
    for (int i = 0; i < 2; ++i) {
      if (const onnx::NodeProto* dq = dequantize_of_constant(n.input(i))) {
        x[i].constant = *constant(dq->input(0));
        if (x[i].constant.dtype() != DType::kInt8)
          fail(ErrorCode::kUnsupported, node_label(n) + ": constant operand '" + n.input(i) + "' must be int8, got " +
                                            dtype_name(x[i].constant.dtype()));
        x[i].shape = x[i].constant.shape();
        x[i].q = per_tensor_params(*dq);
      } else {
        x[i].value = dequantized_input(n, i);
        x[i].shape = g_.values[x[i].value].shape;
        x[i].q = g_.values[x[i].value].q;
      }
    }
    if (x[0].value < 0 && x[1].value < 0)
      fail(ErrorCode::kUnsupported, node_label(n) + ": both operands are constants (fold them before quantizing)");
    if (x[0].value < 0) {
      if (op.kind == Int8OpKind::kSub) {
        op.constant_first = true;  // constant - x: the operands keep their order (a is the constant)
      } else {
        std::swap(x[0], x[1]);  // Add and Mul commute: the constant is the second operand
      }
    }
    Shape out_shape;
    try {
      out_shape = broadcast_shapes(x[0].shape, x[1].shape);
    } catch (const Error& e) {
      malformed(n, e.what());
    }
    if (op.constant_first) {
      op.inputs = {x[1].value};
      op.weight = x[0].constant;
    } else {
      op.inputs = {x[0].value};
      if (x[1].value >= 0) {
        op.inputs.push_back(x[1].value);
      } else {
        op.weight = x[1].constant;
      }
    }
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), true, op, &out_q);
    const QuantParams qa = x[0].q, qb = x[1].q;
    if (op.kind == Int8OpKind::kMul) {
      op.mul = math::make_mul_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, out_q.scale, out_q.zero_point,
                                     op.act_min, op.act_max);
    } else {
      op.add = math::make_add_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, out_q.scale,
                                     out_q.zero_point, op.act_min, op.act_max);
    }
    op.output = add_value(node(q).output(0), out_shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  void lower_pool(const onnx::NodeProto& n) {
    const std::string& t = n.op_type();
    Int8Op op;
    op.node = node_name(n);
    const int x = dequantized_input(n, 0);
    op.inputs = {x};
    const Int8Value in = g_.values[x];
    if (in.shape.size() != 4) unsupported_shape(n, "N x C x H x W", in.shape);
    const int64_t h = in.shape[2], w = in.shape[3];
    Window2d g;
    if (t == "GlobalAveragePool") {
      g.kernel = {h, w};
      g.out = {1, 1};
    } else {
      const auto k = attr_ints(n, "kernel_shape");
      if (k.size() != 2) malformed(n, "kernel_shape must have 2 values");
      g = window_geometry(n, h, w, {k[0], k[1]}, attr_int(n, "ceil_mode", 0) != 0);
    }
    set_window(op, g);
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
    if (t == "MaxPool") {
      if (n.output_size() > 1 && !n.output(1).empty()) malformed(n, "the Indices output is not supported");
      // The maximum commutes with quantization only when input and output share parameters.
      if (out_q.scale != in.q.scale || out_q.zero_point != in.q.zero_point)
        malformed(n, "MaxPool input and output quantization parameters must be equal");
      op.kind = Int8OpKind::kMaxPool;
    } else {
      op.kind = Int8OpKind::kAvgPool;
      op.count_include_pad = attr_int(n, "count_include_pad", 0) != 0;
      // One multiplier for every window: each must count kernel area elements. Windows clipped by
      // padding (without count_include_pad) or hanging past the end padding (ceil_mode) would not.
      const bool padded = g.pads[0] || g.pads[1] || g.pads[2] || g.pads[3];
      bool uniform = !padded || op.count_include_pad;
      for (int i = 0; i < 2; ++i)
        uniform = uniform && (g.out[i] - 1) * g.strides[i] + g.kernel[i] <= in.shape[2 + i] + g.pads[i] + g.pads[i + 2];
      if (!uniform)
        fail(ErrorCode::kUnsupported, node_label(n) + ": average windows of different sizes (padding without "
                                                     "count_include_pad, or ceil_mode) are not supported on the NPU");
      op.multiplier = math::average_multiplier(in.q.scale, out_q.scale, g.kernel[0] * g.kernel[1]);
    }
    op.output = add_value(node(q).output(0), {in.shape[0], in.shape[1], g.out[0], g.out[1]}, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// Standalone Relu/Clip between DQ and Q: a requantization with a clamp.
  void lower_activation(const onnx::NodeProto& n) {
    Int8Op op;
    op.kind = Int8OpKind::kRequant;
    op.node = node_name(n);
    const int x = dequantized_input(n, 0);
    op.inputs = {x};
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
    activation_bounds(n, out_q, &op.act_min, &op.act_max);
    op.multiplier = math::quantize_multiplier(static_cast<double>(g_.values[x].q.scale) / out_q.scale);
    op.output = add_value(node(q).output(0), g_.values[x].shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// The float function of an activation node, as the float Executor evaluates it.
  static std::function<float(float)> activation_function(const onnx::NodeProto& n) {
    const std::string& t = n.op_type();
    if (t == "Sigmoid") return act::sigmoid;
    if (t == "Tanh") return act::tanh;
    if (t == "HardSwish") return act::hard_swish;
    if (t == "LeakyRelu") {
      const float alpha = attr_float(n, "alpha", 0.01f);
      return [alpha](float x) { return act::leaky_relu(x, alpha); };
    }
    const float alpha = attr_float(n, "alpha", 0.2f), beta = attr_float(n, "beta", 0.5f);  // HardSigmoid
    return [alpha, beta](float x) { return act::hard_sigmoid(x, alpha, beta); };
  }

  /// The Mul of the gating pattern Mul(DQ(x), DQ(Q(gate(DQ(x))))) (SiLU, hard swish as the
  /// quantizer writes x * HardSigmoid(x)) that reads the gate's QuantizeLinear `gate_q` through
  /// its only DequantizeLinear; -1 when the gate's quantized output is used otherwise.
  int gating_mul(int gate_q, int x) {
    const int dq = single_consumer(node(gate_q).output(0));
    if (dq < 0 || node(dq).op_type() != "DequantizeLinear") return -1;
    const int mul = single_consumer(node(dq).output(0));
    if (mul < 0 || node(mul).op_type() != "Mul" || node(mul).input_size() != 2) return -1;
    const onnx::NodeProto& m = node(mul);
    const std::string& other = m.input(0) == node(dq).output(0) ? m.input(1) : m.input(0);
    auto it = dequantized_.find(other);
    if (it == dequantized_.end() || it->second != x) return -1;
    const QuantParams gq = per_tensor_params(node(gate_q)), dq_q = per_tensor_params(node(dq));
    if (gq.scale != dq_q.scale || gq.zero_point != dq_q.zero_point)
      malformed(node(dq), "parameters differ from the QuantizeLinear that produced '" + node(dq).input(0) + "'");
    claimed_.insert(dq);
    return mul;
  }

  /// DQ(x) -> Sigmoid|Tanh|HardSigmoid|HardSwish|LeakyRelu -> Q as one table lookup. A Sigmoid or
  /// HardSigmoid whose quantized output only gates its own input, Mul(x, gate(x)) -> Q, joins the
  /// Mul in the same table: the float graph computes
  ///   y = Q(DQ(x) * DQ(Q(gate(DQ(x)))))
  /// and every step depends on the int8 x alone, so tabulating that composition (make_lut) is the
  /// float QDQ semantics exactly, the gate's own rounding included.
  void lower_lut(const onnx::NodeProto& n) {
    const int x = dequantized_input(n, 0);
    Int8Op op = node_op(Int8OpKind::kLut, n, {x});
    QuantParams out_q;
    int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
    std::function<float(float)> f = activation_function(n);
    const int mul = n.op_type() == "Sigmoid" || n.op_type() == "HardSigmoid" ? gating_mul(q, x) : -1;
    if (mul >= 0) {
      const QuantParams gate_q = out_q;
      q = follow_to_quantize(node(mul), node(mul).output(0), false, op, &out_q);
      claimed_.insert(mul);
      f = [gate = std::move(f), gate_q](float v) {
        const int8_t g = math::quantize_float(gate(v), gate_q.scale, gate_q.zero_point);
        return v * math::dequantize(g, gate_q.scale, gate_q.zero_point);
      };
    }
    op.lut = make_lut(f, g_.values[x].q, out_q);
    op.output = add_value(node(q).output(0), g_.values[x].shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// An empty model with the lowered model's IR version and opsets, for running some of its nodes
  /// with the Executor (a table, a kHost op, a folded static value).
  onnx::ModelProto sub_model(const std::string& name) const {
    onnx::ModelProto m;
    m.set_ir_version(model_.ir_version());
    *m.mutable_opset_import() = model_.opset_import();
    m.mutable_graph()->set_name(name);
    return m;
  }

  /// DQ(x) -> float nodes -> Q where the nodes compute a function of x alone (ref::unary_function_nodes:
  /// Add|Sub|Mul|Div|Pow|Sqrt|Erf reading x, each other's values and float constants of one element)
  /// and one value leaves them, to one QuantizeLinear: GELU, x * (1 + erf(x / sqrt 2)) * 0.5, or the
  /// attention scale Q / sqrt(d), as the quantizer leaves them float. One table lookup: running the
  /// nodes themselves with the Executor on the 256 dequantized int8 values tabulates exactly what
  /// the float QDQ graph, or a kHost op, computes. Returns false, with nothing lowered, when node i
  /// does not start such a function.
  bool lower_elementwise_region(int i) {
    const onnx::NodeProto& first = node(i);
    int x = -1;
    std::string read;
    for (const auto& in : first.input())
      if (auto it = dequantized_.find(in); it != dequantized_.end()) {
        if (x >= 0 && in != read) return false;  // two activations: lower_binary's
        x = it->second, read = in;
      }
    if (x < 0) return false;
    const int rank = static_cast<int>(g_.values[x].shape.size());
    const std::vector<int> region =
        unary_function_nodes(graph_, i, read, [&](const std::string& t) { return constant(t); }, rank);
    if (region.empty()) return false;
    for (int k : region)
      if (claimed_.count(k)) return false;
    const std::vector<std::string> leaving = values_leaving(graph_, region);
    const int q = leaving.size() == 1 ? single_consumer(leaving[0]) : -1;
    if (q < 0 || node(q).op_type() != "QuantizeLinear") return false;
    const std::string& value = leaving[0];
    std::set<std::string> made;
    for (int k : region) made.insert(node(k).output(0));
    onnx::ModelProto m = sub_model("table_" + node_name(first));
    onnx::GraphProto& g = *m.mutable_graph();
    auto& in = *g.add_input();
    in.set_name(read);
    in.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    in.mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(256);
    std::set<std::string> constants;
    for (int k : region) {
      *g.add_node() = node(k);
      for (const auto& t : node(k).input())
        if (t != read && !made.count(t) && constants.insert(t).second)
          *g.add_initializer() = tensor_to_proto(*constant(t), t);
    }
    g.add_output()->set_name(value);
    const QuantParams out_q = per_tensor_params(node(q));
    Tensor every_int8(DType::kInt8, {256});
    for (int v = 0; v < 256; ++v) every_int8.data<int8_t>()[v] = static_cast<int8_t>(v - 128);
    const std::string where = node_label(first) + ": tabulating its element-wise region";
    Expected<Executor> ex = Executor::create(m);
    if (!ex.ok()) fail(ex.error().code(), where + ": " + ex.error().what());
    Expected<TensorMap> ran = ex.value().run({{read, dequantize_tensor(every_int8, g_.values[x].q)}});
    if (!ran.ok()) fail(ran.error().code(), where + ": " + ran.error().what());
    const Tensor& y = ran.value().at(value);
    if (y.dtype() != DType::kFloat32 || y.numel() != 256) malformed(first, "its element-wise region changes the shape");
    Int8Op op = node_op(Int8OpKind::kLut, first, {x});
    const Tensor table = quantize_tensor(y, out_q);
    std::copy_n(table.data<int8_t>(), 256, op.lut.begin());
    for (int k : region) claimed_.insert(k);
    claimed_.insert(q);
    op.output = add_value(node(q).output(0), g_.values[x].shape, out_q);
    g_.ops.push_back(std::move(op));
    return true;
  }

  /// DQ(a), DQ(b) -> MatMul [-> Relu|Clip] -> Q with two int8 activations: one kMatMul whose
  /// multiplier is a_scale * b_scale / out_scale, with numpy broadcasting of the batch dimensions
  /// (matmul_dims). |a - a_zp| and |b - b_zp| are at most 255, so the int32 accumulator holds
  /// K products only for K * 255^2 < 2^31 (K <= 33025); longer reductions are refused.
  void lower_matmul(const onnx::NodeProto& n) {
    const int a = dequantized_input(n, 0), b = dequantized_input(n, 1);
    Int8Op op = node_op(Int8OpKind::kMatMul, n, {a, b});
    MatMulDims d;
    try {
      d = matmul_dims(g_.values[a].shape, g_.values[b].shape);
    } catch (const Error& e) {
      fail(e.code(), node_label(n) + ": " + e.what());
    }
    if (d.k * 255 * 255 > std::numeric_limits<int32_t>::max())
      fail(ErrorCode::kUnsupported, node_label(n) + ": reduction of " + std::to_string(d.k) +
                                        " elements can overflow the int32 accumulator (at most 33025)");
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), true, op, &out_q);
    op.multiplier = math::quantize_multiplier(static_cast<double>(g_.values[a].q.scale) * g_.values[b].q.scale /
                                              out_q.scale);
    op.output = add_value(node(q).output(0), d.out, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// DQ(x) -> Softmax -> Q: the integer softmax of common/requant.h (math::softmax_row) over the
  /// axis, with the exponential table of the input scale built here, once. Before opset 13 Softmax
  /// normalises over all dimensions from `axis` on; that is the same operation only when the
  /// axis is the last dimension, and is refused otherwise.
  void lower_softmax(const onnx::NodeProto& n) {
    const int x = dequantized_input(n, 0);
    Int8Op op = node_op(Int8OpKind::kSoftmax, n, {x});
    const Shape shape = g_.values[x].shape;
    const int64_t rank = static_cast<int64_t>(shape.size());
    int64_t axis = attr_int(n, "axis", opset_ < 13 ? 1 : -1);
    if (axis < -rank || axis >= rank || rank == 0)
      malformed(n, "axis " + std::to_string(axis) + " is outside the rank " + std::to_string(rank) + " input");
    if (axis < 0) axis += rank;
    if (opset_ < 13 && axis != rank - 1)
      fail(ErrorCode::kUnsupported, node_label(n) + ": opset " + std::to_string(opset_) +
                                        " Softmax over the flattened dimensions from axis " + std::to_string(axis) +
                                        " is not lowered (only over the last axis)");
    op.axis = static_cast<int>(axis);
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
    op.softmax_table = math::make_softmax_table(g_.values[x].q.scale);
    op.multiplier = math::softmax_output_multiplier(out_q.scale);
    op.output = add_value(node(q).output(0), shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// Flatten/Reshape of a quantized value: on the int8 output of a Q directly, or between a DQ
  /// and a Q with the same parameters.
  void lower_reshape(const onnx::NodeProto& n) {
    Int8Op op;
    op.kind = Int8OpKind::kReshape;
    op.node = node_name(n);
    int x;
    bool direct = quantized_.count(n.input(0)) > 0;
    if (direct) {
      x = quantized_[n.input(0)];
    } else {
      x = dequantized_input(n, 0);
    }
    op.inputs = {x};
    const Int8Value in = g_.values[x];
    Shape shape;
    if (n.op_type() == "Flatten") {
      shape = flatten_shape(in.shape, attr_int(n, "axis", 1));
    } else if (n.op_type() == "Squeeze") {
      shape = squeeze_shape(in.shape, axes_operand(n));
    } else if (n.op_type() == "Unsqueeze") {
      shape = unsqueeze_shape(in.shape, axes_operand(n));
    } else {
      const Tensor* target = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
      if (!target) malformed(n, "shape must be a constant");
      shape = reshape_shape(in.shape, int_values(*target, "shape"), attr_int(n, "allowzero", 0) != 0);
    }
    if (direct) {
      op.output = add_value(n.output(0), shape, in.q);
    } else {
      QuantParams out_q;
      const int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
      if (out_q.scale != in.q.scale || out_q.zero_point != in.q.zero_point)
        malformed(n, "quantization parameters must be equal before and after a reshape");
      op.output = add_value(node(q).output(0), shape, out_q);
    }
    g_.ops.push_back(std::move(op));
  }

  /// Squeeze/Unsqueeze axes: the constant input 1 (opset >= 13) or the attribute.
  std::vector<int64_t> axes_operand(const onnx::NodeProto& n) {
    if (opset_ < 13) return attr_ints(n, "axes");
    if (n.input_size() < 2 || n.input(1).empty()) return {};
    const Tensor* axes = constant(n.input(1));
    if (!axes) fail(ErrorCode::kUnsupported, node_label(n) + ": axes must be a constant on the NPU");
    return int_values(*axes, "axes");
  }

  // ---- data movement (kTranspose, kSlice, kConcat, kPad) -----------------------------------

  /// A constant integer operand of a data-movement node; kUnsupported when it is computed.
  std::vector<int64_t> constant_ints(const onnx::NodeProto& n, int input, const char* what) {
    const Tensor* t = n.input_size() > input && !n.input(input).empty() ? constant(n.input(input)) : nullptr;
    if (!t) fail(ErrorCode::kUnsupported, node_label(n) + ": " + what + " must be a constant on the NPU");
    return int_values(*t, what);
  }

  /// Ends a data-movement op: `value` (an output of n) -> QuantizeLinear gives the output of
  /// `shape`; one multiplier per input (in_scale / out_scale, used where the parameters differ).
  /// kPad: `border` (float) quantized with the output's parameters becomes pad_value.
  void finish_movement(Int8Op op, const onnx::NodeProto& n, const std::string& value, const Shape& shape,
                       float border = 0.0f) {
    for (int64_t d : shape)
      if (d == 0) fail(ErrorCode::kUnsupported, node_label(n) + ": empty output " + shape_str(shape) + " on the NPU");
    QuantParams out_q;
    const int q = follow_to_quantize(n, value, false, op, &out_q);
    if (op.kind == Int8OpKind::kPad) op.pad_value = math::quantize_float(border, out_q.scale, out_q.zero_point);
    for (int in : op.inputs)
      op.multipliers.push_back(math::quantize_multiplier(static_cast<double>(g_.values[in].q.scale) / out_q.scale));
    op.output = add_value(node(q).output(0), shape, out_q);
    g_.ops.push_back(std::move(op));
  }

  /// A new op of `kind` that lowers node `n` and reads `inputs` (values of g_).
  Int8Op node_op(Int8OpKind kind, const onnx::NodeProto& n, std::vector<int> inputs) {
    Int8Op op;
    op.kind = kind;
    op.node = node_name(n);
    op.inputs = std::move(inputs);
    return op;
  }

  void lower_transpose(const onnx::NodeProto& n) {
    Int8Op op = node_op(Int8OpKind::kTranspose, n, {dequantized_input(n, 0)});
    const Shape in = g_.values[op.inputs[0]].shape;
    const int64_t rank = static_cast<int64_t>(in.size());
    op.perm = attr_ints(n, "perm");
    if (op.perm.empty())
      for (int64_t i = rank - 1; i >= 0; --i) op.perm.push_back(i);  // default: reverse the axes
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    if (static_cast<int64_t>(op.perm.size()) != rank) malformed(n, "perm must have one entry per input axis");
    for (int64_t p : op.perm) {
      if (p < 0 || p >= rank || seen[p]) malformed(n, "perm is not a permutation of " + std::to_string(rank) + " axes");
      seen[p] = true;
    }
    Shape out;
    for (int64_t p : op.perm) out.push_back(in[p]);
    finish_movement(std::move(op), n, n.output(0), out);
  }

  void lower_slice(const onnx::NodeProto& n) {
    Int8Op op = node_op(Int8OpKind::kSlice, n, {dequantized_input(n, 0)});
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset_ >= 10) {
      starts = constant_ints(n, 1, "starts");
      ends = constant_ints(n, 2, "ends");
      if (n.input_size() > 3 && !n.input(3).empty()) axes = constant_ints(n, 3, "axes");
      if (n.input_size() > 4 && !n.input(4).empty()) steps = constant_ints(n, 4, "steps");
    } else {
      starts = attr_ints(n, "starts");
      ends = attr_ints(n, "ends");
      axes = attr_ints(n, "axes");
    }
    SliceBox box;
    try {
      box = slice_box(g_.values[op.inputs[0]].shape, starts, ends, std::move(axes), std::move(steps));
    } catch (const Error& e) {
      malformed(n, e.what());
    }
    op.starts = box.begin;
    op.steps = box.step;
    finish_movement(std::move(op), n, n.output(0), box.out);
  }

  /// Split: one kSlice per output, each the output's range of the axis with step 1.
  void lower_split(const onnx::NodeProto& n) {
    const int x = dequantized_input(n, 0);
    const Shape in = g_.values[x].shape;
    const int64_t rank = static_cast<int64_t>(in.size());
    const int64_t axis = normalize_axis(attr_int(n, "axis", 0), rank, "axis");
    const int64_t parts = n.output_size();
    std::vector<int64_t> sizes = opset_ >= 13 ? (n.input_size() > 1 && !n.input(1).empty() ? constant_ints(n, 1, "split")
                                                                                           : std::vector<int64_t>{})
                                              : attr_ints(n, "split");
    if (sizes.empty()) {
      if (in[axis] % parts)  // opset 18's uneven num_outputs split
        fail(ErrorCode::kUnsupported, node_label(n) + ": only explicit sizes or equal parts are supported on the NPU");
      sizes.assign(static_cast<size_t>(parts), in[axis] / parts);
    }
    if (static_cast<int64_t>(sizes.size()) != parts ||
        std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) != in[axis])
      malformed(n, "split sizes do not add up to the axis length " + std::to_string(in[axis]));
    int64_t start = 0;
    for (int64_t p = 0; p < parts; ++p) {
      Int8Op op = node_op(Int8OpKind::kSlice, n, {x});
      op.starts.assign(static_cast<size_t>(rank), 0);
      op.steps.assign(static_cast<size_t>(rank), 1);
      op.starts[axis] = start;
      Shape out = in;
      out[axis] = sizes[p];
      start += sizes[p];
      if (n.output(static_cast<int>(p)).empty()) continue;
      finish_movement(std::move(op), n, n.output(static_cast<int>(p)), out);
    }
  }

  void lower_concat(const onnx::NodeProto& n) {
    std::vector<int> inputs;
    for (int i = 0; i < n.input_size(); ++i) inputs.push_back(dequantized_input(n, i));
    Int8Op op = node_op(Int8OpKind::kConcat, n, inputs);
    if (inputs.empty()) malformed(n, "has no inputs");
    Shape out = g_.values[inputs[0]].shape;
    const int64_t rank = static_cast<int64_t>(out.size());
    op.axis = normalize_axis(attr_int(n, "axis", 0), rank, "axis");
    out[op.axis] = 0;
    for (int v : inputs) {
      const Shape& s = g_.values[v].shape;
      bool ok = static_cast<int64_t>(s.size()) == rank;
      for (int64_t d = 0; ok && d < rank; ++d) ok = d == op.axis || s[d] == out[d];
      if (!ok) malformed(n, "input " + shape_str(s) + " does not match " + shape_str(g_.values[inputs[0]].shape));
      out[op.axis] += s[op.axis];
    }
    finish_movement(std::move(op), n, n.output(0), out);
  }

  /// Pad in constant mode with non-negative pads; the border is the constant value quantized with
  /// the output's parameters, exactly what QuantizeLinear makes of it in the float graph.
  void lower_pad(const onnx::NodeProto& n) {
    Int8Op op = node_op(Int8OpKind::kPad, n, {dequantized_input(n, 0)});
    const Shape in = g_.values[op.inputs[0]].shape;
    const int64_t rank = static_cast<int64_t>(in.size());
    const std::string mode = attr_string(n, "mode", "constant");
    if (mode == "edge") op.pad_mode = PadMode::kEdge;
    else if (mode == "reflect") op.pad_mode = PadMode::kReflect;
    else if (mode != "constant")
      fail(ErrorCode::kUnsupported, node_label(n) + ": only constant, edge and reflect padding are supported on the NPU");
    std::vector<int64_t> pads;
    float value = 0.0f;
    if (opset_ >= 11) {
      pads = constant_ints(n, 1, "pads");
      if (n.input_size() > 3 && !n.input(3).empty())
        fail(ErrorCode::kUnsupported, node_label(n) + ": the axes input is not supported on the NPU");
      if (n.input_size() > 2 && !n.input(2).empty()) value = pad_constant(n, n.input(2));
    } else {
      pads = attr_ints(n, "pads");
      value = attr_float(n, "value", 0.0f);
    }
    if (static_cast<int64_t>(pads.size()) != 2 * rank) malformed(n, "pads must have " + std::to_string(2 * rank) + " values");
    Shape out = in;
    for (int64_t d = 0; d < rank; ++d) {
      if (pads[d] < 0 || pads[d + rank] < 0)
        fail(ErrorCode::kUnsupported, node_label(n) + ": negative pads (cropping) are not supported on the NPU");
      out[d] += pads[d] + pads[d + rank];
      if (op.pad_mode == PadMode::kReflect && (pads[d] || pads[d + rank]) && (pads[d] >= in[d] || pads[d + rank] >= in[d]))
        malformed(n, "reflect padding must be smaller than the axis (axis " + std::to_string(d) + " of " +
                         shape_str(in) + ", pads " + std::to_string(pads[d]) + " and " + std::to_string(pads[d + rank]) + ")");
    }
    op.pad_begin.assign(pads.begin(), pads.begin() + rank);
    if (op.pad_mode != PadMode::kConstant) value = 0.0f;  // no border value: pad_value stays unused
    finish_movement(std::move(op), n, n.output(0), out, value);
  }

  /// Pad's constant_value: a float constant, or a DequantizeLinear of an int8 constant (QDQ models).
  float pad_constant(const onnx::NodeProto& n, const std::string& name) {
    if (const Tensor* t = constant(name)) return float_scalar(*t, "constant_value");
    const onnx::NodeProto* dq = dequantize_of_constant(name);
    if (!dq) fail(ErrorCode::kUnsupported, node_label(n) + ": constant_value must be a constant on the NPU");
    const Tensor& q = *constant(dq->input(0));
    if (q.dtype() != DType::kInt8 || q.numel() != 1) malformed(*dq, "constant_value must be one int8");
    const QuantParams p = per_tensor_params(*dq);
    return math::dequantize(q.data<int8_t>()[0], p.scale, p.zero_point);
  }

  // ---- ConvTranspose ------------------------------------------------------------------------

  /// DQ(x), DQ(W int8 [C, M/group, k...], per tensor or per channel along axis 1), DQ(b int32) ->
  /// ConvTranspose [-> Relu|Clip] -> Q, 1-D or 2-D, as a kPad and an ordinary kConv. The
  /// transposed conv y[o] = sum_{i*stride + k*dilation - begin = o} x[i] * W[k] is the stride-1 conv
  /// of the kernel flipped (and its channel axes swapped, per group) over the input with
  /// stride - 1 zeros inserted between neighbours and dilation * (k - 1) - begin zeros before it,
  /// out + dilation * (k - 1) - ((in - 1) * stride + 1) - that before padding after it (the
  /// geometry transpose_shape gives the float kernel: pads, output_padding, auto_pad, output_shape).
  /// "Zero" is the input zero point, so x - in_zp is 0 there and the int32 accumulation over the
  /// zero-inserted input is exactly the integer sum of the transposed conv: run_int8 agrees with
  /// the float QDQ graph up to its final rounding (one step). A negative padding (begin larger than
  /// dilation * (k - 1), an output_shape smaller than the full output) pads with 0 and crops the
  /// conv's output with a kSlice. 1-D values are viewed as N x C x 1 x L (kReshape on each side);
  /// 3-D is refused (kConv is 2-D).
  void lower_conv_transpose(const onnx::NodeProto& n) {
    const int x = dequantized_input(n, 0);
    const Int8Value in = g_.values[x];
    if (in.shape.size() != 3 && in.shape.size() != 4)
      unsupported_shape(n, "N x C x L or N x C x H x W (1-D or 2-D ConvTranspose)", in.shape);
    const auto [dq, weight] = int8_weight(n);
    const Tensor& w = *weight;
    TransposeShape s;
    try {
      s = transpose_shape(n, in.shape, w.shape());
    } catch (const Error& e) {
      malformed(n, e.what());
    }
    const int64_t groups = s.group, cg = s.channels / groups, mg = s.maps / groups, o = s.maps;
    // Weight scales: one, or one per W[:, m] (axis 1, M/group values: output channel g * M/group + m).
    const std::vector<float> w_scale = weight_scales(
        *dq, w, 1, mg, o, "per-channel ConvTranspose weight scale must be along axis 1 (the output channels)");
    // Spatial axes 1 and 2 of the lifted geometry are H and W (1-D: H is the unit axis).
    const int64_t kh = s.kernel[1], kw = s.kernel[2];
    Tensor flipped(DType::kInt8, {o, cg, kh, kw});
    const int8_t* src = w.data<int8_t>();
    int8_t* dst = flipped.data<int8_t>();
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t m = 0; m < mg; ++m)
        for (int64_t c = 0; c < cg; ++c)
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx)
              dst[(((g * mg + m) * cg + c) * kh + ky) * kw + kx] =
                  src[(((g * cg + c) * mg + m) * kh + kh - 1 - ky) * kw + kw - 1 - kx];
    Int8Op conv;
    conv.kind = Int8OpKind::kConv;
    conv.node = node_name(n);
    conv.groups = static_cast<int>(groups);
    conv.bias = n.input_size() > 2 && !n.input(2).empty() ? constant_bias(n, n.input(2), in.q.scale, w_scale, o)
                                                          : Tensor(DType::kInt32, {o});
    check_accumulator(n, flipped, conv.bias);
    conv.weight = std::move(flipped);
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), true, conv, &out_q);
    for (int64_t c = 0; c < o; ++c)
      conv.multipliers.push_back(math::quantize_multiplier(static_cast<double>(in.q.scale) * w_scale[c] / out_q.scale));
    // Per spatial axis: the zero-inserted, padded input and the crop of the conv's output.
    std::vector<int64_t> begin{0, 0, 0, 0}, interior{0, 0, 0, 0}, crop{0, 0, 0, 0};
    Shape padded{in.shape[0], s.channels, 1, 1}, full{in.shape[0], o, 1, 1};
    bool pads = false;
    for (int a = 0; a < 2; ++a) {
      const int64_t k = s.kernel[1 + a], d = s.dilations[1 + a], span = d * (k - 1);
      const int64_t inserted = (s.in[1 + a] - 1) * s.strides[1 + a] + 1;
      const int64_t lo = span - s.pad_begin[1 + a], hi = s.out[1 + a] + span - inserted - lo;
      begin[2 + a] = std::max<int64_t>(lo, 0);
      interior[2 + a] = s.strides[1 + a] - 1;
      crop[2 + a] = std::max<int64_t>(-lo, 0);
      padded[2 + a] = begin[2 + a] + inserted + std::max<int64_t>(hi, 0);
      full[2 + a] = padded[2 + a] - span;
      pads = pads || padded[2 + a] != s.in[1 + a];
      conv.kernel[a] = static_cast<int>(k);
      conv.dilations[a] = static_cast<int>(d);
    }
    const std::string y = node(q).output(0);
    int v = x;
    if (in.shape.size() == 3) {  // N x C x L as N x C x 1 x L
      Int8Op to_2d = node_op(Int8OpKind::kReshape, n, {v});
      to_2d.output = v = add_value(y + "/2d_in", {in.shape[0], in.shape[1], 1, in.shape[2]}, in.q);
      g_.ops.push_back(std::move(to_2d));
    }
    if (pads) {
      Int8Op pad = node_op(Int8OpKind::kPad, n, {v});
      pad.pad_begin = begin;
      if (interior[2] || interior[3]) pad.pad_interior = interior;
      pad.pad_value = in.q.zero_point;
      pad.multipliers = {math::quantize_multiplier(1.0)};
      pad.output = v = add_value(y + "/zero_inserted", padded, in.q);
      g_.ops.push_back(std::move(pad));
    }
    Shape out_4d{in.shape[0], o, s.out[1], s.out[2]};
    const bool crops = full != out_4d, reshapes = in.shape.size() == 3;
    conv.inputs = {v};
    conv.output = v = add_value(crops || reshapes ? y + "/conv" : y, full, out_q);
    g_.ops.push_back(std::move(conv));
    if (crops) {
      Int8Op slice = node_op(Int8OpKind::kSlice, n, {v});
      slice.starts = crop;
      slice.steps = {1, 1, 1, 1};
      slice.multipliers = {math::quantize_multiplier(1.0)};
      slice.output = v = add_value(reshapes ? y + "/cropped" : y, out_4d, out_q);
      g_.ops.push_back(std::move(slice));
    }
    if (reshapes) {
      Int8Op back = node_op(Int8OpKind::kReshape, n, {v});
      back.output = add_value(y, s.out_shape, out_q);
      g_.ops.push_back(std::move(back));
    }
  }

  // ---- Resize -------------------------------------------------------------------------------

  /// DQ(x) -> Resize -> Q: nearest (every nearest_mode and coordinate transformation but
  /// tf_crop_and_resize) or linear, over the last two axes, with constant scales or sizes. The
  /// taps are the float kernel's (resize_plan), rounded to Q11 weights (math::make_resize_tap);
  /// a scale change is folded into the multiplier. Everything else is kUnsupported (host).
  void lower_resize(const onnx::NodeProto& n) {
    const int x = dequantized_input(n, 0);
    Int8Op op = node_op(Int8OpKind::kResize, n, {x});
    const Shape in = g_.values[x].shape;
    const auto refuse = [&](const std::string& why) {
      fail(ErrorCode::kUnsupported, node_label(n) + ": " + why + " is not supported on the NPU");
    };
    if (attr_int(n, "antialias", 0) != 0) refuse("antialias");
    if (!attr_ints(n, "axes").empty()) refuse("the axes attribute");
    if (attr_string(n, "keep_aspect_ratio_policy", "stretch") != "stretch") refuse("keep_aspect_ratio_policy");
    const std::string mode = attr_string(n, "mode", "nearest");
    if (mode != "nearest" && mode != "linear") refuse("mode '" + mode + "'");
    if (opset_ >= 11 && attr_string(n, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize")
      refuse("coordinate_transformation_mode 'tf_crop_and_resize'");
    if (in.size() < 2) refuse("a rank " + std::to_string(in.size()) + " input");
    const auto operand = [&](int i, const char* what) -> const Tensor* {
      if (n.input_size() <= i || n.input(i).empty()) return nullptr;
      const Tensor* t = constant(n.input(i));
      if (!t) refuse(std::string("a computed ") + what + " input");
      return t;
    };
    const Tensor* scales = operand(opset_ < 11 ? 1 : 2, "scales");
    const Tensor* sizes = opset_ < 11 ? nullptr : operand(3, "sizes");
    ResizePlan plan;
    try {
      plan = resize_plan(n, opset_, in, nullptr, scales, sizes);
    } catch (const Error& e) {
      fail(e.code(), node_label(n) + ": " + e.what());
    }
    const size_t rank = in.size();
    for (size_t i = 0; i + 2 < rank; ++i)
      if (!plan.axes[i].identity) refuse("resizing axis " + std::to_string(i) + " (only the last two axes)");
    for (size_t i = rank - 2; i < rank; ++i) {
      const AxisTaps& t = plan.axes[i];
      std::vector<math::ResizeTap>& taps = i == rank - 2 ? op.resize_rows : op.resize_cols;
      for (int64_t o = 0; o < t.out; ++o) {
        if (t.taps == 1) {
          taps.push_back(math::make_resize_tap(t.index[o], t.index[o], 0.0));
          continue;
        }
        const double w0 = t.weight[2 * o], w1 = t.weight[2 * o + 1];
        if (std::abs(w0 + w1 - 1.0) > 1e-9) refuse("linear weights that do not sum to one");
        taps.push_back(math::make_resize_tap(t.index[2 * o], t.index[2 * o + 1], w1));
      }
    }
    if (plan.out[rank - 2] > std::numeric_limits<int32_t>::max() || plan.out[rank - 1] > std::numeric_limits<int32_t>::max())
      refuse("an output of " + shape_str(plan.out));
    QuantParams out_q;
    const int q = follow_to_quantize(n, n.output(0), false, op, &out_q);
    op.multiplier = math::resize_multiplier(g_.values[x].q.scale, out_q.scale);
    op.output = add_value(node(q).output(0), plan.out, out_q);
    g_.ops.push_back(std::move(op));
  }

  // ---- host fallback (LowerOptions::host_fallback) ------------------------------------------
  //
  // A compute node no pattern takes becomes one kHost op: the node with the DequantizeLinear
  // nodes that feed it (their int8 values are op inputs), the Constants its members read, and the
  // QuantizeLinear nodes that consume its outputs (their int8 outputs are op outputs). An output
  // that some other node reads unquantized (a float, an int64 shape) or that is a graph output is
  // a host value: an op output of its own dtype (Int8Value::dtype), read by later kHost ops. The
  // ONNX order is topological, so every input exists when the node is reached: ops stay in that
  // order and no op can depend on its own output.

  /// lower_node, or with host_fallback a kHost op for a compute node no pattern takes.
  void lower_node_or_host(int i) {
    if (options_.fold_shapes && fold_static(i)) return;
    const std::string& t = node(i).op_type();
    if (options_.host_fallback && t == "DequantizeLinear" && host_values_.count(node(i).input(0)))
      return;  // dequantizes a host value: only kHost ops read it, each with this node as a member
    if (!options_.host_fallback || t == "QuantizeLinear" || t == "DequantizeLinear" || t == "Constant")
      return lower_node(i);
    const std::set<int> claimed = claimed_;  // a refused pattern may have claimed nodes
    try {
      lower_node(i);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kUnsupported && e.code() != ErrorCode::kInvalidArgument) throw;
      claimed_ = claimed;
      lower_host(i, e.what());
    }
  }

  bool is_initializer(const std::string& name) {
    if (initializers_.empty())
      for (int i = 0; i < graph_.initializer_size(); ++i) initializers_[graph_.initializer(i).name()] = i;
    return initializers_.count(name) > 0;
  }

  /// The node that produces `name`, or -1 (a graph input or an initializer).
  int producer(const std::string& name) {
    if (producer_.empty())
      for (int i = 0; i < graph_.node_size(); ++i)
        for (const auto& out : node(i).output()) producer_[out] = i;
    auto it = producer_.find(name);
    return it == producer_.end() ? -1 : it->second;
  }

  /// An int8 value or a host value of the integer graph, by name; -1 when it is neither.
  int graph_value(const std::string& name) const {
    if (auto it = quantized_.find(name); it != quantized_.end()) return it->second;
    if (auto it = host_values_.find(name); it != host_values_.end()) return it->second;
    return -1;
  }

  /// Node `seed` as a kHost op: an ONNX sub-model whose graph inputs and outputs are values of the
  /// integer graph, prepared by the Executor. It is run once to learn the output shapes, on zero
  /// int8 inputs and on the host values earlier ops gave on that run, so shape arithmetic
  /// (Shape -> Gather -> Concat -> Reshape) sees the real shapes.
  void lower_host(int seed, const std::string& reason) {
    const onnx::NodeProto& n = node(seed);
    std::set<int> members{seed};
    std::vector<std::string> inputs;  // value names, first read first
    const auto read = [&](const std::string& value) {
      if (std::find(inputs.begin(), inputs.end(), value) == inputs.end()) inputs.push_back(value);
    };
    for (const auto& t : n.input()) {
      if (t.empty() || is_initializer(t) || folded_.count(t)) continue;
      const int p = producer(t);
      if (p < 0)
        fail(ErrorCode::kUnsupported, node_label(n) + ": runs on the host but reads the float graph input '" + t +
                                          "' (host ops read int8 values and other host ops' outputs; quantize the input)");
      const onnx::NodeProto& pn = node(p);
      if (pn.op_type() == "Constant") {
        members.insert(p);
      } else if (pn.op_type() == "DequantizeLinear" && graph_value(t) < 0) {
        members.insert(p);
        const std::string& x = pn.input(0);
        const int xp = producer(x);
        if (is_initializer(x) || folded_.count(x) || (xp >= 0 && node(xp).op_type() == "Constant"))
          continue;  // a constant
        if (graph_value(x) < 0)
          fail(ErrorCode::kUnsupported, node_label(pn) + ": dequantizes '" + x +
                                            "', which is neither an int8 value nor a host op's output");
        read(x);
      } else if (graph_value(t) >= 0) {
        read(t);  // an int8 value read as it is (e.g. the Shape of a quantized value), or a host value
      } else {
        fail(ErrorCode::kUnsupported, node_label(n) + ": runs on the host but reads '" + t +
                                          "', which is neither an int8 value nor a host op's output");
      }
    }
    std::vector<int> quantize;             // QuantizeLinear consumers, graph order
    std::vector<std::string> raw_outputs;  // host values
    for (const auto& t : n.output()) {
      if (t.empty()) continue;
      bool raw = is_graph_output(t);
      if (auto c = consumers_.find(t); c != consumers_.end())
        for (int k : c->second) {
          if (node(k).op_type() == "QuantizeLinear" && node(k).input(0) == t && !claimed_.count(k)) {
            if (std::find(quantize.begin(), quantize.end(), k) == quantize.end()) quantize.push_back(k);
          } else {
            raw = true;
          }
        }
      if (raw) raw_outputs.push_back(t);
    }
    std::sort(quantize.begin(), quantize.end());
    claimed_.insert(seed);
    if (quantize.empty() && raw_outputs.empty()) return;  // nothing reads the node: no op
    for (int q : quantize) members.insert(q), claimed_.insert(q);
    for (int i : std::set<int>(members))  // the Constant nodes any member reads (scales, shapes)
      for (const auto& t : node(i).input()) {
        const int p = t.empty() ? -1 : producer(t);
        if (p >= 0 && node(p).op_type() == "Constant") members.insert(p);
      }

    onnx::ModelProto m = sub_model("host_" + node_name(n));
    onnx::GraphProto& g = *m.mutable_graph();
    std::set<int> inits;
    std::set<std::string> folded;  // static values folded at lowering time (fold_static)
    for (int i : members) {
      *g.add_node() = node(i);
      for (const auto& t : node(i).input())
        if (!t.empty() && is_initializer(t)) inits.insert(initializers_[t]);
        else if (folded_.count(t)) folded.insert(t);
    }
    for (int i : inits) *g.add_initializer() = graph_.initializer(i);
    for (const std::string& t : folded) *g.add_initializer() = tensor_to_proto(constants_.at(t), t);
    Int8Op op;
    op.kind = Int8OpKind::kHost;
    op.node = node_name(n);
    op.host_reason = reason;
    op.host_nodes = {node_name(n)};
    TensorMap samples;
    for (const std::string& t : inputs) {
      const int v = graph_value(t);
      op.inputs.push_back(v);
      const Int8Value& val = g_.values[v];
      onnx::ValueInfoProto& vi = *g.add_input();
      vi.set_name(t);
      auto& tt = *vi.mutable_type()->mutable_tensor_type();
      tt.set_elem_type(static_cast<int32_t>(val.dtype));
      auto& shape = *tt.mutable_shape();  // present even for a scalar (rank 0)
      for (int64_t d : val.shape) shape.add_dim()->set_dim_value(d);
      auto s = host_samples_.find(t);
      samples.emplace(t, s != host_samples_.end() ? s->second : Tensor(val.dtype, val.shape));
    }
    std::vector<std::string> outputs;
    for (int q : quantize) outputs.push_back(node(q).output(0));
    outputs.insert(outputs.end(), raw_outputs.begin(), raw_outputs.end());
    for (const std::string& t : outputs) g.add_output()->set_name(t);
    op.host_model = serialize_deterministic(m);
    const std::string where = "host op of " + node_label(n);
    Expected<Executor> ex = Executor::create(m);
    if (!ex.ok()) fail(ex.error().code(), where + ": " + ex.error().what());
    Expected<TensorMap> ran = ex.value().run(samples);
    if (!ran.ok()) fail(ran.error().code(), where + ": " + ran.error().what());
    op.host = std::make_shared<const Executor>(std::move(ex.value()));
    for (size_t k = 0; k < outputs.size(); ++k) {
      const Tensor& y = ran.value().at(outputs[k]);
      if (k < quantize.size()) {
        if (y.dtype() != DType::kInt8) fail(ErrorCode::kUnsupported, node_label(node(quantize[k])) + ": output is not int8");
        op.host_outputs.push_back(add_value(outputs[k], y.shape(), per_tensor_params(node(quantize[k]))));
      } else {
        op.host_outputs.push_back(add_host_value(outputs[k], y.shape(), y.dtype()));
        host_samples_[outputs[k]] = y;
      }
    }
    op.output = op.host_outputs[0];
    g_.ops.push_back(std::move(op));
  }

  // ---- static values (LowerOptions::fold_shapes) ---------------------------------------------
  //
  // For a concrete batch every shape is known, so shape arithmetic (Shape -> Gather -> Unsqueeze
  // -> Concat -> Reshape, computed Slice bounds) is a constant. A node of kFoldable whose inputs
  // are all constants (initializers, Constant nodes, earlier folded values), or a Shape/Size of a
  // value whose shape the walk already knows, is run here once with ref::Executor (the same
  // kernels a kHost op would run it with) and its outputs become constants: it makes no op, and
  // its consumers see constant operands (a Reshape's shape, a Slice's starts and ends), so the
  // patterns that need constants take them; a kHost op that reads one holds it as an initializer.

  /// Operators folded when their inputs are static: shape arithmetic on small integer tensors (and
  /// the Floor/Ceil/Round of float sizes exporters write). ref::Executor runs the fold, so every
  /// one must be in its table (reference/src/op_registry.cc).
  static bool foldable(const std::string& op) {
    static const std::set<std::string> kFoldable{
        "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Reshape", "Identity",
        "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Floor", "Ceil", "Round", "Equal", "Less", "LessOrEqual",
        "Greater", "GreaterOrEqual", "Not", "And", "Or", "Where", "Min", "Max", "ConstantOfShape", "Range",
        "Expand"};
    return kFoldable.count(op) > 0;
  }

  /// The concrete dtype and shape of a value the walk has reached (Shape/Size input); false when
  /// it is not known (e.g. a float inside a kHost op).
  bool known_shape(const std::string& name, DType* dtype, Shape* shape) {
    if (const Tensor* c = constants_.count(name) ? &constants_.at(name) : nullptr) {
      *dtype = c->dtype(), *shape = c->shape();
    } else if (const int v = graph_value(name); v >= 0) {
      *dtype = g_.values[v].dtype, *shape = g_.values[v].shape;
    } else if (auto d = dequantized_.find(name); d != dequantized_.end()) {
      *dtype = DType::kFloat32, *shape = g_.values[d->second].shape;
    } else if (auto in = float_inputs_.find(name);
               in != float_inputs_.end() && in->second->type().tensor_type().elem_type() == onnx::TensorProto::FLOAT) {
      *dtype = DType::kFloat32, *shape = input_shape(*in->second);
    } else {
      return false;
    }
    return true;
  }

  /// Folds node i when it computes static values (see above); false leaves it to the patterns.
  bool fold_static(int i) {
    const onnx::NodeProto& n = node(i);
    if (!foldable(n.op_type()) || (!n.domain().empty() && n.domain() != "ai.onnx")) return false;
    for (const auto& out : n.output())
      if (is_graph_output(out)) return false;
    const bool of_shape = n.op_type() == "Shape" || n.op_type() == "Size";
    for (int k = of_shape ? 1 : 0; k < n.input_size(); ++k)  // all static before anything is copied
      if (!n.input(k).empty() && !constant(n.input(k))) return false;
    onnx::ModelProto m = sub_model("fold_" + node_name(n));
    onnx::GraphProto& g = *m.mutable_graph();
    TensorMap feeds;
    for (int k = 0; k < n.input_size(); ++k) {
      const std::string& t = n.input(k);
      if (t.empty()) continue;
      if (of_shape && k == 0) {  // only the shape is read: a zero tensor of it stands for the value
        DType dtype;
        Shape shape;
        if (!known_shape(t, &dtype, &shape)) return false;
        auto& tt = *g.add_input();
        tt.set_name(t);
        tt.mutable_type()->mutable_tensor_type()->set_elem_type(static_cast<int32_t>(dtype));
        auto& dims = *tt.mutable_type()->mutable_tensor_type()->mutable_shape();
        for (int64_t d : shape) dims.add_dim()->set_dim_value(d);
        feeds.emplace(t, Tensor(dtype, shape));
        continue;
      }
      *g.add_initializer() = tensor_to_proto(*constant(t), t);
    }
    *g.add_node() = n;
    for (const auto& out : n.output())
      if (!out.empty()) g.add_output()->set_name(out);
    const std::string where = node_label(n) + ": folding its static value at batch " + std::to_string(batch_);
    Expected<Executor> ex = Executor::create(m);
    if (!ex.ok()) fail(ex.error().code(), where + ": " + ex.error().what());
    Expected<TensorMap> ran = ex.value().run(feeds);
    if (!ran.ok()) fail(ran.error().code(), where + ": " + ran.error().what());
    for (const auto& out : n.output()) {
      if (out.empty()) continue;
      constants_[out] = ran.value().at(out);
      folded_.insert(out);
    }
    claimed_.insert(i);
    return true;
  }

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  int64_t opset_;
  int64_t batch_;
  Int8Graph g_;
  std::map<std::string, Tensor> constants_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::map<std::string, const onnx::ValueInfoProto*> float_inputs_;
  std::unordered_map<std::string, int> quantized_;    ///< int8 value name -> value index
  std::unordered_map<std::string, int> dequantized_;  ///< DQ output name -> value index
  std::set<int> claimed_;                              ///< nodes already part of a pattern
  LowerOptions options_;
  std::unordered_map<std::string, int> producer_;      ///< tensor -> node (host fallback only)
  std::unordered_map<std::string, int> initializers_;  ///< initializer name -> index
  std::unordered_map<std::string, int> host_values_;   ///< unquantized kHost op output -> value index
  std::unordered_map<std::string, Tensor> host_samples_;  ///< host values of the shape-learning runs
  std::set<std::string> folded_;  ///< outputs of folded nodes (fold_static), values in constants_
};

}  // namespace

Expected<Int8Graph> lower_qdq(const onnx::ModelProto& model, int64_t batch) {
  return capture([&] { return QdqLowering(model, batch).run(); });
}

Expected<Int8Graph> lower_qdq(const onnx::ModelProto& model, int64_t batch, const LowerOptions& options) {
  return capture([&] { return QdqLowering(model, batch, options).run(); });
}

}  // namespace anvil::ref
