#include "anvil/isa/program.h"

#include <zlib.h>

#include <cstddef>

#include "anvil/common/tensor_io.h"

namespace anvil::isa {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kNCHW: return "NCHW";
    case Layout::kNC: return "NC";
    case Layout::kAny: return "any";
  }
  return "?";
}

uint32_t crc32(const void* data, size_t n) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(c);
}

namespace {

/// Header fields, in file order. 64 bytes in all.
struct Header {
  uint32_t magic;
  uint16_t format_version;
  uint16_t isa_version;
  uint8_t num_pes;
  uint8_t reserved0[3];
  uint32_t batch;
  uint64_t scratch_bytes;
  uint64_t io_bytes;
  uint64_t sram_bytes;
  uint32_t num_instructions;
  uint32_t tensors_bytes;
  uint32_t constants_bytes;
  uint32_t metadata_bytes;
  uint32_t crc;  ///< CRC-32 of the whole file with this field zeroed
  uint32_t reserved1;
};
static_assert(sizeof(Header) == kProgramHeaderBytes, "program header is 64 bytes");

class Writer {
 public:
  template <typename T>
  void put(T v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void put_str(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const std::string& s, size_t begin, size_t end, std::string what) : s_(s), pos_(begin), end_(end), what_(std::move(what)) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_str() {
    const uint32_t n = get<uint32_t>();
    need(n);
    std::string v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  bool done() const { return pos_ == end_; }

 private:
  void need(size_t n) {
    if (end_ - pos_ < n) fail(ErrorCode::kParseError, what_ + ": truncated tensor descriptor section");
  }
  const std::string& s_;
  size_t pos_, end_;
  std::string what_;
};

void write_desc(Writer& w, const TensorDesc& d) {
  w.put_str(d.name);
  w.put<int32_t>(static_cast<int32_t>(d.dtype));
  w.put<uint8_t>(static_cast<uint8_t>(d.layout));
  w.put<uint32_t>(static_cast<uint32_t>(d.shape.size()));
  for (int64_t x : d.shape) w.put<int64_t>(x);
  w.put<float>(d.scale);
  w.put<int32_t>(d.zero_point);
  w.put<uint64_t>(d.io_offset);
}

TensorDesc read_desc(Reader& r, const std::string& what) {
  TensorDesc d;
  d.name = r.get_str();
  d.dtype = static_cast<DType>(r.get<int32_t>());
  d.layout = static_cast<Layout>(r.get<uint8_t>());
  const uint32_t rank = r.get<uint32_t>();
  if (rank > 8) fail(ErrorCode::kParseError, what + ": tensor '" + d.name + "' has rank " + std::to_string(rank));
  for (uint32_t i = 0; i < rank; ++i) d.shape.push_back(r.get<int64_t>());
  d.scale = r.get<float>();
  d.zero_point = r.get<int32_t>();
  d.io_offset = r.get<uint64_t>();
  try {
    (void)d.bytes();
  } catch (const Error&) {
    fail(ErrorCode::kParseError, what + ": tensor '" + d.name + "' has a bad dtype or shape");
  }
  return d;
}

}  // namespace

std::string Program::serialize() const {
  Writer tensors;
  tensors.put<uint32_t>(static_cast<uint32_t>(inputs.size()));
  for (const auto& d : inputs) write_desc(tensors, d);
  tensors.put<uint32_t>(static_cast<uint32_t>(outputs.size()));
  for (const auto& d : outputs) write_desc(tensors, d);

  std::string body;
  body.append(reinterpret_cast<const char*>(instructions.data()), instructions.size() * sizeof(Instruction));
  body += tensors.str();
  body.append(reinterpret_cast<const char*>(constants.data()), constants.size());
  body += metadata;

  Header h{};
  h.magic = kProgramMagic;
  h.format_version = kProgramFormatVersion;
  h.isa_version = kIsaVersion;
  h.num_pes = num_pes;
  h.batch = batch;
  h.scratch_bytes = scratch_bytes;
  h.io_bytes = io_bytes;
  h.sram_bytes = sram_bytes;
  h.num_instructions = static_cast<uint32_t>(instructions.size());
  h.tensors_bytes = static_cast<uint32_t>(tensors.str().size());
  h.constants_bytes = static_cast<uint32_t>(constants.size());
  h.metadata_bytes = static_cast<uint32_t>(metadata.size());
  h.crc = 0;
  std::string out = std::string(reinterpret_cast<const char*>(&h), sizeof h) + body;
  h.crc = crc32(out.data(), out.size());
  std::memcpy(out.data() + offsetof(Header, crc), &h.crc, sizeof h.crc);
  return out;
}

Program Program::parse(const std::string& bytes, const std::string& what) {
  if (bytes.size() < sizeof(Header)) fail(ErrorCode::kParseError, what + ": not an anvil program (too short for a header)");
  Header h;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.magic != kProgramMagic) fail(ErrorCode::kParseError, what + ": not an anvil program (bad magic)");
  if (h.format_version != kProgramFormatVersion)
    fail(ErrorCode::kParseError, what + ": program format version " + std::to_string(h.format_version) +
                                     ", this anvil reads version " + std::to_string(kProgramFormatVersion));
  // Each ISA version only adds opcodes, so every earlier version's programs are valid here.
  if (h.isa_version == 0 || h.isa_version > kIsaVersion)
    fail(ErrorCode::kParseError, what + ": program targets ISA version " + std::to_string(h.isa_version) +
                                     ", this anvil implements versions 1 to " + std::to_string(kIsaVersion));
  const uint64_t expected = sizeof(Header) + static_cast<uint64_t>(h.num_instructions) * sizeof(Instruction) +
                            h.tensors_bytes + h.constants_bytes + h.metadata_bytes;
  if (bytes.size() != expected)
    fail(ErrorCode::kParseError, what + ": program is " + std::to_string(bytes.size()) + " bytes, header says " +
                                     std::to_string(expected) + " (truncated or corrupt)");
  std::string zeroed = bytes;
  std::memset(zeroed.data() + offsetof(Header, crc), 0, sizeof h.crc);
  if (crc32(zeroed.data(), zeroed.size()) != h.crc) fail(ErrorCode::kParseError, what + ": program checksum mismatch (corrupt file)");
  if (h.num_pes < 1 || h.num_pes > 2) fail(ErrorCode::kParseError, what + ": program for " + std::to_string(h.num_pes) + " PEs");

  Program p;
  p.num_pes = h.num_pes;
  p.batch = h.batch;
  p.scratch_bytes = h.scratch_bytes;
  p.io_bytes = h.io_bytes;
  p.sram_bytes = h.sram_bytes;
  size_t pos = sizeof(Header);
  p.instructions.resize(h.num_instructions);
  std::memcpy(p.instructions.data(), bytes.data() + pos, h.num_instructions * sizeof(Instruction));
  pos += h.num_instructions * sizeof(Instruction);
  for (size_t i = 0; i < p.instructions.size(); ++i)
    if (!opcode_valid(static_cast<uint8_t>(p.instructions[i].opcode)))
      fail(ErrorCode::kParseError, what + ": instruction " + std::to_string(i) + " has invalid opcode " +
                                       std::to_string(static_cast<int>(p.instructions[i].opcode)));
  Reader r(bytes, pos, pos + h.tensors_bytes, what);
  for (auto* list : {&p.inputs, &p.outputs}) {
    const uint32_t n = r.get<uint32_t>();
    if (n > 1024) fail(ErrorCode::kParseError, what + ": implausible tensor count " + std::to_string(n));
    for (uint32_t i = 0; i < n; ++i) list->push_back(read_desc(r, what));
  }
  if (!r.done()) fail(ErrorCode::kParseError, what + ": trailing bytes in tensor descriptor section");
  pos += h.tensors_bytes;
  p.constants.assign(bytes.begin() + pos, bytes.begin() + pos + h.constants_bytes);
  pos += h.constants_bytes;
  p.metadata = bytes.substr(pos, h.metadata_bytes);
  for (const auto* list : {&p.inputs, &p.outputs})
    for (const TensorDesc& d : *list)
      if (d.io_offset + d.bytes() > p.io_bytes)
        fail(ErrorCode::kParseError, what + ": tensor '" + d.name + "' lies outside the IO region");
  return p;
}

Program Program::load(const std::string& path) { return parse(read_file(path), path); }

void Program::save(const std::string& path) const { write_file(path, serialize()); }

}  // namespace anvil::isa
