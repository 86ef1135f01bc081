#pragma once
/// Graph passes of optimize(): each rewrites a model in place and is listed once in passes.def.
#include <onnx/onnx_pb.h>

#include <vector>

namespace anvil::quant::passes {

#define ANVIL_PASS(fn, name) void fn(onnx::ModelProto& model);
#include "passes.def"
#undef ANVIL_PASS

struct Pass {
  const char* name;
  void (*run)(onnx::ModelProto&);
};
/// The passes of passes.def, in order.
const std::vector<Pass>& pipeline();

}  // namespace anvil::quant::passes
