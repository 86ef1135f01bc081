/// anvil compile IN.onnx -o PROGRAM --target warboy|warboy-2pe [--batch B] [--report report.json] [--npu-only]
#include <iostream>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/compiler/compiler.h"
#include "cli_common.h"

namespace anvil::cli {

void register_compile(CLI::App& app) {
  struct Opts {
    std::string in, out, target = "warboy", report;
    int64_t batch = 1;
    bool npu_only = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("compile", "compile a quantized (QDQ) ONNX model into an NPU program");
  cmd->add_option("model", o->in, "quantized ONNX model (from anvil quantize)")->required();
  cmd->add_option("-o,--output", o->out, "program file to write")->required()->check(writable_output());
  cmd->add_option("--target", o->target, "warboy (one PE) or warboy-2pe (fused pair)");
  cmd->add_option("--batch", o->batch, "batch size the program runs")->check(CLI::Range(1, 4096));
  cmd->add_option("--report", o->report, "write the compile report (per-layer MACs, bytes, SRAM) as JSON")
      ->check(writable_output());
  cmd->add_flag("--npu-only", o->npu_only,
                "no host fallback: fail (naming the node) instead of running what the NPU cannot on the host");
  cmd->callback([o] {
    check_not_input(o->in, o->out, "-o");
    compiler::CompileOptions options;
    options.target = compiler::Target::from_name(o->target);
    options.batch = o->batch;
    options.model_name = o->in;
    options.host_fallback = !o->npu_only;
    const onnx::ModelProto model = load_onnx(o->in);
    // Without Q/DQ nodes every node would be refused one by one for reading float values.
    if (!quant::first_qdq_node(model))
      fail(ErrorCode::kInvalidArgument, o->in + " is not a quantized (QDQ) model: run anvil quantize first");
    compiler::CompileResult result = compiler::compile(model, options).value();
    result.program.save(o->out);
    if (!o->report.empty()) write_file(o->report, result.report().dump(1) + "\n");
    std::cout << result.summary();
    uint64_t macs = 0;
    for (const auto& l : result.layers) macs += l.macs;
    if (result.program.segments.empty()) {
      std::cout << "compiled " << o->in << " for " << o->target << " (batch " << o->batch << "): "
                << result.program.instructions.size() << " instructions, " << result.program.constants.size()
                << " bytes of constants, " << result.program.sram_bytes << " bytes of SRAM, " << macs
                << " MACs -> " << o->out << '\n';
    } else {
      size_t npu = 0, host_nodes = 0;
      for (const auto& s : result.program.segments) npu += s.kind == isa::SegmentKind::kNpu;
      for (const auto& p : result.placement) host_nodes += p.runs_on == "host";
      std::cout << "compiled " << o->in << " for " << o->target << " (batch " << o->batch << "): "
                << result.program.segments.size() << " segments (" << npu << " NPU, "
                << result.program.segments.size() - npu << " host), " << host_nodes << " of "
                << result.placement.size() << " nodes on the host, " << macs << " MACs on the NPU -> " << o->out
                << '\n';
    }
  });
}

}  // namespace anvil::cli
