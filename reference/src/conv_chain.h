#pragma once
/// Conv chains: runs of consecutive nodes (in execution order) made of Conv, Relu, Clip, Add and
/// MaxPool, executed together chunk of images by chunk of images on oneDNN (a single image: step
/// by step, each step split by channel blocks over the threads), with the values
/// between them kept in the layout oneDNN's primitives chose (e.g. nChw16c) instead of being
/// reordered to NCHW and back around every Conv, and a Relu/Clip that is the only reader of a
/// Conv's output applied as that Conv's post-op.
///
/// The executor uses a chain when nobody observes intermediate values (RunOptions::observe unset)
/// or the observer accepts the fast paths (RunOptions::observe_fast_paths): a fused Conv output
/// never exists as a tensor. Outputs are those of the node-by-node
/// path up to float summation order (oneDNN picks other kernels for other layouts).
#include <onnx/onnx_pb.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

class ConvChain {
 public:
  /// The chains among `nodes` (the executor's execution order). `initializers` and the outputs of
  /// Constant nodes give Conv weights and Clip bounds; `graph_outputs` are always materialised.
  /// The tensors in `initializers` must outlive the chains.
  static std::vector<ConvChain> find(const std::vector<const onnx::NodeProto*>& nodes, int64_t opset,
                                     const TensorMap& initializers, const std::vector<std::string>& graph_outputs);

  /// Indices (into `nodes`) of the nodes the chain computes, in order. Constant nodes between them
  /// are not included: the executor runs those as usual.
  const std::vector<size_t>& nodes() const;

  using Lookup = std::function<const Tensor*(const std::string&)>;
  using Observe = std::function<void(const std::string& name, const Tensor& value)>;
  using ObservePart = std::function<void(const std::string& name, const Tensor& part, int64_t first)>;
  /// Runs the chain once every value it reads exists (`lookup` finds it). Returns false, having
  /// computed nothing, when the fast path does not apply to these inputs (a type, rank, shape or
  /// attribute it does not handle, 2 or more images but fewer than threads; a single image on
  /// several threads runs with each Conv and MaxPool split by 16-channel blocks): the caller then
  /// runs the nodes one by one, which also reports any error. Otherwise appends the values read
  /// after the chain (or graph outputs) to `outputs`.
  /// With `observe`: the steps run one after the other over all images (not each chunk through
  /// the whole chain), and every value the chain makes (not a Conv output fused into its
  /// Relu/Clip: that one never exists) is observed in NCHW as soon as its step is done. The values
  /// only the chain reads are reordered in turn into one scratch tensor, which the next value
  /// overwrites (the observer must not keep it); the chain's own buffers are freed after a value's
  /// last reader, so the values alive at once are those still to be read, plus the scratch.
  /// With `observe_part` instead (RunOptions::observe_part): the chain runs chunk by chunk as
  /// without an observer, and each value's NCHW copy of a chunk (images [first, first + n)) is
  /// observed right after its step, from the chunk's thread, through that thread's scratch; one
  /// image on several threads is observed whole, as the part at 0.
  bool run(const Lookup& lookup, std::vector<std::pair<std::string, Tensor>>* outputs,
           const Observe* observe = nullptr, const ObservePart* observe_part = nullptr) const;

  /// For the node-by-node path: each Conv or Gemm (float weights / B from an initializer) whose
  /// output only a Relu or a Clip with bounds known before any input reads, and is not a graph output.
  struct Fusion {
    size_t conv = 0, activation = 0;  ///< indices into `nodes` (`conv`: the Conv or Gemm)
    float lo = 0.0f, hi = 0.0f;       ///< y = min(max(conv, lo), hi)
  };
  static std::vector<Fusion> fusions(const std::vector<const onnx::NodeProto*>& nodes, int64_t opset,
                                     const TensorMap& initializers, const std::vector<std::string>& graph_outputs);

  struct Spec;
  struct State;

 private:
  std::shared_ptr<const Spec> spec_;
  std::shared_ptr<State> state_;
};

}  // namespace anvil::ref
