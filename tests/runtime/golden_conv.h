#pragma once
// The conv layer of program_builder.h as the reference executor's integer graph: the golden model
// a device program must match bit for bit (tests that also link anvil_reference).
#include "anvil/reference/int8_graph.h"
#include "program_builder.h"

namespace anvil::testing {

inline ref::Int8Graph golden_graph(const ConvLayer& g, const isa::Program& p) {
  ref::Int8Graph graph;
  const isa::TensorDesc &in = p.inputs.at(0), &out = p.outputs.at(0);
  graph.values = {{in.name, in.shape, {in.scale, in.zero_point}}, {out.name, out.shape, {out.scale, out.zero_point}}};
  ref::Int8Op op;
  op.kind = ref::Int8OpKind::kConv;
  op.node = "conv";
  op.inputs = {0};
  op.output = 1;
  op.weight = Tensor::from_vector<int8_t>({g.oc, g.ic / g.groups, g.kh, g.kw}, g.weights);
  op.bias = Tensor::from_vector<int32_t>({g.oc}, g.bias);
  for (int o = 0; o < g.oc; ++o) op.multipliers.push_back({g.mult[o], g.shift[o]});
  op.groups = g.groups;
  op.kernel = {g.kh, g.kw};
  op.strides = {g.stride, g.stride};
  op.dilations = {g.dilation, g.dilation};
  op.pads = {g.pad, g.pad, g.pad, g.pad};
  op.act_min = g.act_min;
  op.act_max = g.act_max;
  graph.ops = {op};
  graph.inputs = {0};
  graph.outputs = {1};
  graph.input_names = {in.name};
  graph.output_names = {out.name};
  return graph;
}

}  // namespace anvil::testing
