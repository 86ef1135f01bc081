#include "cli_common.h"

#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <filesystem>
#include <sstream>

#include "anvil/common/onnx_model.h"

namespace anvil::cli {

namespace {
/// A CLI11 check for each --mean / --std value: a finite number, above zero when `positive`
/// (an infinite std would normalise every input to 0).
CLI::Validator finite_number(bool positive) {
  return CLI::Validator(
      [positive](std::string& value) -> std::string {
        float v = 0.0f;
        if (!CLI::detail::lexical_cast(value, v)) return value + " is not a number";
        if (!std::isfinite(v)) return value + " is not finite";
        return positive && !(v > 0.0f) ? value + " is not positive" : std::string();
      },
      positive ? "finite, > 0" : "finite", positive ? "finite positive number" : "finite number");
}
}  // namespace

void NormOptions::add_to(CLI::App* app) {
  app->add_option("--mean", mean, "input normalisation mean: one value or one per channel (pixels scaled to [0,1])")
      ->expected(1, 16)
      ->check(finite_number(false));
  app->add_option("--std", std, "input normalisation std: one value or one per channel")
      ->expected(1, 16)
      ->check(finite_number(true));
}

Dataset load_dataset_for(const onnx::ModelProto& model, const std::string& spec, Split split, int64_t count,
                         const Normalization& norm) {
  const std::vector<InputShape> inputs = fed_inputs(model);
  return load_dataset(spec, split, count, norm, inputs.size() == 1 ? &inputs[0] : nullptr);
}

std::string device_spec_for_target(const std::string& target) {
  if (target == "warboy") return "warboy(1)*1";
  if (target == "warboy-2pe") return "npu0pe0-1";
  fail(ErrorCode::kInvalidArgument, "unknown target '" + target + "' (valid: warboy, warboy-2pe)");
}

int64_t argmax_row(const Tensor& t, int64_t row) {
  const int64_t cols = t.numel() / t.dim(0);
  int64_t best = 0;
  if (t.dtype() == DType::kFloat32) {
    const float* p = t.data<float>() + row * cols;
    for (int64_t c = 1; c < cols; ++c)
      if (p[c] > p[best]) best = c;
  } else {
    const int8_t* p = t.data<int8_t>() + row * cols;
    for (int64_t c = 1; c < cols; ++c)
      if (p[c] > p[best]) best = c;
  }
  return best;
}

std::string format_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) w[c] = header[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], r[c].size());
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    os << "|";
    for (size_t c = 0; c < w.size(); ++c) {
      const std::string s = c < cells.size() ? cells[c] : "";
      os << ' ' << s << std::string(w[c] - s.size(), ' ') << " |";
    }
    os << '\n';
  };
  line(header);
  os << "|";
  for (size_t c = 0; c < w.size(); ++c) os << std::string(w[c] + 2, '-') << "|";
  os << '\n';
  for (const auto& r : rows) line(r);
  return os.str();
}

CLI::Validator writable_output() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        const std::filesystem::path parent = std::filesystem::path(path).parent_path();
        const std::filesystem::path dir = parent.empty() ? std::filesystem::path(".") : parent;
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) return path + ": no such directory " + dir.string();
        if (::access(dir.c_str(), W_OK) != 0) return path + ": directory " + dir.string() + " is not writable";
        return {};
      },
      "FILE", "writable output");
}

CLI::Validator writable_output_dir() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        std::error_code ec;
        const std::filesystem::path full = std::filesystem::absolute(path, ec);
        std::filesystem::path p = full;  // the nearest that exists: the folder itself or one above it
        while (!p.empty() && !std::filesystem::exists(p, ec) && p != p.parent_path()) p = p.parent_path();
        if (!std::filesystem::is_directory(p, ec))
          return path + ": " + (p == full ? std::string() : p.string() + " is ") + "not a directory";
        if (::access(p.c_str(), W_OK) != 0) return path + ": directory " + p.string() + " is not writable";
        return {};
      },
      "DIR", "writable output folder");
}

onnx::ModelProto load_float_model(const std::string& path) {
  onnx::ModelProto model = load_onnx(path);
  if (const onnx::NodeProto* n = quant::first_qdq_node(model))
    fail(ErrorCode::kInvalidArgument, path + ": node '" + n->name() + "' (" + n->op_type() +
                                          "): the model is already quantized");
  return model;
}

void check_not_input(const std::string& in, const std::string& out, const std::string& option) {
  std::error_code ec;
  if (std::filesystem::equivalent(in, out, ec))
    fail(ErrorCode::kInvalidArgument, option + " " + out + " is the input model " + in + ": it would be overwritten");
}

CLI::Validator thread_count() { return CLI::Range(1, 1024); }

CLI::Validator image_count() { return CLI::Range(int64_t{1}, int64_t{1} << 40); }

bool valid_percentile(float p) { return p > 0.0f && p <= 100.0f; }

CLI::Validator percentile_range() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        float p = 0.0f;
        if (!CLI::detail::lexical_cast(value, p)) return value + " is not a number";
        return valid_percentile(p) ? std::string() : value + " outside (0, 100]";
      },
      "(0, 100]", "percentile");
}

std::string fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

std::string search_summary(const quant::TensorSearchResult& found, int64_t samples, int64_t holdout) {
  std::string out = fmt("per-tensor search, output SQNR on %lld calibration images: start %s %.2f dB -> %.2f dB",
                        static_cast<long long>(samples), quant::method_name(found.grid), found.start_sqnr_db,
                        found.sqnr_db);
  if (holdout > 0)
    out += fmt("; on the %lld held-out images after them: %.2f dB -> %.2f dB", static_cast<long long>(holdout),
               found.start_holdout_db, found.holdout_db);
  out += fmt("; %zu tensor(s) changed", found.choices.size());
  if (holdout > 0) out += fmt(", %zu change(s) refused by the held-out images", found.rejected.size());
  out += fmt(", %lld QDQ evaluations\n", static_cast<long long>(found.evaluations));
  for (const quant::TensorChoice& c : found.choices)
    out += fmt("  %s -> %s [%.6g, %.6g] (%.2f dB", c.tensor.c_str(), quant::method_name(c.method), c.range.min,
               c.range.max, c.sqnr_db) +
           (holdout > 0 ? fmt("; held out %.2f dB)\n", c.holdout_db) : std::string(")\n"));
  for (const quant::TensorChoice& c : found.rejected)
    out += fmt("  refused: %s -> %s [%.6g, %.6g] (%.2f dB; held out %.2f dB)\n", c.tensor.c_str(),
               quant::method_name(c.method), c.range.min, c.range.max, c.sqnr_db, c.holdout_db);
  return out;
}

}  // namespace anvil::cli
