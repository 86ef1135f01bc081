#pragma once
/// The end-to-end bit-exactness tests' common step: one float input through the emulator and
/// through the golden model.
#include "anvil/common/tensor.h"
#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"
#include "anvil/runtime/runtime.h"

namespace anvil::test {

struct NpuAndGolden {
  Tensor got;   ///< the program's first output, from `session` (the SystemC model through the runtime)
  Tensor want;  ///< the golden model's first output, ref::run_int8 on the same int8 input
};

/// Quantizes the float input `x` with the program's input parameters and runs it on both.
inline NpuAndGolden run_npu_and_golden(rt::Session& session, const isa::Program& program,
                                       const ref::Int8Graph& golden, const Tensor& x) {
  const isa::TensorDesc& in = program.inputs.at(0);
  const Tensor q = ref::quantize_tensor(x, {in.scale, in.zero_point});
  NpuAndGolden r;
  r.got = session.run({{in.name, q}}).at(program.outputs.at(0).name);
  r.want = ref::run_int8(golden, {{golden.input_names.at(0), q}}).value().at(golden.output_names.at(0));
  return r;
}

}  // namespace anvil::test
