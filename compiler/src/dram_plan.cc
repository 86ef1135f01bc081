#include "dram_plan.h"

#include <algorithm>
#include <string>

#include "scratch_allocator.h"

namespace anvil::compiler {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint64_t value_bytes(const ref::Int8Value& v) { return static_cast<uint64_t>(shape_numel(v.shape)); }

isa::Layout layout_of(const Shape& s) {
  return s.size() == 4 ? isa::Layout::kNCHW : s.size() == 2 ? isa::Layout::kNC : isa::Layout::kAny;
}

isa::TensorDesc describe(const ref::Int8Value& v, const std::string& name, uint64_t offset) {
  isa::TensorDesc d;
  d.name = name;
  d.dtype = DType::kInt8;
  d.layout = layout_of(v.shape);
  d.shape = v.shape;
  d.scale = v.q.scale;
  d.zero_point = v.q.zero_point;
  d.io_offset = offset;
  return d;
}

}  // namespace

DramPlan plan_dram(const ref::Int8Graph& g) {
  const int num_values = static_cast<int>(g.values.size());
  auto check_index = [&](int v, const std::string& what) {
    if (v < 0 || v >= num_values)
      fail(ErrorCode::kInvalidArgument, what + " refers to value " + std::to_string(v) + ", the graph has " +
                                            std::to_string(num_values));
  };
  if (g.input_names.size() != g.inputs.size() || g.output_names.size() != g.outputs.size())
    fail(ErrorCode::kInvalidArgument, "integer graph: " + std::to_string(g.inputs.size()) + " inputs with " +
                                          std::to_string(g.input_names.size()) + " names, " +
                                          std::to_string(g.outputs.size()) + " outputs with " +
                                          std::to_string(g.output_names.size()) + " names");
  if (g.outputs.empty()) fail(ErrorCode::kInvalidArgument, "integer graph has no outputs");

  // Definition point of every value: -1 for graph inputs, the producing op's index otherwise.
  constexpr int kUndefined = -2;
  std::vector<int> defined_at(num_values, kUndefined), last_use(num_values, -1), root(num_values);
  for (int v = 0; v < num_values; ++v) root[v] = v;
  for (const ref::Int8Value& v : g.values)
    if (shape_numel(v.shape) == 0) fail(ErrorCode::kInvalidArgument, "value '" + v.name + "' has no elements");
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    check_index(g.inputs[i], "graph input '" + g.input_names[i] + "'");
    defined_at[g.inputs[i]] = -1;
  }
  for (int k = 0; k < static_cast<int>(g.ops.size()); ++k) {
    const ref::Int8Op& op = g.ops[k];
    const std::string where = std::string("node '") + op.node + "' (" + ref::int8_op_name(op.kind) + ")";
    for (int in : op.inputs) {
      check_index(in, where + " input");
      if (defined_at[in] == kUndefined)
        fail(ErrorCode::kInvalidArgument, where + " reads value '" + g.values[in].name +
                                              "' before it is produced (ops must be in topological order)");
      last_use[in] = k;
    }
    check_index(op.output, where + " output");
    if (defined_at[op.output] != kUndefined)
      fail(ErrorCode::kInvalidArgument, where + " writes value '" + g.values[op.output].name +
                                            "', which is already a graph input or another node's output");
    defined_at[op.output] = k;
    if (op.kind == ref::Int8OpKind::kReshape) {
      if (op.inputs.size() != 1) fail(ErrorCode::kInvalidArgument, where + " needs 1 input");
      const ref::Int8Value &in = g.values[op.inputs[0]], &out = g.values[op.output];
      if (shape_numel(in.shape) != shape_numel(out.shape))
        fail(ErrorCode::kInvalidArgument, where + " reshapes " + shape_str(in.shape) + " to " + shape_str(out.shape));
      root[op.output] = root[op.inputs[0]];
    }
  }
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    check_index(g.outputs[i], "graph output '" + g.output_names[i] + "'");
    if (defined_at[g.outputs[i]] == kUndefined)
      fail(ErrorCode::kInvalidArgument, "graph output '" + g.output_names[i] + "' is never produced");
  }

  DramPlan plan;
  plan.home.resize(num_values);
  std::vector<bool> homed(num_values, false);  // per root
  uint64_t io = 0;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const int v = g.inputs[i];
    io = align_up(io, kDramAlignment);
    plan.inputs.push_back(describe(g.values[v], g.input_names[i], io));
    plan.home[root[v]] = {isa::Region::kIo, io};
    homed[root[v]] = true;
    io += value_bytes(g.values[v]);
  }
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const int v = g.outputs[i];
    io = align_up(io, kDramAlignment);
    plan.outputs.push_back(describe(g.values[v], g.output_names[i], io));
    if (homed[root[v]]) {  // the bytes already have an IO home: this output is a copy of them
      plan.io_copies.push_back({plan.home[root[v]].offset, io, value_bytes(g.values[v]), g.output_names[i]});
    } else {
      plan.home[root[v]] = {isa::Region::kIo, io};
      homed[root[v]] = true;
    }
    io += value_bytes(g.values[v]);
  }
  plan.io_bytes = align_up(io, kDramAlignment);

  // Scratch: one buffer per root not in the IO region, alive from its definition to the last read
  // of any value sharing its bytes.
  std::vector<int> buffer_roots;
  std::vector<LiveBuffer> buffers;
  std::vector<int> buffer_of(num_values, -1);
  for (int v = 0; v < num_values; ++v) {
    if (defined_at[v] == kUndefined || homed[root[v]]) continue;
    if (buffer_of[root[v]] < 0) {
      buffer_of[root[v]] = static_cast<int>(buffers.size());
      buffer_roots.push_back(root[v]);
      buffers.push_back({value_bytes(g.values[root[v]]), defined_at[root[v]], defined_at[root[v]]});
    }
    LiveBuffer& b = buffers[buffer_of[root[v]]];
    b.last = std::max({b.last, defined_at[v], last_use[v]});
  }
  // Values are numbered arbitrarily; place buffers in order of definition (stable: deterministic).
  std::vector<size_t> order(buffers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].first < buffers[b].first; });
  std::vector<LiveBuffer> sorted;
  for (size_t i : order) sorted.push_back(buffers[i]);
  const ScratchLayout layout = first_fit(sorted, kDramAlignment);
  for (size_t k = 0; k < order.size(); ++k) plan.home[buffer_roots[order[k]]] = {isa::Region::kScratch, layout.offsets[k]};
  plan.scratch_bytes = align_up(layout.peak, kDramAlignment);

  for (int v = 0; v < num_values; ++v) plan.home[v] = plan.home[root[v]];
  return plan;
}

}  // namespace anvil::compiler
