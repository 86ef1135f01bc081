#pragma once
/// The anvil compiler: a quantized (QDQ) ONNX model -> an NPU program (isa/program.h).
///
/// compile() runs ref::lower_qdq and lowers the resulting integer graph (reference/int8_graph.h)
/// op by op: every Int8Op becomes one compute instruction per tile carrying exactly the op's
/// integer parameters, so the program's int8 results equal ref::run_int8 bit for bit. Values stay
/// in SRAM between layers while they fit (stored to DRAM only when they are graph outputs or are
/// evicted); a layer that does not fit is tiled over channels and rows (docs/compiler.md).
/// Cross-unit waits are derived from the SRAM and DRAM byte ranges each instruction reads and
/// writes (docs/isa.md).
///
/// Host fallback (CompileOptions::host_fallback, on by default): ops the NPU cannot run do not
/// fail the compile. compile() lowers with ref::LowerOptions::host_fallback (operators without an
/// integer pattern become kHost ops), and compile_graph() partitions the op list: maximal runs of
/// ops the compiler lowers become NPU segments, kHost ops and the ops it refuses become host
/// segments that the runtime runs with ref::run_int8 (so results equal run_int8 by construction).
/// The program is then partitioned (isa::Program::segments; docs/program-format.md) and the report
/// says where every node runs and why.
///
/// Without host fallback, not done yet (each fails with kUnsupported naming the node): layers of which not even one
/// output row of one channel group fits the SRAM, dimensions beyond the ISA's 16-bit fields,
/// broadcasting Add, dilated pooling. A graph output holding the bytes of a graph input or of another
/// graph output (a second name, a reshape) is copied into its own IO tensor after the last op.
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "anvil/common/status.h"
#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::compiler {

/// What the compiler plans against. One PE has `slices_per_pe` slices of `sram_per_slice` bytes
/// of SRAM each and a mac_rows x mac_cols int8 MAC array per slice.
struct Target {
  std::string name;
  int num_pes = 1;              ///< 2: a fused pair, whose slices and SRAM form one address space
  int slices_per_pe = 64;
  uint64_t sram_per_slice = 0;  ///< bytes
  int mac_rows = 0, mac_cols = 0;
  uint64_t instr_mem_bytes = 256 * 1024;  ///< the sequencer's instruction memory per PE (HwConfig key)
  // Timing (docs/warboy.md; the hardware model's HwConfig keys of the same names).
  double clock_ghz = 2.0;        ///< core cycles per ns
  int vector_lanes = 256;        ///< elements / cycle / PE
  int lut_lanes = 256;           ///< kLut lookups / cycle / PE
  int conv_fill_cycles = 64;     ///< cycles per kConv
  int vector_fill_cycles = 16;   ///< cycles per vector instruction
  double dram_gbps = 66.0;       ///< bytes / ns
  double dram_latency_ns = 100.0;  ///< per DMA instruction
  double pcie_gbps = 15.75;        ///< host link payload bandwidth, bytes / ns (host segments' traffic)
  double pcie_latency_ns = 1000.0;  ///< per host transfer

  /// SRAM bytes one program can address: slices_per_pe * sram_per_slice * num_pes.
  uint64_t sram_capacity() const;
  /// "warboy" (one PE) or "warboy-2pe" (a fused pair). Throws Error(kInvalidArgument) naming the
  /// valid targets for any other name.
  static Target from_name(const std::string& name);
};

struct CompileOptions {
  Target target = Target::from_name("warboy");
  int64_t batch = 1;       ///< used by compile(); compile_graph() takes the batch from the graph
  std::string model_name;  ///< recorded in the program metadata
  /// Partition instead of failing on what the NPU cannot run (see above). false: the whole graph
  /// on the NPU or kUnsupported naming the node.
  bool host_fallback = true;
  /// compile(): constant-fold the shape arithmetic for `batch` (ref::LowerOptions::fold_shapes).
  bool fold_shapes = true;
};

/// Where one node of the model runs: "npu" or "host", and for "host" why (the refusal of the
/// integer lowering or of the NPU compiler, verbatim).
struct NodePlacement {
  std::string node, op;  ///< ONNX node name; integer op kind (ref::int8_op_name)
  std::string runs_on;
  std::string reason;
  int segment = 0;       ///< index into program.segments (0 for an unpartitioned program)
};

/// Per Int8Op: what it costs. Reshape ops are listed with zeros (they move no data).
struct LayerReport {
  std::string node, op;
  uint64_t macs = 0;        ///< multiply-accumulates of the MAC array (conv only)
  uint64_t dram_bytes = 0;  ///< bytes the layer's DMA instructions move (loads + stores)
  uint64_t sram_bytes = 0;  ///< the layer's SRAM working set (inputs, constants, output)
  uint64_t first_instruction = 0, instructions = 0;  ///< the layer's instructions in the program
  /// Estimated cycles (docs/warboy.md timing, summed per unit over the layer's instructions):
  /// dma_cycles, compute_cycles (MAC or vector unit), est_cycles = the larger of the two, since
  /// the waits let the units overlap; bound = "memory" when DMA dominates, else "compute".
  uint64_t dma_cycles = 0, compute_cycles = 0, est_cycles = 0;
  std::string bound;
  std::string runs_on = "npu";  ///< "host": a host segment's op (no instructions, no estimate)
  int segment = 0;              ///< index into program.segments; first_instruction is relative to it
};

/// A host segment of a partitioned program: what the compiler can state about it. Its compute
/// time is not estimated: it runs ref::run_int8 on the host, whose time `anvil run` measures
/// (RunStats::host_us, RunStats::segments).
struct HostSegmentReport {
  int segment = 0;                 ///< index into program.segments
  std::vector<std::string> nodes;  ///< its ONNX nodes (a kHost op's region expanded)
  std::vector<std::string> ops;    ///< its integer ops' kinds (ref::int8_op_name)
  /// The traffic across the device boundary the partition adds, in bytes (numel x dtype size):
  /// from_device = the values it reads that an NPU segment produced (a value several host
  /// segments read counts at the first); to_device = the values it produces that a later NPU
  /// segment reads. Graph inputs and outputs are not counted (they cross the link anyway).
  uint64_t bytes_from_device = 0, bytes_to_device = 0;
  /// Estimate, microseconds: each direction with bytes is one transfer of Target::pcie_latency_ns
  /// + bytes / Target::pcie_gbps (the hardware model's PCIe timing of one transfer).
  double est_transfer_us = 0.0;
};

struct CompileResult {
  isa::Program program;
  std::vector<LayerReport> layers;
  Target target;           ///< what the program was planned for
  std::string model_name;
  /// Every node: integer ops by their node, kHost ops expanded into their region's nodes.
  std::vector<NodePlacement> placement;
  /// Estimated cycles of the whole program: the in-order schedule of every unit under the
  /// program's waits, with the per-instruction cycles of docs/warboy.md (no DRAM contention).
  uint64_t est_cycles = 0;
  /// Summary and per-layer table as JSON (the same text is program.metadata): instructions, peak
  /// SRAM, DRAM footprint (constants + scratch + io), MACs, bytes moved, estimated cycles, MAC
  /// utilisation estimate; per layer MACs, bytes, cycles and bound.
  nlohmann::json report() const;
  /// The same as a terminal table: layer, op, MACs, DRAM bytes, est. cycles, bound; then totals.
  std::string summary() const;
  /// Partitioned programs: one entry per host segment, in program order (JSON `host_segments`,
  /// totals in `host_transfer`).
  std::vector<HostSegmentReport> host_segments;
};

/// Lowers a quantized ONNX model: ref::lower_qdq(model, options.batch), then compile_graph().
/// lower_qdq's errors (kUnsupported naming node and operator) are returned as they are.
Expected<CompileResult> compile(const onnx::ModelProto& quantized, const CompileOptions& options);

/// Lowers an integer graph. Errors: kInvalidArgument for a malformed graph (naming the node or
/// value), kUnsupported for what the target or this compiler cannot do yet (naming the node).
Expected<CompileResult> compile_graph(const ref::Int8Graph& graph, const CompileOptions& options);

}  // namespace anvil::compiler
