#pragma once
// Random QDQ models of one data-movement node (Transpose, Slice, Split, Concat, Pad), for the
// reference tests (run_int8 against the float Executor) and the compiler tests (the compiled
// program against run_int8). Odd sizes, ranks 2..5, every axis, negative steps and indices,
// Concat inputs on different scales.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"
#include "qdq_builder.h"

namespace anvil::test {

struct MovementCase {
  std::string op;                  ///< ONNX op type
  std::vector<Shape> inputs;       ///< graph inputs x0, x1, ... (fixed shapes)
  int outputs = 1;                 ///< node outputs y0, y1, ...
  /// Adds the node (named "move") reading the dequantized inputs and writing y0, y1, ...
  std::function<void(ModelBuilder&, const std::vector<std::string>&)> add_node;
  /// true: every output is quantized like x0 (anvil's quantizer shares one scale); false: with
  /// its own parameters (ONNX Runtime QDQ models), so the int8 op requantizes.
  bool shared_scale = true;
  std::string describe;            ///< for failure messages
};

/// Asymmetric int8 parameters of the float range [lo, hi] (widened to include 0).
inline ref::QuantParams range_params(float lo, float hi) {
  lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
  ref::QuantParams q;
  q.scale = std::max(hi - lo, 1e-3f) / 255.0f;
  q.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-128.0f - lo / q.scale), -128.0f, 127.0f));
  return q;
}

/// Float inputs of a case: input i uniform in [-(i + 1), 0.6 * (i + 1)], so Concat inputs differ in scale.
inline TensorMap movement_inputs(const MovementCase& c, uint32_t seed) {
  TensorMap m;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const float r = static_cast<float>(i + 1);
    m["x" + std::to_string(i)] = random_tensor(c.inputs[i], -r, 0.6f * r, seed + static_cast<uint32_t>(i));
  }
  return m;
}

/// x_i -> Q -> DQ -> node -> y_j -> Q -> DQ -> graph output "y_j_dq".
inline onnx::ModelProto movement_model(const MovementCase& c) {
  ActParams p;
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const float r = static_cast<float>(i + 1);
    p["x" + std::to_string(i)] = range_params(-r, 0.6f * r);
    lo = std::min(lo, -r), hi = std::max(hi, 0.6f * r);
  }
  for (int j = 0; j < c.outputs; ++j) {
    ref::QuantParams q = p["x0"];
    if (!c.shared_scale) {  // the union of the inputs' ranges, a little wider: a different scale
      q = range_params(1.3f * lo, 1.1f * hi);
    }
    p["y" + std::to_string(j)] = q;
  }
  QdqBuilder q(p, 13);
  std::vector<std::string> dq;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const std::string x = "x" + std::to_string(i);
    q.b.input(x, DType::kFloat32, c.inputs[i]);
    dq.push_back(q.qdq(x));
  }
  c.add_node(q.b, dq);
  for (int j = 0; j < c.outputs; ++j) {
    const std::string y = "y" + std::to_string(j);
    q.qdq(y);
    q.b.output(y + "_dq");
  }
  return q.b.model();
}

inline Shape random_shape(std::mt19937& rng, int min_rank = 2, int max_rank = 5) {
  const int rank = std::uniform_int_distribution<int>(min_rank, max_rank)(rng);
  Shape s;
  for (int k = 0; k < rank; ++k) s.push_back(std::uniform_int_distribution<int64_t>(1, rank > 3 ? 5 : 9)(rng));
  return s;
}

inline int64_t pick(std::mt19937& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

inline MovementCase random_transpose(std::mt19937& rng) {
  MovementCase c;
  c.op = "Transpose";
  c.inputs = {random_shape(rng)};
  std::vector<int64_t> perm(c.inputs[0].size());
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  const bool default_perm = pick(rng, 0, 4) == 0;  // no attribute: reverse the axes
  c.describe = "Transpose " + shape_str(c.inputs[0]) + (default_perm ? " default perm" : " perm " + shape_str(perm));
  c.add_node = [perm, default_perm](ModelBuilder& b, const std::vector<std::string>& in) {
    auto& n = b.node("Transpose", {in[0]}, {"y0"}, "move");
    if (!default_perm) ModelBuilder::attr(n, "perm", perm);
  };
  return c;
}

/// Slice over a random subset of the axes (named by positive or negative index, in random order),
/// steps in [-3, 3] \ {0}, starts and ends written negative or past the ends where ONNX allows.
inline MovementCase random_slice(std::mt19937& rng) {
  MovementCase c;
  c.op = "Slice";
  c.inputs = {random_shape(rng)};
  const Shape& s = c.inputs[0];
  const int64_t rank = static_cast<int64_t>(s.size());
  std::vector<int64_t> axes_all(static_cast<size_t>(rank));
  std::iota(axes_all.begin(), axes_all.end(), 0);
  std::shuffle(axes_all.begin(), axes_all.end(), rng);
  std::vector<int64_t> starts, ends, axes, steps;
  for (int64_t a : axes_all) {
    if (pick(rng, 0, 3) == 0 && !axes.empty()) continue;  // this axis is taken whole
    const int64_t dim = s[a];
    int64_t step = pick(rng, 1, 3) * (pick(rng, 0, 1) ? 1 : -1);
    const int64_t start = pick(rng, 0, dim - 1);
    const int64_t room = step > 0 ? (dim - 1 - start) / step : start / -step;  // more elements than the first
    const int64_t count = pick(rng, 1, room + 1);
    int64_t end = start + count * step;  // one step past the last element read
    if (step > 0 && end >= dim && pick(rng, 0, 1)) end = std::numeric_limits<int64_t>::max();
    if (step < 0 && end < 0) end = pick(rng, 0, 1) ? std::numeric_limits<int64_t>::min() : -dim - 1;
    else if (end >= 0 && end < dim && pick(rng, 0, 1)) end -= dim;  // the same index counted from the end
    starts.push_back(pick(rng, 0, 1) ? start - dim : start);
    ends.push_back(end);
    axes.push_back(pick(rng, 0, 1) ? a - rank : a);
    steps.push_back(step);
  }
  c.describe = "Slice " + shape_str(s) + " starts " + shape_str(starts) + " ends " + shape_str(ends) + " axes " +
               shape_str(axes) + " steps " + shape_str(steps);
  c.add_node = [=](ModelBuilder& b, const std::vector<std::string>& in) {
    const auto n = static_cast<int64_t>(starts.size());
    b.initializer("starts", Tensor::from_vector<int64_t>({n}, starts));
    b.initializer("ends", Tensor::from_vector<int64_t>({n}, ends));
    b.initializer("axes", Tensor::from_vector<int64_t>({n}, axes));
    b.initializer("steps", Tensor::from_vector<int64_t>({n}, steps));
    b.node("Slice", {in[0], "starts", "ends", "axes", "steps"}, {"y0"}, "move");
  };
  return c;
}

/// Split along a random axis into 2 or 3 parts: explicit sizes, or equal parts without the input.
inline MovementCase random_split(std::mt19937& rng) {
  MovementCase c;
  c.op = "Split";
  Shape s = random_shape(rng);
  const int64_t rank = static_cast<int64_t>(s.size());
  const int64_t axis = pick(rng, 0, rank - 1);
  c.outputs = static_cast<int>(pick(rng, 2, 3));
  const bool equal = pick(rng, 0, 2) == 0;
  std::vector<int64_t> sizes;
  for (int j = 0; j < c.outputs; ++j) sizes.push_back(equal ? 2 : pick(rng, 1, 3));
  s[axis] = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  c.inputs = {s};
  const int64_t axis_attr = pick(rng, 0, 1) ? axis - rank : axis;
  c.describe = "Split " + shape_str(s) + " axis " + std::to_string(axis_attr) + (equal ? " equal" : " sizes " + shape_str(sizes));
  const int outputs = c.outputs;
  c.add_node = [=](ModelBuilder& b, const std::vector<std::string>& in) {
    std::vector<std::string> inputs{in[0]}, outs;
    if (!equal) {
      b.initializer("split", Tensor::from_vector<int64_t>({static_cast<int64_t>(sizes.size())}, sizes));
      inputs.push_back("split");
    }
    for (int j = 0; j < outputs; ++j) outs.push_back("y" + std::to_string(j));
    ModelBuilder::attr(b.node("Split", inputs, outs, "move"), "axis", axis_attr);
  };
  return c;
}

/// Concat of 2 to 4 inputs along a random axis (axis 0: equal sizes, the batch being fixed).
inline MovementCase random_concat(std::mt19937& rng) {
  MovementCase c;
  c.op = "Concat";
  const Shape base = random_shape(rng);
  const int64_t rank = static_cast<int64_t>(base.size());
  const int64_t axis = pick(rng, 0, rank - 1);
  const int k = static_cast<int>(pick(rng, 2, 4));
  for (int i = 0; i < k; ++i) {
    Shape s = base;
    if (axis != 0) s[axis] = pick(rng, 1, 4);
    c.inputs.push_back(s);
  }
  const int64_t axis_attr = pick(rng, 0, 1) ? axis - rank : axis;
  c.describe = "Concat of " + std::to_string(k) + " " + shape_str(base) + " axis " + std::to_string(axis_attr);
  c.add_node = [=](ModelBuilder& b, const std::vector<std::string>& in) {
    ModelBuilder::attr(b.node("Concat", in, {"y0"}, "move"), "axis", axis_attr);
  };
  return c;
}

/// Constant Pad with 0..2 elements on each side of each axis; the value a constant in [-1.5, 1.5]
/// (saturating for some scales) or absent (0).
inline MovementCase random_pad(std::mt19937& rng) {
  MovementCase c;
  c.op = "Pad";
  c.inputs = {random_shape(rng)};
  const int64_t rank = static_cast<int64_t>(c.inputs[0].size());
  std::vector<int64_t> pads;
  for (int64_t i = 0; i < 2 * rank; ++i) pads.push_back(pick(rng, 0, 2));
  const bool has_value = pick(rng, 0, 2) != 0;
  const float value = static_cast<float>(pick(rng, -15, 15)) / 10.0f;
  c.describe = "Pad " + shape_str(c.inputs[0]) + " pads " + shape_str(pads) +
               (has_value ? " value " + std::to_string(value) : " no value");
  c.add_node = [=](ModelBuilder& b, const std::vector<std::string>& in) {
    b.initializer("pads", Tensor::from_vector<int64_t>({2 * rank}, pads));
    std::vector<std::string> inputs{in[0], "pads"};
    if (has_value) {
      b.initializer("value", Tensor::scalar<float>(value));
      inputs.push_back("value");
    }
    b.node("Pad", inputs, {"y0"}, "move");
  };
  return c;
}

/// Every generator, in a fixed order.
inline std::vector<std::function<MovementCase(std::mt19937&)>> movement_generators() {
  return {random_transpose, random_slice, random_split, random_concat, random_pad};
}

}  // namespace anvil::test
