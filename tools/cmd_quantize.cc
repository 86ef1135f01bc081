/// anvil quantize IN.onnx -o OUT.onnx (--calib DATASET [--calib-count N] | --ranges ranges.json)
///                --method M [--percentile P] [--bias-correction] [--input-type uint8 [--fold-normalization]] [--output-type int8]
///                [--float-residual-sums] [--per-tensor-search [--search-holdout N]] [--sensitivity PROBE] [--search-samples N]
/// With --ranges (written by `anvil calibrate`) the model is not run: the ranges are the ones the
/// file lists for --method (edits to them take effect), or, for a file without a "ranges" section
/// or a --percentile other than the file's, computed from its statistics. The file must have been
/// made from the same FP32 model. Without --percentile, the PERCENTILE methods take the percentile
/// the file was written with.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iostream>
#include <map>
#include <optional>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/quantizer/quantizer.h"
#include "cli_common.h"

namespace anvil::cli {

namespace {

/// The ranges `file`'s "ranges" section lists for `method`: one [min, max] (finite, min <= max)
/// for exactly the tensors of the statistics. nullopt when the file has no "ranges" section.
std::optional<std::map<std::string, quant::Range>> listed_ranges(const nlohmann::json& j, const std::string& method,
                                                                  const quant::Calibration& stats,
                                                                  const std::string& file) {
  if (!j.contains("ranges")) return std::nullopt;
  const auto bad = [&](const std::string& what) { fail(ErrorCode::kParseError, file + ": \"ranges\": " + what); };
  const nlohmann::json& all = j["ranges"];
  if (!all.is_object()) bad("an object of methods expected");
  if (!all.contains(method) || !all[method].is_object()) bad("no ranges for " + method);
  std::map<std::string, quant::Range> ranges;
  for (const auto& [name, r] : all[method].items()) {
    const std::string where = method + " '" + name + "'";
    if (!stats.tensors.count(name))
      bad(where + " has no statistics in \"tensors\" (a calibration file of another model, or edited)");
    if (!r.is_array() || r.size() != 2 || !r[0].is_number() || !r[1].is_number())
      bad(where + ": [min, max] expected, got " + r.dump());
    const double lo = r[0].get<double>(), hi = r[1].get<double>();
    if (!std::isfinite(lo) || !std::isfinite(hi) || std::fabs(lo) > FLT_MAX || std::fabs(hi) > FLT_MAX || lo > hi)
      bad(where + ": [" + r[0].dump() + ", " + r[1].dump() + "] is not a finite float range with min <= max");
    ranges[name] = {static_cast<float>(lo), static_cast<float>(hi)};
  }
  for (const auto& entry : stats.tensors)
    if (!ranges.count(entry.first)) bad(method + " has no range for tensor '" + entry.first + "'");
  return ranges;
}

}  // namespace

void register_quantize(CLI::App& app) {
  struct Opts {
    std::string in, out, calib, ranges, method = "MIN_MAX_ASYM", input_type = "float32", output_type = "float32";
    bool fold = false;
    int64_t calib_count = 500;
    float percentile = 99.99f;
    bool bias_correction = false;
    bool extend_float_regions = false;
    bool float_residual_sums = false;
    std::string exclude_nodes;
    bool per_tensor_search = false;
    int64_t search_samples = 64;
    int64_t search_holdout = 0;
    std::string sensitivity;
    NormOptions norm;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("quantize", "post-training static quantization of an FP32 ONNX model to QDQ int8");
  cmd->add_option("model", o->in, "FP32 ONNX model")->required();
  cmd->add_option("-o,--output", o->out, "quantized (QDQ) ONNX model to write")->required()->check(writable_output());
  CLI::Option* calib_opt =
      cmd->add_option("--calib", o->calib, "calibration dataset: fashion-mnist:DIR or npy:DIR (its training split)");
  CLI::Option* ranges_opt =
      cmd->add_option("--ranges", o->ranges, "calibration file written by `anvil calibrate` (the model is not run)");
  calib_opt->excludes(ranges_opt);
  cmd->add_option("--method", o->method, "calibration method (MIN_MAX_ASYM, MIN_MAX_SYM, ...)");
  CLI::Option* percentile_opt = cmd->add_option(
      "--percentile", o->percentile,
      "percentile for PERCENTILE_ASYM / PERCENTILE_SYM, in (0, 100] (default 99.99, or with --ranges the file's)")
      ->check(percentile_range());
  cmd->add_flag("--bias-correction", o->bias_correction,
                "subtract from each Conv/Gemm bias the mean output shift its weight rounding causes (calibrated input means)");
  cmd->add_option("--calib-count", o->calib_count, "number of calibration images (first N of the training split)")
      ->check(image_count());
  cmd->add_flag("--extend-float-regions", o->extend_float_regions,
                "keep an Add/Mul of a constant and a float node's output in float (LayerNorm's eps, gamma, beta) "
                "instead of quantizing it");
  cmd->add_flag("--float-residual-sums", o->float_residual_sums,
                "an Add of int8 operands that a float node reads (a residual Add before a LayerNorm) computes in "
                "float: its float readers read the exact sum, its int8 readers Q of it");
  cmd->add_option("--exclude-nodes", o->exclude_nodes,
                  "REGEX: nodes whose name contains a match (ECMAScript) stay float, weights included");
  cmd->add_flag("--per-tensor-search", o->per_tensor_search,
                "each activation takes the range, among the ten methods', that maximises the output SQNR of the float "
                "QDQ model on --search-samples calibration images (greedy, topological order; needs --calib; "
                "--method is ignored)");
  cmd->add_option("--search-samples", o->search_samples, "calibration images scored by --per-tensor-search / --sensitivity")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--search-holdout", o->search_holdout,
                  "N: --per-tensor-search keeps a change only if it also raises the output SQNR on the N calibration "
                  "images after the --search-samples ones")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--sensitivity", o->sensitivity,
                  "PROBE: print, per calibrated activation, the output SQNR with PROBE's range on that tensor and "
                  "--method's everywhere else (needs --calib)");
  cmd->add_option("--input-type", o->input_type, "float32 (default) or uint8: the model takes uint8 data directly")
      ->check(CLI::IsMember({"float32", "uint8"}));
  cmd->add_flag("--fold-normalization", o->fold,
                "with --input-type uint8: fold --mean/--std into the input so raw 0..255 pixels are fed");
  cmd->add_option("--output-type", o->output_type, "float32 (default) or int8: outputs stay quantized")
      ->check(CLI::IsMember({"float32", "int8"}));
  o->norm.add_to(cmd);
  cmd->callback([o, percentile_opt] {
    check_not_input(o->in, o->out, "-o");
    if (o->fold && o->input_type != "uint8")
      fail(ErrorCode::kInvalidArgument, "quantize: --fold-normalization needs --input-type uint8");
    if (o->fold && (o->norm.mean.size() != 1 || o->norm.std.size() != 1))
      fail(ErrorCode::kUnsupported, "quantize: --fold-normalization takes one --mean and one --std value");
    if (o->calib.empty() == o->ranges.empty())
      fail(ErrorCode::kInvalidArgument, "quantize: give exactly one of --calib DATASET or --ranges FILE");
    quant::QuantizeOptions options;
    options.method = quant::method_from_name(o->method);
    options.percentile = o->percentile;
    options.bias_correction = o->bias_correction;
    options.extend_float_regions = o->extend_float_regions;
    options.float_residual_sums = o->float_residual_sums;
    options.exclude_nodes = o->exclude_nodes;
    const onnx::ModelProto optimized = quant::optimize(load_float_model(o->in));
    quant::Calibration calibration;
    std::optional<Dataset> calib;  // with --calib: the calibration images, read once
    std::string source;
    nlohmann::json j;  // with --ranges: the file
    if (!o->ranges.empty()) {
      try {
        j = nlohmann::json::parse(read_file(o->ranges));
      } catch (const nlohmann::json::exception& e) {
        fail(ErrorCode::kParseError, o->ranges + ": not JSON (" + e.what() + ")");
      }
      try {
        calibration = quant::Calibration::from_json(j);
      } catch (const Error& e) {
        fail(e.code(), o->ranges + ": " + e.what());
      }
      source = "the statistics in " + o->ranges;
      // The PERCENTILE ranges the file lists, unless the command line asks for another percentile.
      if (percentile_opt->count() == 0 && j.contains("percentile")) {
        const float p = j["percentile"].is_number() ? j["percentile"].get<float>() : -1.0f;
        if (!valid_percentile(p))
          fail(ErrorCode::kParseError, o->ranges + ": \"percentile\" " + j["percentile"].dump() + " is not in (0, 100]");
        options.percentile = p;
      }
    } else {
      calib = load_dataset_for(optimized, o->calib, Split::kTrain, o->calib_count, o->norm.get());
      calibration = quant::calibrate(optimized, calib->images, false);
      source = std::to_string(calibration.samples) + " calibration images";
    }
    if ((o->per_tensor_search || !o->sensitivity.empty()) && !calib)
      fail(ErrorCode::kInvalidArgument, "quantize: --per-tensor-search and --sensitivity need --calib (they run the model)");
    // --ranges: the ranges the file lists for the method (a PERCENTILE method at another
    // percentile than the file's is computed from the statistics instead).
    std::optional<std::map<std::string, quant::Range>> listed;
    if (!o->ranges.empty() && !o->per_tensor_search) {
      const bool percentile_method =
          options.method == quant::Method::kPercentileAsym || options.method == quant::Method::kPercentileSym;
      const bool file_percentile = !j.contains("percentile") || (j["percentile"].is_number() &&
                                                                  options.percentile == j["percentile"].get<float>());
      if (!percentile_method || file_percentile) listed = listed_ranges(j, o->method, calibration, o->ranges);
      if (listed) {
        const std::map<std::string, quant::Range> computed = calibration.ranges(options.method, options.percentile);
        size_t edited = 0;
        for (const auto& [name, r] : *listed) {
          const auto c = computed.find(name);
          edited += c == computed.end() || c->second.min != r.min || c->second.max != r.max;
        }
        source = "the " + o->method + " ranges listed in " + o->ranges;
        if (edited)
          source += " (" + std::to_string(edited) + " of " + std::to_string(listed->size()) +
                    " differ from the ranges its statistics give)";
      }
    }
    if (options.bias_correction && !calib &&
        std::none_of(calibration.tensors.begin(), calibration.tensors.end(),
                     [](const auto& t) { return !t.second.channel_mean.empty(); }))
      fail(ErrorCode::kInvalidArgument, "quantize: --bias-correction needs the per-channel means of the Conv/Gemm/MatMul "
                                        "inputs, and " + o->ranges + " has none (write it again with anvil calibrate)");
    std::vector<std::string> float_nodes;
    onnx::ModelProto q;
    if (!o->sensitivity.empty()) {
      const quant::Method probe = quant::method_from_name(o->sensitivity);
      const auto rows =
          quant::tensor_sensitivity(optimized, calibration, calib->images, options, probe, o->search_samples).value();
      std::cout << "output SQNR on " << std::min(o->search_samples, calib->images.dim(0)) << " calibration images, "
                << o->method << " everywhere: " << fmt("%.2f dB", rows.empty() ? 0.0 : rows[0].base_sqnr_db)
                << "; with " << o->sensitivity << " on one tensor:\n";
      for (const quant::TensorSensitivity& r : rows)
        std::cout << fmt("  %8.2f dB  %s  %s [%.6g, %.6g] -> [%.6g, %.6g]\n", r.sqnr_db, r.tensor.c_str(),
                         o->method.c_str(), r.base.min, r.base.max, r.probe.min, r.probe.max);
    }
    if (o->per_tensor_search) {
      quant::TensorSearchOptions sopt;
      sopt.quantize = options;  // its method is the search's to choose
      sopt.samples = o->search_samples;
      sopt.holdout = o->search_holdout;
      const quant::TensorSearchResult found =
          quant::search_tensor_ranges(optimized, calibration, calib->images, sopt).value();
      std::cout << search_summary(found, found.samples, found.holdout);
      options.method = found.grid;
      q = quant::quantize(optimized, found.ranges, options, &float_nodes, &calibration).value();
    } else if (listed) {
      q = quant::quantize(optimized, *listed, options, &float_nodes, &calibration).value();
    } else {
      q = quant::quantize(optimized, calibration, options, &float_nodes).value();
    }
    quant::EditOptions edit;
    edit.input_uint8 = o->input_type == "uint8";
    edit.output_int8 = o->output_type == "int8";
    edit.fold_normalization = o->fold;
    edit.mean = o->norm.mean[0];
    edit.std = o->norm.std[0];
    std::vector<quant::BoundaryParams> boundary;
    if (edit.input_uint8 || edit.output_int8) {
      quant::EditResult e = quant::edit_model(q, edit).value();
      q = std::move(e.model);
      boundary = e.inputs;
      boundary.insert(boundary.end(), e.outputs.begin(), e.outputs.end());
    }
    save_onnx(q, o->out);
    const bool percentile_method =
        options.method == quant::Method::kPercentileAsym || options.method == quant::Method::kPercentileSym;
    // --per-tensor-search ignores --method: it chose every range and the grid.
    std::cout << "quantized " << o->in << " with "
              << (o->per_tensor_search ? std::string("the per-tensor search (") + quant::method_name(options.method) + " grid)"
                                       : o->method)
              << (percentile_method && !o->per_tensor_search ? fmt(" (percentile %g)", options.percentile) : "")
              << " from " << source << " -> " << o->out << '\n';
    for (const quant::BoundaryParams& b : boundary)
      std::cout << "  " << b.tensor << ": " << b.dtype << " scale " << fmt("%.9g", b.scale) << " zero_point "
                << b.zero_point << " (" << b.note << ")\n";
    if (!float_nodes.empty()) std::cout << float_nodes.size() << " node(s) left in float\n";
  });
}

}  // namespace anvil::cli
