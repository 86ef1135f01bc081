#include "anvil/common/tensor_io.h"

#include <fstream>
#include <regex>
#include <sstream>

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
  Tensor t(dtype, shape);
  const size_t data_off = offset + header_len;
  if (bytes.size() - data_off < t.nbytes())
    fail(ErrorCode::kParseError, what + ": truncated .npy data (" + std::to_string(bytes.size() - data_off) +
                                     " bytes, shape " + shape_str(shape) + " needs " + std::to_string(t.nbytes()) + ")");
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
