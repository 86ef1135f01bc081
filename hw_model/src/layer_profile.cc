#include "anvil/hw/layer_profile.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "anvil/common/status.h"
#include "trace_buffer.h"

namespace anvil::hw {

namespace {

/// One instruction's event of the profiled run, in microseconds of simulated time.
struct InstructionEvent {
  bool seen = false;
  int unit = 0;  ///< isa::Unit = tid - 1
  double start_us = 0, end_us = 0;
  uint64_t cycles = 0, macs = 0, bytes = 0, elements = 0, lookups = 0;
};

}  // namespace

std::vector<LayerProfile> profile_layers(const nlohmann::json& trace, const std::vector<LayerRange>& layers,
                                         const HwConfig& config, int pe, int run_index) {
  const int pid = trace_pid_pe(pe);
  const nlohmann::json& events = trace.at("traceEvents");
  // The PE's runs: each one's event on the sequencer track spans every instruction of that run.
  std::vector<const nlohmann::json*> runs;
  for (const nlohmann::json& e : events)
    if (e.value("ph", "") == "X" && e.at("pid") == pid && e.at("tid") == kTidSequencer && e.at("name") == "run")
      runs.push_back(&e);
  std::stable_sort(runs.begin(), runs.end(), [](const nlohmann::json* a, const nlohmann::json* b) {
    return a->at("ts").get<double>() < b->at("ts").get<double>();
  });
  if (runs.empty())
    fail(ErrorCode::kInvalidArgument, "layer profile: the trace has no run of pe" + std::to_string(pe) +
                                          " (was tracing on during the run?)");
  if (run_index >= static_cast<int>(runs.size()))
    fail(ErrorCode::kInvalidArgument, "layer profile: the trace has " + std::to_string(runs.size()) + " run(s) of pe" +
                                          std::to_string(pe) + ", not a run " + std::to_string(run_index));
  const nlohmann::json* run = run_index < 0 ? runs.back() : runs[static_cast<size_t>(run_index)];
  const double run_start = run->at("ts").get<double>(), run_end = run_start + run->at("dur").get<double>();
  const uint64_t run_instructions = run->at("args").at("instructions").get<uint64_t>();
  const uint32_t fused = run->at("args").value("fused_pes", 1u);
  const double eps_us = 1e-6;  // ts/dur are doubles in microseconds; 1 ps of slack

  std::vector<InstructionEvent> inst(run_instructions);
  for (const nlohmann::json& e : events) {
    if (e.value("ph", "") != "X" || e.at("pid") != pid) continue;
    const int tid = e.at("tid").get<int>();
    if (tid < kTidDma || tid > kTidVector) continue;
    const double ts = e.at("ts").get<double>(), end = ts + e.at("dur").get<double>();
    if (ts < run_start - eps_us || end > run_end + eps_us) continue;  // an earlier run
    const nlohmann::json& args = e.at("args");
    const uint64_t index = args.at("index").get<uint64_t>();
    if (index >= inst.size()) continue;
    InstructionEvent& ie = inst[index];
    ie.seen = true;
    ie.unit = tid - kTidDma;
    ie.start_us = ts - run_start;
    ie.end_us = end - run_start;
    ie.cycles = args.at("cycles").get<uint64_t>();
    ie.macs = args.value("macs", uint64_t{0});
    ie.bytes = args.value("bytes", uint64_t{0});
    if (tid == kTidVector) ie.elements = args.value("elements", uint64_t{0}), ie.lookups = args.value("lookups", uint64_t{0});
  }

  const double peak_macs = static_cast<double>(config.slices_per_pe) * config.mac_rows * config.mac_cols * fused;
  const double dram_per_cycle = config.dram_bytes_per_cycle();
  const double lanes = static_cast<double>(config.vector_lanes) * fused;  // VectorEngine: x2 on a fused pair
  const double lut_lanes = static_cast<double>(config.lut_lanes) * fused;  // kLut's lookups per cycle
  auto to_cycles = [&](double us) { return static_cast<uint64_t>(std::llround(us * 1e3 * config.clock_ghz)); };
  std::vector<LayerProfile> out;
  out.reserve(layers.size());
  for (const LayerRange& l : layers) {
    if (l.first_instruction + l.instructions > run_instructions)
      fail(ErrorCode::kInvalidArgument, "layer profile: layer '" + l.name + "' (instructions " +
                                            std::to_string(l.first_instruction) + ".." +
                                            std::to_string(l.first_instruction + l.instructions) + ") is past the " +
                                            std::to_string(run_instructions) + " instructions of the run");
    LayerProfile p;
    p.name = l.name, p.op = l.op, p.first_instruction = l.first_instruction, p.instructions = l.instructions;
    const double inf = std::numeric_limits<double>::infinity();
    double start = inf, compute_start = inf, end = 0;
    uint64_t lookups = 0;
    for (uint64_t i = l.first_instruction; i < l.first_instruction + l.instructions; ++i) {
      const InstructionEvent& ie = inst[i];
      if (!ie.seen)
        fail(ErrorCode::kInvalidArgument, "layer profile: instruction " + std::to_string(i) + " of layer '" + l.name +
                                              "' has no trace event (was tracing on during the run?)");
      start = std::min(start, ie.start_us);
      if (ie.unit != 0) compute_start = std::min(compute_start, ie.start_us);  // MAC or vector
      end = std::max(end, ie.end_us);
      lookups += ie.lookups;
      p.macs += ie.macs;
      p.dram_bytes += ie.bytes;
      p.vector_elements += ie.elements;
      p.unit_busy_cycles[ie.unit] += ie.cycles;
    }
    if (l.instructions > 0) {
      p.mac_bound_cycles = p.macs / peak_macs;
      p.dram_bound_cycles = p.dram_bytes / dram_per_cycle;
      p.vector_bound_cycles = (p.vector_elements - lookups) / lanes + lookups / lut_lanes;
      p.roofline_cycles = std::max({p.mac_bound_cycles, p.dram_bound_cycles, p.vector_bound_cycles});
      // The span (see the header): from the first MAC/vector instruction unless DRAM is the roof.
      const bool memory_roof = p.roofline_cycles > 0 && p.roofline_cycles == p.dram_bound_cycles;
      p.first_start_cycle = to_cycles(start);
      p.start_cycle = to_cycles(memory_roof || compute_start == inf ? start : compute_start);
      p.end_cycle = to_cycles(end);
      p.cycles = p.end_cycle - p.start_cycle;
      p.ratio = p.roofline_cycles > 0 ? p.cycles / p.roofline_cycles : 0.0;
      p.bound = p.roofline_cycles == 0                        ? ""
                : p.roofline_cycles == p.mac_bound_cycles  ? "compute"
                : p.roofline_cycles == p.dram_bound_cycles ? "memory"
                                                           : "vector";
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<LayerRange> layer_ranges_from_metadata(const std::string& metadata_json) {
  const nlohmann::json m = nlohmann::json::parse(metadata_json, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("layers") || !m.at("layers").is_array())
    fail(ErrorCode::kInvalidArgument, "program metadata has no 'layers' list (compile the program with anvil compile)");
  std::vector<LayerRange> out;
  for (const nlohmann::json& l : m.at("layers")) {
    if (!l.contains("first_instruction") || !l.contains("instructions"))
      fail(ErrorCode::kInvalidArgument, "program metadata: layer '" + l.value("node", std::string("?")) +
                                            "' has no first_instruction/instructions (recompile the program)");
    out.push_back({l.value("node", std::string()), l.value("op", std::string()),
                   l.at("first_instruction").get<uint64_t>(), l.at("instructions").get<uint64_t>()});
  }
  return out;
}

std::string format_layer_table(const std::vector<LayerProfile>& profile) {
  std::ostringstream out;
  char line[320];
  std::snprintf(line, sizeof line, "%-40s %-8s %14s %12s %12s %12s %12s %7s  %s\n", "layer", "op", "MACs",
                "DRAM bytes", "vector elems", "roofline", "simulated", "ratio", "bound");
  out << line;
  double roof = 0;
  uint64_t macs = 0, bytes = 0, elements = 0, cycles = 0;
  double min_ratio = std::numeric_limits<double>::infinity();
  for (const LayerProfile& p : profile) {
    if (p.instructions == 0) continue;
    const std::string name = p.name.size() > 40 ? "..." + p.name.substr(p.name.size() - 37) : p.name;
    std::snprintf(line, sizeof line, "%-40s %-8s %14llu %12llu %12llu %12.0f %12llu %7.2f  %s\n", name.c_str(),
                  p.op.c_str(), static_cast<unsigned long long>(p.macs), static_cast<unsigned long long>(p.dram_bytes),
                  static_cast<unsigned long long>(p.vector_elements), p.roofline_cycles,
                  static_cast<unsigned long long>(p.cycles), p.ratio, p.bound.c_str());
    out << line;
    roof += p.roofline_cycles, macs += p.macs, bytes += p.dram_bytes, elements += p.vector_elements, cycles += p.cycles;
    if (p.roofline_cycles > 0) min_ratio = std::min(min_ratio, p.ratio);
  }
  std::snprintf(line, sizeof line, "%-40s %-8s %14llu %12llu %12llu %12.0f %12llu %7.2f\n", "sum of layers", "",
                static_cast<unsigned long long>(macs), static_cast<unsigned long long>(bytes),
                static_cast<unsigned long long>(elements), roof, static_cast<unsigned long long>(cycles),
                roof > 0 ? cycles / roof : 0.0);
  out << line;
  if (std::isfinite(min_ratio)) {
    std::snprintf(line, sizeof line, "lowest simulated / roofline ratio of a layer: %.3f (never below 1 in a consistent model)\n",
                  min_ratio);
    out << line;
  }
  return out.str();
}

nlohmann::json layer_profile_json(const std::vector<LayerProfile>& profile) {
  nlohmann::json a = nlohmann::json::array();
  for (const LayerProfile& p : profile)
    a.push_back({{"node", p.name},
                 {"op", p.op},
                 {"first_instruction", p.first_instruction},
                 {"instructions", p.instructions},
                 {"macs", p.macs},
                 {"dram_bytes", p.dram_bytes},
                 {"mac_bound_cycles", p.mac_bound_cycles},
                 {"dram_bound_cycles", p.dram_bound_cycles},
                 {"vector_elements", p.vector_elements},
                 {"vector_bound_cycles", p.vector_bound_cycles},
                 {"roofline_cycles", p.roofline_cycles},
                 {"first_start_cycle", p.first_start_cycle},
                 {"start_cycle", p.start_cycle},
                 {"end_cycle", p.end_cycle},
                 {"simulated_cycles", p.cycles},
                 {"dma_busy_cycles", p.unit_busy_cycles[0]},
                 {"mac_busy_cycles", p.unit_busy_cycles[1]},
                 {"vector_busy_cycles", p.unit_busy_cycles[2]},
                 {"ratio", p.ratio},
                 {"bound", p.bound}});
  return a;
}

}  // namespace anvil::hw
