#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "graph.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {

using graph::node_label;

/// The node producing `t`, or -1.
int producer_of(const onnx::GraphProto& g, const std::string& t) {
  for (int i = 0; i < g.node_size(); ++i)
    for (const auto& o : g.node(i).output())
      if (o == t) return i;
  return -1;
}

std::vector<int> consumers_of(const onnx::GraphProto& g, const std::string& t) {
  std::vector<int> out;
  for (int i = 0; i < g.node_size(); ++i)
    for (const auto& in : g.node(i).input())
      if (in == t) {
        out.push_back(i);
        break;
      }
  return out;
}

/// The constant per-tensor scale and int8 zero point of a Q/DQ node.
QuantParams qdq_params(const onnx::GraphProto& g, const onnx::NodeProto& n) {
  const onnx::TensorProto* s = n.input_size() > 1 ? graph::find_initializer(g, n.input(1)) : nullptr;
  const onnx::TensorProto* z = n.input_size() > 2 ? graph::find_initializer(g, n.input(2)) : nullptr;
  if (!s || !z)
    fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(n) + ": scale and zero point must be initializers");
  const Tensor st = tensor_from_proto(*s), zt = tensor_from_proto(*z);
  if (st.dtype() != DType::kFloat32 || st.numel() != 1 || zt.dtype() != DType::kInt8 || zt.numel() != 1)
    fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(n) + ": per-tensor float32 scale and int8 zero point expected");
  return QuantParams{st.data<float>()[0], zt.data<int8_t>()[0]};
}

void set_elem_type(onnx::ValueInfoProto* v, int type) { v->mutable_type()->mutable_tensor_type()->set_elem_type(type); }

void add_meta(onnx::ModelProto& m, const std::string& key, const std::string& value) {
  auto* p = m.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/// The int32 biases tied to the input scale of node `n` (which reads the edited input): its own
/// bias input for Conv, ConvTranspose and Gemm; for a MatMul, the bias of each Add that adds a
/// dequantized int32 constant to its output.
struct TiedBias {
  int node = -1, input = -1;  ///< the node that reads the bias and which of its inputs it is
};
std::vector<TiedBias> tied_biases(const onnx::GraphProto& g, int n_index) {
  const onnx::NodeProto& n = g.node(n_index);
  const std::string& op = n.op_type();
  std::vector<TiedBias> out;
  if (op == "Conv" || op == "ConvTranspose" || op == "Gemm") {
    if (n.input_size() >= 3 && !n.input(2).empty()) out.push_back({n_index, 2});
  } else if (op == "MatMul" && n.output_size() == 1) {
    for (int a : consumers_of(g, n.output(0))) {
      const onnx::NodeProto& add = g.node(a);
      if (add.op_type() != "Add" || add.input_size() != 2) continue;
      const int k = add.input(0) == n.output(0) ? 1 : 0;
      const int dq = producer_of(g, add.input(k));
      if (dq >= 0 && g.node(dq).op_type() == "DequantizeLinear") {
        const onnx::TensorProto* v = graph::find_initializer(g, g.node(dq).input(0));
        if (v && v->data_type() == onnx::TensorProto::INT32) out.push_back({a, k});
      }
    }
  }
  return out;
}

/// Re-quantizes the int32 biases tied to the input scale of node `node_index` (tied_biases) for a
/// new input scale, keeping bias_scale = input_scale * weight_scale[c] (the TFLite rule lower_qdq
/// checks). A grouped ConvTranspose's weight scale m serves channel m of every group.
void rescale_bias(onnx::GraphProto& g, graph::NameAllocator& names, int node_index, float new_in_scale) {
  const onnx::NodeProto n = g.node(node_index);
  const int w_dq = n.input_size() > 1 ? producer_of(g, n.input(1)) : -1;
  for (const TiedBias& tied : tied_biases(g, node_index)) {
    const int bias_dq = producer_of(g, g.node(tied.node).input(tied.input));
    if (bias_dq < 0 || w_dq < 0 || g.node(bias_dq).op_type() != "DequantizeLinear" ||
        g.node(w_dq).op_type() != "DequantizeLinear")
      continue;  // a float bias or weight: nothing tied to the input scale
    const onnx::NodeProto bdq = g.node(bias_dq), wdq = g.node(w_dq);
    const onnx::TensorProto* bq = graph::find_initializer(g, bdq.input(0));
    const onnx::TensorProto* bs = graph::find_initializer(g, bdq.input(1));
    const onnx::TensorProto* ws = graph::find_initializer(g, wdq.input(1));
    if (!bq || !bs || !ws)
      fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(n) + ": quantized bias/weight must be initializers");
    const Tensor qb = tensor_from_proto(*bq), sb = tensor_from_proto(*bs), sw = tensor_from_proto(*ws);
    const int64_t c = qb.numel();
    if (qb.dtype() != DType::kInt32 || sb.dtype() != DType::kFloat32 || sw.dtype() != DType::kFloat32 ||
        (sb.numel() != c && sb.numel() != 1) || sw.numel() == 0 || c % sw.numel() != 0)
      fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(g.node(tied.node)) +
                                            ": int32 bias with float32 scales expected");
    Tensor bias(DType::kFloat32, {c});
    std::vector<float> w_scales(static_cast<size_t>(c));
    for (int64_t i = 0; i < c; ++i) {
      const float s = sb.data<float>()[sb.numel() == 1 ? 0 : i];
      bias.data<float>()[i] = math::dequantize(qb.data<int32_t>()[i], s, 0);
      w_scales[static_cast<size_t>(i)] = sw.data<float>()[i % sw.numel()];
    }
    std::vector<float> new_scales;
    const Tensor nq = quantize_bias(bias, new_in_scale, w_scales, &new_scales).reshaped(qb.shape());
    const std::string vq = names.make(bdq.input(0) + "_rescaled"), vs = names.make(bdq.input(1) + "_rescaled");
    const std::string out = names.make(bdq.output(0) + "_rescaled");
    graph::set_initializer(g, nq, vq);
    graph::set_initializer(g, Tensor::from_vector<float>({c}, new_scales), vs);
    onnx::NodeProto dq = bdq;
    dq.set_name(names.make(bdq.name().empty() ? out : bdq.name() + "_rescaled"));
    dq.set_input(0, vq);
    dq.set_input(1, vs);
    if (dq.input_size() > 2) {
      const std::string vz = names.make(bdq.input(0) + "_rescaled_zero_point");
      graph::set_initializer(g, Tensor(DType::kInt32, {c}), vz);
      dq.set_input(2, vz);
    }
    if (sb.numel() == 1 && c > 1) graph::set_attr_int(dq, "axis", static_cast<int64_t>(qb.rank()) - 1);
    dq.set_output(0, out);
    g.mutable_node(tied.node)->set_input(tied.input, out);
    *g.add_node() = dq;  // topological order is restored by the caller
  }
}

/// Drops DequantizeLinear nodes nobody reads (replaced bias DQs) and initializers nobody reads.
void remove_unused(onnx::GraphProto& g) {
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const onnx::NodeProto& n = g.node(i);
    if (n.op_type() == "DequantizeLinear" && consumers_of(g, n.output(0)).empty() &&
        !graph::is_graph_output(g, n.output(0)))
      g.mutable_node()->DeleteSubrange(i, 1);
  }
  for (int i = g.initializer_size() - 1; i >= 0; --i)
    if (graph::use_count(g, g.initializer(i).name()) == 0) g.mutable_initializer()->DeleteSubrange(i, 1);
}

/// Kahn's algorithm over the node list (the editor appends nodes).
void sort_topologically(onnx::GraphProto& g) {
  std::set<std::string> ready;
  for (const auto& i : g.input()) ready.insert(i.name());
  for (const auto& i : g.initializer()) ready.insert(i.name());
  std::vector<onnx::NodeProto> pending(g.node().begin(), g.node().end()), done;
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      bool ok = true;
      for (const auto& in : it->input()) ok = ok && (in.empty() || ready.count(in));
      if (!ok) {
        ++it;
        continue;
      }
      for (const auto& o : it->output()) ready.insert(o);
      done.push_back(*it);
      it = pending.erase(it);
      progress = true;
    }
    if (!progress) fail(ErrorCode::kInvalidArgument, "edit_model: the graph has a cycle or an undefined input at " +
                                                         node_label(pending.front()));
  }
  g.clear_node();
  for (auto& n : done) *g.add_node() = std::move(n);
}

void edit_input(onnx::ModelProto& m, graph::NameAllocator& names, const onnx::ValueInfoProto& input,
                const EditOptions& o, EditResult& result) {
  onnx::GraphProto& g = *m.mutable_graph();
  const std::string x = input.name();
  const std::vector<int> qs = consumers_of(g, x);
  if (qs.size() != 1 || g.node(qs[0]).op_type() != "QuantizeLinear" || graph::is_graph_output(g, x))
    fail(ErrorCode::kInvalidArgument, "edit_model: graph input '" + x + "' must feed exactly one QuantizeLinear");
  const onnx::NodeProto q = g.node(qs[0]);
  const QuantParams in_q = qdq_params(g, q);
  const std::vector<int> dqs = consumers_of(g, q.output(0));
  if (dqs.empty() || graph::is_graph_output(g, q.output(0)))
    fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(q) + ": its output must be read by DequantizeLinear nodes");
  for (int d : dqs) {
    const onnx::NodeProto& dq = g.node(d);
    const QuantParams p = dq.op_type() == "DequantizeLinear" ? qdq_params(g, dq) : QuantParams{};
    if (dq.op_type() != "DequantizeLinear" || p.scale != in_q.scale || p.zero_point != in_q.zero_point)
      fail(ErrorCode::kInvalidArgument, "edit_model: " + node_label(dq) + " reads the input's QuantizeLinear " +
                                            node_label(q) + " but is not a DequantizeLinear with its parameters");
  }
  // The new boundary: uint8 u with u = q + 128 (plain), or raw pixels (folded normalisation).
  BoundaryParams b;
  b.tensor = x;
  b.dtype = "uint8";
  if (o.fold_normalization) {
    if (!(o.std > 0.0f) || !std::isfinite(o.std) || !std::isfinite(o.mean) || o.mean < 0.0f || o.mean > 1.0f)
      fail(ErrorCode::kInvalidArgument, "edit_model: folding needs 0 <= mean <= 1 and std > 0, got mean " +
                                            num(o.mean) + " std " + num(o.std));
    b.scale = 1.0f / (255.0f * o.std);
    b.zero_point = static_cast<int>(std::lround(255.0 * o.mean));
    b.note = "raw pixels 0..255 (normalisation (p/255 - " + num(o.mean) + ")/" + num(o.std) + " folded)";
  } else {
    b.scale = in_q.scale;
    b.zero_point = in_q.zero_point + 128;
    b.note = "u = clamp(round(x / scale) + zero_point, 0, 255) of the normalised float input x";
  }
  const std::string s_name = names.make(x + "_uint8_scale"), z_name = names.make(x + "_uint8_zero_point");
  graph::set_initializer(g, Tensor::scalar<float>(b.scale), s_name);
  Tensor zp(DType::kUInt8, {});
  zp.data<uint8_t>()[0] = static_cast<uint8_t>(b.zero_point);
  graph::set_initializer(g, zp, z_name);
  // Each DQ now reads the uint8 input; the int32 biases tied to its scale (tied_biases) are
  // re-quantized for the new input scale (folded case only: the plain case keeps the scale).
  for (int d : dqs) {
    onnx::NodeProto& dq = *g.mutable_node(d);
    dq.set_input(0, x);
    dq.set_input(1, s_name);
    if (dq.input_size() > 2) dq.set_input(2, z_name); else dq.add_input(z_name);
    if (b.scale != in_q.scale)
      for (int c : consumers_of(g, dq.output(0))) rescale_bias(g, names, c, b.scale);
  }
  g.mutable_node()->DeleteSubrange(qs[0], 1);
  for (auto& vi : *g.mutable_input())
    if (vi.name() == x) set_elem_type(&vi, onnx::TensorProto::UINT8);
  result.inputs.push_back(b);
}

void edit_output(onnx::ModelProto& m, graph::NameAllocator& names, const std::string& y, EditResult& result) {
  onnx::GraphProto& g = *m.mutable_graph();
  const int d = producer_of(g, y);
  if (d < 0 || g.node(d).op_type() != "DequantizeLinear")
    fail(ErrorCode::kInvalidArgument, "edit_model: graph output '" + y + "' is not written by a DequantizeLinear");
  const onnx::NodeProto dq = g.node(d);
  const QuantParams p = qdq_params(g, dq);
  const std::string yq = dq.input(0);
  if (graph::find_initializer(g, yq) || graph::is_graph_input(g, yq))
    fail(ErrorCode::kInvalidArgument, "edit_model: graph output '" + y + "' dequantizes a constant or an input");
  // Nodes that read the float output (it is also an intermediate value) keep a DequantizeLinear,
  // now of the int8 output, under a new name; with no such reader the DequantizeLinear goes.
  const bool read_inside = std::any_of(g.node().begin(), g.node().end(), [&](const onnx::NodeProto& n) {
    return std::find(n.input().begin(), n.input().end(), y) != n.input().end();
  });
  if (read_inside) {
    const std::string y_float = names.make(y + "_float");
    graph::rename_uses(g, y, y_float);
    g.mutable_node(d)->set_output(0, y_float);
  } else {
    g.mutable_node()->DeleteSubrange(d, 1);
  }
  // The int8 tensor takes the output's name: its producer writes y, its other readers read y.
  const int prod = producer_of(g, yq);
  if (prod < 0) fail(ErrorCode::kInvalidArgument, "edit_model: '" + yq + "' has no producer");
  onnx::NodeProto& pn = *g.mutable_node(prod);
  for (int i = 0; i < pn.output_size(); ++i)
    if (pn.output(i) == yq) pn.set_output(i, y);
  graph::rename_uses(g, yq, y);
  for (auto& vi : *g.mutable_value_info())
    if (vi.name() == yq || vi.name() == y) vi.set_name(y), set_elem_type(&vi, onnx::TensorProto::INT8);
  for (auto& vi : *g.mutable_output())
    if (vi.name() == y) set_elem_type(&vi, onnx::TensorProto::INT8);
  BoundaryParams b;
  b.tensor = y;
  b.dtype = "int8";
  b.scale = p.scale;
  b.zero_point = p.zero_point;
  b.note = "y = scale * (q - zero_point)";
  result.outputs.push_back(b);
}

}  // namespace

Expected<EditResult> edit_model(const onnx::ModelProto& qdq, const EditOptions& options) {
  return capture([&] {
    if (options.fold_normalization && !options.input_uint8)
      fail(ErrorCode::kInvalidArgument, "edit_model: folding the normalisation needs the uint8 input type");
    EditResult r;
    r.model = qdq;
    // value_info of the edited tensors would be stale: shape inference can rebuild it.
    r.model.mutable_graph()->clear_value_info();
    graph::NameAllocator names(r.model.graph());
    if (options.input_uint8) {
      const auto inputs = r.model.graph().input();
      for (const auto& in : inputs)
        if (!graph::find_initializer(r.model.graph(), in.name())) edit_input(r.model, names, in, options, r);
    }
    if (options.output_int8) {
      const auto outputs = r.model.graph().output();
      for (const auto& out : outputs) edit_output(r.model, names, out.name(), r);
    }
    remove_unused(*r.model.mutable_graph());
    sort_topologically(*r.model.mutable_graph());
    for (const auto* list : {&r.inputs, &r.outputs})
      for (const BoundaryParams& b : *list) {
        const std::string k = "anvil." + std::string(list == &r.inputs ? "input." : "output.") + b.tensor + ".";
        add_meta(r.model, k + "dtype", b.dtype);
        add_meta(r.model, k + "scale", num(b.scale));
        add_meta(r.model, k + "zero_point", std::to_string(b.zero_point));
        add_meta(r.model, k + "meaning", b.note);
      }
    return r;
  });
}

}  // namespace anvil::quant
