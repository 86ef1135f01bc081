#pragma once
/// How the quantizer feeds N samples to the model when it runs it: calibration (calibrate.cc) and
/// the per-tensor search and sensitivity scoring (tensor_search.cc).
#include <onnx/onnx_pb.h>

#include <string>

namespace anvil::quant {

struct Batches {
  int64_t size = 1;  ///< samples per Executor::run
  int64_t used = 0;  ///< samples fed: the first `used` of the N given
};

/// A model whose graph input `input` has a fixed leading dimension B (exported without a dynamic
/// batch axis) runs on batches of exactly B: such an export may also hold B in a Reshape or a
/// constant shape, so no other batch is safe. Then the first N - N % B samples are used, dropping
/// the rest with a warning (padding a batch would add made-up samples to the statistics and the
/// scores), and fewer than B samples is kInvalidArgument naming `what`, the input and its batch.
/// A dynamic batch uses all N samples, `preferred` per run.
Batches plan_batches(const onnx::ModelProto& model, const std::string& input, int64_t n, int64_t preferred,
                     const std::string& what);

}  // namespace anvil::quant
