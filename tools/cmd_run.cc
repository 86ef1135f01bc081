/// anvil run PROGRAM --input TENSORFILE [-o OUT.npy] [--stats stats.json] [--trace trace.json]
///           [--device SPEC] [--requests N [--queue-depth D]]
///           [--sweep key=v1,v2,...] [--layers] [--repeat R [--threads T]]
#include <oneapi/tbb/global_control.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "anvil/common/log.h"
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

/// An integer option in [lo, hi]; kInvalidArgument naming the option otherwise.
int int_option(const char* name, const std::string& text, int lo, int hi) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    fail(ErrorCode::kInvalidArgument, std::string(name) + " must be an integer in " + std::to_string(lo) + ".." +
                                          std::to_string(hi) + ", got '" + text + "'");
  return static_cast<int>(v);
}

/// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::max<size_t>(rank, 1) - 1];
}

/// --requests: N requests of the same inputs through a session of queue depth D on `spec`,
/// spread over its units; prints and (--stats) writes throughput and simulated latency.
void run_stream(const isa::Program& program, const hw::HwConfig& config, const std::string& spec, const TensorMap& inputs,
                int requests, int depth, const std::string& out, const std::string& stats, const std::string& trace,
                rt::SessionOptions options) {
  rt::Device device = rt::Device::open(spec, config);
  if (!trace.empty()) device.set_trace(true);
  options.queue_depth = static_cast<uint32_t>(depth);
  rt::Session session(device, program, options);
  const auto start = std::chrono::steady_clock::now();
  int submitted = 0;
  for (; submitted < std::min(depth, requests); ++submitted) session.submit(inputs, submitted);
  std::vector<double> latency_us;
  TensorMap first;
  for (int done = 0; done < requests; ++done) {
    // timeout_s, not device_timeout_s: the host waits past the device deadline so that a request
    // the device never completes is reported as the device fault it is (session_options()).
    const rt::Request r = session.receive(session.options().timeout_s);
    const TensorMap& outputs = r.outputs();  // throws the request's error
    if (first.empty()) first = outputs;
    for (const auto& [name, t] : outputs)
      if (!(t == first.at(name)))
        fail(ErrorCode::kInternal, "request " + std::to_string(std::any_cast<int>(r.context())) + ": output '" + name +
                                       "' differs from the first request's for the same input");
    latency_us.push_back(r.stats().queue_latency_us);
    if (submitted < requests) session.submit(inputs, submitted++);
  }
  const double host_s = seconds_since(start);
  const rt::SessionStats st = session.stats();
  std::sort(latency_us.begin(), latency_us.end());
  const double p50 = percentile(latency_us, 50), p95 = percentile(latency_us, 95), p99 = percentile(latency_us, 99);
  const double per_host_s = requests / host_s;
  std::cout << fmt("%d requests on %s (%zu unit(s), queue depth %d): %.1f inferences per simulated second, %.2f per "
                   "host second\n",
                   requests, device.spec().c_str(), device.units().size(), depth, st.throughput_per_sim_s, per_host_s);
  std::cout << fmt("latency (submission to completion, simulated): p50 %.2f us, p95 %.2f us, p99 %.2f us\n", p50, p95, p99);
  std::string per_unit;
  for (size_t u = 0; u < st.per_unit.size(); ++u)
    per_unit += fmt("%s%s: %llu", u ? ", " : "",
                    device.units()[u] == 3 ? "npu0pe0-1" : device.units()[u] == 2 ? "npu0pe1" : "npu0pe0",
                    static_cast<unsigned long long>(st.per_unit[u]));
  std::cout << "requests per unit: " << per_unit << '\n';
  if (!out.empty()) write_npy(out, first.at(program.outputs.at(0).name));
  if (!trace.empty()) write_file(trace, device.trace_json().dump() + "\n");
  if (!stats.empty()) {
    nlohmann::json j;
    j["device"] = device.spec();
    j["requests"] = requests;
    j["queue_depth"] = depth;
    j["throughput_per_sim_s"] = st.throughput_per_sim_s;
    j["throughput_per_host_s"] = per_host_s;
    j["latency_sim_us"] = {{"p50", p50}, {"p95", p95}, {"p99", p99}};
    j["requests_per_unit"] = st.per_unit;
    j["sim_cycles"] = st.last_end_cycle - st.first_submit_cycle;
    j["clock_ghz"] = device.config().clock_ghz;  // the chip's (a device server's own, for unix:)
    j["hw_config"] = device.config().to_json();
    j["counters"] = device.counters();
    write_file(stats, j.dump(1) + "\n");
  }
}

/// A segment of a partitioned program as --layers reports it: an NPU segment's layers (its
/// program's metadata), a host segment's ONNX nodes (its integer graph's ops).
struct SegmentLayers {
  bool host = false;
  std::vector<hw::LayerRange> layers;
  std::vector<std::string> nodes;
};

/// Reads every segment's layers or nodes before the run, so a bad segment is an error up front.
std::vector<SegmentLayers> segment_layer_lists(const isa::Program& program, const std::string& path) {
  std::vector<SegmentLayers> out;
  for (size_t i = 0; i < program.segments.size(); ++i) {
    const isa::Segment& seg = program.segments[i];
    const std::string what = path + ": segment " + std::to_string(i);
    SegmentLayers s;
    s.host = seg.kind == isa::SegmentKind::kHost;
    if (s.host) {
      const ref::Int8Graph graph = ref::parse_int8_graph(seg.payload, what).value();
      for (const ref::Int8Op& op : graph.ops) {
        if (op.kind == ref::Int8OpKind::kHost)
          s.nodes.insert(s.nodes.end(), op.host_nodes.begin(), op.host_nodes.end());
        else
          s.nodes.push_back(op.node);
      }
    } else {
      try {
        s.layers = hw::layer_ranges_from_metadata(isa::Program::parse(seg.payload, what).metadata);
      } catch (const Error& e) {
        fail(e.code(), what + ": " + e.what());
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

/// The runtime's options with --timeout T (default: the runtime's device deadline): the device
/// deadline is T, and the host waits long enough past it (T + max(T, 1 s)) to report the device's
/// error, not a race with its own wait, which gave up first with the runtime's defaults (60 s
/// against 300 s) and reported a hung request as a queue timeout.
rt::SessionOptions session_options(double timeout_s) {
  rt::SessionOptions options;
  if (timeout_s > 0) options.device_timeout_s = timeout_s;
  options.timeout_s = options.device_timeout_s + std::max(options.device_timeout_s, 1.0);
  return options;
}

}  // namespace

void register_run(CLI::App& app) {
  struct Opts {
    std::string program, out, stats, hw_config, trace, sweep;
    std::vector<std::string> inputs, sets;
    std::string device;                    ///< --device: runtime device spec
    std::string requests, queue_depth;     ///< stream mode: --requests N through a queue of depth D
    bool dequantize = false, layers = false;
    int repeat = 0, threads = 0;
    double timeout_s = 0;  ///< --timeout: SessionOptions::timeout_s and device_timeout_s (0: their defaults)
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("run", "run a compiled program on the virtual NPU through the runtime");
  cmd->add_option("program", o->program, "program file (from anvil compile)")->required();
  cmd->add_option("--input", o->inputs, "input tensor file (.npy), or NAME=FILE for a named input; float32 is quantized on the host, int8 is used as is")
      ->required();
  cmd->add_option("-o,--output", o->out, "write the (first) output here as .npy (int8 unless --dequantize)")
      ->check(writable_output());
  cmd->add_flag("--dequantize", o->dequantize, "write int8 outputs as float32 (scale and zero point of the program's output; a float output, "
                "computed on the host, is written as it is)");
  cmd->add_option("--stats", o->stats, "write run statistics and the device's performance counters as JSON")
      ->check(writable_output());
  cmd->add_option("--hw-config", o->hw_config, "hardware configuration JSON (default: the preset for the program's target)");
  cmd->add_option("--set", o->sets, "override one hardware parameter: key=value (repeatable)");
  cmd->add_option("--trace", o->trace, "write a Chrome/Perfetto trace (simulated time) of the run: one track per unit")
      ->check(writable_output());
  cmd->add_flag("--layers", o->layers, "print per-layer MACs, DRAM bytes, roofline and simulated cycles (from the "
                                      "activity trace and the program's layer list); a partitioned program: one table per NPU segment "
                                      "and each host segment's nodes and measured host wall time");
  cmd->add_option("--repeat", o->repeat, "after the first run, time R more runs of the same request (host wall "
                                         "time per inference, simulated cycles per host second)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--threads", o->threads, "host threads of the MAC array's kernel (default: all cores)")
      ->check(thread_count());
  cmd->add_option("--device", o->device, "device spec: warboy(1)*1, warboy(2)*1 (two independent PEs), npu0pe1, "
                                         "npu0pe0-1 (fused pair), comma-separated lists (default: $ANVIL_DEVICES, else "
                                         "the program's target)");
  cmd->add_option("--requests", o->requests, "stream N requests (1..1000000) of the input through the runtime's queue "
                                             "and report throughput and simulated latency percentiles");
  cmd->add_option("--queue-depth", o->queue_depth, "requests in flight with --requests (1..63, default 4)");
  cmd->add_option("--timeout", o->timeout_s, "host seconds a request may take on the device before it fails and the "
                                             "device is reset (default 300)")
      ->check(CLI::Range(0.001, 86400.0));
  cmd->add_option("--sweep", o->sweep, "key=v1,v2,...: re-open the device with each value of one hardware parameter, run, "
                                       "and print cycles per inference for each");
  cmd->callback([o] {
    // A sweep prints its table of cycles and nothing else: what these options ask for is not made.
    const std::pair<bool, const char*> not_with_sweep[] = {{!o->requests.empty(), "--requests"}, {!o->out.empty(), "-o"},
                                                           {!o->stats.empty(), "--stats"}, {!o->trace.empty(), "--trace"},
                                                           {o->layers, "--layers"}};
    for (const auto& [given, option] : not_with_sweep)
      if (given && !o->sweep.empty())
        fail(ErrorCode::kInvalidArgument, std::string(option) + " and --sweep cannot be combined");
    // A stream reports throughput and latency percentiles, not one request's layers or timings.
    const std::pair<bool, const char*> not_with_requests[] = {{o->layers, "--layers"}, {o->repeat > 0, "--repeat"}};
    for (const auto& [given, option] : not_with_requests)
      if (given && !o->requests.empty())
        fail(ErrorCode::kInvalidArgument, std::string(option) + " and --requests cannot be combined");
    const isa::Program program = isa::Program::load(o->program);
    if (o->inputs.size() > program.inputs.size())
      fail(ErrorCode::kInvalidArgument, o->program + ": the program has " + std::to_string(program.inputs.size()) +
                                            (program.inputs.size() == 1 ? " input, " : " inputs, ") +
                                            std::to_string(o->inputs.size()) + " given with --input");
    TensorMap inputs;
    for (const std::string& spec : o->inputs) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos && program.inputs.size() != 1)
        fail(ErrorCode::kInvalidArgument, o->program + " has " + std::to_string(program.inputs.size()) +
                                              " inputs; name them with --input NAME=FILE");
      const std::string name = eq == std::string::npos ? program.inputs[0].name : spec.substr(0, eq);
      const std::string file = eq == std::string::npos ? spec : spec.substr(eq + 1);
      if (file.empty()) fail(ErrorCode::kInvalidArgument, "--input '" + spec + "': no file name for input '" + name + "'");
      if (inputs.count(name)) fail(ErrorCode::kInvalidArgument, "--input: input '" + name + "' given twice");
      inputs[name] = read_npy(file);
    }
    hw::HwConfig config = make_config(program, o->hw_config, o->sets);
    std::unique_ptr<tbb::global_control> thread_limit;
    if (o->threads > 0)
      thread_limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, o->threads);
    // Without --device: $ANVIL_DEVICES, which the runtime reads for the empty spec and names in its
    // errors, else the program's target.
    const char* env_devices = std::getenv("ANVIL_DEVICES");
    const std::string spec = !o->device.empty()            ? o->device
                             : env_devices && *env_devices ? std::string()
                             : program.num_pes == 2        ? "npu0pe0-1"
                                                           : "warboy(1)*1";
    const std::vector<uint32_t> units = rt::parse_device_spec(spec);
    uint32_t spec_pes = 0;
    for (uint32_t unit : units) spec_pes |= unit;
    if ((spec_pes & 2) && config.num_pes < 2) config.num_pes = 2;  // a spec naming PE 1 needs the two-PE chip
    if (!o->queue_depth.empty() && o->requests.empty()) fail(ErrorCode::kInvalidArgument, "--queue-depth needs --requests");
    if (!o->requests.empty()) {
      const int requests = int_option("--requests", o->requests, 1, 1000000);
      const int depth = o->queue_depth.empty() ? 4 : int_option("--queue-depth", o->queue_depth, 1, 63);
      run_stream(program, config, spec, inputs, requests, depth, o->out, o->stats, o->trace, session_options(o->timeout_s));
      return;
    }
    if (!o->sweep.empty()) {
      const auto [key, values] = rt::parse_sweep(o->sweep);
      const std::vector<rt::SweepPoint> points = rt::sweep(spec, config, key, values, program, inputs, session_options(o->timeout_s));
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
    // A partitioned program: each NPU segment is a run of its own, profiled with its own layer list.
    std::vector<hw::LayerRange> layers;
    std::vector<SegmentLayers> segment_layers;
    if (o->layers && !program.segments.empty())
      segment_layers = segment_layer_lists(program, o->program);
    else if (o->layers)
      layers = hw::layer_ranges_from_metadata(program.metadata);
    if (!o->stats.empty() && !o->layers && program.segments.empty()) {
      const nlohmann::json m = nlohmann::json::parse(program.metadata, nullptr, false);
      if (m.is_object() && m.contains("layers") && !m.at("layers").empty() &&
          m.at("layers").at(0).contains("first_instruction"))
        layers = hw::layer_ranges_from_metadata(program.metadata);
    }
    rt::Device device = rt::Device::open(spec, config);
    // Figures are the chip's: a device server (unix:) simulates its own configuration, not `config`.
    const hw::HwConfig& chip = device.config();
    const bool tracing = !o->trace.empty() || !layers.empty() || !segment_layers.empty();
    if (tracing) device.set_trace(true);
    rt::Session session(device, program, session_options(o->timeout_s));
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    TensorMap outputs = session.run(inputs);
    const double first_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    // Timed repeats: the same request again (the first run also pays the firmware's one-time
    // check of the program image); trace recording stays as it was, so time with it off.
    std::vector<double> ms;
    for (int r = 0; r < o->repeat; ++r) {
      if (!o->trace.empty() || o->layers) device.clear_trace();
      t0 = Clock::now();
      outputs = session.run(inputs);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const rt::RunStats& s = session.last_stats();
    std::cout << fmt("%llu cycles on the PE (%.2f us at %.2f GHz), %llu cycles for the whole request (%.2f us), "
                     "%llu MACs, MAC utilisation %.1f%%\n",
                     static_cast<unsigned long long>(s.cycles), s.cycles / (chip.clock_ghz * 1e3), chip.clock_ghz,
                     static_cast<unsigned long long>(s.request_cycles), s.latency_us,
                     static_cast<unsigned long long>(s.macs), 100.0 * s.mac_utilization);
    if (!program.segments.empty())
      std::cout << fmt("partitioned program: %zu segments; host segments took %.1f us of host time\n",
                       program.segments.size(), s.host_us);
    const double median_ms = ms.empty() ? first_ms : ms[ms.size() / 2];
    if (!ms.empty())
      std::cout << fmt("host wall time per inference: first run %.1f ms, then median %.1f ms (min %.1f) over %d "
                       "runs: %.3g simulated PE cycles per host second\n",
                       first_ms, median_ms, ms.front(), o->repeat, s.cycles / (median_ms * 1e-3));
    for (const isa::TensorDesc& d : program.outputs) {
      const Tensor& t = outputs.at(d.name);
      std::cout << "output " << d.name << " " << dtype_name(t.dtype()) << shape_str(t.shape()) << '\n';
    }
    if (!o->out.empty()) {
      const isa::TensorDesc& d = program.outputs.at(0);
      Tensor t = outputs.at(d.name);
      if (o->dequantize && t.dtype() == DType::kInt8) t = ref::dequantize_tensor(t, {d.scale, d.zero_point});
      write_npy(o->out, t);
    }
    nlohmann::json trace;
    if (tracing) trace = device.trace_json();
    std::vector<hw::LayerProfile> profile;
    if (!layers.empty()) profile = hw::profile_layers(trace, layers, chip);
    if (o->layers && segment_layers.empty()) std::cout << hw::format_layer_table(profile);
    // Partitioned: one block per segment, in order. NPU segment k's run is the PE's n-th run of
    // the request (trace cleared before each repeat), n counting the earlier NPU segments on that PE.
    nlohmann::json segments_json = nlohmann::json::array();
    int runs_on_pe[2] = {0, 0};
    for (size_t i = 0; i < program.segments.size() && i < s.segments.size(); ++i) {
      const rt::SegmentStats& ss = s.segments[i];
      nlohmann::json sj = {{"index", i}, {"kind", ss.host ? "host" : "npu"}};
      if (ss.host) {
        sj["host_us"] = ss.host_us;
        if (!segment_layers.empty()) {
          std::string nodes;
          for (const std::string& n : segment_layers[i].nodes) nodes += (nodes.empty() ? "" : ", ") + n;
          std::cout << fmt("segment %zu (host): %.1f us of host wall time (measured), %zu node(s): ", i, ss.host_us,
                           segment_layers[i].nodes.size())
                    << nodes << '\n';  // not through fmt: the list has no length limit
          sj["nodes"] = segment_layers[i].nodes;
        }
      } else {
        sj["cycles"] = ss.cycles;
        if (!segment_layers.empty()) {
          const int pe = (ss.pe_mask & 1) ? 0 : 1;
          const std::vector<hw::LayerProfile> p =
              hw::profile_layers(trace, segment_layers[i].layers, chip, pe, runs_on_pe[pe]++);
          std::cout << fmt("segment %zu (npu): %llu cycles on the PE\n", i, static_cast<unsigned long long>(ss.cycles))
                    << hw::format_layer_table(p);
          sj["layers"] = hw::layer_profile_json(p);
        }
      }
      segments_json.push_back(std::move(sj));
    }
    if (!o->trace.empty()) write_file(o->trace, trace.dump() + "\n");
    if (!o->stats.empty()) {
      nlohmann::json j;
      j["program"] = o->program;
      j["input_shape"] = program.inputs.empty() ? Shape{} : program.inputs[0].shape;
      j["cycles"] = s.cycles;
      j["request_cycles"] = s.request_cycles;
      j["latency_us"] = s.latency_us;
      j["macs"] = s.macs;
      j["mac_utilization"] = s.mac_utilization;
      j["host_us"] = s.host_us;
      j["clock_ghz"] = chip.clock_ghz;
      j["hw_config"] = chip.to_json();
      j["counters"] = device.counters();
      j["host"] = {{"first_run_ms", first_ms}, {"repeat", o->repeat}, {"median_ms", median_ms},
                   {"min_ms", ms.empty() ? first_ms : ms.front()},
                   {"pe_cycles_per_host_second", s.cycles / (median_ms * 1e-3)}};
      if (!profile.empty()) j["layers"] = hw::layer_profile_json(profile);
      if (!segments_json.empty()) j["segments"] = segments_json;
      write_file(o->stats, j.dump(1) + "\n");
    }
  });
}

}  // namespace anvil::cli
