#include "anvil/compiler/compiler.h"

#include "dram_plan.h"
#include "lowering.h"

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

}  // namespace

uint64_t Target::sram_capacity() const {
  return static_cast<uint64_t>(slices_per_pe) * sram_per_slice * static_cast<uint64_t>(num_pes);
}

Target Target::from_name(const std::string& name) {
  if (name == "warboy") return warboy_pe(name, 1);
  if (name == "warboy-2pe") return warboy_pe(name, 2);
  fail(ErrorCode::kInvalidArgument, "unknown target '" + name + "' (valid targets: warboy, warboy-2pe)");
}

nlohmann::json CompileResult::report() const {
  nlohmann::json layers_json = nlohmann::json::array();
  uint64_t macs = 0, dram = 0;
  for (const LayerReport& l : layers) {
    layers_json.push_back({{"node", l.node}, {"op", l.op}, {"macs", l.macs}, {"dram_bytes", l.dram_bytes},
                           {"sram_bytes", l.sram_bytes}});
    macs += l.macs;
    dram += l.dram_bytes;
  }
  return {{"model", model_name},
          {"target", target.name},
          {"num_pes", program.num_pes},
          {"batch", program.batch},
          {"instructions", program.instructions.size()},
          {"constants_bytes", program.constants.size()},
          {"scratch_bytes", program.scratch_bytes},
          {"io_bytes", program.io_bytes},
          {"sram_bytes", program.sram_bytes},
          {"sram_capacity", target.sram_capacity()},
          {"macs", macs},
          {"dram_bytes", dram},
          {"layers", layers_json}};
}

Expected<CompileResult> compile_graph(const ref::Int8Graph& graph, const CompileOptions& options) {
  return capture([&] {
    CompileResult result;
    result.target = options.target;
    result.model_name = options.model_name;
    if (options.target.num_pes < 1 || options.target.num_pes > 2 || options.target.sram_capacity() == 0 ||
        options.target.sram_capacity() > (uint64_t{1} << 32))
      fail(ErrorCode::kInvalidArgument, "target '" + options.target.name +
                                            "': needs 1 or 2 PEs and between 1 byte and 4 GiB of SRAM (32-bit addresses)");
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
    for (const ref::Int8Op& op : graph.ops) result.layers.push_back(lowering.lower(op));
    program.sram_bytes = lowering.sram_peak();
    program.metadata = result.report().dump();
    return result;
  });
}

}  // namespace anvil::compiler
