// Shared by the per-op lowering tests: compile an integer graph for the NPU only, run it on the
// test interpreter and compare every output with ref::run_int8, bit for bit, with every
// conflicting access of the schedule ordered.
#pragma once

#include <string>

#include "anvil/common/tensor.h"
#include "anvil/compiler/compiler.h"
#include "anvil/isa/program.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::testing {

/// CompileOptions with host fallback off: an op the NPU cannot take is an error, not a host op.
compiler::CompileOptions npu_only();

/// Runs `p` on the interpreter with `inputs`: every output of run_int8(g) is expected equal, and
/// every conflicting pair of accesses ordered by the program's waits (gtest EXPECTs naming `what`).
void expect_program_matches(const isa::Program& p, const ref::Int8Graph& g, const TensorMap& inputs,
                            const std::string& what);

/// Compiles `g` with `options`, runs it on the interpreter with `inputs` and expects its outputs to
/// equal run_int8's and no unordered conflicts (gtest EXPECTs naming `what`); returns the program
/// (empty when the compile failed).
isa::Program expect_compiled_matches(const ref::Int8Graph& g, const TensorMap& inputs, const std::string& what,
                                     const compiler::CompileOptions& options = npu_only());

}  // namespace anvil::testing
