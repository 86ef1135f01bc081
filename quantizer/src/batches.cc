#include "batches.h"

#include "anvil/common/graph_input.h"
#include "anvil/common/log.h"
#include "anvil/common/status.h"

namespace anvil::quant {

Batches plan_batches(const onnx::ModelProto& model, const std::string& input, int64_t n, int64_t preferred,
                     const std::string& what) {
  const int64_t fixed = fed_input(model, input).fixed_batch();
  if (fixed == 0) return {preferred, n};
  if (n < fixed)
    fail(ErrorCode::kInvalidArgument, what + ": input '" + input + "' has a fixed batch of " + std::to_string(fixed) +
                                          ", and " + std::to_string(n) + " samples are less than one batch");
  const Batches b{fixed, n - n % fixed};
  if (b.used < n)
    log().warn("{}: input '{}' has a fixed batch of {}: using the first {} of {} samples (whole batches)", what, input,
               fixed, b.used, n);
  return b;
}

}  // namespace anvil::quant
