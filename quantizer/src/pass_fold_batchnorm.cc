#include <onnx/shape_inference/implementation.h>

#include <cmath>
#include <map>
#include <string>

#include "graph.h"
#include "passes.h"

namespace anvil::quant::passes {

namespace {

/// BatchNormalization(x) = s * (x - mean) + beta with s = gamma / sqrt(var + epsilon), per channel.
struct BnAffine {
  std::vector<double> s, mean, beta;
};

/// The BN's per-channel affine map, when all its parameters are constant and it is in inference mode.
bool bn_affine(const onnx::GraphProto& g, const onnx::NodeProto& bn, BnAffine* out) {
  if (bn.input_size() != 5 || bn.output_size() != 1 || graph::attr_int(bn, "training_mode", 0) != 0) return false;
  for (int i = 1; i < 5; ++i)
    if (!graph::find_initializer(g, bn.input(i))) return false;
  const std::string label = graph::node_label(bn);
  const Tensor gamma = graph::float_initializer(g, bn.input(1), label);
  const Tensor beta = graph::float_initializer(g, bn.input(2), label);
  const Tensor mean = graph::float_initializer(g, bn.input(3), label);
  const Tensor var = graph::float_initializer(g, bn.input(4), label);
  const int64_t c = gamma.numel();
  if (beta.numel() != c || mean.numel() != c || var.numel() != c)
    fail(ErrorCode::kInvalidArgument, "node " + label + ": scale, B, mean and var differ in length");
  const double eps = graph::attr_float(bn, "epsilon", 1e-5f);
  out->s.resize(c);
  out->mean.resize(c);
  out->beta.resize(c);
  for (int64_t i = 0; i < c; ++i) {
    out->s[i] = gamma.data<float>()[i] / std::sqrt(static_cast<double>(var.data<float>()[i]) + eps);
    out->mean[i] = mean.data<float>()[i];
    out->beta[i] = beta.data<float>()[i];
  }
  return true;
}

/// Folds into Conv: W'[o] = s[o] * W[o], b'[o] = s[o] * (b[o] - mean[o]) + beta[o].
bool fold_into_conv(onnx::GraphProto& g, onnx::NodeProto& conv, const BnAffine& bn, graph::NameAllocator& names) {
  if (conv.input_size() < 2 || !graph::find_initializer(g, conv.input(1))) return false;
  const bool has_bias = conv.input_size() >= 3 && !conv.input(2).empty();
  if (has_bias && !graph::find_initializer(g, conv.input(2))) return false;
  const std::string label = graph::node_label(conv);
  Tensor w = graph::float_initializer(g, conv.input(1), label);
  const int64_t out_ch = w.rank() ? w.dim(0) : 0;
  if (out_ch != static_cast<int64_t>(bn.s.size())) return false;
  Tensor b = has_bias ? graph::float_initializer(g, conv.input(2), label) : Tensor(DType::kFloat32, {out_ch});
  if (b.numel() != out_ch) return false;
  const int64_t per_ch = w.numel() / out_ch;
  for (int64_t o = 0; o < out_ch; ++o) {
    float* wo = w.data<float>() + o * per_ch;
    for (int64_t k = 0; k < per_ch; ++k) wo[k] = static_cast<float>(wo[k] * bn.s[o]);
    float& bo = b.data<float>()[o];
    bo = static_cast<float>(bn.s[o] * (bo - bn.mean[o]) + bn.beta[o]);
  }
  const std::string w_name = names.make(conv.input(1) + "_bn_folded");
  const std::string b_name = names.make((has_bias ? conv.input(2) : conv.input(1)) + "_bn_folded_bias");
  graph::set_initializer(g, w, w_name);
  graph::set_initializer(g, b.reshaped({out_ch}), b_name);
  conv.set_input(1, w_name);
  if (has_bias)
    conv.set_input(2, b_name);
  else
    conv.add_input(b_name);
  return true;
}

/// Folds into Gemm (Y = alpha A B' + beta C, channel = column o of Y): column o of B' is scaled
/// by s[o]; C' = s * (beta C - mean) + bn_beta with beta set to 1. C must be absent or a
/// constant of O values.
bool fold_into_gemm(onnx::GraphProto& g, onnx::NodeProto& gemm, const BnAffine& bn, graph::NameAllocator& names) {
  if (gemm.input_size() < 2 || !graph::find_initializer(g, gemm.input(1))) return false;
  const bool has_c = gemm.input_size() >= 3 && !gemm.input(2).empty();
  if (has_c && !graph::find_initializer(g, gemm.input(2))) return false;
  const std::string label = graph::node_label(gemm);
  Tensor w = graph::float_initializer(g, gemm.input(1), label);
  if (w.rank() != 2) return false;
  const bool trans_b = graph::attr_int(gemm, "transB", 0) != 0;
  const int64_t out_ch = trans_b ? w.dim(0) : w.dim(1), k_dim = trans_b ? w.dim(1) : w.dim(0);
  if (out_ch != static_cast<int64_t>(bn.s.size())) return false;
  Tensor c = has_c ? graph::float_initializer(g, gemm.input(2), label) : Tensor(DType::kFloat32, {out_ch});
  if (c.numel() != out_ch) return false;
  const float beta_attr = graph::attr_float(gemm, "beta", 1.0f);
  float* wd = w.data<float>();
  for (int64_t o = 0; o < out_ch; ++o) {
    for (int64_t k = 0; k < k_dim; ++k) {
      float& v = trans_b ? wd[o * k_dim + k] : wd[k * out_ch + o];
      v = static_cast<float>(v * bn.s[o]);
    }
    float& co = c.data<float>()[o];
    co = static_cast<float>(bn.s[o] * (beta_attr * co - bn.mean[o]) + bn.beta[o]);
  }
  const std::string w_name = names.make(gemm.input(1) + "_bn_folded");
  const std::string c_name = names.make((has_c ? gemm.input(2) : gemm.input(1)) + "_bn_folded_bias");
  graph::set_initializer(g, w, w_name);
  graph::set_initializer(g, c.reshaped({out_ch}), c_name);
  gemm.set_input(1, w_name);
  if (has_c)
    gemm.set_input(2, c_name);
  else
    gemm.add_input(c_name);
  graph::set_attr_float(gemm, "beta", 1.0f);
  return true;
}

/// The node writing `t` (a single-output node), or nullptr.
onnx::NodeProto* producer_of(onnx::GraphProto& g, const std::string& t) {
  for (auto& p : *g.mutable_node())
    if (p.output_size() == 1 && p.output(0) == t) return &p;
  return nullptr;
}

/// Ranks of the model's values from ONNX shape inference on a copy, computed when first asked
/// (only models with a MatMul before a BatchNormalization pay for it); -1 when unknown.
class Ranks {
 public:
  explicit Ranks(const onnx::ModelProto& model) : model_(model) {}
  int of(const std::string& t) {
    if (!inferred_) {
      inferred_ = true;
      onnx::ModelProto copy = model_;
      copy.mutable_graph()->clear_value_info();
      try {
        onnx::shape_inference::InferShapes(copy);
      } catch (const std::exception&) {
        return -1;  // the infer-shapes pass reports it
      }
      const onnx::GraphProto& g = copy.graph();
      for (const auto* list : {&g.value_info(), &g.input(), &g.output()})
        for (const auto& v : *list)
          if (v.type().tensor_type().has_shape()) rank_[v.name()] = v.type().tensor_type().shape().dim_size();
    }
    auto it = rank_.find(t);
    return it == rank_.end() ? -1 : it->second;
  }

 private:
  const onnx::ModelProto& model_;
  bool inferred_ = false;
  std::map<std::string, int> rank_;
};

/// Folds into a MatMul of a 2-D input A [N, K] and a constant weight W [K, O], whose output
/// [N, O] has its channels on axis 1 as BatchNormalization reads them: column o of W is scaled by
/// s[o]. `add` is the Add of a constant bias c of O values after the MatMul (the BN then reads the
/// Add's output), c' = s * (c - mean) + beta; without one, the MatMul becomes a Gemm with
/// C = beta - s * mean. A higher-rank A would put another axis under the BN: not folded.
bool fold_into_matmul(onnx::GraphProto& g, onnx::NodeProto& mm, onnx::NodeProto* add, const BnAffine& bn,
                      Ranks& ranks, graph::NameAllocator& names) {
  if (mm.input_size() != 2 || !graph::find_initializer(g, mm.input(1)) || ranks.of(mm.input(0)) != 2) return false;
  const std::string label = graph::node_label(mm);
  Tensor w = graph::float_initializer(g, mm.input(1), label);
  if (w.rank() != 2 || w.dim(1) != static_cast<int64_t>(bn.s.size())) return false;
  const int64_t out_ch = w.dim(1), k_dim = w.dim(0);
  int bias_input = -1;
  Tensor c(DType::kFloat32, {out_ch});
  if (add) {
    if (add->input_size() != 2 || graph::use_count(g, mm.output(0)) != 1) return false;
    bias_input = add->input(0) == mm.output(0) ? 1 : 0;
    if (add->input(1 - bias_input) != mm.output(0) || !graph::find_initializer(g, add->input(bias_input))) return false;
    c = graph::float_initializer(g, add->input(bias_input), graph::node_label(*add));
    if (c.numel() != out_ch || (c.rank() == 2 && c.dim(0) != 1) || c.rank() > 2) return false;
  }
  float* wd = w.data<float>();
  for (int64_t o = 0; o < out_ch; ++o) {
    for (int64_t k = 0; k < k_dim; ++k) wd[k * out_ch + o] = static_cast<float>(wd[k * out_ch + o] * bn.s[o]);
    float& co = c.data<float>()[o];
    co = static_cast<float>(bn.s[o] * (co - bn.mean[o]) + bn.beta[o]);
  }
  const std::string w_name = names.make(mm.input(1) + "_bn_folded");
  graph::set_initializer(g, w, w_name);
  mm.set_input(1, w_name);
  if (add) {
    const std::string c_name = names.make(add->input(bias_input) + "_bn_folded");
    graph::set_initializer(g, c, c_name);
    add->set_input(bias_input, c_name);
  } else {
    const std::string c_name = names.make(mm.input(1) + "_bn_folded_bias");
    graph::set_initializer(g, c, c_name);
    mm.set_op_type("Gemm");  // A [N, K] x W [K, O] + C, alpha = beta = 1, no transposes
    mm.add_input(c_name);
  }
  return true;
}

}  // namespace

/// Folds an inference BatchNormalization into the Conv, Gemm or MatMul (fold_into_matmul, also
/// through its bias Add) producing its input, when that output has no other reader and every
/// parameter is constant. The producer then writes the BN's output name and the BN node is
/// removed. New weights get new names (the originals may be shared); remove-dead-initializers
/// drops the old ones.
void fold_batchnorm(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  graph::NameAllocator names(g);
  Ranks ranks(model);
  for (int i = 0; i < g.node_size();) {
    const onnx::NodeProto& bn = g.node(i);
    BnAffine affine;
    onnx::NodeProto* producer = nullptr;
    if (bn.op_type() == "BatchNormalization" && bn_affine(g, bn, &affine)) producer = producer_of(g, bn.input(0));
    // MatMul -> Add(constant) -> BN: the MatMul's weight and the Add's constant fold, the Add writes the BN's output.
    onnx::NodeProto* matmul = nullptr;
    if (producer && producer->op_type() == "MatMul") matmul = producer;
    if (producer && producer->op_type() == "Add" && producer->input_size() == 2)
      for (int k = 0; k < 2 && !matmul; ++k)
        if (onnx::NodeProto* p = producer_of(g, producer->input(k)); p && p->op_type() == "MatMul") matmul = p;
    const bool foldable = producer && graph::use_count(g, bn.input(0)) == 1 &&
                          ((producer->op_type() == "Conv" && fold_into_conv(g, *producer, affine, names)) ||
                           (producer->op_type() == "Gemm" && fold_into_gemm(g, *producer, affine, names)) ||
                           (matmul && fold_into_matmul(g, *matmul, matmul == producer ? nullptr : producer, affine,
                                                       ranks, names)));
    if (!foldable) {
      ++i;
      continue;
    }
    producer->set_output(0, bn.output(0));
    g.mutable_node()->DeleteSubrange(i, 1);
  }
}

}  // namespace anvil::quant::passes
