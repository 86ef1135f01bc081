#include "anvil/isa/program.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "anvil/common/byte_io.h"
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
  uint32_t segments_bytes;  ///< format 2; 0 (reserved) in format 1 and for unpartitioned programs
};
static_assert(sizeof(Header) == kProgramHeaderBytes, "program header is 64 bytes");

using Writer = ByteWriter;

/// A section of the file; a short read names the file and the section.
class Reader : public ByteReader {
 public:
  Reader(const std::string& s, size_t begin, size_t end, std::string what, std::string section = "tensor descriptor")
      : ByteReader(s, begin, end), what_(std::move(what)), section_(std::move(section)) {}

 private:
  [[noreturn]] void truncated() const override {
    fail(ErrorCode::kParseError, what_ + ": truncated " + section_ + " section");
  }
  std::string what_, section_;
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
  // The host quantizes float inputs and dequantizes int8 outputs with these.
  if (d.dtype == DType::kInt8 && (!std::isfinite(d.scale) || d.scale <= 0.0f || d.zero_point < -128 || d.zero_point > 127))
    fail(ErrorCode::kParseError, what + ": tensor '" + d.name + "' has scale " + std::to_string(d.scale) +
                                     " and zero point " + std::to_string(d.zero_point) +
                                     " (int8 needs a finite scale > 0 and a zero point in [-128, 127])");
  return d;
}

void write_strings(Writer& w, const std::vector<std::string>& v) {
  w.put<uint32_t>(static_cast<uint32_t>(v.size()));
  for (const std::string& s : v) w.put_str(s);
}

std::vector<std::string> read_strings(Reader& r, const std::string& what, const std::string& of) {
  const uint32_t n = r.get<uint32_t>();
  if (n > 65536) fail(ErrorCode::kParseError, what + ": implausible number of " + of + " (" + std::to_string(n) + ")");
  std::vector<std::string> v(n);
  for (std::string& s : v) s = r.get_str();
  return v;
}

/// The segment section: input_values, output_values, then u32 count and per segment u8 kind,
/// inputs, outputs and the payload (u32 length + bytes).
std::string write_segments(const Program& p) {
  if (p.segments.empty()) return {};
  Writer w;
  write_strings(w, p.input_values);
  write_strings(w, p.output_values);
  w.put<uint32_t>(static_cast<uint32_t>(p.segments.size()));
  for (const Segment& s : p.segments) {
    w.put<uint8_t>(static_cast<uint8_t>(s.kind));
    write_strings(w, s.inputs);
    write_strings(w, s.outputs);
    w.put_str(s.payload);
  }
  return std::move(w.bytes());
}

/// Reads and checks the segment table: every segment reads only program inputs or earlier
/// segments' outputs, every program output is produced, NPU payloads are valid programs whose
/// tensors are the segment's values.
void read_segments(const std::string& bytes, size_t pos, size_t end, const std::string& what, Program& p) {
  Reader r(bytes, pos, end, what, "segment");
  p.input_values = read_strings(r, what, "input values");
  p.output_values = read_strings(r, what, "output values");
  const uint32_t n = r.get<uint32_t>();
  if (n == 0 || n > 65536) fail(ErrorCode::kParseError, what + ": implausible segment count " + std::to_string(n));
  if (!p.instructions.empty())
    fail(ErrorCode::kParseError, what + ": a partitioned program has instructions outside its segments");
  if (p.input_values.size() != p.inputs.size() || p.output_values.size() != p.outputs.size())
    fail(ErrorCode::kParseError, what + ": segment table names " + std::to_string(p.input_values.size()) + " input and " +
                                     std::to_string(p.output_values.size()) + " output values for " +
                                     std::to_string(p.inputs.size()) + " inputs and " + std::to_string(p.outputs.size()) +
                                     " outputs");
  std::vector<std::string> defined = p.input_values;
  const auto is_defined = [&](const std::string& v) { return std::find(defined.begin(), defined.end(), v) != defined.end(); };
  for (uint32_t i = 0; i < n; ++i) {
    Segment s;
    const std::string where = what + ": segment " + std::to_string(i);
    const uint8_t kind = r.get<uint8_t>();
    if (kind > static_cast<uint8_t>(SegmentKind::kHost))
      fail(ErrorCode::kParseError, where + " has unknown kind " + std::to_string(kind));
    s.kind = static_cast<SegmentKind>(kind);
    s.inputs = read_strings(r, where, "inputs");
    s.outputs = read_strings(r, where, "outputs");
    s.payload = r.get_str();
    for (const std::string& v : s.inputs)
      if (!is_defined(v)) fail(ErrorCode::kParseError, where + " reads value '" + v + "', which no earlier segment or program input produces");
    if (s.kind == SegmentKind::kNpu) {
      const Program inner = Program::parse(s.payload, where);
      if (!inner.segments.empty()) fail(ErrorCode::kParseError, where + " is itself partitioned");
      std::vector<std::string> ins, outs;
      for (const TensorDesc& d : inner.inputs) ins.push_back(d.name);
      for (const TensorDesc& d : inner.outputs) outs.push_back(d.name);
      if (ins != s.inputs || outs != s.outputs)
        fail(ErrorCode::kParseError, where + ": the NPU program's tensors are not the segment's inputs and outputs");
    }
    defined.insert(defined.end(), s.outputs.begin(), s.outputs.end());
    p.segments.push_back(std::move(s));
  }
  for (const std::string& v : p.output_values)
    if (!is_defined(v)) fail(ErrorCode::kParseError, what + ": program output value '" + v + "' is produced by no segment");
  if (!r.done()) fail(ErrorCode::kParseError, what + ": trailing bytes in segment section");
}

}  // namespace

const char* segment_kind_name(SegmentKind k) {
  switch (k) {
    case SegmentKind::kNpu: return "npu";
    case SegmentKind::kHost: return "host";
  }
  return "?";
}

std::string Program::serialize() const {
  Writer tensors;
  tensors.put<uint32_t>(static_cast<uint32_t>(inputs.size()));
  for (const auto& d : inputs) write_desc(tensors, d);
  tensors.put<uint32_t>(static_cast<uint32_t>(outputs.size()));
  for (const auto& d : outputs) write_desc(tensors, d);

  std::string body;
  body.append(reinterpret_cast<const char*>(instructions.data()), instructions.size() * sizeof(Instruction));
  body += tensors.bytes();
  body.append(reinterpret_cast<const char*>(constants.data()), constants.size());
  body += metadata;
  const std::string segment_section = write_segments(*this);
  body += segment_section;

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
  h.tensors_bytes = static_cast<uint32_t>(tensors.bytes().size());
  h.constants_bytes = static_cast<uint32_t>(constants.size());
  h.metadata_bytes = static_cast<uint32_t>(metadata.size());
  h.segments_bytes = static_cast<uint32_t>(segment_section.size());
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
  if (h.format_version != kProgramFormatVersion && h.format_version != 1)
    fail(ErrorCode::kParseError, what + ": program format version " + std::to_string(h.format_version) +
                                     ", this anvil reads versions 1 to " + std::to_string(kProgramFormatVersion));
  if (h.format_version == 1 && h.segments_bytes != 0)
    fail(ErrorCode::kParseError, what + ": format version 1 program with a nonzero reserved field (offset 60)");
  // Versions 2-4 only added opcodes; version 5 changed the rounding of every requantization.
  if (h.isa_version >= 1 && h.isa_version < kOldestIsaVersion)
    fail(ErrorCode::kParseError, what + ": program targets ISA version " + std::to_string(h.isa_version) +
                                     ", whose requantization rounded twice; this anvil implements version " +
                                     std::to_string(kIsaVersion) + " (one rounding, ties to even): recompile the model");
  if (h.isa_version == 0 || h.isa_version > kIsaVersion)
    fail(ErrorCode::kParseError, what + ": program targets ISA version " + std::to_string(h.isa_version) +
                                     ", this anvil implements versions " + std::to_string(kOldestIsaVersion) + " to " +
                                     std::to_string(kIsaVersion));
  const uint64_t expected = sizeof(Header) + static_cast<uint64_t>(h.num_instructions) * sizeof(Instruction) +
                            h.tensors_bytes + h.constants_bytes + h.metadata_bytes + h.segments_bytes;
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
  if (h.batch < 1) fail(ErrorCode::kParseError, what + ": program for batch " + std::to_string(h.batch));
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction& inst = p.instructions[i];
    if (!opcode_valid(static_cast<uint8_t>(inst.opcode)))
      fail(ErrorCode::kParseError, what + ": instruction " + std::to_string(i) + " has invalid opcode " +
                                       std::to_string(static_cast<int>(inst.opcode)));
    const bool dma = inst.opcode == Opcode::kDmaLoad || inst.opcode == Opcode::kDmaStore;
    if (dma && inst.dma.region >= kNumRegions)
      fail(ErrorCode::kParseError, what + ": instruction " + std::to_string(i) + " names DRAM region " +
                                       std::to_string(inst.dma.region) + " (docs/isa.md: 0..2)");
    if (inst.opcode == Opcode::kDmaStore && inst.dma.region == static_cast<uint8_t>(Region::kConst))
      fail(ErrorCode::kParseError, what + ": instruction " + std::to_string(i) +
                                       " stores into the constant region (read-only, docs/isa.md)");
  }
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
  pos += h.metadata_bytes;
  if (h.segments_bytes != 0) {
    read_segments(bytes, pos, pos + h.segments_bytes, what, p);
    return p;  // the tensors of a partitioned program live in its segments' IO regions
  }
  for (const auto* list : {&p.inputs, &p.outputs})
    for (const TensorDesc& d : *list)
      if (d.io_offset + d.bytes() > p.io_bytes)
        fail(ErrorCode::kParseError, what + ": tensor '" + d.name + "' lies outside the IO region");
  return p;
}

Program Program::load(const std::string& path) { return parse(read_file(path), path); }

void Program::save(const std::string& path) const { write_file(path, serialize()); }

}  // namespace anvil::isa
