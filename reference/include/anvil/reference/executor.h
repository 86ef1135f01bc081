#pragma once
/// The reference executor: the golden model of anvil.
///
/// Executor runs an ONNX model with float semantics (every operator as the ONNX spec defines it,
/// QuantizeLinear/DequantizeLinear included); calibration uses it to observe every tensor.
/// The integer execution of a quantized model is in int8_graph.h.
#include <onnx/onnx_pb.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "anvil/common/status.h"
#include "anvil/common/tensor.h"
#include "anvil/common/value.h"

namespace anvil::ref {

struct RunOptions {
  /// Called for every tensor the graph produces (node outputs, in execution order) and for the
  /// graph inputs, with its ONNX name. Used by calibration. The tensor is only valid during the
  /// call: the observer must not keep a reference or pointer to it (copy it to keep it), as its
  /// storage may be reused for the next value (see observe_fast_paths).
  std::function<void(const std::string& name, const Tensor& value)> observe;
  /// With `observe`: false (default) runs node by node and observes every tensor. true keeps the
  /// paths a run without observer takes (Conv chains, a Relu/Clip applied as the post-op of the
  /// Conv/Gemm whose output only it reads): every tensor is observed except such a fused-away
  /// Conv/Gemm output, which never exists, and the values inside a LayerNorm written out as nodes
  /// (anvil/reference/patterns.h), which runs as one kernel: only its output is observed. Values
  /// computed inside a chain are observed as the chain makes them (each whole, once all images
  /// went through its step), equal to the node-by-node ones up to float summation order, and
  /// those only the chain reads are handed over in one scratch tensor that the next such value
  /// overwrites. Calibration uses it
  /// (the quantizer gives a Conv/Gemm and its Relu/Clip one range, the activation's, and keeps a
  /// LayerNorm float as one operator, quantized at its input and output).
  bool observe_fast_paths = false;
  /// With `observe` and observe_fast_paths: when set, a Conv chain hands each value it makes to
  /// this instead of `observe`, in parts, chunk by chunk while the values are in cache: `part`
  /// holds images [first, first + part.dim(0)) of the batch, in NCHW, valid during the call only.
  /// Parts come from several threads at once and in no fixed order (the observer must be thread
  /// safe and must not wait for work of the calling task arena while holding a lock: isolate it,
  /// tbb::this_task_arena::isolate); together they cover every image of the value exactly once.
  /// Values outside chains still go through `observe`, whole.
  std::function<void(const std::string& name, const Tensor& part, int64_t first)> observe_part;
};

/// The ONNX operator types (default domain) the executor implements, sorted. Anything else is
/// declared unsupported: Executor::create rejects it with ErrorCode::kUnsupported.
std::vector<std::string> supported_operators();

/// A prepared model. Cheap to copy (shared, immutable state); run() is thread safe.
class Executor {
 public:
  /// Validates and prepares a model: topological order, initializers, operator support.
  /// Errors name the node: unsupported operator or attribute, missing input, cycle, type mismatch.
  static Expected<Executor> create(const onnx::ModelProto& model);

  /// Runs the model. `inputs` maps graph input names to tensors (any batch size where the batch
  /// dimension is dynamic). Returns the graph outputs by name. Errors name the input or node.
  /// A model with a sequence or optional graph input or output (value.h) needs run_values: run()
  /// returns kInvalidArgument naming that value.
  Expected<TensorMap> run(const TensorMap& inputs, const RunOptions& options = {}) const;

  /// Runs a model whose graph inputs and outputs may be sequences or optionals as well as tensors
  /// (ONNX opset 14+ / 16+). Such values only pass through Identity nodes (create() rejects any
  /// other node reading one, naming the node and the input); the tensors run as in run(), and
  /// options.observe sees only tensors. Each input is checked against its declared type (kinds,
  /// and element types where declared). Errors as run(), naming the input or node.
  Expected<ValueMap> run_values(const ValueMap& inputs, const RunOptions& options = {}) const;

  /// Graph input names (excluding initializers) and output names, in graph order.
  const std::vector<std::string>& input_names() const;
  const std::vector<std::string>& output_names() const;

 private:
  /// run() on the tensors of a model; sequence and optional values are run_values' part.
  Expected<TensorMap> run_tensors(const TensorMap& inputs, const RunOptions& options) const;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace anvil::ref
