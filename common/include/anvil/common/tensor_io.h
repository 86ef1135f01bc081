#pragma once
/// Tensor files: NumPy .npy (format 1.0/2.0/3.0, little endian, C order) and ONNX TensorProto .pb.
#include <string>

#include "anvil/common/tensor.h"

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

}  // namespace anvil
