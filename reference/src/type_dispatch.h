#pragma once
/// Runs a kernel body templated on the element type for the element type of a runtime tensor.
#include <string>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// The element types a kernel visited with visit_numeric accepts.
enum class Elements {
  kNumeric,         ///< float32/64 and every integer type
  kFloat,           ///< float32 and float64
  kNumericAndBool,  ///< kNumeric and bool
};

/// Returns f(T{}) with T the C++ type of `dtype` when `dtype` is in kAccepted (only those types are
/// instantiated); otherwise throws
/// kUnsupported naming the type (the message says "dtype", so the conformance suite lists it as a
/// data-type gap). One switch for every kernel, so the types an operator takes are stated once.
template <Elements kAccepted, typename F>
decltype(auto) visit_numeric(DType dtype, F f) {
  constexpr bool kIntegers = kAccepted != Elements::kFloat;
  switch (dtype) {
    case DType::kFloat32: return f(float{});
    case DType::kFloat64: return f(double{});
    case DType::kInt8: if constexpr (kIntegers) return f(int8_t{}); break;
    case DType::kUInt8: if constexpr (kIntegers) return f(uint8_t{}); break;
    case DType::kInt16: if constexpr (kIntegers) return f(int16_t{}); break;
    case DType::kUInt16: if constexpr (kIntegers) return f(uint16_t{}); break;
    case DType::kInt32: if constexpr (kIntegers) return f(int32_t{}); break;
    case DType::kUInt32: if constexpr (kIntegers) return f(uint32_t{}); break;
    case DType::kInt64: if constexpr (kIntegers) return f(int64_t{}); break;
    case DType::kUInt64: if constexpr (kIntegers) return f(uint64_t{}); break;
    case DType::kBool: if constexpr (kAccepted == Elements::kNumericAndBool) return f(bool{}); break;
    default: break;
  }
  fail(ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(dtype) + " is not supported");
}

}  // namespace anvil::ref
