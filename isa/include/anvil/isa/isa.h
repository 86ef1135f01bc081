#pragma once
/// The anvil NPU instruction set: the contract between the compiler, the firmware and the hardware
/// model. docs/isa.md describes it for readers; this header is the definition.
///
/// A PE has three execution units that each run their own in-order instruction queue:
///   DMA     moves data between DRAM and the PE's SRAM (kDmaLoad, kDmaStore);
///   MAC     the 64 slices' int8 dot-product arrays (kConv; a fully connected layer is a 1x1 conv;
///           kMatMul of two activations);
///   VECTOR  the vector engine (kAdd, kMaxPool, kAvgPool, kRequant, kLut, kCopy, kBinary, kSoftmax).
/// The sequencer dispatches instructions in program order to their unit. Dependencies between
/// units are explicit: an instruction starts only when, for every unit u, at least wait[u]
/// instructions of unit u have completed. Units therefore overlap wherever the compiler allows.
///
/// Every instruction is a fixed 128-byte little-endian record. SRAM addresses are byte offsets
/// in the PE's SRAM (slices x sram_per_slice bytes, slice i at i * sram_per_slice). DRAM
/// addresses are offsets into one of the regions the firmware relocates at run time.
/// Tensors in SRAM and DRAM are int8 NCHW; conv weights int8 OIHW (O x I/groups x KH x KW);
/// bias, multiplier and shift vectors int32, one per output channel.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "anvil/common/requant.h"

namespace anvil::isa {

/// 2 adds kLut; 3 adds kCopy (opcode 9, strided copies), kBinary (10, broadcasting add/sub/mul),
/// kMatMul (11) and kSoftmax (12); 4 adds kResize (13, nearest / bilinear resize with tap tables);
/// 5 changes every requantization (math::multiply_by_quantized_multiplier) from two roundings, ties
/// away from zero, to one rounding of the exact product, ties to even. Versions 2-4 only added
/// opcodes, but version 5 gives some elements of a version 1-4 program another int8 value, so the
/// loader rejects those programs (recompile them) instead of running them with other results.
constexpr uint16_t kIsaVersion = 5;
/// The oldest ISA version whose programs this anvil runs as they were compiled.
constexpr uint16_t kOldestIsaVersion = 5;

enum class Unit : uint8_t { kDma = 0, kMac = 1, kVector = 2 };
constexpr int kNumUnits = 3;
const char* unit_name(Unit u);

enum class Opcode : uint8_t {
  kNop = 0,
  kDmaLoad = 1,   ///< DRAM -> SRAM, rows x bytes with strides (DmaArgs)
  kDmaStore = 2,  ///< SRAM -> DRAM (DmaArgs)
  kConv = 3,      ///< int8 convolution with int32 accumulation and a requantizing epilogue (ConvArgs)
  kAdd = 4,       ///< elementwise quantized add of two equal-shape tensors (AddArgs)
  kMaxPool = 5,   ///< max pooling over int8 (PoolArgs)
  kAvgPool = 6,   ///< average pooling incl. global average pooling (PoolArgs)
  kRequant = 7,   ///< out = clamp(requantize(x - in_zp) + out_zp): a scale change or a standalone clamp (RequantArgs)
  kLut = 8,       ///< out[i] = table[in[i] + 128]: a 256-byte int8 lookup table in SRAM (LutArgs; ISA version 2)
  kCopy = 9,      ///< N-D strided copy / requantizing copy / fill within SRAM (CopyArgs; ISA version 3)
  kBinary = 10,   ///< elementwise add/sub/mul with broadcasting by strides (BinaryArgs; ISA version 3)
  kMatMul = 11,   ///< batched int8 x int8 matrix product of two activations, requantized (MatMulArgs; ISA version 3)
  kSoftmax = 12,  ///< integer softmax along one axis, math::softmax_row (SoftmaxArgs; ISA version 3)
  kResize = 13,   ///< nearest / bilinear resize of planes with tap tables, math::resize_plane (ResizeArgs; ISA version 4)
};
const char* opcode_name(Opcode op);
Unit opcode_unit(Opcode op);
/// True for opcodes this ISA version defines.
bool opcode_valid(uint8_t op);

/// DRAM regions; the firmware adds the region's base for the current request.
enum class Region : uint8_t {
  kConst = 0,    ///< the program's constant section (weights, biases, multipliers)
  kScratch = 1,  ///< per-PE activation memory, program.scratch_bytes long
  kIo = 2,       ///< the request's input/output buffer, laid out by the tensor descriptors
};
constexpr int kNumRegions = 3;

struct DmaArgs {
  uint64_t dram_offset;  ///< byte offset in `region`
  uint32_t sram_addr;    ///< byte address in the PE's SRAM
  uint32_t row_bytes;    ///< bytes per row
  uint32_t rows;         ///< number of rows (>= 1)
  uint32_t dram_stride;  ///< bytes between row starts in DRAM
  uint32_t sram_stride;  ///< bytes between row starts in SRAM
  uint8_t region;        ///< Region
  uint8_t pad[3];
};

struct ConvArgs {
  uint32_t in_addr, weight_addr, bias_addr, mult_addr, shift_addr, out_addr;  ///< SRAM
  uint16_t n, in_c, in_h, in_w, out_c, out_h, out_w;
  uint16_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups;
  int32_t in_zero_point, out_zero_point, act_min, act_max;
};

struct AddArgs {
  uint32_t a_addr, b_addr, out_addr, count;  ///< SRAM addresses; count elements
  int32_t a_zero_point, b_zero_point, out_zero_point;
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;  ///< math::AddParams
  int32_t act_min, act_max;
};

struct PoolArgs {
  uint32_t in_addr, out_addr;
  uint16_t n, c, in_h, in_w, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
  int32_t in_zero_point, out_zero_point;
  int32_t mult, shift;  ///< avg pool: math::average_multiplier for a full window (count = kernel_h * kernel_w)
  int32_t act_min, act_max;
  uint8_t count_include_pad;  ///< avg pool: divide by the full window even where it overlaps padding
  uint8_t pad[3];
};

struct RequantArgs {
  uint32_t in_addr, out_addr, count;
  int32_t in_zero_point, out_zero_point, mult, shift, act_min, act_max;
};

/// Elementwise table lookup (nonlinear activations): out[i] = table[in[i] + 128] for i < count.
/// The table is 256 int8 bytes in SRAM, entry k for input byte k - 128; the compiler copies it
/// from ref::make_lut. out may alias in.
struct LutArgs {
  uint32_t in_addr, table_addr, out_addr, count;  ///< SRAM addresses; count elements
};

/// What a kCopy does with each element it visits.
enum class CopyMode : uint8_t {
  kCopy = 0,     ///< out = in (the bytes)
  kRequant = 1,  ///< out = math::requantize(in - in_zero_point, {mult, shift}, out_zero_point, -128, 127)
  kFill = 2,     ///< out = fill_value; nothing is read
};
constexpr int kCopyDims = 6;

/// Data movement (Transpose, Slice, Split, Concat, Pad): for every index i of the box `shape`
/// (kCopyDims axes, axis 0 outermost, visited in row-major order), the byte at
///   out_addr + sum_k i[k] * out_stride[k]
/// receives f(byte at in_addr + sum_k i[k] * in_stride[k]), f by `mode`. Strides are signed
/// bytes: negative for reversed slices, 0 to replicate an element. Every shape[k] >= 1 (unused
/// axes have 1), at most 2^32 - 1 elements; the bytes read and the bytes written (copy_span) must
/// lie in SRAM and, unless mode is kFill, must not overlap.
struct CopyArgs {
  uint32_t in_addr, out_addr;  ///< SRAM byte addresses of index 0
  uint32_t shape[kCopyDims];
  int32_t in_stride[kCopyDims], out_stride[kCopyDims];  ///< bytes
  int32_t in_zero_point, out_zero_point, mult, shift;   ///< kRequant mode
  uint8_t mode;                                         ///< CopyMode
  int8_t fill_value;                                    ///< kFill mode
  uint8_t pad[2];
};

/// The bytes a kCopy's index box reaches from a base address with the given strides: offsets
/// lo <= 0 <= hi (inclusive), lo the sum of the negative extents (shape - 1) * stride, hi of the
/// positive ones. The hardware model checks these against SRAM, the compiler tracks them as the
/// copy's reads and writes.
struct CopySpan {
  int64_t lo = 0, hi = 0;
};
CopySpan copy_span(const uint32_t (&shape)[kCopyDims], const int32_t (&stride)[kCopyDims]);
/// Elements a kCopy visits (product of its shape; 0 when an axis is 0).
uint64_t copy_elements(const CopyArgs& c);

/// Batched matrix product of two int8 activations (MAC unit): for p < batch, A_p = a_addr +
/// p * a_step (M x K, row major), B_p = b_addr + p * b_step (K x N), out_p = out_addr + p * M * N:
///   out_p[i][j] = math::requantize(sum_k (A_p[i][k] - a_zp) * (B_p[k][j] - b_zp), {mult, shift},
///                                  out_zp, act_min, act_max).
/// A step of 0 broadcasts one matrix to every product. K <= 33025 keeps the int32 sum exact.
struct MatMulArgs {
  uint32_t a_addr, b_addr, out_addr;  ///< SRAM
  uint32_t batch, m, k, n;
  uint32_t a_step, b_step;  ///< elements between consecutive matrices of A / B; 0: broadcast
  int32_t a_zero_point, b_zero_point, out_zero_point, mult, shift, act_min, act_max;
};

/// Integer softmax (vector engine) of `outer` x `inner` rows of `length` int8 elements: element l
/// of row (o, i) is at o * length * inner + l * inner + i (the axis of an outer x length x inner
/// tensor). table_addr holds math::SoftmaxTable: 256 int32 (1024 bytes), entry d = round(exp(-in_scale
/// * d) * 2^30); out = math::softmax_row(..., {mult, shift}, out_zero_point). out may alias in.
struct SoftmaxArgs {
  uint32_t in_addr, table_addr, out_addr;  ///< SRAM
  uint32_t outer, length, inner;
  int32_t out_zero_point, mult, shift;
};
/// Integer resize (vector engine) of `planes` packed planes of in_h x in_w int8 at in_addr to
/// packed planes of out_h x out_w at out_addr: out plane p = math::resize_plane(in plane p, row
/// taps, column taps, in_zero_point, {mult, shift}, out_zero_point). rows_addr holds out_h
/// math::ResizeTap (12 bytes each: int32 first, second, Q11 weight), cols_addr out_w of them; every
/// tap must read inside its axis (math::resize_taps_valid). out must not overlap in or the tables.
struct ResizeArgs {
  uint32_t in_addr, rows_addr, cols_addr, out_addr;  ///< SRAM
  uint32_t planes, in_h, in_w, out_h, out_w;
  int32_t in_zero_point, out_zero_point, mult, shift;
};
/// Bytes of one math::ResizeTap in SRAM and DRAM.
constexpr uint32_t kResizeTapBytes = 12;

/// The operation of a kBinary.
enum class BinaryOp : uint8_t {
  kAdd = 0,  ///< math::add_int8 (AddParams from a_*, b_*, out_*)
  kSub = 1,  ///< math::sub_int8 (the same AddParams)
  kMul = 2,  ///< math::mul_int8 (MulParams: the zero points, out_mult/out_shift; a_/b_mult unused)
};
constexpr int kBinaryRank = 4;

/// Elementwise binary op over a kBinaryRank-D output, written densely at out_addr in row-major
/// order: out[i0,i1,i2,i3] = op(a[sum ik * a_stride[k]], b[sum ik * b_stride[k]]). A stride is in
/// elements (bytes) and is 0 along a dimension the operand is broadcast over, so broadcasting
/// copies nothing. The output must not overlap a or b unless it is that operand exactly with the
/// output's own strides.
struct BinaryArgs {
  uint32_t a_addr, b_addr, out_addr;  ///< SRAM addresses
  uint8_t op;                         ///< BinaryOp
  uint8_t pad[3];
  uint32_t shape[kBinaryRank];     ///< output extents, outermost first (>= 1)
  uint32_t a_stride[kBinaryRank];  ///< element strides of a
  uint32_t b_stride[kBinaryRank];  ///< element strides of b
  int32_t a_zero_point, b_zero_point, out_zero_point;
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;  ///< math::AddParams / MulParams
  int32_t act_min, act_max;
};

/// The math::AddParams of a kAdd's fields and of a kBinary's (add, sub), and a kBinary's
/// math::MulParams: one decoding of the fields for the hardware model and every other executor.
math::AddParams add_params(const AddArgs& a);
math::AddParams add_params(const BinaryArgs& b);
math::MulParams mul_params(const BinaryArgs& b);

/// Elements of a kBinary's output, and bytes an operand with `stride` spans (0 for an empty shape).
uint64_t binary_count(const BinaryArgs& b);
uint64_t binary_extent(const BinaryArgs& b, const uint32_t* stride);

/// One instruction: a 16-byte header and a 112-byte argument block.
struct Instruction {
  Opcode opcode;
  uint8_t reserved[3];
  uint32_t wait[kNumUnits];  ///< start only when unit u has completed >= wait[u] instructions
  union {
    DmaArgs dma;
    ConvArgs conv;
    AddArgs add;
    PoolArgs pool;
    RequantArgs requant;
    LutArgs lut;
    MatMulArgs matmul;
    SoftmaxArgs softmax;
    BinaryArgs binary;
    CopyArgs copy;
    ResizeArgs resize;
    uint8_t raw[112];
  };
  Instruction() : opcode(Opcode::kNop), reserved{}, wait{} { std::memset(raw, 0, sizeof raw); }
};
static_assert(sizeof(Instruction) == 128, "instructions are 128-byte records");
static_assert(std::is_trivially_copyable_v<Instruction>, "instructions are copied as bytes");

/// One line of assembly-like text for logs, traces and `anvil disasm`.
std::string to_string(const Instruction& inst);

/// Multiply-accumulates a kConv performs (for utilisation and cost models).
uint64_t conv_macs(const ConvArgs& c);
/// Multiply-accumulates a kMatMul performs: batch x M x N x K.
uint64_t matmul_macs(const MatMulArgs& m);
/// Elements a vector-engine instruction touches: the work measure behind its timing (hw_model's
/// VectorEngine) and the compiler's cost model. kSoftmax counts three passes (max, sum of
/// exponentials, normalise), kResize four taps per output element, pooling every window element;
/// 0 for kNop and the DMA and MAC opcodes.
uint64_t vector_elements(const Instruction& inst);

}  // namespace anvil::isa
