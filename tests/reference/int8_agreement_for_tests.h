#pragma once
// run_int8 of a lowered QDQ model against the float Executor running the same model, compared in
// each output's int8 domain. The comparison is exact: every float output of a QDQ model is the
// DequantizeLinear of an int8, so re-quantizing it with the output's parameters gives that int8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "anvil/reference/executor.h"
#include "anvil/reference/int8_graph.h"

namespace anvil::test {

struct Int8Agreement {
  int64_t max_diff = 0;  ///< largest |int8 difference| over every output element (1000: a run failed)
  double exact = 0.0;    ///< share of output elements that are equal
};

/// Element counts of int8 outputs against the float run's, accumulated output by output.
struct Int8Counts {
  int64_t max_diff = 0, same = 0, total = 0;

  /// Adds the int8 output `got` against `float_out`, the float run's same output, quantized with the
  /// output's parameters `q` (exact: it is the DequantizeLinear of an int8). False on a shape mismatch.
  bool add(const Tensor& got, const Tensor& float_out, const ref::QuantParams& q) {
    const Tensor want = ref::quantize_tensor(float_out, q);
    EXPECT_EQ(got.shape(), want.shape());
    if (got.shape() != want.shape()) return false;
    for (int64_t j = 0; j < got.numel(); ++j) {
      const int64_t d = std::abs(int64_t{got.data<int8_t>()[j]} - want.data<int8_t>()[j]);
      max_diff = std::max(max_diff, d);
      same += d == 0;
      ++total;
    }
    return true;
  }
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
  Int8Counts c;
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const std::string& name = graph.output_names[i];
    if (!c.add(int_out->at(name), float_out->at(name), graph.values[graph.outputs[i]].q)) {
      ADD_FAILURE() << name;
      return {1000, 0.0};
    }
  }
  return {c.max_diff, c.total ? static_cast<double>(c.same) / c.total : 0.0};
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
