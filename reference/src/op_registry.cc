#include <algorithm>
#include <cstring>

#include "kernels_ext.h"

namespace anvil::ref {

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i)) fail(ErrorCode::kInvalidArgument, "input " + std::to_string(i) + " is required");
  return *inputs[i];
}

namespace {
/// OpSchema::any_element_type, named at its uses.
constexpr bool kAnyElementType = true;

// Every operator the executor runs: ONNX op type, kernel, input count range, output count limit,
// and an optional attribute check run at create().
// Input counts follow the widest opset up to 17 (e.g. Clip's min/max inputs from opset 11).
constexpr OpSchema kOps[] = {
    {"Conv", conv_kernel, 2, 3, 1, conv_check},
    {"MaxPool", max_pool_kernel, 1, 1, 2, max_pool_check},
    {"AveragePool", average_pool_kernel, 1, 1, 1, average_pool_check},
    {"GlobalAveragePool", global_average_pool_kernel, 1, 1, 1},
    {"BatchNormalization", batch_norm_kernel, 5, 5, 3, batch_norm_check},
    {"Gemm", gemm_kernel, 2, 3, 1},
    {"MatMul", matmul_kernel, 2, 2, 1},
    {"Add", add_kernel, 2, 2, 1},
    {"Sub", sub_kernel, 2, 2, 1},
    {"Mul", mul_kernel, 2, 2, 1},
    {"Div", div_kernel, 2, 2, 1},
    {"Relu", relu_kernel, 1, 1, 1},
    {"Clip", clip_kernel, 1, 3, 1},
    {"Identity", identity_kernel, 1, 1, 1, nullptr, kAnyElementType},
    {"Dropout", dropout_kernel, 1, 3, 2},
    {"Constant", constant_kernel, 0, 0, 1},
    {"Flatten", flatten_kernel, 1, 1, 1},
    {"Reshape", reshape_kernel, 2, 2, 1},
    {"Pow", pow_kernel, 2, 2, 1},
    {"Sqrt", sqrt_kernel, 1, 1, 1},
    {"Exp", exp_kernel, 1, 1, 1},
    {"Erf", erf_kernel, 1, 1, 1},
    {"Tanh", tanh_kernel, 1, 1, 1},
    {"Sigmoid", sigmoid_kernel, 1, 1, 1},
    {"LeakyRelu", leaky_relu_kernel, 1, 1, 1},
    {"HardSigmoid", hard_sigmoid_kernel, 1, 1, 1},
    {"HardSwish", hard_swish_kernel, 1, 1, 1},
    {"Where", where_kernel, 3, 3, 1},
    {"Neg", neg_kernel, 1, 1, 1},
    {"Abs", abs_kernel, 1, 1, 1},
    {"Sign", sign_kernel, 1, 1, 1},
    {"Reciprocal", reciprocal_kernel, 1, 1, 1},
    {"Floor", floor_kernel, 1, 1, 1},
    {"Ceil", ceil_kernel, 1, 1, 1},
    {"Round", round_kernel, 1, 1, 1},
    {"Log", log_kernel, 1, 1, 1},
    {"Softplus", softplus_kernel, 1, 1, 1},
    {"Elu", elu_kernel, 1, 1, 1},
    {"Selu", selu_kernel, 1, 1, 1},
    {"PRelu", prelu_kernel, 2, 2, 1},
    {"Min", min_kernel, 1, 1 << 20, 1},
    {"Max", max_kernel, 1, 1 << 20, 1},
    {"Equal", equal_kernel, 2, 2, 1},
    {"Less", less_kernel, 2, 2, 1},
    {"LessOrEqual", less_or_equal_kernel, 2, 2, 1},
    {"Greater", greater_kernel, 2, 2, 1},
    {"GreaterOrEqual", greater_or_equal_kernel, 2, 2, 1},
    {"Not", not_kernel, 1, 1, 1},
    {"And", and_kernel, 2, 2, 1},
    {"Or", or_kernel, 2, 2, 1},
    {"Range", range_kernel, 3, 3, 1},
    {"Softmax", softmax_kernel, 1, 1, 1},
    {"LogSoftmax", log_softmax_kernel, 1, 1, 1},
    {"LayerNormalization", layer_norm_kernel, 2, 3, 3},
    {"ReduceMean", reduce_mean_kernel, 1, 1, 1},
    {"ReduceSum", reduce_sum_kernel, 1, 2, 1},
    {"ReduceMax", reduce_max_kernel, 1, 1, 1},
    {"GlobalMaxPool", global_max_pool_kernel, 1, 1, 1},
    {"Transpose", transpose_kernel, 1, 1, 1},
    {"Concat", concat_kernel, 1, 1 << 20, 1},
    {"Split", split_kernel, 1, 2, 1 << 20},
    {"Slice", slice_kernel, 1, 5, 1},
    {"Squeeze", squeeze_kernel, 1, 2, 1},
    {"Unsqueeze", unsqueeze_kernel, 1, 2, 1},
    {"Pad", pad_kernel, 1, 3, 1},
    {"Gather", gather_kernel, 2, 2, 1},
    {"Shape", shape_kernel, 1, 1, 1, nullptr, kAnyElementType},
    {"Size", size_kernel, 1, 1, 1, nullptr, kAnyElementType},
    {"Cast", cast_kernel, 1, 1, 1, nullptr, kAnyElementType},
    {"CastLike", cast_like_kernel, 2, 2, 1, nullptr, kAnyElementType},
    {"ConstantOfShape", constant_of_shape_kernel, 1, 1, 1},
    {"Expand", expand_kernel, 2, 2, 1},
    {"QuantizeLinear", quantize_linear_kernel, 2, 3, 1},
    {"DequantizeLinear", dequantize_linear_kernel, 2, 3, 1},
    {"DynamicQuantizeLinear", dynamic_quantize_linear_kernel, 1, 1, 3},
    {"MatMulInteger", matmul_integer_kernel, 2, 4, 1},
    {"ConvInteger", conv_integer_kernel, 2, 4, 1, conv_integer_check},
    {"QLinearMatMul", qlinear_matmul_kernel, 8, 8, 1},
    {"QLinearConv", qlinear_conv_kernel, 8, 9, 1, conv_integer_check},
    {"ConvTranspose", conv_transpose_kernel, 2, 3, 1, conv_transpose_check},
    {"Resize", resize_kernel, 2, 4, 1, resize_check},
};
}  // namespace

void check_element_types(const OpSchema& op, const KernelContext& ctx) {
  if (op.any_element_type) return;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (!ctx.inputs[i]) continue;
    const DType t = ctx.inputs[i]->dtype();
    if (t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kString)
      fail(ErrorCode::kUnsupported, "input '" + ctx.node.input(static_cast<int>(i)) + "' has data type " +
                                        dtype_name(t) + ", which " + op.op_type +
                                        " does not support (convert it with Cast first)");
  }
}

std::vector<std::string> supported_operators() {
  std::vector<std::string> names;
  for (const OpSchema& op : kOps) names.emplace_back(op.op_type);
  std::sort(names.begin(), names.end());
  return names;
}

const OpSchema* find_op(const std::string& op_type) {
  for (const OpSchema& op : kOps)
    if (op_type == op.op_type) return &op;
  return nullptr;
}

}  // namespace anvil::ref
