#include <cmath>

#include "anvil/quantizer/quantizer.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {
constexpr const char* kFormat = "anvil-calibration";
constexpr int kVersion = 1;
}  // namespace

nlohmann::json Calibration::to_json() const {
  nlohmann::json tensors_json = nlohmann::json::object();
  for (const auto& [name, s] : tensors) tensors_json[name] = {{"min", s.min}, {"max", s.max}, {"count", s.count}};
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
    c.tensors[name] = s;
  }
  return c;
}

std::map<std::string, Range> Calibration::ranges(Method method, float percentile) const {
  if (method != Method::kMinMaxAsym && method != Method::kMinMaxSym)
    fail(ErrorCode::kUnsupported, std::string("calibration method ") + method_name(method) +
                                      " is not implemented yet (it needs histograms); use MIN_MAX_ASYM or MIN_MAX_SYM");
  std::map<std::string, Range> out;
  for (const auto& [name, s] : tensors) {
    const Range r = include_zero({s.min, s.max});
    out[name] = is_symmetric(method) ? symmetric(r) : r;
  }
  return out;
}

}  // namespace anvil::quant
