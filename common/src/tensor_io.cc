#include "anvil/common/tensor_io.h"

#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx-data_pb.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "anvil/common/onnx_model.h"

namespace anvil {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(ErrorCode::kInvalidArgument, path + ": cannot open file for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fail(ErrorCode::kInvalidArgument, path + ": write failed");
}

namespace {

const char* npy_descr(DType t) {
  switch (t) {
    case DType::kFloat32: return "<f4";
    case DType::kFloat64: return "<f8";
    case DType::kFloat16: return "<f2";
    case DType::kUInt8: return "|u1";
    case DType::kInt8: return "|i1";
    case DType::kUInt16: return "<u2";
    case DType::kInt16: return "<i2";
    case DType::kInt32: return "<i4";
    case DType::kInt64: return "<i8";
    case DType::kUInt32: return "<u4";
    case DType::kUInt64: return "<u8";
    case DType::kBool: return "|b1";
    default: fail(ErrorCode::kUnsupported, std::string("cannot write dtype ") + dtype_name(t) + " to .npy");
  }
}

DType dtype_from_descr(std::string d, const std::string& what) {
  if (d.size() == 3 && d[0] == '=') d[0] = '<';
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kUInt8, DType::kInt8, DType::kUInt16, DType::kInt16,
                  DType::kInt32, DType::kInt64, DType::kUInt32, DType::kUInt64, DType::kBool, DType::kFloat16}) {
    std::string n = npy_descr(t);
    if (d == n || (n[0] == '|' && d.size() == 3 && d.substr(1) == n.substr(1))) return t;
  }
  fail(ErrorCode::kUnsupported, what + ": unsupported .npy dtype '" + d + "' (big-endian or exotic)");
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    fail(ErrorCode::kParseError, what + ": not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(ErrorCode::kParseError, what + ": truncated .npy header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    fail(ErrorCode::kParseError, what + ": unsupported .npy version " + std::to_string(major));
  }
  if (offset + header_len > bytes.size()) fail(ErrorCode::kParseError, what + ": truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']+)'")))
    fail(ErrorCode::kParseError, what + ": .npy header has no descr");
  const DType dtype = dtype_from_descr(m[1], what);
  if (std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*True")))
    fail(ErrorCode::kUnsupported, what + ": Fortran-order .npy arrays are not supported");
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    fail(ErrorCode::kParseError, what + ": .npy header has no shape");
  Shape shape;
  std::string dims = m[1];
  std::stringstream ss(dims);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      fail(ErrorCode::kParseError, what + ": bad .npy shape '" + dims + "'");
    }
  }
  // The data must be there before anything is allocated (shape_numel refuses counts that overflow).
  const size_t data_off = offset + header_len;
  int64_t numel = 0;
  try {
    numel = shape_numel(shape);
  } catch (const Error& e) {
    fail(ErrorCode::kParseError, what + ": " + e.what());
  }
  const uint64_t needed = static_cast<uint64_t>(numel) * dtype_size(dtype);
  if (bytes.size() - data_off < needed)
    fail(ErrorCode::kParseError, what + ": truncated .npy data (" + std::to_string(bytes.size() - data_off) +
                                     " bytes, shape " + shape_str(shape) + " needs " + std::to_string(needed) + ")");
  Tensor t(dtype, shape);
  if (t.nbytes()) std::memcpy(t.raw(), bytes.data() + data_off, t.nbytes());
  return t;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

std::string serialize_npy(const Tensor& t) {
  std::string shape = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape += (i ? ", " : "") + std::to_string(t.dim(i));
  shape += t.rank() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(reinterpret_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& tensor) { write_file(path, serialize_npy(tensor)); }

}  // namespace anvil

// ---- Sequence and optional values (.pb) ----

namespace anvil {

namespace {

/// A parsed proto with fields its schema does not have is a file of another kind (protobuf keeps
/// fields of the wrong wire type or number as unknown fields instead of failing).
void expect_no_unknown_fields(const google::protobuf::Message& m, const std::string& what) {
  if (!m.GetReflection()->GetUnknownFields(m).empty())
    fail(ErrorCode::kParseError, what + ": not a serialized ONNX " + m.GetDescriptor()->name() +
                                     " (fields it does not have)");
}

Value value_from_optional(const onnx::OptionalProto& p, const std::string& what);

Value value_from_sequence(const onnx::SequenceProto& p, const std::string& what) {
  expect_no_unknown_fields(p, what);
  if (p.sparse_tensor_values_size() || p.map_values_size() || p.elem_type() == onnx::SequenceProto::MAP ||
      p.elem_type() == onnx::SequenceProto::SPARSE_TENSOR)
    fail(ErrorCode::kUnsupported, what + ": sequences of maps or sparse tensors are not supported");
  const int held = p.tensor_values_size() + p.sequence_values_size() + p.optional_values_size();
  int of_type = 0;
  switch (p.elem_type()) {
    case onnx::SequenceProto::TENSOR: of_type = p.tensor_values_size(); break;
    case onnx::SequenceProto::SEQUENCE: of_type = p.sequence_values_size(); break;
    case onnx::SequenceProto::OPTIONAL: of_type = p.optional_values_size(); break;
    default: break;  // UNDEFINED: only an empty sequence
  }
  if (held != of_type)
    fail(ErrorCode::kParseError, what + ": SequenceProto elem_type " +
                                     onnx::SequenceProto::DataType_Name(p.elem_type()) + ", but " +
                                     std::to_string(held - of_type) + " of its " + std::to_string(held) +
                                     " values are of another type");
  std::vector<Value> elements;
  for (int i = 0; i < p.tensor_values_size(); ++i) {
    try {
      elements.emplace_back(tensor_from_proto(p.tensor_values(i)));
    } catch (const Error& e) {
      fail(e.code(), what + ": element " + std::to_string(i) + ": " + e.what());
    }
  }
  for (int i = 0; i < p.sequence_values_size(); ++i)
    elements.push_back(value_from_sequence(p.sequence_values(i), what + ": element " + std::to_string(i)));
  for (int i = 0; i < p.optional_values_size(); ++i)
    elements.push_back(value_from_optional(p.optional_values(i), what + ": element " + std::to_string(i)));
  return Value::sequence(std::move(elements));
}

Value value_from_optional(const onnx::OptionalProto& p, const std::string& what) {
  expect_no_unknown_fields(p, what);
  if (p.has_sparse_tensor_value() || p.has_map_value())
    fail(ErrorCode::kUnsupported, what + ": optionals holding a map or a sparse tensor are not supported");
  const int held = p.has_tensor_value() + p.has_sequence_value() + p.has_optional_value();
  const bool of_type = (p.elem_type() == onnx::OptionalProto::TENSOR && p.has_tensor_value()) ||
                       (p.elem_type() == onnx::OptionalProto::SEQUENCE && p.has_sequence_value()) ||
                       (p.elem_type() == onnx::OptionalProto::OPTIONAL && p.has_optional_value());
  if (held > 1 || (held == 1 && !of_type))
    fail(ErrorCode::kParseError, what + ": OptionalProto elem_type " +
                                     onnx::OptionalProto::DataType_Name(p.elem_type()) +
                                     " but it holds a value of another type");
  if (p.has_tensor_value()) {
    try {
      return Value::optional(tensor_from_proto(p.tensor_value()));
    } catch (const Error& e) {
      fail(e.code(), what + ": " + e.what());
    }
  }
  if (p.has_sequence_value()) return Value::optional(value_from_sequence(p.sequence_value(), what));
  if (p.has_optional_value()) return Value::optional(value_from_optional(p.optional_value(), what));
  return Value::optional();
}

onnx::OptionalProto optional_to_proto(const Value& v, const std::string& name, const std::string& what);

onnx::TensorProto unnamed(const Tensor& t) {
  onnx::TensorProto p = tensor_to_proto(t, "");
  p.clear_name();
  return p;
}

onnx::SequenceProto sequence_to_proto(const Value& v, const std::string& name, const std::string& what) {
  onnx::SequenceProto p;
  if (!name.empty()) p.set_name(name);  // nested values have no name (as ONNX writes them)
  const auto& elements = v.elements();
  const ValueKind kind = elements.empty() ? ValueKind::kTensor : elements.front().kind();
  p.set_elem_type(kind == ValueKind::kTensor     ? onnx::SequenceProto::TENSOR
                  : kind == ValueKind::kSequence ? onnx::SequenceProto::SEQUENCE
                                                 : onnx::SequenceProto::OPTIONAL);
  for (size_t i = 0; i < elements.size(); ++i) {
    const Value& e = elements[i];
    if (e.kind() != kind)
      fail(ErrorCode::kInvalidArgument, what + ": sequence element " + std::to_string(i) + " is of type " +
                                            value_kind_name(e.kind()) + ", element 0 of type " + value_kind_name(kind));
    switch (kind) {
      case ValueKind::kTensor: *p.add_tensor_values() = unnamed(e.tensor()); break;
      case ValueKind::kSequence: *p.add_sequence_values() = sequence_to_proto(e, "", what); break;
      case ValueKind::kOptional: *p.add_optional_values() = optional_to_proto(e, "", what); break;
    }
  }
  return p;
}

onnx::OptionalProto optional_to_proto(const Value& v, const std::string& name, const std::string& what) {
  onnx::OptionalProto p;
  if (!name.empty()) p.set_name(name);  // nested values have no name (as ONNX writes them)
  p.set_elem_type(onnx::OptionalProto::UNDEFINED);
  if (!v.has_value()) return p;
  const Value& c = v.contents();
  switch (c.kind()) {
    case ValueKind::kTensor:
      p.set_elem_type(onnx::OptionalProto::TENSOR);
      *p.mutable_tensor_value() = unnamed(c.tensor());
      break;
    case ValueKind::kSequence:
      p.set_elem_type(onnx::OptionalProto::SEQUENCE);
      *p.mutable_sequence_value() = sequence_to_proto(c, "", what);
      break;
    case ValueKind::kOptional:
      p.set_elem_type(onnx::OptionalProto::OPTIONAL);
      *p.mutable_optional_value() = optional_to_proto(c, "", what);
      break;
  }
  return p;
}

}  // namespace

Value read_value_pb(const std::string& path, ValueKind kind, std::string* name) {
  if (kind == ValueKind::kTensor) return read_tensor_pb(path, name);
  const std::string bytes = read_file(path);
  if (kind == ValueKind::kSequence) {
    onnx::SequenceProto p;
    if (!p.ParseFromString(bytes)) fail(ErrorCode::kParseError, path + ": not a serialized ONNX SequenceProto");
    if (name) *name = p.name();
    return value_from_sequence(p, path);
  }
  onnx::OptionalProto p;
  if (!p.ParseFromString(bytes)) fail(ErrorCode::kParseError, path + ": not a serialized ONNX OptionalProto");
  if (name) *name = p.name();
  return value_from_optional(p, path);
}

void write_value_pb(const std::string& path, const Value& value, const std::string& name) {
  std::string bytes;
  switch (value.kind()) {
    case ValueKind::kTensor: return write_tensor_pb(path, value.tensor(), name);
    case ValueKind::kSequence: sequence_to_proto(value, name, path).SerializeToString(&bytes); break;
    case ValueKind::kOptional: optional_to_proto(value, name, path).SerializeToString(&bytes); break;
  }
  write_file(path, bytes);
}

}  // namespace anvil
