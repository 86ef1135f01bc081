#pragma once
/// ONNX model files: loading with clear errors, saving, and TensorProto <-> Tensor conversion.
/// Uses the protobuf classes of Debian's libonnx-dev (ONNX 1.12, ONNX_NAMESPACE=onnx, ONNX_ML=1).
#include <onnx/onnx_pb.h>

#include <string>

#include "anvil/common/tensor.h"
#include "anvil/common/value.h"

namespace anvil {

/// Loads and checks a model. Errors: kNotFound (no file), kParseError (not an ONNX model, or the
/// ONNX checker rejects it; the message names the file and quotes the checker).
onnx::ModelProto load_onnx(const std::string& path);
/// Parses a model held in memory; `what` names it in errors. Runs the checker unless check is false.
onnx::ModelProto parse_onnx(const std::string& bytes, const std::string& what, bool check = true);
/// Runs onnx::checker on a model; throws kInvalidArgument quoting the checker, prefixed by `what`.
void check_onnx(const onnx::ModelProto& model, const std::string& what);
/// Serialises a model to a file.
void save_onnx(const onnx::ModelProto& model, const std::string& path);

/// Converts an initializer / test-data tensor (raw_data or typed fields). External data is rejected.
Tensor tensor_from_proto(const onnx::TensorProto& proto);
/// Converts a tensor to a TensorProto with raw_data.
onnx::TensorProto tensor_to_proto(const Tensor& tensor, const std::string& name);

/// Reads / writes a serialized TensorProto file (.pb, as in the ONNX backend test suite). A file
/// holding another proto (fields TensorProto lacks, or a segment) is kParseError naming the file.
Tensor read_tensor_pb(const std::string& path, std::string* name = nullptr);
void write_tensor_pb(const std::string& path, const Tensor& tensor, const std::string& name);

/// The opset version of the default ("" or "ai.onnx") domain; 0 when absent.
int64_t onnx_opset(const onnx::ModelProto& model);

/// The kind of value an ONNX type describes (value.h): tensor, sequence or optional. `what` names
/// the value in errors: kUnsupported for a map or sparse tensor, kInvalidArgument for no type.
ValueKind value_kind_of(const onnx::TypeProto& type, const std::string& what);

}  // namespace anvil
