#pragma once
/// Per-layer timing of one PE run against the roofline, read from the activity trace
/// (Platform::trace_json / rt::Device::trace_json, recorded while tracing was on).
///
/// A layer is a contiguous range of instructions (the compiler's report lists each layer's
/// first_instruction and instruction count in the program metadata). Its simulated cycles are
/// the span from its start to the end of its last instruction on any unit, where its start is
///  - for a layer whose roof is the MAC array or the vector engine: the start of its first MAC or
///    vector instruction. Its DMA loads (weights, a lut's 256-byte table) may be issued long
///    before, under the producer's compute; they count in its DRAM bytes and DMA busy cycles but
///    not as its start (first_start_cycle keeps the earliest instruction's start);
///  - for a memory-bound layer (DRAM roof) or one without MAC/vector instructions: the start of its
///    earliest instruction, as its DRAM traffic is what bounds it.
/// With that rule each compute unit's busy cycles fit in the span, so the span is never shorter
/// than the roof of a compute- or vector-bound layer;
/// its work (MACs of its kConv, bytes of its DMA, elements of its vector instructions) is read
/// from the same trace events, so it is what the model executed, not an estimate. The roofline
/// bound is
///   max(MACs / (slices x mac_rows x mac_cols x fused PEs), DRAM bytes / DRAM bytes per cycle,
///       (vector elements - lookups) / (vector_lanes x fused PEs) + lookups / (lut_lanes x fused PEs))
/// where lookups are the elements of kLut instructions, and a vector instruction's elements are what it reads per lane-cycle (count for add, requant
/// and lut; out elements x window for pooling), and a consistent model never simulates a layer in
/// fewer cycles than that bound. Layers that only use the vector engine on SRAM-resident values
/// (pools, adds, requant, lut) therefore have a bound and a ratio too.
/// Layers of consecutive instructions may overlap in time (a later layer's constant load runs
/// under an earlier layer's compute), so the spans can add up to more than the run's cycles.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/hw/config.h"

namespace anvil::hw {

/// A layer: its instructions are [first_instruction, first_instruction + instructions).
struct LayerRange {
  std::string name, op;
  uint64_t first_instruction = 0, instructions = 0;
};

struct LayerProfile {
  std::string name, op;
  uint64_t first_instruction = 0, instructions = 0;
  uint64_t macs = 0;        ///< multiply-accumulates of the layer's kConv instructions
  uint64_t dram_bytes = 0;  ///< bytes of the layer's DMA instructions (loads + stores)
  uint64_t vector_elements = 0;  ///< elements of the layer's vector instructions (the engine's work measure)
  double mac_bound_cycles = 0;   ///< macs / peak MACs per cycle
  double dram_bound_cycles = 0;  ///< dram_bytes / DRAM bytes per cycle
  double vector_bound_cycles = 0;  ///< kLut elements / (lut_lanes x fused) + the rest / (vector_lanes x fused)
  double roofline_cycles = 0;    ///< the largest of the three
  uint64_t start_cycle = 0, end_cycle = 0;  ///< the span (see above), since the run's start, in whole cycles
  uint64_t first_start_cycle = 0;  ///< start of the layer's earliest instruction (<= start_cycle)
  uint64_t cycles = 0;           ///< simulated: end_cycle - start_cycle
  uint64_t unit_busy_cycles[3] = {0, 0, 0};  ///< per isa::Unit: the sum of its instructions' cycles
  double ratio = 0;              ///< cycles / roofline_cycles (0 when the roofline is 0)
  /// The largest roof: "compute" (MAC), "memory" (DRAM), "vector", or "" for a layer without work.
  std::string bound;
};

/// Profiles the last run of PE `pe` in `trace` (its "run" event on the sequencer track), or with
/// `run` >= 0 its run number `run` (0-based, in order of start time: the NPU segments of a
/// partitioned program are one run each). Throws anvil::Error kInvalidArgument when the trace
/// holds no such run of that PE, when a range reaches past the run's instructions, or when an
/// instruction of a range has no event (tracing was off).
std::vector<LayerProfile> profile_layers(const nlohmann::json& trace, const std::vector<LayerRange>& layers,
                                         const HwConfig& config, int pe = 0, int run = -1);

/// The layers of a program's metadata (CompileResult::report(): "layers" with node, op,
/// first_instruction, instructions). Throws kInvalidArgument when the metadata has no layer list.
std::vector<LayerRange> layer_ranges_from_metadata(const std::string& metadata_json);

/// The profile as a terminal table: layer, op, MACs, DRAM bytes, vector elements, roofline cycles, simulated
/// cycles, ratio, bound; layers without instructions are left out.
std::string format_layer_table(const std::vector<LayerProfile>& profile);

/// The profile as JSON (one object per layer with the fields above).
nlohmann::json layer_profile_json(const std::vector<LayerProfile>& profile);

}  // namespace anvil::hw
