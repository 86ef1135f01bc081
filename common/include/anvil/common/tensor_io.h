#pragma once
/// Tensor files: NumPy .npy (format 1.0/2.0/3.0, little endian, C order) and ONNX TensorProto .pb.
#include <string>

#include "anvil/common/tensor.h"
#include "anvil/common/value.h"

namespace anvil {

/// Reads a .npy file. Errors (kNotFound, kParseError, kUnsupported) name the file.
Tensor read_npy(const std::string& path);
/// Writes a .npy file (format 1.0). Throws kInvalidArgument naming the file when it cannot be written.
void write_npy(const std::string& path, const Tensor& tensor);

/// Parses .npy bytes held in memory; `what` names the source in error messages.
Tensor parse_npy(const std::string& bytes, const std::string& what);
/// Serialises a tensor to .npy bytes.
std::string serialize_npy(const Tensor& tensor);

/// Reads a whole file; throws kNotFound naming the path when it cannot be opened.
std::string read_file(const std::string& path);
/// Writes a whole file; throws kInvalidArgument naming the path when it cannot be written.
void write_file(const std::string& path, const std::string& bytes);

/// Reads a value file (.pb, as in the ONNX backend test suite) holding a `kind` value: an ONNX
/// TensorProto (kTensor, as read_tensor_pb in onnx_model.h), SequenceProto (kSequence) or
/// OptionalProto (kOptional). The file does not say which proto it holds: the caller's kind comes
/// from the graph's type. Nested sequences and optionals follow the file's elem_type; an empty
/// optional is one without a value, whatever its elem_type. `name` receives the proto's name.
/// Errors name the file: kNotFound; kParseError (not that proto, unknown fields, an elem_type that
/// disagrees with the values held); kUnsupported (map or sparse tensor values).
Value read_value_pb(const std::string& path, ValueKind kind, std::string* name = nullptr);
/// Writes a value as the proto of its kind (TensorProto, SequenceProto, OptionalProto), named
/// `name`; an empty sequence is written with elem_type TENSOR, an empty optional with UNDEFINED.
/// Throws kInvalidArgument naming the file for a sequence whose elements differ in kind, or when
/// the file cannot be written.
void write_value_pb(const std::string& path, const Value& value, const std::string& name);

}  // namespace anvil
