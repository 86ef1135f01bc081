#include <array>
#include <utility>

#include "anvil/quantizer/quantizer.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {
constexpr std::array<std::pair<Method, const char*>, 10> kNames{{
    {Method::kMinMaxAsym, "MIN_MAX_ASYM"},
    {Method::kMinMaxSym, "MIN_MAX_SYM"},
    {Method::kEntropyAsym, "ENTROPY_ASYM"},
    {Method::kEntropySym, "ENTROPY_SYM"},
    {Method::kPercentileAsym, "PERCENTILE_ASYM"},
    {Method::kPercentileSym, "PERCENTILE_SYM"},
    {Method::kSqnrAsym, "SQNR_ASYM"},
    {Method::kSqnrSym, "SQNR_SYM"},
    {Method::kMseAsym, "MSE_ASYM"},
    {Method::kMseSym, "MSE_SYM"},
}};
}  // namespace

const char* method_name(Method method) {
  for (const auto& [m, name] : kNames)
    if (m == method) return name;
  fail(ErrorCode::kInvalidArgument, "method_name: unknown Method value " + std::to_string(static_cast<int>(method)));
}

Method method_from_name(const std::string& name) {
  std::string valid;
  for (const auto& [m, n] : kNames) {
    if (name == n) return m;
    valid += (valid.empty() ? "" : ", ") + std::string(n);
  }
  fail(ErrorCode::kInvalidArgument, "unknown calibration method '" + name + "' (valid: " + valid + ")");
}

bool is_symmetric(Method m) {
  switch (m) {
    case Method::kMinMaxSym: case Method::kEntropySym: case Method::kPercentileSym: case Method::kSqnrSym:
    case Method::kMseSym: return true;
    default: return false;
  }
}

}  // namespace anvil::quant
