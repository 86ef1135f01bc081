#pragma once
/// The program container: what `anvil compile` writes and the runtime loads onto the device.
/// docs/program-format.md describes the byte layout; serialize()/parse() here define it.
///
/// Layout (little endian):
///   header      64 bytes: magic "ANVL", format version, ISA version, target, section sizes, CRC-32
///   instructions  n x 128 bytes (isa::Instruction)
///   tensors     the input/output tensor descriptors
///   constants   weights, biases and requantization vectors (DRAM region kConst)
///   metadata    UTF-8 JSON: source model, compiler version, per-layer estimates (informational)
///   segments    (format 2, partitioned programs only) the segment table: NPU segments, each a
///               complete unpartitioned program, and host segments, each a serialized integer graph
/// The CRC-32 (zlib polynomial) covers the whole file with the CRC field zeroed; parse() rejects a file whose
/// magic, version, sizes or checksum do not match, naming what is wrong.
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/common/tensor.h"
#include "anvil/isa/isa.h"

namespace anvil::isa {

constexpr uint32_t kProgramMagic = 0x4C564E41;  // "ANVL" in file byte order
constexpr uint16_t kProgramFormatVersion = 2;  ///< 2 adds the segment table; parse() reads 1 and 2

/// Layout of a tensor in DRAM.
enum class Layout : uint8_t { kNCHW = 0, kNC = 1, kAny = 2 };
const char* layout_name(Layout l);

/// An input or output of the program: where it lives in the request's IO region and how the host
/// converts it (float = (q - zero_point) * scale).
struct TensorDesc {
  std::string name;
  DType dtype = DType::kInt8;  ///< element type in device memory
  Layout layout = Layout::kNCHW;
  Shape shape;                 ///< including the batch dimension the program was compiled for
  float scale = 1.0f;
  int32_t zero_point = 0;
  uint64_t io_offset = 0;      ///< byte offset in the IO region
  uint64_t bytes() const { return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

/// Where a segment of a partitioned program runs.
enum class SegmentKind : uint8_t { kNpu = 0, kHost = 1 };
const char* segment_kind_name(SegmentKind k);

/// One step of a partitioned program. Segments run in order; values pass between them by name
/// through host memory.
struct Segment {
  SegmentKind kind = SegmentKind::kNpu;
  std::vector<std::string> inputs, outputs;  ///< the int8 values it reads / writes, by value name
  /// kNpu: a serialized unpartitioned Program (parse() checks it) whose tensor descriptors are
  /// named by those values. kHost: ref::serialize_int8_graph bytes with the same input/output
  /// names (the runtime parses them; isa does not depend on the reference library).
  std::string payload;
};

struct Program {
  uint8_t num_pes = 1;          ///< PEs the program runs on (2: a fused pair)
  uint32_t batch = 1;           ///< batch the program was compiled for
  uint64_t scratch_bytes = 0;   ///< DRAM activation memory the program needs (region kScratch)
  uint64_t io_bytes = 0;        ///< size of the IO region (inputs then outputs)
  uint64_t sram_bytes = 0;      ///< peak SRAM use per PE, for the loader's check against the device
  std::vector<Instruction> instructions;
  std::vector<TensorDesc> inputs, outputs;
  std::vector<uint8_t> constants;
  std::string metadata;         ///< JSON text
  /// A partitioned program (no instructions of its own): the segments, and for each of `inputs`
  /// and `outputs` the segment value it is (`input_values[i]` is the value inputs[i] quantizes to).
  /// Empty for a program that runs wholly on the NPU.
  std::vector<Segment> segments;
  std::vector<std::string> input_values, output_values;

  /// Serialises the program with header and checksum.
  std::string serialize() const;
  /// Parses and validates a program file's bytes; `what` names the source (usually its path) in
  /// errors (kParseError: bad magic, unsupported version, truncated, checksum mismatch, bad opcode).
  static Program parse(const std::string& bytes, const std::string& what);
  /// Reads and parses a program file.
  static Program load(const std::string& path);
  void save(const std::string& path) const;
};

/// Size of the fixed header, for the firmware which reads it from device memory.
constexpr size_t kProgramHeaderBytes = 64;

/// CRC-32 (IEEE, as zlib's crc32) of a byte range.
uint32_t crc32(const void* data, size_t n);

}  // namespace anvil::isa
