#pragma once
// Random QDQ models of a ConvTranspose (as quantizer/src/qdq.cc emits it: per-channel int8 weights
// along axis 1, int32 bias) and of Pad in edge / reflect mode, for the reference tests (run_int8
// against the float Executor) and the compiler tests (the compiled program against run_int8).
#include <random>

#include "movement_models_for_tests.h"

namespace anvil::test {

struct ConvTransposeCase {
  Shape x;                       ///< N x C x L or N x C x H x W (or rank 5: refused)
  int64_t maps = 1, group = 1;   ///< output channels M, groups
  std::vector<int64_t> kernel, strides, dilations, pads, output_padding, output_shape;
  std::string auto_pad;          ///< empty: the attribute is absent
  bool relu = false, bias = true;
  std::string describe;
};

/// A case without dilation: input x, `maps` output channels in `group` groups, and per spatial axis
/// the kernel, stride, pads (all begins, then all ends) and output_padding.
inline ConvTransposeCase undilated_conv_transpose(Shape x, int64_t maps, std::vector<int64_t> kernel,
                                                  std::vector<int64_t> strides, std::vector<int64_t> pads,
                                                  std::vector<int64_t> output_padding, int64_t group = 1) {
  ConvTransposeCase c;
  c.x = std::move(x);
  c.maps = maps;
  c.group = group;
  c.dilations.assign(kernel.size(), 1);
  c.kernel = std::move(kernel);
  c.strides = std::move(strides);
  c.pads = std::move(pads);
  c.output_padding = std::move(output_padding);
  return c;
}

/// Random geometry: rank 1 or 2, strides 1..3, dilations 1..2, pads up to past d * (k - 1) (a
/// crop), output_padding below the stride, sometimes auto_pad SAME_* or an output_shape.
inline ConvTransposeCase random_conv_transpose(std::mt19937& rng, int64_t max_side = 7) {
  ConvTransposeCase c;
  const int64_t rank = pick(rng, 1, 2);
  c.group = pick(rng, 1, 3);
  const int64_t cin = c.group * pick(rng, 1, 3);
  c.maps = c.group * pick(rng, 1, 3);
  c.x = {pick(rng, 1, 2), cin};
  for (int64_t a = 0; a < rank; ++a) {
    c.x.push_back(pick(rng, 1, max_side));
    c.kernel.push_back(pick(rng, 1, 4));
    c.strides.push_back(pick(rng, 1, 3));
    c.dilations.push_back(pick(rng, 0, 3) == 0 ? 2 : 1);
    c.output_padding.push_back(pick(rng, 0, std::max(c.strides.back(), c.dilations.back()) - 1));
  }
  for (int64_t a = 0; a < 2 * rank; ++a) {
    const int64_t span = c.dilations[a % rank] * (c.kernel[a % rank] - 1);
    c.pads.push_back(pick(rng, 0, span + 1));  // span + 1: crops one output element
  }
  for (int64_t a = 0; a < rank; ++a) {  // keep at least one output element
    const int64_t full = c.strides[a] * (c.x[2 + a] - 1) + c.output_padding[a] + c.dilations[a] * (c.kernel[a] - 1) + 1;
    while (full - c.pads[a] - c.pads[a + rank] < 1) (c.pads[a] > 0 ? c.pads[a] : c.pads[a + rank]) -= 1;
  }
  const int64_t form = pick(rng, 0, 5);
  if (form == 0) c.auto_pad = pick(rng, 0, 1) ? "SAME_UPPER" : "SAME_LOWER";
  if (form == 1)
    for (int64_t a = 0; a < rank; ++a) {
      const int64_t full = c.strides[a] * (c.x[2 + a] - 1) + c.output_padding[a] + c.dilations[a] * (c.kernel[a] - 1) + 1;
      c.output_shape.push_back(std::max<int64_t>(1, full + pick(rng, -2, 1)));
    }
  c.relu = pick(rng, 0, 1) == 1;
  c.bias = pick(rng, 0, 4) != 0;
  c.describe = "ConvTranspose x " + shape_str(c.x) + " maps " + std::to_string(c.maps) + " group " +
               std::to_string(c.group) + " kernel " + shape_str(c.kernel) + " strides " + shape_str(c.strides) +
               " dilations " + shape_str(c.dilations) + " pads " + shape_str(c.pads) + " output_padding " +
               shape_str(c.output_padding) + (c.auto_pad.empty() ? "" : " auto_pad " + c.auto_pad) +
               (c.output_shape.empty() ? "" : " output_shape " + shape_str(c.output_shape)) + (c.relu ? " relu" : "") +
               (c.bias ? "" : " no bias");
  return c;
}

/// x -> Q -> DQ -> ConvTranspose("deconv", DQ(W), DQ(b)) [-> Relu] -> y -> Q -> DQ -> "y_dq", with
/// x's and y's parameters calibrated on `input` (test::calibrate).
inline onnx::ModelProto conv_transpose_model(const ConvTransposeCase& c, const TensorMap& input, uint32_t seed = 1) {
  Shape ws{c.x[1], c.maps / c.group};
  for (int64_t k : c.kernel) ws.push_back(k);
  const Tensor w = random_tensor(ws, -0.5f, 0.5f, seed);
  const Tensor b = random_tensor({c.maps}, -0.3f, 0.3f, seed + 1);
  auto build = [&](const ActParams& p) {
    QdqBuilder q(p, 13);
    q.b.input("x", DType::kFloat32, c.x);
    const std::string xdq = q.qdq("x");
    std::vector<float> w_scales;
    const std::string wdq = q.weight("w", w, 1, &w_scales);
    std::vector<std::string> ins{xdq, wdq};
    if (c.bias) {
      std::vector<float> per_map;  // output channel o uses the scale of W[:, o % (M / group)]
      for (int64_t o = 0; o < c.maps; ++o) per_map.push_back(w_scales[o % (c.maps / c.group)]);
      ins.push_back(q.bias("b", b.to_vector<float>(), q.params("x").scale, per_map));
    }
    auto& n = q.b.node("ConvTranspose", ins, {c.relu ? "t" : "y"}, "deconv");
    ModelBuilder::attr(n, "group", c.group);
    ModelBuilder::attr(n, "kernel_shape", c.kernel);
    ModelBuilder::attr(n, "strides", c.strides);
    ModelBuilder::attr(n, "dilations", c.dilations);
    if (!c.auto_pad.empty()) ModelBuilder::attr(n, "auto_pad", c.auto_pad);
    else if (c.output_shape.empty()) ModelBuilder::attr(n, "pads", c.pads);
    if (!c.output_shape.empty()) ModelBuilder::attr(n, "output_shape", c.output_shape);
    ModelBuilder::attr(n, "output_padding", c.output_padding);
    if (c.relu) q.b.node("Relu", {"t"}, {"y"}, "act");
    q.qdq("y");
    q.b.output("y_dq");
    return q.b.model();
  };
  return build(calibrate(build, {"x", "y"}, input));
}

/// Pad in edge or reflect mode with 0..2 elements on each side (reflect: below the axis length).
inline MovementCase random_pad_mode(std::mt19937& rng, const std::string& mode) {
  MovementCase c;
  c.op = "Pad";
  c.inputs = {random_shape(rng)};
  const int64_t rank = static_cast<int64_t>(c.inputs[0].size());
  if (mode == "reflect")
    for (int64_t& d : c.inputs[0]) d = std::max<int64_t>(d, 2);
  std::vector<int64_t> pads;
  for (int64_t i = 0; i < 2 * rank; ++i)
    pads.push_back(pick(rng, 0, mode == "reflect" ? std::min<int64_t>(2, c.inputs[0][i % rank] - 1) : 3));
  c.describe = "Pad " + mode + " " + shape_str(c.inputs[0]) + " pads " + shape_str(pads);
  c.add_node = [=](ModelBuilder& b, const std::vector<std::string>& in) {
    b.initializer("pads", Tensor::from_vector<int64_t>({2 * rank}, pads));
    ModelBuilder::attr(b.node("Pad", {in[0], "pads"}, {"y0"}, "move"), "mode", mode);
  };
  return c;
}

}  // namespace anvil::test
