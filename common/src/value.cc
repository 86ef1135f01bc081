#include "anvil/common/value.h"

namespace anvil {

const char* value_kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::kTensor: return "tensor";
    case ValueKind::kSequence: return "sequence";
    case ValueKind::kOptional: return "optional";
  }
  return "unknown";
}

Value Value::sequence(std::vector<Value> elements) {
  Value v;
  v.kind_ = ValueKind::kSequence;
  v.elements_ = std::move(elements);
  return v;
}

Value Value::optional() {
  Value v;
  v.kind_ = ValueKind::kOptional;
  return v;
}

Value Value::optional(Value contents) {
  Value v = optional();
  v.elements_.push_back(std::move(contents));
  return v;
}

namespace {
[[noreturn]] void wrong_kind(ValueKind want, ValueKind got) {
  fail(ErrorCode::kInvalidArgument, std::string("value: expected type ") + value_kind_name(want) + ", got type " +
                                        value_kind_name(got));
}
}  // namespace

const Tensor& Value::tensor() const {
  if (kind_ != ValueKind::kTensor) wrong_kind(ValueKind::kTensor, kind_);
  return tensor_;
}

Tensor& Value::tensor() {
  if (kind_ != ValueKind::kTensor) wrong_kind(ValueKind::kTensor, kind_);
  return tensor_;
}

const std::vector<Value>& Value::elements() const {
  if (kind_ != ValueKind::kSequence) wrong_kind(ValueKind::kSequence, kind_);
  return elements_;
}

bool Value::has_value() const {
  if (kind_ != ValueKind::kOptional) wrong_kind(ValueKind::kOptional, kind_);
  return !elements_.empty();
}

const Value& Value::contents() const {
  if (!has_value()) fail(ErrorCode::kInvalidArgument, "value: the optional is empty");
  return elements_.front();
}

std::string Value::describe() const {
  switch (kind_) {
    case ValueKind::kTensor: return std::string(dtype_name(tensor_.dtype())) + shape_str(tensor_.shape());
    case ValueKind::kSequence: {
      std::string s = "sequence(" + std::to_string(elements_.size()) + ")[";
      for (size_t i = 0; i < elements_.size(); ++i) s += (i ? ", " : "") + elements_[i].describe();
      return s + "]";
    }
    case ValueKind::kOptional: return "optional(" + (elements_.empty() ? "empty" : elements_.front().describe()) + ")";
  }
  return "unknown";
}

}  // namespace anvil
