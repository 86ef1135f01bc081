/// anvil eval MODEL.onnx [MODEL2.onnx ...] --dataset DATASET --methods LIST|all --target T
///            [--backend npu|reference|qdq] [--percentile P] [--bias-correction] [--float-residual-sums]
///            [--extend-float-regions]
///            [--exclude-nodes REGEX] [--calib-count N] [--count N] [--json report.json]
///            [--per-tensor-search [--search-samples N] [--search-holdout N]]
///            [--sweep key=v1,v2,...]
///
/// The main job of anvil: FP32 top-1 on the reference executor; then one calibration pass, and for
/// each calibration method quantize, compile, run every evaluation image and report INT8 top-1,
/// the INT8/FP32 ratio, top-1 agreement with FP32, the output SQNR against FP32, and (on the NPU)
/// simulated cycles, latency and MAC utilisation. Backends:
///   npu        the compiled program on the virtual NPU (SystemC model); every output is also
///              checked bit for bit against the reference executor's integer run.
///   reference  the reference executor's integer run of the lowered QDQ graph (ref::run_int8), the
///              golden model the NPU equals bit for bit; no cycles. Faster for large sweeps.
///   qdq        the QDQ ONNX model executed in float by the reference executor (QuantizeLinear /
///              DequantizeLinear as ONNX defines them, as ONNX Runtime without graph optimisation
///              runs it), for models whose integer lowering is not supported yet; no cycles.
/// With several models, a summary in the form of FuriosaAI's accuracy table follows: model, FP32
/// top-1, the best INT8 top-1 and the method that reached it, INT8/FP32, one column per method.
/// A model whose input has a fixed batch (no dynamic batch axis) runs every FP32, calibration and
/// backend run, and its compiled program, on that batch; --batch of another size is an error.
/// --sweep (npu only) re-runs each method's program on the first evaluation batch with every value
/// of one hardware parameter (rt::sweep: a fresh device per value) and prints cycles per inference.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
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
/// A ratio as a percentage; "-" when it is undefined (an FP32 top-1 of 0 on a few images).
std::string percent_or_dash(double ratio) { return std::isfinite(ratio) ? fmt("%.2f%%", 100.0 * ratio) : "-"; }

/// Rows [begin, begin + batch) of x; rows past the end are zero (the last, partial batch).
Tensor batch_rows(const Tensor& x, int64_t begin, int64_t batch) {
  const int64_t end = std::min(begin + batch, x.dim(0));
  Tensor part = x.slice0(begin, end);
  if (end - begin == batch) return part;
  Shape pad_shape = x.shape();
  pad_shape[0] = batch - (end - begin);
  return Tensor::concat0({part, Tensor(x.dtype(), pad_shape)});
}

/// The rows of x one executor run takes from `begin`: a model with a fixed batch takes exactly
/// `batch` rows (batch_rows pads the last run; its extra outputs are not scored), a dynamic batch
/// at most `batch`.
Tensor run_rows(const Tensor& x, int64_t begin, int64_t batch, bool fixed) {
  return fixed ? batch_rows(x, begin, batch) : x.slice0(begin, std::min(begin + batch, x.dim(0)));
}

/// The golden integer run covers every model the compiler takes: regions without integer ops run
/// in float on the host, as in the compiled program's host segments.
ref::LowerOptions host_fallback() {
  ref::LowerOptions o;
  o.host_fallback = true;
  return o;
}

enum class Backend { kNpu, kReference, kQdq };

Backend backend_from_name(const std::string& name) {
  if (name == "npu") return Backend::kNpu;
  if (name == "reference") return Backend::kReference;
  if (name == "qdq") return Backend::kQdq;
  fail(ErrorCode::kInvalidArgument, "--backend '" + name + "': expected npu, reference or qdq");
}

const char* backend_label(Backend b) {
  switch (b) {
    case Backend::kNpu: return "emulator";
    case Backend::kReference: return "reference int8";
    case Backend::kQdq: return "QDQ float";
  }
  return "";
}

/// Images per executor call for FP32 and the reference and qdq backends (the NPU uses --batch), for
/// a model with a dynamic batch; a fixed batch is the only one its model takes.
constexpr int64_t kHostBatch = 100;

struct MethodResult {
  std::string method;
  int64_t correct = 0, agree = 0, golden_mismatch = 0, evaluated = 0;
  double signal = 0, noise = 0;  // sum of squares of FP32 logits and of (FP32 - dequantized INT8)
  uint64_t cycles = 0, request_cycles = 0, macs = 0;
  double utilization_sum = 0;
  int64_t requests = 0;
  double range_search_s = 0, quantize_s = 0, compile_s = 0, run_s = 0;
  isa::Program program;               ///< kept for --sweep
  std::vector<rt::SweepPoint> sweep;  ///< one per --sweep value

  double top1() const { return static_cast<double>(correct) / evaluated; }
  double sqnr_db() const { return noise > 0 ? 10.0 * std::log10(signal / noise) : INFINITY; }

  /// Scores rows [0, valid) of `logits` (dequantized INT8 outputs) against the labels and FP32
  /// logits starting at image `first`.
  void score(const Tensor& logits, int64_t valid, int64_t first, const int64_t* labels, const Tensor& fp32_all) {
    const int64_t cols = logits.numel() / logits.dim(0);
    const float* pq = logits.data<float>();
    const float* pf = fp32_all.data<float>();
    for (int64_t row = 0; row < valid; ++row) {
      const int64_t pred = argmax_row(logits, row);
      correct += pred == labels[first + row];
      agree += pred == argmax_row(fp32_all, first + row);
      for (int64_t c = 0; c < cols; ++c) {
        const double f = pf[(first + row) * cols + c];
        const double d = f - pq[row * cols + c];
        signal += f * f;
        noise += d * d;
      }
    }
    evaluated += valid;
  }
};

/// The model's output as float: an int8 output dequantized with its parameters; a float output (the
/// last node ran on the host, docs/compiler.md) as it is.
Tensor as_float(const Tensor& y, ref::QuantParams q) {
  return y.dtype() == DType::kFloat32 ? y : ref::dequantize_tensor(y, q);
}

struct Opts {
  std::vector<std::string> models;
  std::string dataset, methods = "MIN_MAX_ASYM,MIN_MAX_SYM", target = "warboy", backend = "npu", json, sweep;
  int64_t calib_count = 500, count = -1, batch = 1;
  float percentile = 99.99f;  ///< quant::QuantizeOptions::percentile (the PERCENTILE methods' rows)
  bool bias_correction = false;
  bool extend_float_regions = false;  ///< quant::QuantizeOptions::extend_float_regions for the methods' rows
  bool float_residual_sums = false;   ///< quant::QuantizeOptions::float_residual_sums for the methods' rows
  std::string exclude_nodes;          ///< quant::QuantizeOptions::exclude_nodes for the methods' rows
  bool per_tensor_search = false;  ///< adds the PER_TENSOR_SEARCH row (quant::search_tensor_ranges)
  int64_t search_samples = 64;
  int64_t search_holdout = 0;
  NormOptions norm;
};

/// What every model of one `anvil eval` shares.
struct EvalSetup {
  std::vector<quant::Method> methods;
  Backend backend = Backend::kNpu;
  hw::HwConfig config;
  std::string device_spec;
  std::pair<std::string, std::vector<std::string>> sweep;
  // Per model:
  InputShape input;         ///< the graph input the images feed
  int64_t host_batch = kHostBatch;  ///< images per FP32 / reference / qdq run: the input's fixed batch, or kHostBatch
  int64_t npu_batch = 1;    ///< the compiled program's batch: the input's fixed batch, or --batch
  /// Shaped for `input` (load_dataset); shared by the models whose inputs take the same shape.
  std::shared_ptr<const Dataset> test, calib;
  bool fixed_batch() const { return input.fixed_batch() > 0; }
};

/// Runs one method's quantized model on every test image with the chosen backend.
void run_method(const Opts& o, const EvalSetup& setup, const onnx::ModelProto& qmodel, const Tensor& fp32_all,
                rt::Device& device, MethodResult& r) {
  const Dataset& test = *setup.test;
  const int64_t n = test.images.dim(0);
  const int64_t* labels = test.labels.data<int64_t>();
  Progress progress("INT8 " + r.method + " (" + backend_label(setup.backend) + ")", n);
  auto t = Clock::now();
  if (setup.backend == Backend::kQdq) {
    const ref::Executor qdq = ref::Executor::create(qmodel).value();
    const std::string in_name = qdq.input_names().at(0), out_name = qdq.output_names().at(0);
    r.compile_s = seconds_since(t);
    t = Clock::now();
    for (int64_t i = 0; i < n; i += setup.host_batch) {
      const int64_t b = std::min(setup.host_batch, n - i);
      const Tensor x = run_rows(test.images, i, setup.host_batch, setup.fixed_batch());
      r.score(qdq.run({{in_name, x}}).value().at(out_name), b, i, labels, fp32_all);
      progress.advance(b);
    }
  } else if (setup.backend == Backend::kReference) {
    const ref::Int8Graph golden = ref::lower_qdq(qmodel, setup.host_batch, host_fallback()).value();
    const ref::QuantParams in_q = golden.values.at(golden.inputs.at(0)).q;
    const ref::QuantParams out_q = golden.values.at(golden.outputs.at(0)).q;
    r.compile_s = seconds_since(t);
    t = Clock::now();
    for (int64_t i = 0; i < n; i += setup.host_batch) {
      const int64_t valid = std::min(setup.host_batch, n - i);
      const Tensor q = ref::quantize_tensor(batch_rows(test.images, i, setup.host_batch), in_q);
      const Tensor y = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value().at(golden.output_names.at(0));
      r.score(as_float(y, out_q), valid, i, labels, fp32_all);
      progress.advance(valid);
    }
  } else {
    compiler::CompileOptions copt;
    copt.target = compiler::Target::from_name(o.target);
    copt.batch = setup.npu_batch;
    copt.model_name = r.method;
    const compiler::CompileResult compiled = compiler::compile(qmodel, copt).value();
    const ref::Int8Graph golden = ref::lower_qdq(qmodel, setup.npu_batch, host_fallback()).value();
    r.compile_s = seconds_since(t);
    t = Clock::now();
    rt::Session session(device, compiled.program);
    const isa::TensorDesc& in_desc = compiled.program.inputs.at(0);
    const isa::TensorDesc& out_desc = compiled.program.outputs.at(0);
    for (int64_t i = 0; i < n; i += setup.npu_batch) {
      const int64_t valid = std::min(setup.npu_batch, n - i);
      const Tensor q =
          ref::quantize_tensor(batch_rows(test.images, i, setup.npu_batch), {in_desc.scale, in_desc.zero_point});
      const Tensor y = session.run({{in_desc.name, q}}).at(out_desc.name);
      const Tensor want = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value().at(golden.output_names.at(0));
      const rt::RunStats& s = session.last_stats();
      r.cycles += s.cycles;
      r.request_cycles += s.request_cycles;
      r.macs += s.macs;
      r.utilization_sum += s.mac_utilization;
      ++r.requests;
      // Row by row, as bytes: an int8 output, or a float one a host node computed.
      const bool same_layout = y.dtype() == want.dtype() && y.nbytes() == want.nbytes();
      const size_t row_bytes = y.nbytes() / static_cast<size_t>(y.dim(0));
      for (int64_t row = 0; row < valid; ++row)
        r.golden_mismatch +=
            !same_layout || std::memcmp(y.raw() + row * row_bytes, want.raw() + row * row_bytes, row_bytes) != 0;
      r.score(as_float(y, {out_desc.scale, out_desc.zero_point}), valid, i, labels, fp32_all);
      progress.advance(valid);
    }
    if (!setup.sweep.first.empty()) r.program = compiled.program;
  }
  r.run_s = seconds_since(t);
}

/// Evaluates one model with every method; prints its table and returns its JSON report.
/// The quantizer options every quantized model of this evaluation shares, with method m.
quant::QuantizeOptions quantize_options(const Opts& o, quant::Method m) {
  quant::QuantizeOptions q;
  q.method = m;
  q.percentile = o.percentile;
  q.bias_correction = o.bias_correction;
  q.extend_float_regions = o.extend_float_regions;
  q.float_residual_sums = o.float_residual_sums;
  q.exclude_nodes = o.exclude_nodes;
  return q;
}

/// Every test label names one of the model's `classes` outputs: a label past them would only
/// count as a wrong answer.
void check_labels_below(const Dataset& test, int64_t classes, const std::string& model_path) {
  const int64_t* labels = test.labels.data<int64_t>();
  for (int64_t i = 0; i < test.labels.numel(); ++i)
    if (labels[i] >= classes)
      fail(ErrorCode::kInvalidArgument, test.labels_file + ": label " + std::to_string(labels[i]) + " (image " +
                                            std::to_string(i) + ") is not one of the " + std::to_string(classes) +
                                            " classes of " + model_path);
}

nlohmann::json evaluate_model(const Opts& o, const EvalSetup& setup, const std::string& model_path) {
  const auto t_start = Clock::now();
  const Dataset& test = *setup.test;
  const int64_t n = test.images.dim(0);
  const int64_t* labels = test.labels.data<int64_t>();
  const onnx::ModelProto model = load_onnx(model_path);

  // FP32 on the reference executor.
  const auto t_fp32 = Clock::now();
  const ref::Executor fp32 = ref::Executor::create(model).value();
  const std::string in_name = fp32.input_names().at(0), out_name = fp32.output_names().at(0);
  std::vector<Tensor> fp32_logits;
  int64_t fp32_correct = 0;
  {
    Progress progress("FP32 (reference)", n);
    for (int64_t i = 0; i < n; i += setup.host_batch) {
      const int64_t b = std::min(setup.host_batch, n - i);
      const Tensor x = run_rows(test.images, i, setup.host_batch, setup.fixed_batch());
      Tensor logits = fp32.run({{in_name, x}}).value().at(out_name);
      if (logits.dtype() != DType::kFloat32 || logits.rank() < 2 || logits.dim(0) != x.dim(0))
        fail(ErrorCode::kInvalidArgument, model_path + ": output '" + out_name + "' is " + shape_str(logits.shape()) +
                                              ", eval needs N x classes float32 logits");
      if (i == 0) check_labels_below(test, logits.numel() / x.dim(0), model_path);
      for (int64_t r = 0; r < b; ++r) fp32_correct += argmax_row(logits, r) == labels[i + r];
      fp32_logits.push_back(logits.dim(0) == b ? logits : logits.slice0(0, b));  // a padded run's rows past n
      progress.advance(b);
    }
  }
  const Tensor fp32_all = Tensor::concat0(fp32_logits);
  const double fp32_top1 = static_cast<double>(fp32_correct) / n;
  const double fp32_s = seconds_since(t_fp32);

  // One calibration pass (one FP32 run over the calibration images) serves every method.
  const auto t_calib = Clock::now();
  const onnx::ModelProto optimized = quant::optimize(model);
  quant::CalibrationTime calib_time;
  const quant::Calibration calibration = quant::calibrate(optimized, setup.calib->images, true, &calib_time);
  const double calib_s = seconds_since(t_calib);

  rt::Device device;
  if (setup.backend == Backend::kNpu) device = rt::Device::open(setup.device_spec, setup.config);
  std::vector<MethodResult> results;
  for (quant::Method method : setup.methods) {
    MethodResult r;
    r.method = quant::method_name(method);
    const quant::QuantizeOptions qopt = quantize_options(o, method);
    auto t = Clock::now();
    const auto ranges = calibration.ranges(method, qopt.percentile);
    r.range_search_s = seconds_since(t);
    t = Clock::now();
    const onnx::ModelProto qmodel = quant::quantize(optimized, ranges, qopt, nullptr, &calibration).value();
    r.quantize_s = seconds_since(t);
    run_method(o, setup, qmodel, fp32_all, device, r);
    results.push_back(std::move(r));
  }
  int64_t searched = 0, searched_holdout = 0;  // the inputs the search scored (whole batches of a fixed batch)
  if (o.per_tensor_search) {  // beyond the suite: the ten methods' ranges chosen per tensor
    MethodResult r;
    r.method = "PER_TENSOR_SEARCH";
    quant::TensorSearchOptions sopt;
    sopt.candidates = setup.methods;
    sopt.samples = o.search_samples;
    sopt.holdout = o.search_holdout;
    sopt.quantize = quantize_options(o, quant::Method::kMinMaxAsym);  // the search chooses the method
    auto t = Clock::now();
    const quant::TensorSearchResult found =
        quant::search_tensor_ranges(optimized, calibration, setup.calib->images, sopt).value();
    r.range_search_s = seconds_since(t);
    searched = found.samples, searched_holdout = found.holdout;
    std::cout << search_summary(found, found.samples, found.holdout)
              << fmt("  search time %.1f s\n", r.range_search_s);
    const quant::QuantizeOptions qopt = quantize_options(o, found.grid);
    t = Clock::now();
    const onnx::ModelProto qmodel = quant::quantize(optimized, found.ranges, qopt, nullptr, &calibration).value();
    r.quantize_s = seconds_since(t);
    run_method(o, setup, qmodel, fp32_all, device, r);
    results.push_back(std::move(r));
  }
  // The sweep re-opens (power cycles) the device per value, so it runs after every method's evaluation.
  const auto& sweep = setup.sweep;
  if (!sweep.first.empty()) {
    device.close();
    for (MethodResult& r : results) {
      const isa::TensorDesc& in_desc = r.program.inputs.at(0);
      const Tensor q =
          ref::quantize_tensor(batch_rows(test.images, 0, setup.npu_batch), {in_desc.scale, in_desc.zero_point});
      r.sweep = rt::sweep(setup.device_spec, setup.config, sweep.first, sweep.second, r.program, {{in_desc.name, q}});
    }
  }

  // The table.
  const bool npu = setup.backend == Backend::kNpu;
  const double clock_hz = setup.config.clock_ghz * 1e9;
  std::vector<std::vector<std::string>> rows;
  nlohmann::json report;
  report["model"] = model_path;
  report["dataset"] = o.dataset;
  report["backend"] = o.backend;
  report["percentile"] = o.percentile;
  report["bias_correction"] = o.bias_correction;
  report["extend_float_regions"] = o.extend_float_regions;
  report["float_residual_sums"] = o.float_residual_sums;
  report["exclude_nodes"] = o.exclude_nodes;
  if (o.per_tensor_search) {
    report["search_samples"] = searched;
    report["search_holdout"] = searched_holdout;
  }
  report["target"] = o.target;
  report["batch"] = setup.npu_batch;
  report["calib_count"] = calibration.samples;
  report["eval_count"] = n;
  report["fp32_top1"] = fp32_top1;
  report["results"] = nlohmann::json::array();
  rows.push_back({"FP32 (reference executor)", fmt("%.4f", fp32_top1), "-", "-", "-", "-", "-", "-", "-"});
  double search_s = 0;
  for (const MethodResult& r : results) {
    search_s += r.range_search_s;
    const double top1 = r.top1(), sqnr = r.sqnr_db();
    nlohmann::json j = {{"method", r.method},
                        {"int8_top1", top1},
                        {"ratio", top1 / fp32_top1},
                        {"top1_agreement", static_cast<double>(r.agree) / r.evaluated},
                        {"output_sqnr_db", sqnr},
                        {"host_seconds",
                         {{"range_search", r.range_search_s}, {"quantize", r.quantize_s}, {"compile", r.compile_s},
                          {"run", r.run_s}}}};
    std::vector<std::string> row{"INT8 " + r.method + " (" + backend_label(setup.backend) + ")", fmt("%.4f", top1),
                                 percent_or_dash(top1 / fp32_top1),
                                 fmt("%.4f", static_cast<double>(r.agree) / r.evaluated), fmt("%.1f", sqnr)};
    if (npu) {
      const double cycles_per_inf = static_cast<double>(r.cycles) / (r.requests * setup.npu_batch);
      const double util = r.utilization_sum / r.requests;
      for (const std::string& cell :
           {fmt("%.0f", cycles_per_inf), fmt("%.2f", cycles_per_inf / clock_hz * 1e6), fmt("%.1f%%", 100.0 * util),
            fmt("%lld/%lld", static_cast<long long>(r.evaluated - r.golden_mismatch), static_cast<long long>(r.evaluated))})
        row.push_back(cell);
      j["cycles_per_inference"] = cycles_per_inf;
      j["latency_us"] = cycles_per_inf / clock_hz * 1e6;
      j["request_latency_us"] = static_cast<double>(r.request_cycles) / r.requests / clock_hz * 1e6;
      j["mac_utilization"] = util;
      j["golden_bit_exact"] = r.evaluated - r.golden_mismatch;
    } else {
      for (int c = 0; c < 4; ++c) row.push_back("-");
    }
    rows.push_back(row);
    report["results"].push_back(j);
  }
  std::cout << "\nanvil eval: " << model_path << " on " << n << " test images of " << o.dataset << ", backend "
            << o.backend;
  if (npu) std::cout << ", target " << o.target << " (" << setup.config.clock_ghz << " GHz), batch " << setup.npu_batch;
  std::cout << ", calibrated on " << calibration.samples << " training images";
  // The quantizer options every row was made with, as the command line spells them.
  std::string quantized_with;
  if (o.percentile != quant::QuantizeOptions{}.percentile) quantized_with += fmt(" --percentile %g", o.percentile);
  if (o.bias_correction) quantized_with += " --bias-correction";
  if (o.extend_float_regions) quantized_with += " --extend-float-regions";
  if (o.float_residual_sums) quantized_with += " --float-residual-sums";
  if (!o.exclude_nodes.empty()) quantized_with += " --exclude-nodes '" + o.exclude_nodes + "'";
  if (!quantized_with.empty()) std::cout << ", quantized with" << quantized_with;
  std::cout << "\n\n"
            << format_table({"model", "top-1", "INT8/FP32", "agree FP32", "SQNR dB", "cycles/inf", "us/inf",
                             "MAC util", "bit-exact vs ref"},
                            rows)
            << fmt("\nhost time: FP32 %.1f s (%.2f ms/image); calibration %.1f s for all methods (one FP32 pass with "
                   "statistics over %lld images, %.2f ms/image; %.2f s of thread time in the statistics), range "
                   "search %.2f s in total",
                   fp32_s, 1e3 * fp32_s / n, calib_s, static_cast<long long>(calibration.samples),
                   1e3 * calib_time.pass_s / calibration.samples, calib_time.statistics_s, search_s);
  for (const MethodResult& r : results)
    std::cout << fmt("\n  %s %.1f s (range search %.2f, quantize %.2f, compile %.2f, run%s %.1f)", r.method.c_str(),
                     r.range_search_s + r.quantize_s + r.compile_s + r.run_s, r.range_search_s, r.quantize_s,
                     r.compile_s, npu ? "+verify" : "", r.run_s);
  std::cout << fmt("\n  total %.1f s\n", seconds_since(t_start));
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
      hw::HwConfig c = setup.config;
      c.set(sweep.first + "=" + sweep.second[v]);
      for (const MethodResult& r : results) {
        const double per_inf = static_cast<double>(r.sweep[v].stats.cycles) / setup.npu_batch;
        row.push_back(fmt("%.0f", per_inf));
        point[r.method] = {{"cycles_per_inference", per_inf}, {"latency_us", per_inf / (c.clock_ghz * 1e3)},
                           {"mac_utilization", r.sweep[v].stats.mac_utilization}};
      }
      for (const MethodResult& r : results)
        row.push_back(fmt("%.2f", static_cast<double>(r.sweep[v].stats.cycles) / setup.npu_batch / (c.clock_ghz * 1e3)));
      sweep_rows.push_back(row);
      sj.push_back(point);
    }
    std::cout << "\nsweep of " << sweep.first << " (first test batch, a fresh device per value):\n\n"
              << format_table(header, sweep_rows);
    report["sweep"] = {{"key", sweep.first}, {"points", sj}};
  }
  report["host_seconds"] = {{"fp32", fp32_s},
                            {"calibration", calib_s},
                            {"calibration_pass", calib_time.pass_s},
                            {"calibration_statistics_thread", calib_time.statistics_s},
                            {"range_search", search_s},
                            {"total", seconds_since(t_start)}};
  return report;
}

/// One row of the summary: the best method by top-1 (ties: higher output SQNR).
nlohmann::json summary_row(const nlohmann::json& report) {
  const nlohmann::json* best = nullptr;
  double worst_ratio = INFINITY;
  nlohmann::json per_method = nlohmann::json::object();
  for (const auto& r : report.at("results")) {
    const double top1 = r.at("int8_top1").get<double>(), sqnr = r.at("output_sqnr_db").get<double>();
    if (!best || top1 > best->at("int8_top1").get<double>() ||
        (top1 == best->at("int8_top1").get<double>() && sqnr > best->at("output_sqnr_db").get<double>()))
      best = &r;
    worst_ratio = std::min(worst_ratio, r.at("ratio").get<double>());
    per_method[r.at("method").get<std::string>()] = {{"int8_top1", top1}, {"output_sqnr_db", sqnr}};
  }
  double best_sqnr = -INFINITY;
  std::string best_sqnr_method;
  for (const auto& r : report.at("results"))
    if (r.at("output_sqnr_db").get<double>() > best_sqnr)
      best_sqnr = r.at("output_sqnr_db").get<double>(), best_sqnr_method = r.at("method").get<std::string>();
  return {{"model", report.at("model")},
          {"fp32_top1", report.at("fp32_top1")},
          {"int8_top1", best->at("int8_top1")},
          {"method", best->at("method")},
          {"ratio", best->at("ratio")},
          {"worst_ratio", worst_ratio},
          {"best_output_sqnr_db", best_sqnr},
          {"best_sqnr_method", best_sqnr_method},
          {"methods", per_method}};
}

void print_summary(const std::vector<nlohmann::json>& summary, const std::vector<quant::Method>& methods) {
  std::vector<std::string> header{"model", "FP32 top-1", "INT8 top-1 (method)", "INT8/FP32", "worst INT8/FP32",
                                  "best SQNR dB (method)"};
  for (quant::Method m : methods) header.push_back(quant::method_name(m));
  std::vector<std::vector<std::string>> rows;
  for (const nlohmann::json& s : summary) {
    std::vector<std::string> row{
        s.at("model").get<std::string>(), fmt("%.4f", s.at("fp32_top1").get<double>()),
        fmt("%.4f (%s)", s.at("int8_top1").get<double>(), s.at("method").get<std::string>().c_str()),
        percent_or_dash(s.at("ratio").get<double>()), percent_or_dash(s.at("worst_ratio").get<double>()),
        fmt("%.1f (%s)", s.at("best_output_sqnr_db").get<double>(), s.at("best_sqnr_method").get<std::string>().c_str())};
    for (quant::Method m : methods)
      row.push_back(fmt("%.4f", s.at("methods").at(quant::method_name(m)).at("int8_top1").get<double>()));
    rows.push_back(row);
  }
  std::cout << "\nsummary (INT8 top-1 per method; best method by top-1, ties by output SQNR):\n\n"
            << format_table(header, rows);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("eval", "quantize with each method, compile, run on the virtual NPU, report accuracy and cycles");
  cmd->add_option("model", o->models, "FP32 ONNX classifier(s) (input N x C x H x W, output N x classes)")->required();
  cmd->add_option("--dataset", o->dataset, "fashion-mnist:DIR or npy:DIR (calibrates on its training split, evaluates on its test split)")
      ->required();
  cmd->add_option("--methods", o->methods, "comma-separated calibration methods, or all");
  cmd->add_option("--backend", o->backend,
                  "npu: the virtual NPU, every output checked against the reference (default); reference: the "
                  "reference executor's integer run only (bit-identical to npu, no cycles); qdq: the QDQ model in "
                  "float on the reference executor (for models the integer lowering does not support)");
  cmd->add_option("--target", o->target, "warboy (one PE) or warboy-2pe (fused pair)");
  cmd->add_option("--percentile", o->percentile,
                  "percentile for PERCENTILE_ASYM / PERCENTILE_SYM, in (0, 100] (default 99.99)")
      ->check(percentile_range());
  cmd->add_flag("--bias-correction", o->bias_correction,
                "quantize with bias correction (each Conv/Gemm bias minus the mean shift of its weight rounding)");
  cmd->add_flag("--extend-float-regions", o->extend_float_regions,
                "every quantized model keeps an Add/Mul of a constant and a float node's output in float (LayerNorm's "
                "eps, gamma, beta) instead of quantizing it");
  cmd->add_flag("--float-residual-sums", o->float_residual_sums,
                "in every quantized model, an Add of int8 operands that a float node reads (a residual Add before a "
                "LayerNorm) computes in float: its float readers read the exact sum, its int8 readers Q of it");
  cmd->add_option("--exclude-nodes", o->exclude_nodes,
                  "REGEX: in every quantized model (the methods' and --per-tensor-search's), nodes whose name contains a match "
                  "(ECMAScript) stay float, weights included");
  cmd->add_flag("--per-tensor-search", o->per_tensor_search,
                "also evaluate PER_TENSOR_SEARCH: each activation takes the range, among the methods', that maximises "
                "the output SQNR of the float QDQ model on --search-samples calibration images (greedy, topological)");
  cmd->add_option("--search-samples", o->search_samples, "calibration images scored by --per-tensor-search")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--search-holdout", o->search_holdout,
                  "N: --per-tensor-search keeps a change only if it also raises the output SQNR on the N calibration "
                  "images after the --search-samples ones")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--calib-count", o->calib_count, "calibration images: the first N of the training split")
      ->check(image_count());
  cmd->add_option("--count", o->count, "evaluation images: the first N of the test split (default: all)")
      ->check(image_count());
  CLI::Option* batch_opt =
      cmd->add_option("--batch", o->batch,
                      "batch size of the compiled program (default 1); a model whose input has a fixed batch is "
                      "compiled for that batch, and a different --batch is an error")
          ->check(CLI::Range(1, 1024));
  cmd->add_option("--json", o->json, "write the report as JSON (several models: {\"models\": [...], \"summary\": [...]})")
      ->check(writable_output());
  cmd->add_option("--sweep", o->sweep, "key=v1,v2,...: after the evaluation, run each method's program on the first "
                                       "test batch with each value of one hardware parameter (a fresh device per "
                                       "value) and print cycles per inference for each (npu backend)");
  o->norm.add_to(cmd);
  cmd->callback([o, batch_opt] {
    EvalSetup setup;
    if (o->methods == "all") {
      for (int m = 0; m <= static_cast<int>(quant::Method::kMseSym); ++m)
        setup.methods.push_back(static_cast<quant::Method>(m));
    } else {
      std::stringstream ss(o->methods);
      std::string name;
      while (std::getline(ss, name, ','))
        if (!name.empty()) setup.methods.push_back(quant::method_from_name(name));
    }
    if (setup.methods.empty()) fail(ErrorCode::kInvalidArgument, "--methods: no method given");
    setup.backend = backend_from_name(o->backend);
    setup.config = hw::HwConfig::preset(o->target);
    setup.device_spec = device_spec_for_target(o->target);
    if (!o->sweep.empty()) {
      if (setup.backend != Backend::kNpu)
        fail(ErrorCode::kInvalidArgument, "--sweep needs --backend npu (it measures cycles), not '" + o->backend + "'");
      // Check every value before the (long) evaluation: rt::sweep applies the same set + validate.
      setup.sweep = rt::parse_sweep(o->sweep);
      for (const std::string& v : setup.sweep.second) {
        hw::HwConfig c = setup.config;
        c.set(setup.sweep.first + "=" + v);
        c.validate();
      }
    }
    // Per model, before the (long) evaluation: its input, its batches, and the images shaped for
    // that input. A fixed batch (an export without a dynamic batch axis) is the only one the model
    // runs on, so FP32, calibration and every backend use it; --batch asks for a program of
    // another batch, which such a model cannot give (as `anvil compile --batch` refuses it).
    std::vector<EvalSetup> per_model;
    // The images, loaded once per input shape (all but the batch axis): not a copy per model.
    std::map<std::string, std::pair<std::shared_ptr<const Dataset>, std::shared_ptr<const Dataset>>> loaded;
    for (const std::string& m : o->models) {
      const onnx::ModelProto model = load_onnx(m);  // a bad path fails now, not after an hour
      const std::vector<InputShape> inputs = fed_inputs(model);
      if (inputs.empty()) fail(ErrorCode::kInvalidArgument, m + ": the model has no input to feed");
      EvalSetup s = setup;
      s.input = inputs[0];
      const int64_t fixed = s.input.fixed_batch();
      if (fixed && s.backend == Backend::kNpu && batch_opt->count() > 0 && o->batch != fixed)
        fail(ErrorCode::kInvalidArgument, "--batch " + std::to_string(o->batch) + ": input '" + s.input.name + "' of " +
                                              m + " has a fixed batch of " + std::to_string(fixed) +
                                              " (leave --batch out to compile for it, or export the model with a "
                                              "dynamic batch axis)");
      s.host_batch = fixed ? fixed : kHostBatch;
      s.npu_batch = fixed ? fixed : o->batch;
      std::string key = s.input.has_shape ? "" : "unknown";
      for (size_t d = 1; d < s.input.dims.size(); ++d) key += std::to_string(s.input.dims[d]) + ",";
      if (s.input.has_shape) key += "rank " + std::to_string(s.input.dims.size());
      auto& [test, calib] = loaded[key];
      if (!test) {
        test = std::make_shared<const Dataset>(load_dataset(o->dataset, Split::kTest, o->count, o->norm.get(), &s.input));
        if (test->labels.empty()) fail(ErrorCode::kInvalidArgument, o->dataset + ": the test split has no labels");
        calib = std::make_shared<const Dataset>(
            load_dataset(o->dataset, Split::kTrain, o->calib_count, o->norm.get(), &s.input));
      }
      s.test = test;
      s.calib = calib;
      per_model.push_back(std::move(s));
    }

    std::vector<nlohmann::json> reports, summary;
    for (size_t i = 0; i < o->models.size(); ++i) {
      reports.push_back(evaluate_model(*o, per_model[i], o->models[i]));
      summary.push_back(summary_row(reports.back()));
    }
    if (o->models.size() > 1) print_summary(summary, setup.methods);
    if (!o->json.empty()) {
      nlohmann::json out;
      if (reports.size() == 1) {
        out = reports[0];
        out["summary"] = summary;
      } else {
        out = {{"models", reports}, {"summary", summary}};
      }
      write_file(o->json, out.dump(1) + "\n");
    }
    for (const nlohmann::json& report : reports)  // after the report is written: nothing is lost
      for (const auto& r : report.at("results"))
        if (r.contains("golden_bit_exact") && r.at("golden_bit_exact").get<int64_t>() != report.at("eval_count").get<int64_t>())
          fail(ErrorCode::kInternal, report.at("model").get<std::string>() + ": " + r.at("method").get<std::string>() + ": " +
                                         std::to_string(report.at("eval_count").get<int64_t>() - r.at("golden_bit_exact").get<int64_t>()) +
                                         " emulator outputs differ from the reference executor's integer run");
  });
}

}  // namespace anvil::cli
