#pragma once
/// Value: what an ONNX graph input or output holds beyond a tensor. ONNX's type system
/// (onnx::TypeProto) has tensors, sequences, optionals and maps; a Value is a tensor, a sequence
/// of values (in practice tensors: sequence(tensor(float))) or an optional that is empty or holds
/// one value (a tensor or a sequence). Maps and sparse tensors are not represented: files and models
/// that hold one are rejected with ErrorCode::kUnsupported where they are read.
#include <map>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil {

enum class ValueKind { kTensor, kSequence, kOptional };

/// "tensor", "sequence", "optional".
const char* value_kind_name(ValueKind kind);

class Value {
 public:
  /// A tensor value holding an empty Tensor().
  Value() = default;
  /// A tensor value. Implicit: wherever a Value is expected, a Tensor is one.
  Value(Tensor tensor) : tensor_(std::move(tensor)) {}  // NOLINT(google-explicit-constructor)
  /// A sequence of values, in order (ONNX sequences hold elements of one type; not checked here).
  static Value sequence(std::vector<Value> elements);
  /// An optional: empty, or holding `contents`.
  static Value optional();
  static Value optional(Value contents);

  ValueKind kind() const { return kind_; }
  bool is_tensor() const { return kind_ == ValueKind::kTensor; }
  /// The tensor; throws kInvalidArgument naming the kind when this is not a tensor value.
  const Tensor& tensor() const;
  Tensor& tensor();
  /// A sequence's elements; throws kInvalidArgument when this is not a sequence.
  const std::vector<Value>& elements() const;
  /// An optional holds a value; throws kInvalidArgument when this is not an optional.
  bool has_value() const;
  /// An optional's contents; throws kInvalidArgument when this is not an optional or it is empty.
  const Value& contents() const;

  /// "float32[1, 2]", "sequence(2)[float32[1, 2], float32[3]]", "optional(empty)",
  /// "optional(float32[5])": one line, for messages and tool output.
  std::string describe() const;

  bool operator==(const Value& o) const {
    return kind_ == o.kind_ && tensor_ == o.tensor_ && elements_ == o.elements_;
  }
  bool operator!=(const Value& o) const { return !(*this == o); }

 private:
  ValueKind kind_ = ValueKind::kTensor;
  Tensor tensor_;               ///< kTensor
  std::vector<Value> elements_;  ///< kSequence: the elements; kOptional: none (empty) or the contents
};

/// Named values, ordered by name (deterministic iteration), as TensorMap.
using ValueMap = std::map<std::string, Value>;

}  // namespace anvil
