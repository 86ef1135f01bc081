#include "lowering_check_for_tests.h"

#include <gtest/gtest.h>

#include "isa_interpreter_for_tests.h"

namespace anvil::testing {

compiler::CompileOptions npu_only() {
  compiler::CompileOptions o;
  o.host_fallback = false;
  return o;
}

void expect_program_matches(const isa::Program& p, const ref::Int8Graph& g, const TensorMap& inputs,
                            const std::string& what) {
  InterpreterRun run;
  const TensorMap got = run_program_for_tests(p, inputs, &run);
  const TensorMap want = ref::run_int8(g, inputs).value();
  EXPECT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, t] : want) EXPECT_TRUE(got.count(name) && got.at(name) == t) << what << ": output " << name;
  const auto conflicts = find_unordered_conflicts(p, run);
  EXPECT_TRUE(conflicts.empty()) << what << ": " << conflicts.size() << " unordered conflicts, first: "
                                 << (conflicts.empty() ? "" : conflicts[0]);
}

isa::Program expect_compiled_matches(const ref::Int8Graph& g, const TensorMap& inputs, const std::string& what,
                                     const compiler::CompileOptions& options) {
  auto compiled = compiler::compile_graph(g, options);
  EXPECT_TRUE(compiled.ok()) << what << ": " << compiled.error().what();
  if (!compiled.ok()) return {};
  const isa::Program& p = compiled.value().program;
  expect_program_matches(p, g, inputs, what);
  return p;
}

}  // namespace anvil::testing
