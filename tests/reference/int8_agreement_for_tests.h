#pragma once
// run_int8 of a lowered QDQ model against the float Executor running the same model, compared in
// each output's int8 domain. The comparison is exact: every float output of a QDQ model is the
// DequantizeLinear of an int8, so re-quantizing it with the output's parameters gives that int8.
#include <gtest/gtest.h>

#include <cstdlib>
#include <utility>

#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::test {

struct Int8Agreement {
  int64_t max_diff = 0;  ///< largest |int8 difference| over every output element (1000: a run failed)
  double exact = 0.0;    ///< share of output elements that are equal
};

/// `graph` is lower_qdq(model, batch); `inputs` are the model's float inputs (quantized here with
/// the graph's input parameters for run_int8).
inline Int8Agreement int8_agreement(const onnx::ModelProto& model, const ref::Int8Graph& graph,
                                    const TensorMap& inputs) {
  auto exec = ref::Executor::create(model);
  EXPECT_TRUE(exec.ok()) << exec.error().what();
  if (!exec.ok()) return {1000, 0.0};
  auto float_out = exec->run(inputs);
  EXPECT_TRUE(float_out.ok()) << float_out.error().what();
  TensorMap int8_in;
  for (size_t i = 0; i < graph.inputs.size(); ++i)
    int8_in[graph.input_names[i]] = ref::quantize_tensor(inputs.at(graph.input_names[i]), graph.values[graph.inputs[i]].q);
  auto int_out = ref::run_int8(graph, int8_in);
  EXPECT_TRUE(int_out.ok()) << int_out.error().what();
  if (!float_out.ok() || !int_out.ok()) return {1000, 0.0};
  Int8Agreement a;
  int64_t same = 0, total = 0;
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const std::string& name = graph.output_names[i];
    const Tensor want = ref::quantize_tensor(float_out->at(name), graph.values[graph.outputs[i]].q);
    const Tensor& got = int_out->at(name);
    EXPECT_EQ(got.shape(), want.shape()) << name;
    if (got.shape() != want.shape()) return {1000, 0.0};
    for (int64_t j = 0; j < got.numel(); ++j) {
      const int64_t d = std::abs(int64_t{got.data<int8_t>()[j]} - want.data<int8_t>()[j]);
      a.max_diff = std::max(a.max_diff, d);
      same += d == 0;
      ++total;
    }
  }
  a.exact = total ? static_cast<double>(same) / total : 0.0;
  return a;
}

/// Lowers `model` at `batch` (the lowered graph is stored in `lowered` when given) and compares.
inline Int8Agreement int8_agreement(const onnx::ModelProto& model, const TensorMap& inputs, int64_t batch,
                                    ref::Int8Graph* lowered = nullptr) {
  auto g = ref::lower_qdq(model, batch);
  EXPECT_TRUE(g.ok()) << g.error().what();
  if (!g.ok()) return {1000, 0.0};
  const Int8Agreement a = int8_agreement(model, *g, inputs);
  if (lowered) *lowered = std::move(*g);
  return a;
}

}  // namespace anvil::test
