#include <cmath>

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

}  // namespace

/// Folds an inference BatchNormalization into the Conv or Gemm producing its input, when that
/// output has no other reader and every parameter is constant. The Conv/Gemm then writes the BN's
/// output name and the BN node is removed. New weights get new names (the originals may be shared);
/// remove-dead-initializers drops the old ones.
void fold_batchnorm(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  graph::NameAllocator names(g);
  for (int i = 0; i < g.node_size();) {
    const onnx::NodeProto& bn = g.node(i);
    BnAffine affine;
    onnx::NodeProto* producer = nullptr;
    if (bn.op_type() == "BatchNormalization" && bn_affine(g, bn, &affine)) {
      for (auto& p : *g.mutable_node())
        if (p.output_size() == 1 && p.output(0) == bn.input(0)) producer = &p;
    }
    const bool foldable = producer && graph::use_count(g, bn.input(0)) == 1 &&
                          ((producer->op_type() == "Conv" && fold_into_conv(g, *producer, affine, names)) ||
                           (producer->op_type() == "Gemm" && fold_into_gemm(g, *producer, affine, names)));
    if (!foldable) {
      ++i;
      continue;
    }
    producer->set_output(0, bn.output(0));
    g.mutable_node()->DeleteSubrange(i, 1);
  }
}

}  // namespace anvil::quant::passes
