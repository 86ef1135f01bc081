/// anvil run PROGRAM --input TENSORFILE [-o OUT.npy] [--stats stats.json] [--trace trace.json]
///           [--sweep key=v1,v2,...] [--layers]
#include <nlohmann/json.hpp>

#include <iostream>

#include "anvil/common/tensor_io.h"
#include "anvil/hw/config.h"
#include "anvil/hw/layer_profile.h"
#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"
#include "cli_common.h"

namespace anvil::cli {

namespace {

/// The hardware configuration: a preset chosen by the program's PE count, a JSON file, then overrides.
hw::HwConfig make_config(const isa::Program& p, const std::string& file, const std::vector<std::string>& sets) {
  hw::HwConfig c = file.empty() ? hw::HwConfig::preset(p.num_pes == 2 ? "warboy-2pe" : "warboy")
                                : hw::HwConfig::from_json_file(file);
  for (const std::string& s : sets) c.set(s);
  c.validate();
  return c;
}

}  // namespace

void register_run(CLI::App& app) {
  struct Opts {
    std::string program, out, stats, hw_config, trace, sweep;
    std::vector<std::string> inputs, sets;
    bool dequantize = false, layers = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("run", "run a compiled program on the virtual NPU through the runtime");
  cmd->add_option("program", o->program, "program file (from anvil compile)")->required();
  cmd->add_option("--input", o->inputs, "input tensor file (.npy), or NAME=FILE for a named input; float32 is quantized on the host, int8 is used as is")
      ->required();
  cmd->add_option("-o,--output", o->out, "write the (first) output here as .npy (int8 unless --dequantize)");
  cmd->add_flag("--dequantize", o->dequantize, "write outputs as float32 (scale and zero point of the program's output)");
  cmd->add_option("--stats", o->stats, "write run statistics and the device's performance counters as JSON");
  cmd->add_option("--hw-config", o->hw_config, "hardware configuration JSON (default: the preset for the program's target)");
  cmd->add_option("--set", o->sets, "override one hardware parameter: key=value (repeatable)");
  cmd->add_option("--trace", o->trace, "write a Chrome/Perfetto trace (simulated time) of the run: one track per unit");
  cmd->add_flag("--layers", o->layers, "print per-layer MACs, DRAM bytes, roofline and simulated cycles (from the "
                                      "activity trace and the program's layer list)");
  cmd->add_option("--sweep", o->sweep, "key=v1,v2,...: re-open the device with each value of one hardware parameter, run, "
                                       "and print cycles per inference for each");
  cmd->callback([o] {
    const isa::Program program = isa::Program::load(o->program);
    TensorMap inputs;
    for (const std::string& spec : o->inputs) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos) {
        if (program.inputs.size() != 1)
          fail(ErrorCode::kInvalidArgument, o->program + " has " + std::to_string(program.inputs.size()) +
                                                " inputs; name them with --input NAME=FILE");
        inputs[program.inputs[0].name] = read_npy(spec);
      } else {
        inputs[spec.substr(0, eq)] = read_npy(spec.substr(eq + 1));
      }
    }
    const hw::HwConfig config = make_config(program, o->hw_config, o->sets);
    const std::string spec = program.num_pes == 2 ? "npu0pe0-1" : "warboy(1)*1";
    if (!o->sweep.empty()) {
      const auto [key, values] = rt::parse_sweep(o->sweep);
      const std::vector<rt::SweepPoint> points = rt::sweep(spec, config, key, values, program, inputs);
      std::cout << fmt("%-16s %14s %14s %12s %8s\n", key.c_str(), "PE cycles", "request cyc", "latency us", "MAC util");
      for (const rt::SweepPoint& p : points)
        std::cout << fmt("%-16s %14llu %14llu %12.2f %7.1f%%\n", p.value.c_str(),
                         static_cast<unsigned long long>(p.stats.cycles),
                         static_cast<unsigned long long>(p.stats.request_cycles), p.stats.latency_us,
                         100.0 * p.stats.mac_utilization);
      return;
    }
    // Per-layer cycles come from the activity trace: on for --trace and --layers, and for --stats
    // when the program lists its layers' instructions (programs of older compilers do not).
    std::vector<hw::LayerRange> layers;
    if (o->layers) layers = hw::layer_ranges_from_metadata(program.metadata);
    if (!o->stats.empty() && !o->layers) {
      const nlohmann::json m = nlohmann::json::parse(program.metadata, nullptr, false);
      if (m.is_object() && m.contains("layers") && !m.at("layers").empty() &&
          m.at("layers").at(0).contains("first_instruction"))
        layers = hw::layer_ranges_from_metadata(program.metadata);
    }
    rt::Device device = rt::Device::open(spec, config);
    if (!o->trace.empty() || !layers.empty()) device.set_trace(true);
    rt::Session session(device, program);
    const TensorMap outputs = session.run(inputs);
    const rt::RunStats& s = session.last_stats();
    std::cout << fmt("%llu cycles on the PE (%.2f us at %.2f GHz), %llu cycles for the whole request (%.2f us), "
                     "%llu MACs, MAC utilisation %.1f%%\n",
                     static_cast<unsigned long long>(s.cycles), s.cycles / (config.clock_ghz * 1e3), config.clock_ghz,
                     static_cast<unsigned long long>(s.request_cycles), s.latency_us,
                     static_cast<unsigned long long>(s.macs), 100.0 * s.mac_utilization);
    for (const isa::TensorDesc& d : program.outputs) {
      const Tensor& t = outputs.at(d.name);
      std::cout << "output " << d.name << " " << dtype_name(t.dtype()) << shape_str(t.shape()) << '\n';
    }
    if (!o->out.empty()) {
      const isa::TensorDesc& d = program.outputs.at(0);
      Tensor t = outputs.at(d.name);
      if (o->dequantize) t = ref::dequantize_tensor(t, {d.scale, d.zero_point});
      write_npy(o->out, t);
    }
    nlohmann::json trace;
    if (!o->trace.empty() || !layers.empty()) trace = device.trace_json();
    std::vector<hw::LayerProfile> profile;
    if (!layers.empty()) profile = hw::profile_layers(trace, layers, config);
    if (o->layers) std::cout << hw::format_layer_table(profile);
    if (!o->trace.empty()) write_file(o->trace, trace.dump() + "\n");
    if (!o->stats.empty()) {
      nlohmann::json j;
      j["program"] = o->program;
      j["cycles"] = s.cycles;
      j["request_cycles"] = s.request_cycles;
      j["latency_us"] = s.latency_us;
      j["macs"] = s.macs;
      j["mac_utilization"] = s.mac_utilization;
      j["clock_ghz"] = config.clock_ghz;
      j["hw_config"] = config.to_json();
      j["counters"] = device.counters();
      if (!profile.empty()) j["layers"] = hw::layer_profile_json(profile);
      write_file(o->stats, j.dump(1) + "\n");
    }
  });
}

}  // namespace anvil::cli
