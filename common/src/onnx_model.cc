#include "anvil/common/onnx_model.h"

#include <google/protobuf/unknown_field_set.h>
#include <onnx/checker.h>

#include <set>

#include "anvil/common/graph_input.h"
#include "anvil/common/tensor_io.h"

namespace anvil {

onnx::ModelProto parse_onnx(const std::string& bytes, const std::string& what, bool check) {
  onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromString(bytes) || !model.has_graph())
    fail(ErrorCode::kParseError, what + ": not an ONNX model (protobuf ModelProto with a graph expected)");
  if (check) {
    try {
      check_onnx(model, what);
    } catch (const Error& e) {
      fail(ErrorCode::kParseError, e.what());
    }
  }
  return model;
}

void check_onnx(const onnx::ModelProto& model, const std::string& what) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    fail(ErrorCode::kInvalidArgument, what + ": ONNX checker: " + msg);
  }
}

onnx::ModelProto load_onnx(const std::string& path) { return parse_onnx(read_file(path), path); }

void save_onnx(const onnx::ModelProto& model, const std::string& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) fail(ErrorCode::kInternal, path + ": cannot serialise model");
  write_file(path, bytes);
}

namespace {
template <typename T, typename Field>
void copy_field(const Field& field, Tensor& t, const std::string& name) {
  if (static_cast<int64_t>(field.size()) != t.numel())
    fail(ErrorCode::kParseError, "tensor '" + name + "': " + std::to_string(field.size()) + " values for shape " +
                                     shape_str(t.shape()));
  T* out = t.data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
}
/// How many values the proto's typed field for `dtype` holds (raw_data aside).
int64_t typed_values(const onnx::TensorProto& p, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return p.float_data_size();
    case DType::kFloat64: return p.double_data_size();
    case DType::kInt64: return p.int64_data_size();
    case DType::kUInt32: case DType::kUInt64: return p.uint64_data_size();
    case DType::kString: return p.string_data_size();
    default: return p.int32_data_size();
  }
}
}  // namespace

Tensor tensor_from_proto(const onnx::TensorProto& proto) {
  const std::string& name = proto.name();
  if (proto.data_location() == onnx::TensorProto::EXTERNAL)
    fail(ErrorCode::kUnsupported, "tensor '" + name + "': external data is not supported");
  const DType dtype = static_cast<DType>(proto.data_type());
  switch (dtype) {
    case DType::kFloat32: case DType::kUInt8: case DType::kInt8: case DType::kUInt16: case DType::kInt16:
    case DType::kInt32: case DType::kInt64: case DType::kBool: case DType::kFloat64: case DType::kUInt32:
    case DType::kUInt64: case DType::kFloat16: case DType::kBFloat16: case DType::kString: break;
    default:
      fail(ErrorCode::kUnsupported, "tensor '" + name + "': unsupported data type " + std::to_string(proto.data_type()));
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  // The data must match the shape before anything is allocated: a damaged file's dims can claim
  // more than memory holds (shape_numel refuses element counts that overflow).
  int64_t n = 0;
  try {
    n = shape_numel(shape);
  } catch (const Error& e) {
    fail(ErrorCode::kParseError, "tensor '" + name + "': " + e.what());
  }
  if (proto.has_raw_data() && dtype != DType::kString &&
      (n > static_cast<int64_t>(proto.raw_data().size()) ||
       static_cast<uint64_t>(n) * dtype_size(dtype) != proto.raw_data().size()))
    fail(ErrorCode::kParseError, "tensor '" + name + "': raw_data has " + std::to_string(proto.raw_data().size()) +
                                     " bytes, shape " + shape_str(shape) + " needs " +
                                     std::to_string(static_cast<uint64_t>(n) * dtype_size(dtype)));
  if (!proto.has_raw_data() && typed_values(proto, dtype) != n)
    fail(ErrorCode::kParseError, "tensor '" + name + "': " + std::to_string(typed_values(proto, dtype)) +
                                     " values for shape " + shape_str(shape));
  Tensor t(dtype, shape);
  if (dtype == DType::kString) {  // string_data only: raw_data has no string encoding
    if (proto.has_raw_data()) fail(ErrorCode::kParseError, "tensor '" + name + "': string tensor with raw_data");
    copy_field<std::string>(proto.string_data(), t, name);
    return t;
  }
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != t.nbytes())
      fail(ErrorCode::kParseError, "tensor '" + name + "': raw_data has " + std::to_string(proto.raw_data().size()) +
                                       " bytes, shape " + shape_str(shape) + " needs " + std::to_string(t.nbytes()));
    if (t.nbytes()) std::memcpy(t.raw(), proto.raw_data().data(), t.nbytes());
    return t;
  }
  switch (dtype) {
    case DType::kFloat32: copy_field<float>(proto.float_data(), t, name); break;
    case DType::kFloat64: copy_field<double>(proto.double_data(), t, name); break;
    case DType::kInt64: copy_field<int64_t>(proto.int64_data(), t, name); break;
    case DType::kUInt32: case DType::kUInt64: copy_field<uint64_t>(proto.uint64_data(), t, name); break;
    case DType::kInt32: copy_field<int32_t>(proto.int32_data(), t, name); break;
    case DType::kInt8: copy_field<int8_t>(proto.int32_data(), t, name); break;
    case DType::kUInt8: copy_field<uint8_t>(proto.int32_data(), t, name); break;
    case DType::kInt16: copy_field<int16_t>(proto.int32_data(), t, name); break;
    case DType::kUInt16: copy_field<uint16_t>(proto.int32_data(), t, name); break;
    case DType::kBool: copy_field<bool>(proto.int32_data(), t, name); break;
    // float16 / bfloat16: the bit pattern in the low 16 bits of each int32_data value (onnx.proto)
    case DType::kFloat16: case DType::kBFloat16: {
      const auto& field = proto.int32_data();
      if (static_cast<int64_t>(field.size()) != t.numel())
        fail(ErrorCode::kParseError, "tensor '" + name + "': " + std::to_string(field.size()) +
                                         " values for shape " + shape_str(t.shape()));
      for (int i = 0; i < field.size(); ++i) {
        const auto bits = static_cast<uint16_t>(field.Get(i));
        std::memcpy(t.raw() + 2 * static_cast<size_t>(i), &bits, 2);
      }
      break;
    }
    default: break;
  }
  return t;
}

onnx::TensorProto tensor_to_proto(const Tensor& tensor, const std::string& name) {
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(static_cast<int32_t>(tensor.dtype()));
  for (int64_t d : tensor.shape()) p.add_dims(d);
  if (tensor.dtype() == DType::kString) {
    for (int64_t i = 0; i < tensor.numel(); ++i) p.add_string_data(tensor.data<std::string>()[i]);
    return p;
  }
  p.set_raw_data(std::string(reinterpret_cast<const char*>(tensor.raw()), tensor.nbytes()));
  return p;
}

Tensor read_tensor_pb(const std::string& path, std::string* name) {
  onnx::TensorProto p;
  const std::string bytes = read_file(path);
  if (!p.ParseFromString(bytes)) fail(ErrorCode::kParseError, path + ": not a serialized ONNX TensorProto");
  // Protobuf keeps fields of another schema as unknown fields; a SequenceProto's tensors parse as
  // the segment (unsupported anyway): both mean another proto, e.g. a SequenceProto or OptionalProto.
  if (p.has_segment() || !p.GetReflection()->GetUnknownFields(p).empty())
    fail(ErrorCode::kParseError, path + ": not a serialized ONNX TensorProto (fields it does not have, or a segment)");
  if (name) *name = p.name();
  try {
    return tensor_from_proto(p);
  } catch (const Error& e) {
    fail(e.code(), path + ": " + e.what());
  }
}

void write_tensor_pb(const std::string& path, const Tensor& tensor, const std::string& name) {
  std::string bytes;
  tensor_to_proto(tensor, name).SerializeToString(&bytes);
  write_file(path, bytes);
}

int64_t onnx_opset(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  return 0;
}

ValueKind value_kind_of(const onnx::TypeProto& type, const std::string& what) {
  switch (type.value_case()) {
    case onnx::TypeProto::kTensorType: return ValueKind::kTensor;
    case onnx::TypeProto::kSequenceType: return ValueKind::kSequence;
    case onnx::TypeProto::kOptionalType: return ValueKind::kOptional;
    case onnx::TypeProto::VALUE_NOT_SET: fail(ErrorCode::kInvalidArgument, what + ": has no type");
    default: break;
  }
  const char* kind = type.has_map_type() ? "map" : type.has_sparse_tensor_type() ? "sparse tensor" : "opaque";
  fail(ErrorCode::kUnsupported, what + ": data type " + kind + " is not supported (tensor, sequence or optional only)");
}

std::string InputShape::str() const {
  if (!has_shape) return "[unknown]";
  std::string s;
  for (int64_t d : dims) s += (s.empty() ? "" : ", ") + (d < 0 ? std::string("?") : std::to_string(d));
  return "[" + s + "]";
}

std::vector<InputShape> fed_inputs(const onnx::ModelProto& model) {
  std::set<std::string> initializers;
  for (const auto& t : model.graph().initializer()) initializers.insert(t.name());
  std::vector<InputShape> out;
  for (const onnx::ValueInfoProto& vi : model.graph().input()) {
    if (initializers.count(vi.name())) continue;
    out.push_back(input_shape(vi));
  }
  return out;
}

InputShape input_shape(const onnx::ValueInfoProto& vi) {
  InputShape in;
  in.name = vi.name();
  const auto& tt = vi.type().tensor_type();
  if (vi.type().has_tensor_type() && tt.has_shape()) {
    in.has_shape = true;
    for (const auto& d : tt.shape().dim()) in.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return in;
}

InputShape fed_input(const onnx::ModelProto& model, const std::string& name) {
  for (InputShape& in : fed_inputs(model))
    if (in.name == name) return in;
  fail(ErrorCode::kInvalidArgument, "the model has no graph input '" + name + "'");
}

}  // namespace anvil
