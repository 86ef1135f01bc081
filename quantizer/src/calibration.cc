#include <algorithm>
#include <cmath>
#include <vector>

#include <tbb/parallel_for.h>

#include "anvil/quantizer/quantizer.h"
#include "quant_params.h"
#include "range_methods.h"

namespace anvil::quant {

namespace {
constexpr const char* kFormat = "anvil-calibration";
constexpr int kVersion = 1;
}  // namespace

nlohmann::json Calibration::to_json() const {
  nlohmann::json tensors_json = nlohmann::json::object();
  for (const auto& [name, s] : tensors) {
    tensors_json[name] = {{"min", s.min}, {"max", s.max}, {"count", s.count}, {"histogram", s.histogram},
                          {"histogram_half_width", s.histogram_half_width}};
    if (!s.channel_mean.empty()) {
      tensors_json[name]["channel_mean"] = s.channel_mean;
      tensors_json[name]["channel_samples"] = s.channel_samples;
      if (s.channel_axis != 1) tensors_json[name]["channel_axis"] = s.channel_axis;
    }
  }
  return {{"format", kFormat}, {"version", kVersion}, {"tensors", tensors_json}};
}

Calibration Calibration::from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("format", "") != kFormat)
    fail(ErrorCode::kParseError, std::string("calibration: not an ") + kFormat + " document");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != kVersion)
    fail(ErrorCode::kParseError, "calibration: version " + std::to_string(kVersion) + " expected");
  if (!j.contains("tensors") || !j["tensors"].is_object())
    fail(ErrorCode::kParseError, "calibration: 'tensors' object missing");
  Calibration c;
  for (const auto& [name, v] : j["tensors"].items()) {
    for (const char* field : {"min", "max", "count"})
      if (!v.is_object() || !v.contains(field) || !v[field].is_number())
        fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': numeric '" + field + "' missing");
    TensorStats s;
    s.min = v["min"].get<float>();
    s.max = v["max"].get<float>();
    s.count = v["count"].get<int64_t>();
    if (!std::isfinite(s.min) || !std::isfinite(s.max) || s.min > s.max || s.count <= 0)
      fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': min <= max (finite) and count > 0 expected");
    if (v.contains("histogram")) {
      const auto& h = v["histogram"];
      if (!h.is_array() || !(h.empty() || h.size() == static_cast<size_t>(kHistogramBins)))
        fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': histogram of " +
                                         std::to_string(kHistogramBins) + " counts expected");
      for (const auto& n : h)
        if (!n.is_number_integer() || n.get<int64_t>() < 0)
          fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': histogram counts must be integers >= 0");
      s.histogram = h.get<std::vector<int64_t>>();
      // Every value is in one bin: counts that do not add up to `count` are not this tensor's
      // (an edited or truncated file), and would make the methods read another distribution.
      int64_t total = 0;
      for (int64_t n : s.histogram)
        if (n > s.count - total)
          fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': histogram counts add up to more than count " +
                                           std::to_string(s.count));
        else
          total += n;
      if (!s.histogram.empty() && total != s.count)
        fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': histogram counts add up to " +
                                         std::to_string(total) + ", not count " + std::to_string(s.count));
      const float m = std::max(std::fabs(s.min), std::fabs(s.max));
      s.histogram_half_width = m;
      if (!s.histogram.empty() && v.contains("histogram_half_width")) {
        const auto& hw = v["histogram_half_width"];
        if (!hw.is_number() || !std::isfinite(hw.get<float>()) || hw.get<float>() < m)
          fail(ErrorCode::kParseError, "calibration: tensor '" + name +
                                           "': histogram_half_width must be a number >= max(|min|, |max|)");
        s.histogram_half_width = hw.get<float>();
      }
      if (!s.histogram.empty() && !(s.histogram_half_width > 0.0f))
        fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': a histogram needs a non-zero range");
    }
    if (v.contains("channel_mean")) {
      const auto& m = v["channel_mean"];
      if (!m.is_array() || !v.contains("channel_samples") || !v["channel_samples"].is_number_integer() ||
          v["channel_samples"].get<int64_t>() <= 0)
        fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': channel_mean needs channel_samples > 0");
      for (const auto& x : m)
        if (!x.is_number() || !std::isfinite(x.get<double>()))
          fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': channel_mean must be finite numbers");
      s.channel_mean = m.get<std::vector<double>>();
      s.channel_samples = v["channel_samples"].get<int64_t>();
      if (v.contains("channel_axis")) {
        const auto& a = v["channel_axis"];
        if (!a.is_number_integer() || (a.get<int>() != 1 && a.get<int>() != -1))
          fail(ErrorCode::kParseError, "calibration: tensor '" + name + "': channel_axis must be 1 or -1");
        s.channel_axis = a.get<int>();
      }
    }
    c.tensors[name] = s;
  }
  return c;
}

std::map<std::string, Range> Calibration::ranges(Method method, float percentile) const {
  if (!(percentile > 0.0f && percentile <= 100.0f))
    fail(ErrorCode::kInvalidArgument, "percentile " + std::to_string(percentile) + " outside (0, 100]");
  const bool sym = is_symmetric(method);
  // Tensors in parallel, each range written to its own slot; the map is built in name order
  // afterwards, so the result does not depend on threads.
  // The inputs are checked first, in name order, so that the error names the same tensor every time.
  std::vector<std::pair<const std::string*, const TensorStats*>> items;
  for (const auto& [name, s] : tensors) {
    const bool needs_histogram = method != Method::kMinMaxAsym && method != Method::kMinMaxSym;
    if (needs_histogram && s.histogram.empty() && (s.min != 0.0f || s.max != 0.0f))
      fail(ErrorCode::kInvalidArgument, std::string("calibration method ") + method_name(method) + ": tensor '" +
                                            name + "' has no histogram");
    items.emplace_back(&name, &s);
  }
  std::vector<Range> found(items.size());
  tbb::parallel_for(size_t{0}, items.size(), [&](size_t i) {
    const TensorStats& s = *items[i].second;
    Range r;
    switch (method) {
      case Method::kMinMaxAsym: case Method::kMinMaxSym: {
        const Range mm = include_zero({s.min, s.max});
        r = sym ? symmetric(mm) : mm;
        break;
      }
      case Method::kPercentileAsym: case Method::kPercentileSym: r = percentile_range(s, percentile, sym); break;
      case Method::kEntropyAsym: case Method::kEntropySym: r = search_range(s, Objective::kEntropy, sym); break;
      case Method::kMseAsym: case Method::kMseSym: r = search_range(s, Objective::kMse, sym); break;
      case Method::kSqnrAsym: case Method::kSqnrSym: r = search_range(s, Objective::kSqnr, sym); break;
    }
    found[i] = r;
  });
  std::map<std::string, Range> out;
  for (size_t i = 0; i < items.size(); ++i) out.emplace_hint(out.end(), *items[i].first, found[i]);
  return out;
}

}  // namespace anvil::quant
