/// anvil eval MODEL.onnx --dataset DATASET --methods LIST|all --target T [--calib-count N] [--count N] [--json report.json]
///            [--sweep key=v1,v2,...]
///
/// The main job of anvil: FP32 top-1 on the reference executor; then for each calibration method
/// quantize, compile, run every evaluation image on the virtual NPU and report INT8 top-1 measured
/// on the emulator, the INT8/FP32 ratio, simulated cycles, latency and MAC utilisation. Every
/// emulator output is also checked bit for bit against the reference executor's integer run.
/// --sweep then re-runs each method's program on the first evaluation batch with every value of
/// one hardware parameter (rt::sweep: a fresh device per value) and prints cycles per inference.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/compiler/compiler.h"
#include "anvil/hw/config.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"
#include "cli_common.h"

namespace anvil::cli {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Rows [begin, begin + batch) of x; rows past the end are zero (the last, partial batch).
Tensor batch_rows(const Tensor& x, int64_t begin, int64_t batch) {
  const int64_t end = std::min(begin + batch, x.dim(0));
  Tensor part = x.slice0(begin, end);
  if (end - begin == batch) return part;
  Shape pad_shape = x.shape();
  pad_shape[0] = batch - (end - begin);
  return Tensor::concat0({part, Tensor(x.dtype(), pad_shape)});
}

struct MethodResult {
  std::string method;
  int64_t correct = 0, agree = 0, golden_mismatch = 0, evaluated = 0;
  double signal = 0, noise = 0;  // sum of squares of FP32 logits and of (FP32 - dequantized INT8)
  uint64_t cycles = 0, request_cycles = 0, macs = 0;
  double utilization_sum = 0;
  int64_t requests = 0;
  double quantize_s = 0, compile_s = 0, run_s = 0;
  isa::Program program;                 ///< kept for --sweep
  std::vector<rt::SweepPoint> sweep;    ///< one per --sweep value
};

}  // namespace

void register_eval(CLI::App& app) {
  struct Opts {
    std::string model, dataset, methods = "MIN_MAX_ASYM,MIN_MAX_SYM", target = "warboy", json, sweep;
    int64_t calib_count = 500, count = -1, batch = 1;
    NormOptions norm;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("eval", "quantize with each method, compile, run on the virtual NPU, report accuracy and cycles");
  cmd->add_option("model", o->model, "FP32 ONNX classifier (input N x C x H x W, output N x classes)")->required();
  cmd->add_option("--dataset", o->dataset, "fashion-mnist:DIR or npy:DIR (calibrates on its training split, evaluates on its test split)")
      ->required();
  cmd->add_option("--methods", o->methods, "comma-separated calibration methods, or all");
  cmd->add_option("--target", o->target, "warboy (one PE) or warboy-2pe (fused pair)");
  cmd->add_option("--calib-count", o->calib_count, "calibration images: the first N of the training split");
  cmd->add_option("--count", o->count, "evaluation images: the first N of the test split (default: all)");
  cmd->add_option("--batch", o->batch, "batch size of the compiled program")->check(CLI::Range(1, 1024));
  cmd->add_option("--json", o->json, "write the report as JSON");
  cmd->add_option("--sweep", o->sweep, "key=v1,v2,...: after the evaluation, run each method's program on the first "
                                       "test batch with each value of one hardware parameter (a fresh device per "
                                       "value) and print cycles per inference for each");
  o->norm.add_to(cmd);
  cmd->callback([o] {
    const auto t_start = Clock::now();
    std::vector<quant::Method> methods;
    if (o->methods == "all") {
      for (int m = 0; m <= static_cast<int>(quant::Method::kMseSym); ++m) methods.push_back(static_cast<quant::Method>(m));
    } else {
      std::stringstream ss(o->methods);
      std::string name;
      while (std::getline(ss, name, ','))
        if (!name.empty()) methods.push_back(quant::method_from_name(name));
    }
    if (methods.empty()) fail(ErrorCode::kInvalidArgument, "--methods: no method given");
    const hw::HwConfig config = hw::HwConfig::preset(o->target);
    const std::string device_spec = device_spec_for_target(o->target);
    std::pair<std::string, std::vector<std::string>> sweep;
    if (!o->sweep.empty()) {
      // Check every value before the (long) evaluation: rt::sweep applies the same set + validate.
      sweep = rt::parse_sweep(o->sweep);
      for (const std::string& v : sweep.second) {
        hw::HwConfig c = config;
        c.set(sweep.first + "=" + v);
        c.validate();
      }
    }

    const onnx::ModelProto model = load_onnx(o->model);
    const Dataset test = load_dataset(o->dataset, Split::kTest, o->count, o->norm.get());
    if (test.labels.empty()) fail(ErrorCode::kInvalidArgument, o->dataset + ": the test split has no labels");
    const Dataset calib = load_dataset(o->dataset, Split::kTrain, o->calib_count, o->norm.get());
    const int64_t n = test.images.dim(0);
    const int64_t* labels = test.labels.data<int64_t>();

    // FP32 on the reference executor.
    const auto t_fp32 = Clock::now();
    const ref::Executor fp32 = ref::Executor::create(model).value();
    const std::string in_name = fp32.input_names().at(0), out_name = fp32.output_names().at(0);
    std::vector<Tensor> fp32_logits;
    int64_t fp32_correct = 0;
    {
      Progress progress("FP32 (reference)", n);
      for (int64_t i = 0; i < n; i += 100) {
        const int64_t b = std::min<int64_t>(100, n - i);
        Tensor logits = fp32.run({{in_name, test.images.slice0(i, i + b)}}).value().at(out_name);
        if (logits.dtype() != DType::kFloat32 || logits.rank() < 2 || logits.dim(0) != b)
          fail(ErrorCode::kInvalidArgument, o->model + ": output '" + out_name + "' is " + shape_str(logits.shape()) +
                                                ", eval needs N x classes float32 logits");
        for (int64_t r = 0; r < b; ++r) fp32_correct += argmax_row(logits, r) == labels[i + r];
        fp32_logits.push_back(logits);
        progress.advance(b);
      }
    }
    const Tensor fp32_all = Tensor::concat0(fp32_logits);
    const double fp32_top1 = static_cast<double>(fp32_correct) / n;
    const double fp32_s = seconds_since(t_fp32);

    // One calibration pass serves every method.
    const auto t_calib = Clock::now();
    const onnx::ModelProto optimized = quant::optimize(model);
    const quant::Calibration calibration = quant::calibrate(optimized, calib.images, true);
    const double calib_s = seconds_since(t_calib);

    rt::Device device = rt::Device::open(device_spec, config);
    std::vector<MethodResult> results;
    for (quant::Method method : methods) {
      MethodResult r;
      r.method = quant::method_name(method);
      auto t = Clock::now();
      quant::QuantizeOptions qopt;
      qopt.method = method;
      const onnx::ModelProto qmodel = quant::quantize(optimized, calibration, qopt).value();
      r.quantize_s = seconds_since(t);
      t = Clock::now();
      compiler::CompileOptions copt;
      copt.target = compiler::Target::from_name(o->target);
      copt.batch = o->batch;
      copt.model_name = o->model;
      const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
      const ref::Int8Graph golden = ref::lower_qdq(qmodel, o->batch).value();
      r.compile_s = seconds_since(t);
      t = Clock::now();
      rt::Session session(device, compiled.program);
      const isa::TensorDesc& in_desc = compiled.program.inputs.at(0);
      const isa::TensorDesc& out_desc = compiled.program.outputs.at(0);
      Progress progress("INT8 " + r.method + " (emulator)", n);
      for (int64_t i = 0; i < n; i += o->batch) {
        const int64_t valid = std::min(o->batch, n - i);
        const Tensor x = batch_rows(test.images, i, o->batch);
        const Tensor q = ref::quantize_tensor(x, {in_desc.scale, in_desc.zero_point});
        const Tensor y = session.run({{in_desc.name, q}}).at(out_desc.name);
        const Tensor want = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value().at(golden.output_names.at(0));
        const rt::RunStats& s = session.last_stats();
        r.cycles += s.cycles;
        r.request_cycles += s.request_cycles;
        r.macs += s.macs;
        r.utilization_sum += s.mac_utilization;
        ++r.requests;
        const int64_t cols = y.numel() / y.dim(0);
        const int8_t* py = y.data<int8_t>();
        const int8_t* pw = want.data<int8_t>();
        const float* pf = fp32_all.data<float>();
        for (int64_t row = 0; row < valid; ++row) {
          const int64_t pred = argmax_row(y, row);
          r.correct += pred == labels[i + row];
          r.agree += pred == argmax_row(fp32_all, i + row);
          r.golden_mismatch += std::memcmp(py + row * cols, pw + row * cols, static_cast<size_t>(cols)) != 0;
          for (int64_t c = 0; c < cols; ++c) {
            const double f = pf[(i + row) * cols + c];
            const double d = f - math::dequantize(py[row * cols + c], out_desc.scale, out_desc.zero_point);
            r.signal += f * f;
            r.noise += d * d;
          }
        }
        r.evaluated += valid;
        progress.advance(valid);
      }
      r.run_s = seconds_since(t);
      if (!sweep.first.empty()) r.program = compiled.program;
      results.push_back(std::move(r));
    }
    // The sweep re-opens (power cycles) the device per value, so it runs after every method's evaluation.
    if (!sweep.first.empty()) {
      device.close();
      for (MethodResult& r : results) {
        const isa::TensorDesc& in_desc = r.program.inputs.at(0);
        const Tensor q = ref::quantize_tensor(batch_rows(test.images, 0, o->batch), {in_desc.scale, in_desc.zero_point});
        r.sweep = rt::sweep(device_spec, config, sweep.first, sweep.second, r.program, {{in_desc.name, q}});
      }
    }

    // The table.
    const double clock_hz = config.clock_ghz * 1e9;
    std::vector<std::vector<std::string>> rows;
    nlohmann::json report;
    report["model"] = o->model;
    report["dataset"] = o->dataset;
    report["target"] = o->target;
    report["batch"] = o->batch;
    report["calib_count"] = calib.images.dim(0);
    report["eval_count"] = n;
    report["fp32_top1"] = fp32_top1;
    report["results"] = nlohmann::json::array();
    rows.push_back({"FP32 (reference executor)", fmt("%.4f", fp32_top1), "-", "-", "-", "-", "-", "-", "-"});
    for (const MethodResult& r : results) {
      const double top1 = static_cast<double>(r.correct) / r.evaluated;
      const double cycles_per_inf = static_cast<double>(r.cycles) / (r.requests * o->batch);
      const double sqnr = r.noise > 0 ? 10.0 * std::log10(r.signal / r.noise) : INFINITY;
      const double util = r.utilization_sum / r.requests;
      rows.push_back({"INT8 " + r.method + " (emulator)", fmt("%.4f", top1), fmt("%.2f%%", 100.0 * top1 / fp32_top1),
                      fmt("%.4f", static_cast<double>(r.agree) / r.evaluated), fmt("%.1f", sqnr),
                      fmt("%.0f", cycles_per_inf), fmt("%.2f", cycles_per_inf / clock_hz * 1e6), fmt("%.1f%%", 100.0 * util),
                      fmt("%lld/%lld", static_cast<long long>(r.evaluated - r.golden_mismatch), static_cast<long long>(r.evaluated))});
      report["results"].push_back({{"method", r.method},
                                   {"int8_top1", top1},
                                   {"ratio", top1 / fp32_top1},
                                   {"top1_agreement", static_cast<double>(r.agree) / r.evaluated},
                                   {"output_sqnr_db", sqnr},
                                   {"cycles_per_inference", cycles_per_inf},
                                   {"latency_us", cycles_per_inf / clock_hz * 1e6},
                                   {"request_latency_us", static_cast<double>(r.request_cycles) / r.requests / clock_hz * 1e6},
                                   {"mac_utilization", util},
                                   {"golden_bit_exact", r.evaluated - r.golden_mismatch},
                                   {"host_seconds", {{"quantize", r.quantize_s}, {"compile", r.compile_s}, {"run", r.run_s}}}});
    }
    std::cout << "\nanvil eval: " << o->model << " on " << n << " test images of " << o->dataset << ", target " << o->target
              << " (" << config.clock_ghz << " GHz), batch " << o->batch << ", calibrated on " << calib.images.dim(0)
              << " training images\n\n"
              << format_table({"model", "top-1", "INT8/FP32", "agree FP32", "SQNR dB", "cycles/inf", "us/inf",
                               "MAC util", "bit-exact vs ref"},
                              rows)
              << fmt("\nhost time: FP32 %.1f s, calibration %.1f s", fp32_s, calib_s);
    for (const MethodResult& r : results)
      std::cout << fmt(", %s %.1f s (quantize %.2f, compile %.2f, emulate+verify %.1f)", r.method.c_str(),
                       r.quantize_s + r.compile_s + r.run_s, r.quantize_s, r.compile_s, r.run_s);
    std::cout << fmt("; total %.1f s\n", seconds_since(t_start));
    if (!sweep.first.empty()) {
      // Cycles per inference: PE cycles of one request of the compiled batch / batch.
      std::vector<std::string> header{sweep.first};
      for (const MethodResult& r : results) header.push_back(r.method + " cycles/inf");
      for (const MethodResult& r : results) header.push_back(r.method + " us/inf");
      std::vector<std::vector<std::string>> sweep_rows;
      nlohmann::json sj = nlohmann::json::array();
      for (size_t v = 0; v < sweep.second.size(); ++v) {
        std::vector<std::string> row{sweep.second[v]};
        nlohmann::json point = {{"value", sweep.second[v]}};
        hw::HwConfig c = config;
        c.set(sweep.first + "=" + sweep.second[v]);
        for (const MethodResult& r : results) {
          const double per_inf = static_cast<double>(r.sweep[v].stats.cycles) / o->batch;
          row.push_back(fmt("%.0f", per_inf));
          point[r.method] = {{"cycles_per_inference", per_inf}, {"latency_us", per_inf / (c.clock_ghz * 1e3)},
                             {"mac_utilization", r.sweep[v].stats.mac_utilization}};
        }
        for (const MethodResult& r : results)
          row.push_back(fmt("%.2f", static_cast<double>(r.sweep[v].stats.cycles) / o->batch / (c.clock_ghz * 1e3)));
        sweep_rows.push_back(row);
        sj.push_back(point);
      }
      std::cout << "\nsweep of " << sweep.first << " (first test batch, a fresh device per value):\n\n"
                << format_table(header, sweep_rows);
      report["sweep"] = {{"key", sweep.first}, {"points", sj}};
    }
    report["host_seconds"] = {{"fp32", fp32_s}, {"calibration", calib_s}, {"total", seconds_since(t_start)}};
    if (!o->json.empty()) write_file(o->json, report.dump(1) + "\n");
    for (const MethodResult& r : results)
      if (r.golden_mismatch)
        fail(ErrorCode::kInternal, r.method + ": " + std::to_string(r.golden_mismatch) +
                                       " emulator outputs differ from the reference executor's integer run");
  });
}

}  // namespace anvil::cli
