#include "graph_check.h"

#include <algorithm>
#include <set>

#include "attributes.h"

namespace anvil::ref {

namespace {

/// Operators whose listed inputs share one type T, which is also the output's type. Pow, BatchNormalization and
/// LayerNormalization are absent on purpose: their inputs may have different types in opsets <= 17.
struct SameType {
  const char* op;
  std::vector<int> inputs;  ///< -1: every input
};
const SameType kSameType[] = {
    {"Add", {-1}},    {"Sub", {-1}},           {"Mul", {-1}},       {"Div", {-1}},        {"MatMul", {-1}},
    {"Gemm", {-1}},   {"Conv", {-1}},          {"ConvTranspose", {-1}}, {"Concat", {-1}}, {"Where", {1, 2}},
    {"Clip", {-1}},   {"PRelu", {-1}},         {"Min", {-1}},       {"Max", {-1}},        {"Equal", {-1}},
    {"Less", {-1}},   {"LessOrEqual", {-1}},   {"Greater", {-1}},   {"GreaterOrEqual", {-1}}, {"And", {-1}},
    {"Or", {-1}},     {"Range", {-1}},
};

/// Operators whose output 0 has the type of input 0.
const std::set<std::string> kLikeInput0 = {
    "Reshape",     "Flatten",            "Squeeze",        "Unsqueeze",     "Gather",
    "Expand",      "Split",              "ReduceMean",     "ReduceSum",     "ReduceMax",
    "Relu",        "LeakyRelu",          "Sigmoid",        "Tanh",          "Exp",
    "Sqrt",        "Erf",                "HardSigmoid",    "HardSwish",     "Softmax",
    "LogSoftmax",  "Identity",           "Dropout",        "Clip",          "Pad",
    "Slice",       "Transpose",          "Resize",         "BatchNormalization", "LayerNormalization",
    "MaxPool",     "AveragePool",        "GlobalAveragePool", "GlobalMaxPool", "Conv",
    "ConvTranspose", "Pow",              "Neg",            "Abs",           "Sign",
    "Reciprocal",  "Floor",              "Ceil",           "Round",         "Log",
    "Softplus",    "Elu",                "Selu",           "PRelu",         "Not"};
/// Of those, the ones that keep input 0's rank.
const std::set<std::string> kKeepsRank = {
    "Relu",       "LeakyRelu",   "Sigmoid",     "Tanh",          "Exp",     "Sqrt",          "Erf",
    "HardSigmoid", "HardSwish",  "Softmax",     "LogSoftmax",    "Identity", "Dropout",      "Clip",
    "Pad",        "Slice",       "Transpose",   "Resize",        "BatchNormalization", "LayerNormalization",
    "MaxPool",    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Conv", "ConvTranspose", "Cast", "CastLike",
    "QuantizeLinear", "DequantizeLinear", "ConvInteger", "QLinearConv", "Neg", "Abs", "Sign", "Reciprocal", "Floor",
    "Ceil",       "Round",       "Log",         "Softplus",      "Elu",     "Selu",          "PRelu",   "Not"};
/// Operators with numpy-broadcast operands: the output's rank is the largest input rank.
const std::set<std::string> kBroadcasts = {"Add",  "Sub",  "Mul",         "Div",     "Where",          "Min",
                                           "Max",  "Equal", "Less",       "LessOrEqual", "Greater", "GreaterOrEqual",
                                           "And",  "Or"};
/// Operators whose output is bool.
const std::set<std::string> kGivesBool = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or"};

std::string input_name(const onnx::NodeProto& node, int i) { return "'" + node.input(i) + "'"; }

class Checker {
 public:
  explicit Checker(std::map<std::string, ValueFacts> facts) : facts_(std::move(facts)) {}

  void check(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    DType out_type = DType::kUndefined;
    int64_t out_rank = -1;
    for (const SameType& rule : kSameType)
      if (op == rule.op) out_type = same_type(node, rule.inputs);
    check_ranks(node);
    if (kLikeInput0.count(op) && node.input_size() > 0) out_type = fact(node, 0).dtype;
    if (kKeepsRank.count(op) && node.input_size() > 0) out_rank = fact(node, 0).rank;
    if (op == "Gemm" || op == "Flatten") out_rank = 2;
    if (op == "Shape") out_type = DType::kInt64, out_rank = 1;
    if (op == "Size") out_type = DType::kInt64, out_rank = 0;
    if (op == "Range") out_rank = 1;
    if (kGivesBool.count(op)) out_type = DType::kBool;
    if (op == "Cast") out_type = static_cast<DType>(attr_int(node, "to", 0));
    if (op == "CastLike") out_type = fact(node, 1).dtype;
    if (op == "DequantizeLinear") out_type = DType::kFloat32;
    if (op == "Constant" || op == "ConstantOfShape") out_type = constant_type(node);
    if (op == "MatMulInteger" || op == "ConvInteger") out_type = DType::kInt32;
    if (op == "QuantizeLinear") out_type = node.input_size() > 2 && !node.input(2).empty() ? fact(node, 2).dtype
                                                                                           : DType::kUInt8;
    if (op == "QLinearConv" || op == "QLinearMatMul") out_type = node.input_size() > 7 ? fact(node, 7).dtype : out_type;
    if (kBroadcasts.count(op)) out_rank = broadcast_rank(node);
    // A type anvil's Tensor lacks (float16, string, ...) stays unknown: the kernels reject it.
    if (std::string(dtype_name(out_type)) == "undefined") out_type = DType::kUndefined;
    if (node.output_size() > 0 && !node.output(0).empty()) facts_[node.output(0)] = {out_type, out_rank};
    if (op == "DynamicQuantizeLinear") {
      const DType types[] = {DType::kUInt8, DType::kFloat32, DType::kUInt8};
      for (int i = 0; i < node.output_size() && i < 3; ++i)
        facts_[node.output(i)] = {types[i], i == 0 ? fact(node, 0).rank : 0};
    }
  }

 private:
  ValueFacts fact(const onnx::NodeProto& node, int i) const {
    if (i >= node.input_size() || node.input(i).empty()) return {};
    auto it = facts_.find(node.input(i));
    return it == facts_.end() ? ValueFacts{} : it->second;
  }

  /// The type of Constant's value (value_float(s): float32, value_int(s): int64) and of
  /// ConstantOfShape's value (float32 when absent).
  static DType constant_type(const onnx::NodeProto& node) {
    for (const auto& a : node.attribute()) {
      if (a.name() == "value") return static_cast<DType>(a.t().data_type());
      if (a.name() == "value_float" || a.name() == "value_floats") return DType::kFloat32;
      if (a.name() == "value_int" || a.name() == "value_ints") return DType::kInt64;
    }
    return node.op_type() == "ConstantOfShape" ? DType::kFloat32 : DType::kUndefined;
  }

  /// The one type of the listed inputs (every input for -1); throws when two known types differ.
  DType same_type(const onnx::NodeProto& node, const std::vector<int>& which) {
    std::vector<int> inputs;
    if (!which.empty() && which[0] == -1)
      for (int i = 0; i < node.input_size(); ++i) inputs.push_back(i);
    else
      inputs = which;
    DType type = DType::kUndefined;
    int first = -1;
    for (int i : inputs) {
      const DType t = fact(node, i).dtype;
      if (t == DType::kUndefined) continue;
      if (type == DType::kUndefined) {
        type = t;
        first = i;
      } else if (t != type) {
        fail(ErrorCode::kInvalidArgument, node_label(node) + ": input " + input_name(node, i) + " is " + dtype_name(t) +
                                              " but input " + input_name(node, first) + " is " + dtype_name(type) +
                                              "; " + node.op_type() + " needs one element type");
      }
    }
    return type;
  }

  int64_t broadcast_rank(const onnx::NodeProto& node) const {
    int64_t rank = 0;
    for (int i = 0; i < node.input_size(); ++i) {
      const int64_t r = fact(node, i).rank;
      if (r < 0) return -1;
      rank = std::max(rank, r);
    }
    return rank;
  }

  /// Input i has a rank in [min_rank, max_rank] (max_rank -1: no upper bound) when its rank is known.
  void expect_rank(const onnx::NodeProto& node, int i, const char* what, int64_t min_rank, int64_t max_rank) const {
    const int64_t r = fact(node, i).rank;
    if (r < 0 || (r >= min_rank && (max_rank < 0 || r <= max_rank))) return;
    const std::string want = max_rank < 0           ? "at least " + std::to_string(min_rank)
                             : min_rank == max_rank ? std::to_string(min_rank)
                                                    : std::to_string(min_rank) + " to " + std::to_string(max_rank);
    fail(ErrorCode::kInvalidArgument, node_label(node) + ": " + what + " " + input_name(node, i) + " has rank " +
                                          std::to_string(r) + ", expected " + want);
  }

  /// The input of a sliding window: N x C x D1 [x D2 [x D3]]. More than three spatial dimensions
  /// are valid ONNX the executor does not implement (kUnsupported).
  void expect_window_input(const onnx::NodeProto& node) const {
    const int64_t r = fact(node, 0).rank;
    if (r > 5)
      fail(ErrorCode::kUnsupported, node_label(node) + ": X " + input_name(node, 0) + " has rank " + std::to_string(r) +
                                        "; windows of more than 3 spatial dimensions are not supported");
    expect_rank(node, 0, "X", 3, 5);
  }

  /// kernel_shape, when given, has one value per spatial dimension of input 0.
  void expect_kernel_shape(const onnx::NodeProto& node) const {
    const int64_t r = fact(node, 0).rank;
    const auto* k = find_attribute(node, "kernel_shape");
    if (r < 3 || !k || k->ints_size() == r - 2) return;
    fail(ErrorCode::kInvalidArgument, node_label(node) + ": attribute 'kernel_shape' has " +
                                          std::to_string(k->ints_size()) + " values, input " + input_name(node, 0) +
                                          " of rank " + std::to_string(r) + " needs " + std::to_string(r - 2));
  }

  /// X of rank 3 to 5 (1-D to 3-D windows) and W of X's rank.
  void expect_conv(const onnx::NodeProto& node, int w_input) const {
    expect_window_input(node);
    const int64_t rx = fact(node, 0).rank, rw = fact(node, w_input).rank;
    if (rx >= 0 && rw >= 0 && rx != rw)
      fail(ErrorCode::kInvalidArgument, node_label(node) + ": W " + input_name(node, w_input) + " has rank " +
                                            std::to_string(rw) + " but X " + input_name(node, 0) + " has rank " +
                                            std::to_string(rx));
    expect_kernel_shape(node);
  }

  void check_ranks(const onnx::NodeProto& node) const {
    const std::string& op = node.op_type();
    if (op == "Conv" || op == "ConvTranspose" || op == "ConvInteger") expect_conv(node, 1);
    if (op == "QLinearConv") expect_conv(node, 3);
    if (op == "MaxPool" || op == "AveragePool") {
      expect_window_input(node);
      expect_kernel_shape(node);
    }
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") expect_rank(node, 0, "X", 3, -1);
    if (op == "Gemm") {
      expect_rank(node, 0, "A", 2, 2);
      expect_rank(node, 1, "B", 2, 2);
      expect_rank(node, 2, "C", 0, 2);
    }
  }

  std::map<std::string, ValueFacts> facts_;
};

}  // namespace

void check_types_and_ranks(const std::vector<const onnx::NodeProto*>& nodes, std::map<std::string, ValueFacts> facts) {
  Checker checker(std::move(facts));
  for (const onnx::NodeProto* node : nodes) checker.check(*node);
}

}  // namespace anvil::ref
