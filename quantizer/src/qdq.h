#pragma once
/// Internal hooks of the QDQ builder (qdq.cc) for the per-tensor range search.
#include <map>
#include <string>
#include <vector>

#include "anvil/quantizer/quantizer.h"

namespace anvil::quant {

/// The activations to which quantize() gives parameters from their calibrated range (not the
/// fixed Softmax/Sigmoid/Tanh parameters, not a same-scale output that copies its input's), in
/// topological order. These are the tensors whose range choice changes the quantized model.
/// options.bias_correction is ignored.
std::vector<std::string> calibrated_tensors(const onnx::ModelProto& optimized,
                                           const std::map<std::string, Range>& ranges, const QuantizeOptions& options);

}  // namespace anvil::quant
