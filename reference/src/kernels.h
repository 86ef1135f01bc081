#pragma once
/// The operator kernels of the float executor and the one table that lists them.
#include <onnx/onnx_pb.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// Data a kernel derives from a node's constant inputs (e.g. weights reordered into a kernel
/// library's layout), kept between runs. The executor owns one per node, so it lives exactly as
/// long as the prepared model. Holds one value; thread safe (concurrent runs may both compute it).
class NodeCache {
 public:
  /// The value stored under `key`, or make()'s result, which then replaces what was stored.
  template <typename T, typename Make>
  std::shared_ptr<const T> get(const std::string& key, Make make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (value_ && key_ == key) return std::static_pointer_cast<const T>(value_);
    }
    std::shared_ptr<const T> made = make();
    std::lock_guard<std::mutex> lock(mutex_);
    key_ = key;
    value_ = made;
    return made;
  }

 private:
  std::mutex mutex_;
  std::string key_;
  std::shared_ptr<const void> value_;
};

/// While alive, oneDNN (and anything else on OpenMP) called from this thread runs on this thread
/// alone: the thread's OpenMP thread count is 1, restored on destruction. Debian's oneDNN runs on
/// OpenMP while the executor runs on TBB; kernels split their work over the TBB pool and run each
/// piece serially in oneDNN, so only one pool of workers spins on the cores.
class SerialDnnl {
 public:
  SerialDnnl();
  ~SerialDnnl();
  SerialDnnl(const SerialDnnl&) = delete;
  SerialDnnl& operator=(const SerialDnnl&) = delete;

 private:
  int saved_threads_;
};

/// What a kernel sees: its node, the model's opset, its inputs (nullptr for an omitted optional
/// input) and room for its outputs. Kernels throw anvil::Error; the executor prefixes the node.
struct KernelContext {
  const onnx::NodeProto& node;
  int64_t opset;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor>& outputs;
  /// This node's cache, and for each input whether it is an initializer (the same tensor on
  /// every run). Null/empty when the caller keeps no state (then nothing may be cached).
  NodeCache* cache = nullptr;
  std::vector<bool> constant_inputs = {};

  bool is_constant(size_t i) const { return i < constant_inputs.size() && constant_inputs[i]; }
  /// For each input, the executor's own value when no later node reads it (not an initializer, not
  /// a graph output, not read twice by this node), else nullptr: a kernel may move its storage into
  /// an output of the same size and compute in place. Empty when the caller does not allow it.
  std::vector<Tensor*> reusable_inputs = {};
  Tensor* reusable(size_t i) const { return i < reusable_inputs.size() ? reusable_inputs[i] : nullptr; }

  /// Conv and Gemm only: a Relu/Clip the executor fused into this node, applied to the output as
  /// y = min(max(y, lo), hi) (conv_chain.h, ConvChain::fusions).
  struct Activation {
    bool on = false;
    float lo = 0.0f, hi = 0.0f;
  };
  Activation activation = {};

  size_t num_inputs() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  /// Input i; throws kInvalidArgument naming it when it is omitted.
  const Tensor& input(size_t i) const;
  /// True when output i exists and has a name (optional outputs may be omitted).
  bool wants_output(size_t i) const { return i < outputs.size() && !node.output(static_cast<int>(i)).empty(); }
};

using Kernel = void (*)(KernelContext& ctx);
/// Validates a node's attributes once, at Executor::create (before any input is known).
using AttributeCheck = void (*)(const onnx::NodeProto& node, int64_t opset);

/// Output shape of Flatten(axis) and of Reshape(shape, allowzero) (0 copies a dimension unless
/// allow_zero, one -1 is inferred); shared with the QDQ lowering. Throw kInvalidArgument.
Shape flatten_shape(const Shape& in, int64_t axis);
Shape reshape_shape(const Shape& in, std::vector<int64_t> shape, bool allow_zero);
/// Output shapes of Squeeze (empty axes: every size-1 axis) and Unsqueeze; kInvalidArgument names the axis.
Shape squeeze_shape(const Shape& in, const std::vector<int64_t>& axes);
Shape unsqueeze_shape(const Shape& in, const std::vector<int64_t>& axes);
/// ONNX Slice's parameters resolved against an input shape: per axis the first index read, the
/// step and the output extent (negative indices count from the end, then clamped as ONNX says).
/// Shared by the Slice kernel and the QDQ lowering (kSlice).
struct SliceBox {
  std::vector<int64_t> begin, step;
  Shape out;
};
SliceBox slice_box(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                   std::vector<int64_t> axes, std::vector<int64_t> steps);

struct OpSchema {
  const char* op_type;
  Kernel run;
  int min_inputs, max_inputs;
  int max_outputs;
  AttributeCheck check = nullptr;  ///< optional
  /// The kernel handles every element type, float16, bfloat16 and string included. The numeric
  /// kernels do not: check_element_types rejects those types before they run.
  bool any_element_type = false;
};

/// Throws kUnsupported naming the input when one of ctx's inputs holds float16, bfloat16 or
/// string and op does not declare any_element_type. The executor calls it before every kernel.
void check_element_types(const OpSchema& op, const KernelContext& ctx);

/// The operator of the default ONNX domain named op_type, or nullptr when it is not supported.
const OpSchema* find_op(const std::string& op_type);

// Kernels, by family (ops_*.cc).
#define ANVIL_REF_KERNEL(name) void name(KernelContext& ctx);
ANVIL_REF_KERNEL(conv_kernel)
ANVIL_REF_KERNEL(max_pool_kernel)
ANVIL_REF_KERNEL(average_pool_kernel)
ANVIL_REF_KERNEL(global_average_pool_kernel)
ANVIL_REF_KERNEL(global_max_pool_kernel)
ANVIL_REF_KERNEL(batch_norm_kernel)
ANVIL_REF_KERNEL(gemm_kernel)
ANVIL_REF_KERNEL(matmul_kernel)
/// Whether gemm_kernel runs this Gemm as a oneDNN inner product with B reordered once and kept in
/// ctx.cache (ops_linear.cc: transA=0, alpha=1, B and C initializers, C one value per column).
bool gemm_prepacked(const KernelContext& ctx);
/// Whether matmul_kernel runs this MatMul on oneDNN inner products with each matrix of B reordered
/// once and kept in ctx.cache (ops_linear.cc: float32, ranks >= 2, B an initializer).
bool matmul_prepacked(const KernelContext& ctx);
ANVIL_REF_KERNEL(add_kernel)
ANVIL_REF_KERNEL(sub_kernel)
ANVIL_REF_KERNEL(mul_kernel)
ANVIL_REF_KERNEL(div_kernel)
ANVIL_REF_KERNEL(pow_kernel)
ANVIL_REF_KERNEL(relu_kernel)
ANVIL_REF_KERNEL(clip_kernel)
ANVIL_REF_KERNEL(sqrt_kernel)
ANVIL_REF_KERNEL(exp_kernel)
ANVIL_REF_KERNEL(erf_kernel)
ANVIL_REF_KERNEL(tanh_kernel)
ANVIL_REF_KERNEL(sigmoid_kernel)
ANVIL_REF_KERNEL(leaky_relu_kernel)
ANVIL_REF_KERNEL(hard_sigmoid_kernel)
ANVIL_REF_KERNEL(hard_swish_kernel)
ANVIL_REF_KERNEL(softmax_kernel)
ANVIL_REF_KERNEL(log_softmax_kernel)
ANVIL_REF_KERNEL(layer_norm_kernel)
ANVIL_REF_KERNEL(reduce_mean_kernel)
ANVIL_REF_KERNEL(reduce_sum_kernel)
ANVIL_REF_KERNEL(reduce_max_kernel)
ANVIL_REF_KERNEL(where_kernel)
ANVIL_REF_KERNEL(neg_kernel)
ANVIL_REF_KERNEL(abs_kernel)
ANVIL_REF_KERNEL(sign_kernel)
ANVIL_REF_KERNEL(reciprocal_kernel)
ANVIL_REF_KERNEL(floor_kernel)
ANVIL_REF_KERNEL(ceil_kernel)
ANVIL_REF_KERNEL(round_kernel)
ANVIL_REF_KERNEL(log_kernel)
ANVIL_REF_KERNEL(softplus_kernel)
ANVIL_REF_KERNEL(elu_kernel)
ANVIL_REF_KERNEL(selu_kernel)
ANVIL_REF_KERNEL(prelu_kernel)
ANVIL_REF_KERNEL(min_kernel)
ANVIL_REF_KERNEL(max_kernel)
ANVIL_REF_KERNEL(equal_kernel)
ANVIL_REF_KERNEL(less_kernel)
ANVIL_REF_KERNEL(less_or_equal_kernel)
ANVIL_REF_KERNEL(greater_kernel)
ANVIL_REF_KERNEL(greater_or_equal_kernel)
ANVIL_REF_KERNEL(not_kernel)
ANVIL_REF_KERNEL(and_kernel)
ANVIL_REF_KERNEL(or_kernel)
ANVIL_REF_KERNEL(range_kernel)
ANVIL_REF_KERNEL(identity_kernel)
ANVIL_REF_KERNEL(dropout_kernel)
ANVIL_REF_KERNEL(constant_kernel)
ANVIL_REF_KERNEL(flatten_kernel)
ANVIL_REF_KERNEL(reshape_kernel)
ANVIL_REF_KERNEL(transpose_kernel)
ANVIL_REF_KERNEL(concat_kernel)
ANVIL_REF_KERNEL(split_kernel)
ANVIL_REF_KERNEL(slice_kernel)
ANVIL_REF_KERNEL(squeeze_kernel)
ANVIL_REF_KERNEL(unsqueeze_kernel)
ANVIL_REF_KERNEL(pad_kernel)
ANVIL_REF_KERNEL(gather_kernel)
ANVIL_REF_KERNEL(shape_kernel)
ANVIL_REF_KERNEL(size_kernel)
ANVIL_REF_KERNEL(cast_kernel)
ANVIL_REF_KERNEL(cast_like_kernel)
ANVIL_REF_KERNEL(constant_of_shape_kernel)
ANVIL_REF_KERNEL(expand_kernel)
ANVIL_REF_KERNEL(quantize_linear_kernel)
ANVIL_REF_KERNEL(dequantize_linear_kernel)
#undef ANVIL_REF_KERNEL

void conv_check(const onnx::NodeProto& node, int64_t opset);
void max_pool_check(const onnx::NodeProto& node, int64_t opset);
void average_pool_check(const onnx::NodeProto& node, int64_t opset);
void batch_norm_check(const onnx::NodeProto& node, int64_t opset);


}  // namespace anvil::ref
