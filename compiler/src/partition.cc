// Host fallback: the partition of an integer graph into NPU and host segments.
//
// 1. If the graph has no kHost op and lowers as a whole, that program is the result (unchanged
//    from an unpartitioned compile, byte for byte).
// 2. Otherwise every op gets a placement: kHost ops run on the host (reason: the integer
//    lowering's refusal); every other op is lowered alone, as a one-op graph, and runs on the
//    host when the compiler refuses it (kUnsupported; reason: that message). Reshapes move no
//    data and follow the NPU.
// 3. Maximal runs of NPU ops become NPU segments, compiled as graphs of their own whose inputs
//    and outputs are the values crossing the segment boundary (named by value). A run that still
//    does not lower as a whole becomes host, with that refusal as the reason of its ops. Runs of
//    host ops become host segments: their sub-graph, serialized (ref::serialize_int8_graph),
//    which the runtime runs with ref::run_int8 -- the same function on the same ops as the golden model.
#include <algorithm>
#include <map>
#include <set>

#include "partition.h"

namespace anvil::compiler {

namespace {

/// ops[first, last) as a graph of its own: inputs are the values read and not produced there (in
/// first-read order), outputs the values produced there and read later or by the graph's outputs
/// (in production order). Names are value names.
ref::Int8Graph sub_graph(const ref::Int8Graph& g, size_t first, size_t last) {
  std::vector<bool> produced(g.values.size(), false), used_later(g.values.size(), false);
  for (size_t k = first; k < last; ++k)
    for (int v : ref::op_outputs(g.ops[k])) produced[v] = true;
  for (size_t k = last; k < g.ops.size(); ++k)
    for (int v : g.ops[k].inputs) used_later[v] = true;
  for (int v : g.outputs) used_later[v] = true;

  ref::Int8Graph s;
  std::map<int, int> index;  // value in g -> value in s
  const auto map_value = [&](int v) {
    auto it = index.find(v);
    if (it != index.end()) return it->second;
    s.values.push_back(g.values[v]);
    return index[v] = static_cast<int>(s.values.size()) - 1;
  };
  for (size_t k = first; k < last; ++k)
    for (int v : g.ops[k].inputs)
      if (!produced[v] && !index.count(v)) {
        s.inputs.push_back(map_value(v));
        s.input_names.push_back(g.values[v].name);
      }
  for (size_t k = first; k < last; ++k) {
    ref::Int8Op op = g.ops[k];
    for (int& v : op.inputs) v = map_value(v);
    for (int& v : op.host_outputs) v = map_value(v);
    op.output = map_value(op.output);
    for (int v : ref::op_outputs(g.ops[k]))
      if (used_later[v]) {
        s.outputs.push_back(map_value(v));
        s.output_names.push_back(g.values[v].name);
      }
    s.ops.push_back(std::move(op));
  }
  return s;
}

/// Why the NPU compiler refuses op k on its own; empty when it lowers it.
std::string npu_refusal(const ref::Int8Graph& g, size_t k, const CompileOptions& options) {
  const ref::Int8Op& op = g.ops[k];
  if (op.kind == ref::Int8OpKind::kHost) return op.host_reason;
  if (op.kind == ref::Int8OpKind::kReshape) return {};
  ref::Int8Graph one = sub_graph(g, k, k + 1);
  one.outputs = {one.ops[0].output};  // lowered alone, its output is what it must produce
  one.output_names = {one.values[one.ops[0].output].name};
  try {
    compile_unpartitioned(one, options);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnsupported) throw;
    return e.what();
  }
  return {};
}

isa::TensorDesc boundary_desc(const ref::Int8Value& v, const std::string& name) {
  isa::TensorDesc d;
  d.name = name;
  d.dtype = v.dtype;  // int8, or a host value's type for an unquantized graph output
  d.layout = v.shape.size() == 4 ? isa::Layout::kNCHW : v.shape.size() == 2 ? isa::Layout::kNC : isa::Layout::kAny;
  d.shape = v.shape;
  d.scale = v.q.scale;
  d.zero_point = v.q.zero_point;
  return d;
}

/// Ops [first, last) and where they run: one segment of the partition.
struct SegmentSpan {
  size_t first, last;
  bool host;
};

/// Each host segment's ops, nodes and boundary traffic (HostSegmentReport), from the values'
/// producing segments: graph inputs are produced by no segment (-1).
std::vector<HostSegmentReport> host_segment_reports(const ref::Int8Graph& g, const std::vector<SegmentSpan>& spans,
                                                    const Target& target) {
  std::vector<int> producer(g.values.size(), -1);
  for (size_t s = 0; s < spans.size(); ++s)
    for (size_t k = spans[s].first; k < spans[s].last; ++k)
      for (int v : ref::op_outputs(g.ops[k])) producer[v] = static_cast<int>(s);
  const auto bytes_of = [&](int v) {
    return static_cast<uint64_t>(shape_numel(g.values[v].shape)) * dtype_size(g.values[v].dtype);
  };
  // One transfer per direction: latency + bytes / bandwidth (pcie_host_interface.cc's timing).
  const auto transfer_ns = [&](uint64_t bytes) {
    return bytes == 0 ? 0.0 : target.pcie_latency_ns + static_cast<double>(bytes) / target.pcie_gbps;
  };
  std::vector<bool> downloaded(g.values.size(), false);
  std::vector<HostSegmentReport> out;
  for (size_t s = 0; s < spans.size(); ++s) {
    if (!spans[s].host) continue;
    HostSegmentReport r;
    r.segment = static_cast<int>(s);
    std::vector<bool> uploaded(g.values.size(), false);
    for (size_t k = spans[s].first; k < spans[s].last; ++k) {
      const ref::Int8Op& op = g.ops[k];
      r.ops.push_back(ref::int8_op_name(op.kind));
      if (op.kind == ref::Int8OpKind::kHost)
        r.nodes.insert(r.nodes.end(), op.host_nodes.begin(), op.host_nodes.end());
      else
        r.nodes.push_back(op.node);
      for (int v : op.inputs) {
        const int p = producer[v];
        if (p >= 0 && !spans[p].host && !downloaded[v]) r.bytes_from_device += bytes_of(v), downloaded[v] = true;
      }
    }
    for (size_t t = s + 1; t < spans.size(); ++t) {
      if (spans[t].host) continue;
      for (size_t k = spans[t].first; k < spans[t].last; ++k)
        for (int v : g.ops[k].inputs)
          if (producer[v] == static_cast<int>(s) && !uploaded[v]) r.bytes_to_device += bytes_of(v), uploaded[v] = true;
    }
    r.est_transfer_us = (transfer_ns(r.bytes_from_device) + transfer_ns(r.bytes_to_device)) / 1000.0;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

void add_placement(std::vector<NodePlacement>& placement, NodePlacement p) {
  for (NodePlacement& q : placement)
    if (q.node == p.node && q.runs_on == p.runs_on && q.segment == p.segment) {
      if (q.op == "reshape") q.op = p.op;
      return;
    }
  placement.push_back(std::move(p));
}

CompileResult compile_partitioned(const ref::Int8Graph& graph, const CompileOptions& options) {
  const bool has_host = std::any_of(graph.ops.begin(), graph.ops.end(),
                                    [](const ref::Int8Op& op) { return op.kind == ref::Int8OpKind::kHost; });
  if (!has_host) {
    try {
      return compile_unpartitioned(graph, options);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kUnsupported) throw;
    }
  }
  const size_t n = graph.ops.size();
  std::vector<std::string> reason(n);
  std::vector<bool> on_host(n);
  for (size_t k = 0; k < n; ++k) {
    reason[k] = npu_refusal(graph, k, options);
    on_host[k] = !reason[k].empty();
  }

  CompileResult result;
  result.target = options.target;
  result.model_name = options.model_name;
  isa::Program& program = result.program;
  program.num_pes = static_cast<uint8_t>(options.target.num_pes);
  const Shape& first_input = graph.values[graph.inputs.empty() ? graph.outputs.at(0) : graph.inputs[0]].shape;
  program.batch = first_input.empty() ? 1 : static_cast<uint32_t>(first_input[0]);
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    program.inputs.push_back(boundary_desc(graph.values[graph.inputs[i]], graph.input_names[i]));
    program.input_values.push_back(graph.values[graph.inputs[i]].name);
  }
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    program.outputs.push_back(boundary_desc(graph.values[graph.outputs[i]], graph.output_names[i]));
    program.output_values.push_back(graph.values[graph.outputs[i]].name);
  }

  // Runs of equal placement; an NPU run that does not lower as a whole joins the host.
  struct Run {
    size_t first, last;
    bool host;
    CompileResult npu;
  };
  std::vector<Run> runs;
  for (size_t k = 0; k < n;) {
    size_t e = k;
    while (e < n && on_host[e] == on_host[k]) ++e;
    Run run{k, e, on_host[k], {}};
    if (!run.host) {
      try {
        run.npu = compile_unpartitioned(sub_graph(graph, k, e), options);
      } catch (const Error& err) {
        if (err.code() != ErrorCode::kUnsupported) throw;
        run.host = true;
        for (size_t j = k; j < e; ++j) reason[j] = std::string("its NPU segment does not lower: ") + err.what();
      }
    }
    if (run.host && !runs.empty() && runs.back().host) {
      runs.back().last = e;
    } else {
      runs.push_back(std::move(run));
    }
    k = e;
  }

  for (size_t s = 0; s < runs.size(); ++s) {
    Run& run = runs[s];
    const ref::Int8Graph sub = sub_graph(graph, run.first, run.last);
    isa::Segment seg;
    seg.kind = run.host ? isa::SegmentKind::kHost : isa::SegmentKind::kNpu;
    seg.inputs = sub.input_names;
    seg.outputs = sub.output_names;
    if (run.host) {
      seg.payload = ref::serialize_int8_graph(sub);
      for (size_t k = run.first; k < run.last; ++k) {
        const ref::Int8Op& op = graph.ops[k];
        LayerReport layer;
        layer.node = op.node;
        layer.op = ref::int8_op_name(op.kind);
        layer.runs_on = "host";
        layer.segment = static_cast<int>(s);
        result.layers.push_back(layer);
        const std::vector<std::string> nodes =
            op.kind == ref::Int8OpKind::kHost ? op.host_nodes : std::vector<std::string>{op.node};
        for (const std::string& node : nodes)
          add_placement(result.placement, {node, layer.op, "host", reason[k], static_cast<int>(s)});
      }
    } else {
      seg.payload = run.npu.program.serialize();
      for (LayerReport& layer : run.npu.layers) {
        layer.segment = static_cast<int>(s);
        if (layer.op != "io_copy")  // Lowering::lower_io_copy's line names a graph output, not a node
          add_placement(result.placement, {layer.node, layer.op, "npu", "", static_cast<int>(s)});
        result.layers.push_back(std::move(layer));
      }
      result.est_cycles += run.npu.est_cycles;
    }
    program.segments.push_back(std::move(seg));
  }
  std::vector<SegmentSpan> spans;
  for (const Run& run : runs) spans.push_back({run.first, run.last, run.host});
  result.host_segments = host_segment_reports(graph, spans, options.target);
  program.metadata = result.report().dump();
  return result;
}

}  // namespace anvil::compiler
