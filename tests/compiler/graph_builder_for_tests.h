#pragma once
/// TEST-ONLY helpers that build ref::Int8Graph objects by hand, with random int8 parameters from a
/// seeded generator (deterministic across runs).
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "anvil/common/requant.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::testing {

class GraphBuilder {
 public:
  explicit GraphBuilder(uint32_t seed = 1) : rng_(seed) {}

  int value(const std::string& name, Shape shape, float scale = 0.05f, int32_t zp = 0) {
    g_.values.push_back({name, std::move(shape), {scale, zp}});
    return static_cast<int>(g_.values.size()) - 1;
  }
  int input(const std::string& name, Shape shape, float scale = 0.05f, int32_t zp = -3) {
    const int v = value(name + "_q", std::move(shape), scale, zp);
    g_.inputs.push_back(v);
    g_.input_names.push_back(name);
    return v;
  }
  void output(int v, const std::string& name) {
    g_.outputs.push_back(v);
    g_.output_names.push_back(name);
  }

  /// Conv with random int8 weights, int32 bias and per-channel multipliers.
  ref::Int8Op& conv(const std::string& node, int in, int out, int groups, std::array<int, 2> kernel,
                    std::array<int, 2> strides = {1, 1}, std::array<int, 4> pads = {0, 0, 0, 0}) {
    ref::Int8Op op = make(ref::Int8OpKind::kConv, node, {in}, out);
    const int64_t in_c = g_.values[in].shape[1], out_c = g_.values[out].shape[1];
    op.groups = groups;
    op.kernel = kernel;
    op.strides = strides;
    op.pads = pads;
    op.weight = Tensor(DType::kInt8, {out_c, in_c / groups, kernel[0], kernel[1]});
    for (int64_t i = 0; i < op.weight.numel(); ++i) op.weight.data<int8_t>()[i] = static_cast<int8_t>(uniform(-127, 127));
    op.bias = Tensor(DType::kInt32, {out_c});
    for (int64_t o = 0; o < out_c; ++o) {
      op.bias.data<int32_t>()[o] = uniform(-3000, 3000);
      op.multipliers.push_back(math::quantize_multiplier(0.0005 + 0.004 * uniform(0, 1000) / 1000.0));
    }
    op.act_min = g_.values[out].q.zero_point;  // a fused ReLU
    return push(std::move(op));
  }
  ref::Int8Op& add(const std::string& node, int a, int b, int out) {
    ref::Int8Op op = make(ref::Int8OpKind::kAdd, node, {a, b}, out);
    const auto &va = g_.values[a].q, &vb = g_.values[b].q, &vo = g_.values[out].q;
    op.add = math::make_add_params(va.scale, va.zero_point, vb.scale, vb.zero_point, vo.scale, vo.zero_point, -100, 127);
    return push(std::move(op));
  }
  ref::Int8Op& pool(ref::Int8OpKind kind, const std::string& node, int in, int out, std::array<int, 2> kernel,
                    std::array<int, 2> strides, std::array<int, 4> pads = {0, 0, 0, 0}) {
    ref::Int8Op op = make(kind, node, {in}, out);
    op.kernel = kernel;
    op.strides = strides;
    op.pads = pads;
    op.count_include_pad = true;
    op.multiplier = math::average_multiplier(g_.values[in].q.scale, g_.values[out].q.scale, kernel[0] * kernel[1]);
    return push(std::move(op));
  }
  ref::Int8Op& requant(const std::string& node, int in, int out) {
    ref::Int8Op op = make(ref::Int8OpKind::kRequant, node, {in}, out);
    op.multiplier = math::quantize_multiplier(g_.values[in].q.scale / g_.values[out].q.scale);
    op.act_min = -50;
    op.act_max = 90;
    return push(std::move(op));
  }
  /// A table lookup of the sigmoid between the two values' parameters (ref::make_lut).
  ref::Int8Op& lut(const std::string& node, int in, int out) {
    ref::Int8Op op = make(ref::Int8OpKind::kLut, node, {in}, out);
    op.lut = ref::make_lut([](float x) { return 1.0f / (1.0f + std::exp(-x)); }, g_.values[in].q, g_.values[out].q);
    return push(std::move(op));
  }
  /// MatMul of two activations with multiplier a_scale * b_scale / out_scale and no clamp.
  ref::Int8Op& matmul(const std::string& node, int a, int b, int out) {
    ref::Int8Op op = make(ref::Int8OpKind::kMatMul, node, {a, b}, out);
    op.multiplier = math::quantize_multiplier(static_cast<double>(g_.values[a].q.scale) * g_.values[b].q.scale /
                                              g_.values[out].q.scale);
    return push(std::move(op));
  }
  /// Integer softmax over `axis` (the exponential table of the input's scale).
  ref::Int8Op& softmax(const std::string& node, int in, int out, int axis) {
    ref::Int8Op op = make(ref::Int8OpKind::kSoftmax, node, {in}, out);
    op.axis = axis;
    op.softmax_table = math::make_softmax_table(g_.values[in].q.scale);
    op.multiplier = math::softmax_output_multiplier(g_.values[out].q.scale);
    return push(std::move(op));
  }
  ref::Int8Op& reshape(const std::string& node, int in, int out) {
    return push(make(ref::Int8OpKind::kReshape, node, {in}, out));
  }

  /// Data movement; one multiplier per input (in_scale / out_scale, used where the parameters differ).
  ref::Int8Op& transpose(const std::string& node, int in, int out, std::vector<int64_t> perm) {
    ref::Int8Op& op = movement(ref::Int8OpKind::kTranspose, node, {in}, out);
    op.perm = std::move(perm);
    return op;
  }
  ref::Int8Op& slice(const std::string& node, int in, int out, std::vector<int64_t> starts, std::vector<int64_t> steps) {
    ref::Int8Op& op = movement(ref::Int8OpKind::kSlice, node, {in}, out);
    op.starts = std::move(starts);
    op.steps = std::move(steps);
    return op;
  }
  ref::Int8Op& concat(const std::string& node, std::vector<int> ins, int out, int64_t axis) {
    ref::Int8Op& op = movement(ref::Int8OpKind::kConcat, node, std::move(ins), out);
    op.axis = axis;
    return op;
  }
  ref::Int8Op& pad(const std::string& node, int in, int out, std::vector<int64_t> begin, int32_t value) {
    ref::Int8Op& op = movement(ref::Int8OpKind::kPad, node, {in}, out);
    op.pad_begin = std::move(begin);
    op.pad_value = value;
    return op;
  }

  ref::Int8Graph& graph() { return g_; }
  /// Random int8 inputs for every graph input, by name (as ref::run_int8 takes them).
  TensorMap random_inputs() {
    TensorMap m;
    for (size_t i = 0; i < g_.inputs.size(); ++i) {
      Tensor t(DType::kInt8, g_.values[g_.inputs[i]].shape);
      for (int64_t k = 0; k < t.numel(); ++k) t.data<int8_t>()[k] = static_cast<int8_t>(uniform(-128, 127));
      m[g_.input_names[i]] = t;
    }
    return m;
  }
  int32_t uniform(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng_); }

 private:
  static ref::Int8Op make(ref::Int8OpKind kind, const std::string& node, std::vector<int> inputs, int out) {
    ref::Int8Op op;
    op.kind = kind;
    op.node = node;
    op.inputs = std::move(inputs);
    op.output = out;
    return op;
  }
  ref::Int8Op& movement(ref::Int8OpKind kind, const std::string& node, std::vector<int> ins, int out) {
    ref::Int8Op op = make(kind, node, std::move(ins), out);
    for (int in : op.inputs)
      op.multipliers.push_back(math::quantize_multiplier(static_cast<double>(g_.values[in].q.scale) / g_.values[out].q.scale));
    return push(std::move(op));
  }
  ref::Int8Op& push(ref::Int8Op op) {
    g_.ops.push_back(std::move(op));
    return g_.ops.back();
  }
  ref::Int8Graph g_;
  std::mt19937 rng_;
};

}  // namespace anvil::testing
