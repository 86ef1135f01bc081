#include "anvil/compiler/compiler.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cost_model.h"
#include "dram_plan.h"
#include "lowering.h"
#include "partition.h"

namespace anvil::compiler {

namespace {

/// Warboy-class PE: 64 slices of 256 KiB SRAM (16 MiB per PE), each slice with a 32 x 4 int8 MAC
/// array (32 output channels x 4 reduction elements per cycle). The same numbers as the hardware
/// model's presets (hw_model/include/anvil/hw/config.h).
Target warboy_pe(const std::string& name, int num_pes) {
  Target t;
  t.name = name;
  t.num_pes = num_pes;
  t.slices_per_pe = 64;
  t.sram_per_slice = 256 * 1024;
  t.mac_rows = 32;
  t.mac_cols = 4;
  return t;
}

/// Fills the per-layer and whole-program cycle estimates from the cost model.
void estimate_cycles(CompileResult& result) {
  const std::vector<uint64_t> finish = schedule_cycles(result.program, result.target);
  for (uint64_t f : finish) result.est_cycles = std::max(result.est_cycles, f);
  for (LayerReport& l : result.layers) {
    for (uint64_t i = l.first_instruction; i < l.first_instruction + l.instructions; ++i) {
      const isa::Instruction& inst = result.program.instructions[i];
      const uint64_t c = instruction_cycles(inst, result.target);
      (isa::opcode_unit(inst.opcode) == isa::Unit::kDma ? l.dma_cycles : l.compute_cycles) += c;
    }
    l.est_cycles = std::max(l.dma_cycles, l.compute_cycles);
    l.bound = l.instructions == 0 ? "" : l.dma_cycles > l.compute_cycles ? "memory" : "compute";
  }
}

}  // namespace

uint64_t Target::sram_capacity() const {
  return static_cast<uint64_t>(slices_per_pe) * sram_per_slice * static_cast<uint64_t>(num_pes);
}

Target Target::from_name(const std::string& name) {
  if (name == "warboy") return warboy_pe(name, 1);
  if (name == "warboy-2pe") return warboy_pe(name, 2);
  fail(ErrorCode::kInvalidArgument, "unknown target '" + name + "' (valid targets: warboy, warboy-2pe)");
}

namespace {

struct Totals {
  uint64_t macs = 0, dram = 0, layer_cycles = 0;
};

Totals totals_of(const std::vector<LayerReport>& layers) {
  Totals t;
  for (const LayerReport& l : layers) {
    t.macs += l.macs;
    t.dram += l.dram_bytes;
    t.layer_cycles += l.est_cycles;
  }
  return t;
}

/// MACs / (cycles x the target's peak MACs per cycle).
double mac_utilisation(uint64_t macs, uint64_t cycles, const Target& t) {
  const double peak = static_cast<double>(t.slices_per_pe) * t.num_pes * t.mac_rows * t.mac_cols;
  return cycles == 0 || peak == 0 ? 0.0 : static_cast<double>(macs) / (static_cast<double>(cycles) * peak);
}

}  // namespace

nlohmann::json CompileResult::report() const {
  nlohmann::json layers_json = nlohmann::json::array();
  for (const LayerReport& l : layers)
    layers_json.push_back({{"node", l.node}, {"op", l.op}, {"macs", l.macs}, {"dram_bytes", l.dram_bytes},
                           {"sram_bytes", l.sram_bytes}, {"first_instruction", l.first_instruction},
                           {"instructions", l.instructions},
                           {"dma_cycles", l.dma_cycles}, {"compute_cycles", l.compute_cycles},
                           {"est_cycles", l.est_cycles}, {"bound", l.bound}, {"runs_on", l.runs_on},
                           {"segment", l.segment}});
  nlohmann::json placement_json = nlohmann::json::array();
  for (const NodePlacement& p : placement)
    placement_json.push_back({{"node", p.node}, {"op", p.op}, {"runs_on", p.runs_on}, {"reason", p.reason},
                              {"segment", p.segment}});
  nlohmann::json segments_json = nlohmann::json::array();
  for (size_t i = 0; i < program.segments.size(); ++i) {
    const isa::Segment& s = program.segments[i];
    segments_json.push_back({{"index", i}, {"kind", isa::segment_kind_name(s.kind)}, {"inputs", s.inputs},
                             {"outputs", s.outputs}, {"payload_bytes", s.payload.size()}});
  }
  nlohmann::json host_json = nlohmann::json::array();
  uint64_t from_device = 0, to_device = 0;
  double transfer_us = 0.0;
  for (const HostSegmentReport& h : host_segments) {
    host_json.push_back({{"segment", h.segment}, {"nodes", h.nodes}, {"ops", h.ops},
                         {"bytes_from_device", h.bytes_from_device}, {"bytes_to_device", h.bytes_to_device},
                         {"est_transfer_us", h.est_transfer_us}});
    from_device += h.bytes_from_device, to_device += h.bytes_to_device, transfer_us += h.est_transfer_us;
  }
  const Totals t = totals_of(layers);
  nlohmann::json report = {{"model", model_name},
          {"target", target.name},
          {"num_pes", program.num_pes},
          {"batch", program.batch},
          {"instructions", program.instructions.size()},
          {"constants_bytes", program.constants.size()},
          {"scratch_bytes", program.scratch_bytes},
          {"io_bytes", program.io_bytes},
          {"dram_footprint_bytes", program.constants.size() + program.scratch_bytes + program.io_bytes},
          {"sram_bytes", program.sram_bytes},
          {"peak_sram_bytes", program.sram_bytes},
          {"sram_capacity", target.sram_capacity()},
          {"macs", t.macs},
          {"dram_bytes", t.dram},
          {"est_cycles", est_cycles},
          {"est_layer_cycles_sum", t.layer_cycles},
          {"est_mac_utilisation", mac_utilisation(t.macs, est_cycles, target)},
          {"layers", layers_json},
          {"placement", placement_json},
          {"segments", segments_json}};
  if (!program.segments.empty()) {
    report["host_segments"] = host_json;
    report["host_transfer"] = {{"bytes_from_device", from_device}, {"bytes_to_device", to_device},
                               {"est_transfer_us", transfer_us}, {"pcie_gbps", target.pcie_gbps},
                               {"pcie_latency_ns", target.pcie_latency_ns},
                               {"note", "estimate: one PCIe transfer per direction per host segment; host compute "
                                        "time is not estimated (anvil run measures it)"}};
  }
  return report;
}

std::string CompileResult::summary() const {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-40s %-10s %14s %12s %12s  %s\n", "layer", "op", "MACs", "DRAM bytes", "est cycles",
                "bound");
  out << line;
  for (const LayerReport& l : layers) {
    if (l.instructions == 0 && l.runs_on != "host") continue;  // reshapes move nothing
    const std::string node = l.node.size() > 40 ? "..." + l.node.substr(l.node.size() - 37) : l.node;
    std::snprintf(line, sizeof line, "%-40s %-10s %14llu %12llu %12llu  %s\n", node.c_str(), l.op.c_str(),
                  static_cast<unsigned long long>(l.macs), static_cast<unsigned long long>(l.dram_bytes),
                  static_cast<unsigned long long>(l.est_cycles), l.runs_on == "host" ? "host" : l.bound.c_str());
    out << line;
  }
  const Totals t = totals_of(layers);
  std::snprintf(line, sizeof line, "%-40s %-10s %14llu %12llu %12llu\n", "total (sum of layers)", "",
                static_cast<unsigned long long>(t.macs), static_cast<unsigned long long>(t.dram),
                static_cast<unsigned long long>(t.layer_cycles));
  out << line;
  const double us = target.clock_ghz > 0 ? static_cast<double>(est_cycles) / (target.clock_ghz * 1000.0) : 0.0;
  std::snprintf(line, sizeof line,
                "program: %zu instructions, peak SRAM %llu of %llu bytes, DRAM %llu bytes (constants %zu, scratch "
                "%llu, io %llu)\n",
                program.instructions.size(), static_cast<unsigned long long>(program.sram_bytes),
                static_cast<unsigned long long>(target.sram_capacity()),
                static_cast<unsigned long long>(program.constants.size() + program.scratch_bytes + program.io_bytes),
                program.constants.size(), static_cast<unsigned long long>(program.scratch_bytes),
                static_cast<unsigned long long>(program.io_bytes));
  out << line;
  std::snprintf(line, sizeof line, "estimate: %llu cycles (%.1f us at %.2f GHz) with units overlapped, MAC utilisation %.1f%%\n",
                static_cast<unsigned long long>(est_cycles), us, target.clock_ghz,
                100.0 * mac_utilisation(t.macs, est_cycles, target));
  out << line;
  if (!program.segments.empty()) {
    out << "partition: " << program.segments.size() << " segments (estimates above cover the NPU segments only)\n";
    for (size_t i = 0; i < program.segments.size(); ++i) {
      const isa::Segment& s = program.segments[i];
      size_t nodes = 0;
      for (const NodePlacement& p : placement) nodes += p.segment == static_cast<int>(i);
      out << "  segment " << i << ": " << isa::segment_kind_name(s.kind) << ", " << nodes << " node(s), "
          << s.inputs.size() << " input(s), " << s.outputs.size() << " output(s)\n";
    }
    for (const NodePlacement& p : placement)
      if (p.runs_on == "host") out << "  host: " << p.node << " (segment " << p.segment << "): " << p.reason << "\n";
    uint64_t from_device = 0, to_device = 0;
    double transfer_us = 0.0;
    for (const HostSegmentReport& h : host_segments) {
      std::snprintf(line, sizeof line,
                    "  host segment %d (%zu node(s)): %llu bytes from the device, %llu bytes to the device, "
                    "est. transfer %.2f us\n",
                    h.segment, h.nodes.size(), static_cast<unsigned long long>(h.bytes_from_device),
                    static_cast<unsigned long long>(h.bytes_to_device), h.est_transfer_us);
      out << line;
      from_device += h.bytes_from_device, to_device += h.bytes_to_device, transfer_us += h.est_transfer_us;
    }
    std::snprintf(line, sizeof line,
                  "host segments total: %llu bytes from / %llu to the device, est. transfer %.2f us (PCIe %.2f GB/s + "
                  "%.0f ns per transfer); host compute: measured by anvil run, not estimated\n",
                  static_cast<unsigned long long>(from_device), static_cast<unsigned long long>(to_device), transfer_us,
                  target.pcie_gbps, target.pcie_latency_ns);
    out << line;
  }
  return out.str();
}

CompileResult compile_unpartitioned(const ref::Int8Graph& graph, const CompileOptions& options) {
  for (const ref::Int8Op& op : graph.ops)
    if (op.kind == ref::Int8OpKind::kHost)
      fail(ErrorCode::kUnsupported, "node '" + op.node + "' runs on the host (" + op.host_reason +
                                        "); the NPU-only compile cannot take it");
  CompileResult result;
  result.target = options.target;
  result.model_name = options.model_name;
  const DramPlan plan = plan_dram(graph);
  isa::Program& program = result.program;
  program.num_pes = static_cast<uint8_t>(options.target.num_pes);
  const Shape& first_input = graph.values[graph.inputs.empty() ? graph.outputs[0] : graph.inputs[0]].shape;
  program.batch = first_input.empty() ? 1 : static_cast<uint32_t>(first_input[0]);
  program.inputs = plan.inputs;
  program.outputs = plan.outputs;
  program.io_bytes = plan.io_bytes;
  program.scratch_bytes = plan.scratch_bytes;
  Lowering lowering(graph, options.target, plan, program);
  for (const ref::Int8Op& op : graph.ops) {
    const uint64_t first = program.instructions.size();
    LayerReport layer = lowering.lower(op);
    layer.first_instruction = first;
    layer.instructions = program.instructions.size() - first;
    add_placement(result.placement, {layer.node, layer.op, "npu", "", 0});
    result.layers.push_back(std::move(layer));
  }
  for (const IoCopy& copy : plan.io_copies) {  // a report line of its own, no node to place
    const uint64_t first = program.instructions.size();
    LayerReport layer = lowering.lower_io_copy(copy);
    layer.first_instruction = first;
    layer.instructions = program.instructions.size() - first;
    result.layers.push_back(std::move(layer));
  }
  program.sram_bytes = lowering.sram_peak();
  estimate_cycles(result);
  program.metadata = result.report().dump();
  return result;
}

Expected<CompileResult> compile_graph(const ref::Int8Graph& graph, const CompileOptions& options) {
  return capture([&] {
    if (options.target.num_pes < 1 || options.target.num_pes > 2 || options.target.sram_capacity() == 0 ||
        options.target.sram_capacity() > (uint64_t{1} << 32))
      fail(ErrorCode::kInvalidArgument, "target '" + options.target.name +
                                            "': needs 1 or 2 PEs and between 1 byte and 4 GiB of SRAM (32-bit addresses)");
    return options.host_fallback ? compile_partitioned(graph, options) : compile_unpartitioned(graph, options);
  });
}

}  // namespace anvil::compiler
