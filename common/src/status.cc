#include "anvil/common/status.h"

namespace anvil {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kParseError: return "parse error";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kDeviceError: return "device error";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kClosed: return "closed";
    case ErrorCode::kInternal: return "internal error";
  }
  return "error";
}

void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace anvil
