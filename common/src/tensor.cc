#include "anvil/common/tensor.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace anvil {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: case DType::kInt32: case DType::kUInt32: return 4;
    case DType::kUInt8: case DType::kInt8: case DType::kBool: return 1;
    case DType::kUInt16: case DType::kInt16: case DType::kFloat16: case DType::kBFloat16: return 2;
    case DType::kInt64: case DType::kFloat64: case DType::kUInt64: return 8;
    case DType::kString:
      fail(ErrorCode::kUnsupported, "dtype string has no fixed element size (strings are not byte storage)");
    case DType::kUndefined: break;
  }
  fail(ErrorCode::kUnsupported, "unsupported dtype " + std::to_string(static_cast<int>(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kUInt16: return "uint16";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kBool: return "bool";
    case DType::kFloat64: return "float64";
    case DType::kUInt32: return "uint32";
    case DType::kUInt64: return "uint64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kString: return "string";
    case DType::kUndefined: break;
  }
  return "undefined";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::kFloat32, DType::kUInt8, DType::kInt8, DType::kUInt16, DType::kInt16, DType::kInt32,
                  DType::kInt64, DType::kBool, DType::kFloat64, DType::kUInt32, DType::kUInt64, DType::kFloat16,
                  DType::kBFloat16, DType::kString})
    if (name == dtype_name(t)) return t;
  fail(ErrorCode::kInvalidArgument, "unknown dtype '" + name + "'");
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(ErrorCode::kInvalidArgument, "negative dimension in shape " + shape_str(shape));
    if (d == 0) return 0;
  }
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      fail(ErrorCode::kInvalidArgument, "shape " + shape_str(shape) + " has more than 2^60 elements");
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)), numel_(shape_numel(shape_)) {
  if (dtype_ == DType::kString)
    strings_.resize(static_cast<size_t>(numel_));
  else
    bytes_.assign(static_cast<size_t>(numel_) * dtype_size(dtype_), 0);
}

Tensor Tensor::uninitialized(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  if (dtype == DType::kString)
    t.strings_.resize(static_cast<size_t>(t.numel_));
  else
    t.bytes_.resize(static_cast<size_t>(t.numel_) * dtype_size(dtype));  // default-initialised: no fill
  return t;
}

Tensor& Tensor::resize_uninitialized(Shape shape) {
  if (dtype_ == DType::kString || dtype_ == DType::kUndefined)
    fail(ErrorCode::kInvalidArgument, "resize_uninitialized: not for a " + std::string(dtype_name(dtype_)) + " tensor");
  const int64_t numel = shape_numel(shape);
  bytes_.resize(static_cast<size_t>(numel) * dtype_size(dtype_));  // default-initialised: no fill
  shape_ = std::move(shape);
  numel_ = numel;
  return *this;
}

void Tensor::check_type(DType t) const {
  if (t != dtype_)
    fail(ErrorCode::kInvalidArgument,
         std::string("tensor holds ") + dtype_name(dtype_) + ", accessed as " + dtype_name(t));
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  t.reshape(std::move(shape));
  return t;
}

Tensor& Tensor::reshape(Shape shape) {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail(ErrorCode::kInvalidArgument, "reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0 && known != 0) shape[infer] = numel_ / known;
  if (shape_numel(shape) != numel_)
    fail(ErrorCode::kInvalidArgument, "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  shape_ = std::move(shape);
  return *this;
}

namespace {
template <typename To>
void cast_into(const Tensor& from, To* out) {
  const int64_t n = from.numel();
  switch (from.dtype()) {
#define ANVIL_CAST_CASE(DT, T) \
  case DT: { const T* p = from.data<T>(); for (int64_t i = 0; i < n; ++i) out[i] = static_cast<To>(p[i]); break; }
    ANVIL_CAST_CASE(DType::kFloat32, float)
    ANVIL_CAST_CASE(DType::kFloat64, double)
    ANVIL_CAST_CASE(DType::kUInt8, uint8_t)
    ANVIL_CAST_CASE(DType::kInt8, int8_t)
    ANVIL_CAST_CASE(DType::kUInt16, uint16_t)
    ANVIL_CAST_CASE(DType::kInt16, int16_t)
    ANVIL_CAST_CASE(DType::kInt32, int32_t)
    ANVIL_CAST_CASE(DType::kInt64, int64_t)
    ANVIL_CAST_CASE(DType::kUInt32, uint32_t)
    ANVIL_CAST_CASE(DType::kUInt64, uint64_t)
    ANVIL_CAST_CASE(DType::kBool, bool)
#undef ANVIL_CAST_CASE
    default: fail(ErrorCode::kUnsupported, std::string("cast from ") + dtype_name(from.dtype()));
  }
}

/// numpy's str() of a float32 / float64 scalar (numpy >= 1.14): the shortest digits that read back
/// to the same value, positional when 1e-4 <= |x| < 1e16 or x == 0 (with ".0" for integral
/// values), else scientific ("1e-05", "1.5e+20"); "nan", "inf", "-inf". std::to_chars gives the
/// shortest round-trip digits in either notation, with the same two-digit minimum exponent.
template <typename F>
std::string numpy_str(F x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  const double a = std::fabs(static_cast<double>(x));  // numpy compares in double
  const bool positional = a == 0 || (a >= 1e-4 && a < 1e16);
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x, positional ? std::chars_format::fixed
                                                                  : std::chars_format::scientific);
  std::string s(buf, r.ptr);
  if (positional && s.find('.') == std::string::npos) s += ".0";
  return s;
}

template <typename T>
void format_into(const Tensor& from, std::string* out) {
  const T* p = from.data<T>();
  for (int64_t i = 0; i < from.numel(); ++i) {
    if constexpr (std::is_floating_point_v<T>) out[i] = numpy_str(p[i]);
    else out[i] = std::to_string(p[i]);
  }
}

Tensor to_strings(const Tensor& from) {
  Tensor t(DType::kString, from.shape());
  std::string* out = t.data<std::string>();
  switch (from.dtype()) {
    case DType::kFloat32: format_into<float>(from, out); break;
    case DType::kFloat64: format_into<double>(from, out); break;
    case DType::kUInt8: format_into<uint8_t>(from, out); break;
    case DType::kInt8: format_into<int8_t>(from, out); break;
    case DType::kUInt16: format_into<uint16_t>(from, out); break;
    case DType::kInt16: format_into<int16_t>(from, out); break;
    case DType::kInt32: format_into<int32_t>(from, out); break;
    case DType::kInt64: format_into<int64_t>(from, out); break;
    case DType::kUInt32: format_into<uint32_t>(from, out); break;
    case DType::kUInt64: format_into<uint64_t>(from, out); break;
    default:  // bool (numpy: "True"), float16/bfloat16 (numpy prints their own shortest digits)
      fail(ErrorCode::kUnsupported, std::string("cast from ") + dtype_name(from.dtype()) + " to string");
  }
  return t;
}

/// Strings read as double with strtod (decimal or scientific, "inf", "nan", case-insensitive,
/// optional sign; out-of-range values become +-inf or 0 as strtod makes them).
Tensor parse_strings(const Tensor& from) {
  Tensor t(DType::kFloat64, from.shape());
  const std::string* in = from.data<std::string>();
  double* out = t.data<double>();
  for (int64_t i = 0; i < from.numel(); ++i) {
    const std::string& s = in[i];
    char* end = nullptr;
    out[i] = s.empty() || std::isspace(static_cast<unsigned char>(s[0])) ? 0.0 : std::strtod(s.c_str(), &end);
    if (!end || end != s.c_str() + s.size())
      fail(ErrorCode::kInvalidArgument, "cast from string: element " + std::to_string(i) + " '" + s +
                                            "' is not a number");
  }
  return t;
}
}  // namespace

Tensor Tensor::cast(DType to) const {
  if (to == dtype_) return *this;
  if (to == DType::kString) return to_strings(*this);
  if (dtype_ == DType::kString) {
    if (to != DType::kFloat32 && to != DType::kFloat64 && to != DType::kFloat16 && to != DType::kBFloat16)
      fail(ErrorCode::kUnsupported, std::string("cast from string to ") + dtype_name(to));
    return parse_strings(*this).cast(to);
  }
  if (dtype_ == DType::kFloat16 || dtype_ == DType::kBFloat16) {  // exact widening, then a cast from float
    Tensor f(DType::kFloat32, shape_);
    float* out = f.data<float>();
    if (dtype_ == DType::kFloat16) {
      const Float16* in = data<Float16>();
      for (int64_t i = 0; i < numel_; ++i) out[i] = float16_to_float(in[i]);
    } else {
      const BFloat16* in = data<BFloat16>();
      for (int64_t i = 0; i < numel_; ++i) out[i] = bfloat16_to_float(in[i]);
    }
    return f.cast(to);
  }
  if (to == DType::kFloat16) {  // every numeric value of up to 2^53 is exact in double: one rounding
    const Tensor wide = cast(DType::kFloat64);
    Tensor t(to, shape_);
    const double* in = wide.data<double>();
    Float16* out = t.data<Float16>();
    for (int64_t i = 0; i < numel_; ++i) out[i] = float16_from_double(in[i]);
    return t;
  }
  if (to == DType::kBFloat16) {  // a double is rounded to float first, then truncated
    const Tensor f = cast(DType::kFloat32);
    Tensor t(to, shape_);
    const float* in = f.data<float>();
    BFloat16* out = t.data<BFloat16>();
    for (int64_t i = 0; i < numel_; ++i) out[i] = bfloat16_from_float(in[i]);
    return t;
  }
  Tensor t(to, shape_);
  switch (to) {
    case DType::kFloat32: cast_into(*this, t.data<float>()); break;
    case DType::kFloat64: cast_into(*this, t.data<double>()); break;
    case DType::kUInt8: cast_into(*this, t.data<uint8_t>()); break;
    case DType::kInt8: cast_into(*this, t.data<int8_t>()); break;
    case DType::kUInt16: cast_into(*this, t.data<uint16_t>()); break;
    case DType::kInt16: cast_into(*this, t.data<int16_t>()); break;
    case DType::kInt32: cast_into(*this, t.data<int32_t>()); break;
    case DType::kInt64: cast_into(*this, t.data<int64_t>()); break;
    case DType::kUInt32: cast_into(*this, t.data<uint32_t>()); break;
    case DType::kUInt64: cast_into(*this, t.data<uint64_t>()); break;
    case DType::kBool: cast_into(*this, t.data<bool>()); break;
    default: fail(ErrorCode::kUnsupported, std::string("cast to ") + dtype_name(to));
  }
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  if (shape_.empty() || begin < 0 || end > shape_[0] || begin > end)
    fail(ErrorCode::kInvalidArgument, "slice0 [" + std::to_string(begin) + ", " + std::to_string(end) +
                                          ") out of range for shape " + shape_str(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  Tensor t(dtype_, s);
  if (dtype_ == DType::kString) {
    const int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
    std::copy(strings_.begin() + row * begin, strings_.begin() + row * end, t.strings_.begin());
    return t;
  }
  const size_t row = shape_[0] ? bytes_.size() / static_cast<size_t>(shape_[0]) : 0;
  if (t.nbytes()) std::memcpy(t.raw(), bytes_.data() + row * begin, t.nbytes());
  return t;
}

Tensor Tensor::concat0(const std::vector<Tensor>& parts) {
  if (parts.empty()) fail(ErrorCode::kInvalidArgument, "concat0 of no tensors");
  Shape s = parts[0].shape();
  if (s.empty()) fail(ErrorCode::kInvalidArgument, "concat0 of scalars");
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    Shape tail = p.shape();
    if (p.dtype() != parts[0].dtype() || tail.empty() ||
        !std::equal(tail.begin() + 1, tail.end(), s.begin() + 1, s.end()))
      fail(ErrorCode::kInvalidArgument, "concat0: mismatched part " + shape_str(p.shape()));
    rows += tail[0];
  }
  s[0] = rows;
  Tensor t(parts[0].dtype(), s);
  if (t.dtype_ == DType::kString) {
    auto out = t.strings_.begin();
    for (const Tensor& p : parts) out = std::copy(p.strings_.begin(), p.strings_.end(), out);
    return t;
  }
  size_t off = 0;
  for (const Tensor& p : parts) {
    if (p.nbytes()) std::memcpy(t.raw() + off, p.raw(), p.nbytes());
    off += p.nbytes();
  }
  return t;
}

}  // namespace anvil
