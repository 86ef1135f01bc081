#pragma once
/// Errors in anvil.
///
/// Library code reports failure by throwing anvil::Error (inside a library) or by returning
/// anvil::Expected<T> across a stage boundary (the narrow public headers). Only a tool's main()
/// turns an error into an exit code. Every message is one line and names what it is about:
/// the file, the ONNX node, the tensor or the register.
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace anvil {

/// Categories let callers (and the runtime's typed errors) react without parsing messages.
enum class ErrorCode {
  kInvalidArgument,  ///< a bad value from the caller: shape, dtype, option, configuration
  kNotFound,         ///< a file, tensor, input or node that does not exist
  kParseError,       ///< a file that is not what it claims (not ONNX, truncated program, bad npy)
  kUnsupported,      ///< a valid input anvil does not handle (yet): operator, attribute, dtype
  kDeviceError,      ///< the device reported a fault (DMA error, bad program, hang)
  kTimeout,          ///< a wait exceeded its deadline
  kBusy,             ///< the device or queue cannot take more work now
  kClosed,           ///< the session or device was closed
  kInternal,         ///< a broken invariant inside anvil: a bug
};

const char* to_string(ErrorCode code);

/// The one exception type of anvil. what() is the full one-line message.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

/// Throws Error(code, message). Use for bad input; use ANVIL_CHECK for internal invariants.
[[noreturn]] void fail(ErrorCode code, const std::string& message);

/// A value or an Error, returned across stage boundaries.
template <typename T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  Expected(Error error) : v_(std::move(error)) {}       // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  /// The value; throws the held Error when there is none.
  T& value() & {
    if (!ok()) throw std::get<1>(v_);
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!ok()) throw std::get<1>(v_);
    return std::get<0>(std::move(v_));
  }
  const T& value() const& {
    if (!ok()) throw std::get<1>(v_);
    return std::get<0>(v_);
  }
  const Error& error() const { return std::get<1>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Error> v_;
};

/// Runs f() and converts an anvil::Error (or any std::exception, as kInternal) into Expected.
template <typename F>
auto capture(F&& f) -> Expected<decltype(f())> {
  try {
    return f();
  } catch (const Error& e) {
    return e;
  } catch (const std::bad_alloc&) {
    return Error(ErrorCode::kInternal, "out of memory");
  } catch (const std::exception& e) {
    return Error(ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
}

}  // namespace anvil

/// Internal invariant: a failure is a bug in anvil, reported as ErrorCode::kInternal with file:line.
#define ANVIL_CHECK(cond, msg)                                                                    \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::anvil::fail(::anvil::ErrorCode::kInternal,                                                \
                    std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + (msg));       \
  } while (0)
