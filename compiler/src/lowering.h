#pragma once
/// Lowers the ops of an integer graph, one at a time and in graph order, to instructions:
/// DMA loads of the op's inputs and constants into SRAM, the compute instruction, a DMA store of
/// the output. Every instruction's waits come from the DependencyTracker.
#include <vector>

#include "anvil/compiler/compiler.h"
#include "dependency_tracker.h"
#include "dram_plan.h"
#include "sram_plan.h"

namespace anvil::compiler {

class Lowering {
 public:
  Lowering(const ref::Int8Graph& graph, const Target& target, const DramPlan& plan, isa::Program& program);
  /// Appends the instructions of one op (none for a reshape) and returns its report line.
  /// Throws kInvalidArgument / kUnsupported naming the node.
  LayerReport lower(const ref::Int8Op& op);
  uint64_t sram_peak() const { return sram_.peak(); }

 private:
  /// The SRAM working set of one layer: buffers at 64-byte aligned offsets from its base.
  struct Layer {
    const ref::Int8Op* op;
    std::vector<uint64_t> input_offsets;  ///< per op input
    uint64_t const_offset = 0, const_dram = 0, const_bytes = 0;
    uint64_t out_offset = 0, bytes = 0, base = 0;
    LayerReport report;
  };
  /// Lays out the op's working set (its inputs, `const_bytes` of constants from `const_dram` in
  /// the constant section, its output) and places it in SRAM. Throws kUnsupported naming the node
  /// when it does not fit.
  Layer begin_layer(const ref::Int8Op& op, uint64_t const_dram, uint64_t const_bytes);
  /// Emits the loads of the inputs and constants, `compute` (whose SRAM addresses the caller set
  /// from layer.base and the offsets) and the store of the output.
  void emit_layer(Layer& layer, isa::Instruction compute);
  void emit(isa::Instruction inst);
  void emit_dma(isa::Opcode op, isa::Region region, uint64_t dram, uint64_t sram, uint64_t bytes, Layer& layer);
  /// Appends bytes to the constant section at a 64-byte aligned offset; returns the offset.
  uint64_t add_constant(const void* data, size_t bytes);

  LayerReport lower_conv(const ref::Int8Op& op);
  LayerReport lower_add(const ref::Int8Op& op);
  LayerReport lower_pool(const ref::Int8Op& op);
  LayerReport lower_requant(const ref::Int8Op& op);

  const ref::Int8Graph& graph_;
  const DramPlan& plan_;
  isa::Program& program_;
  SramPlanner sram_;
  DependencyTracker deps_;
};

}  // namespace anvil::compiler
