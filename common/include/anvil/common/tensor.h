#pragma once
/// Tensor: a dense, row-major, typed n-dimensional array with value semantics.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "anvil/common/float16.h"
#include "anvil/common/status.h"

namespace anvil {

/// Element types. Values follow onnx::TensorProto_DataType so conversion is a cast.
enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,    ///< std::string elements, held apart from the byte storage
  kBool = 9,
  kFloat16 = 10,   ///< IEEE binary16, stored as Float16 bit patterns
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,  ///< stored as BFloat16 bit patterns
};

/// Bytes per element; throws kUnsupported for kUndefined and kString (strings have no fixed size).
size_t dtype_size(DType t);
/// "float32", "int8", ... (numpy names).
const char* dtype_name(DType t);
/// Inverse of dtype_name; throws kInvalidArgument for an unknown name.
DType dtype_from_name(const std::string& name);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kFloat32; }
template <> constexpr DType dtype_of<double>() { return DType::kFloat64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::kInt8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::kUInt16; }
template <> constexpr DType dtype_of<int16_t>() { return DType::kInt16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kInt32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kInt64; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::kUInt32; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::kUInt64; }
template <> constexpr DType dtype_of<bool>() { return DType::kBool; }
template <> constexpr DType dtype_of<Float16>() { return DType::kFloat16; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::kBFloat16; }
template <> constexpr DType dtype_of<std::string>() { return DType::kString; }

using Shape = std::vector<int64_t>;

/// The most elements a shape may have: 2^60, so that a byte count (up to 16 bytes per element)
/// cannot overflow.
constexpr int64_t kMaxElements = int64_t{1} << 60;

/// Number of elements of a shape (1 for a scalar); throws kInvalidArgument on a negative dimension
/// and on more than kMaxElements (a damaged file's dimensions must not wrap around).
int64_t shape_numel(const Shape& shape);
/// "[1, 3, 224, 224]"
std::string shape_str(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  /// Zero-filled tensor.
  Tensor(DType dtype, Shape shape);
  /// A tensor whose bytes are left uninitialised (strings are empty), for code that writes every
  /// element before anything reads it: it saves the zero fill of Tensor(dtype, shape).
  static Tensor uninitialized(DType dtype, Shape shape);
  /// In place: the same bytes with a new shape of the same element count; one dimension may be -1.
  /// The cheap form of reshaped() when the old tensor is not needed any more.
  Tensor& reshape(Shape shape);

  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    if (static_cast<int64_t>(values.size()) != t.numel())
      fail(ErrorCode::kInvalidArgument, "Tensor::from_vector: " + std::to_string(values.size()) +
                                            " values for shape " + shape_str(t.shape()));
    if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> is packed: copy element by element
      for (size_t i = 0; i < values.size(); ++i) t.data<bool>()[i] = values[i];
    } else if constexpr (std::is_same_v<T, std::string>) {
      t.strings_ = values;
    } else if (!values.empty()) {
      std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
    }
    return t;
  }
  template <typename T>
  static Tensor scalar(T value) { return from_vector<T>({}, {value}); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  /// Size of the byte storage; 0 for kString, whose elements are std::string (data<std::string>()).
  size_t nbytes() const { return bytes_.size(); }
  bool empty() const { return dtype_ == DType::kUndefined; }

  /// Typed access; throws kInvalidArgument when T does not match dtype().
  template <typename T>
  T* data() {
    check_type(dtype_of<T>());
    if constexpr (std::is_same_v<T, std::string>) return strings_.data();
    else return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* data() const {
    check_type(dtype_of<T>());
    if constexpr (std::is_same_v<T, std::string>) return strings_.data();
    else return reinterpret_cast<const T*>(bytes_.data());
  }
  template <typename T>
  std::vector<T> to_vector() const {
    const T* p = data<T>();
    return std::vector<T>(p, p + numel_);
  }
  uint8_t* raw() { return bytes_.data(); }
  const uint8_t* raw() const { return bytes_.data(); }

  /// Same bytes, new shape with the same element count; one dimension may be -1.
  Tensor reshaped(Shape shape) const;
  /// Element-wise conversion to another dtype. Between numeric types: C++ static_cast semantics
  /// (float->int truncates). To float16: round to nearest even (float16_from_double); to
  /// bfloat16: via float, then truncation (bfloat16_from_float, as ONNX 1.12); float16 and
  /// bfloat16 convert exactly to float first. To string from float32/float64: numpy's str()
  /// (shortest digits that read back to the same value; positional for 1e-4 <= |x| < 1e16 and 0,
  /// else scientific; "nan", "inf", "-inf"), from integers: decimal. From string to float32,
  /// float64, float16 or bfloat16: C strtod syntax (e.g. "0.5", "-1e3", "NaN", "+INF") read as
  /// double, then converted. Other string conversions throw kUnsupported; a string that is not a
  /// number throws kInvalidArgument quoting it.
  Tensor cast(DType to) const;
  /// Rows [begin, end) along axis 0.
  Tensor slice0(int64_t begin, int64_t end) const;
  /// Concatenation along axis 0 of tensors of equal dtype and trailing shape.
  static Tensor concat0(const std::vector<Tensor>& parts);

  bool operator==(const Tensor& o) const {
    return dtype_ == o.dtype_ && shape_ == o.shape_ && bytes_ == o.bytes_ && strings_ == o.strings_;
  }

  /// In place: a new shape of any element count (not kString). The bytes already there stay, new
  /// ones are left uninitialised, and the storage is kept when it shrinks: a scratch tensor reused
  /// for values of several sizes allocates (and touches fresh pages) once, for the largest.
  Tensor& resize_uninitialized(Shape shape);

 private:
  void check_type(DType t) const;
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  int64_t numel_ = 0;
  /// resize() leaves new bytes uninitialised (default-initialised); Tensor(dtype, shape) zeroes.
  template <typename T>
  struct DefaultInitAllocator : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = DefaultInitAllocator<U>;
    };
    using std::allocator<T>::allocator;
    template <typename U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };
  std::vector<uint8_t, DefaultInitAllocator<uint8_t>> bytes_;
  std::vector<std::string> strings_;  ///< kString only; bytes_ is then empty
};

/// Named tensors, ordered by name (deterministic iteration).
using TensorMap = std::map<std::string, Tensor>;

}  // namespace anvil
