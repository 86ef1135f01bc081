#include "anvil/isa/isa.h"

#include <sstream>

namespace anvil::isa {

const char* unit_name(Unit u) {
  switch (u) {
    case Unit::kDma: return "dma";
    case Unit::kMac: return "mac";
    case Unit::kVector: return "vector";
  }
  return "?";
}

const char* opcode_name(Opcode op) {
  switch (op) {
    case Opcode::kNop: return "nop";
    case Opcode::kDmaLoad: return "dma.load";
    case Opcode::kDmaStore: return "dma.store";
    case Opcode::kConv: return "conv";
    case Opcode::kAdd: return "add";
    case Opcode::kMaxPool: return "maxpool";
    case Opcode::kAvgPool: return "avgpool";
    case Opcode::kRequant: return "requant";
    case Opcode::kLut: return "lut";
    case Opcode::kCopy: return "copy";
    case Opcode::kBinary: return "binary";
    case Opcode::kMatMul: return "matmul";
    case Opcode::kSoftmax: return "softmax";
    case Opcode::kResize: return "resize";
  }
  return "?";
}

bool opcode_valid(uint8_t op) {
  return op <= static_cast<uint8_t>(Opcode::kResize);  // opcodes 0..13 are all defined
}

namespace {
template <typename Args>
math::AddParams add_params_of(const Args& a) {
  math::AddParams p;
  p.a_zero_point = a.a_zero_point;
  p.b_zero_point = a.b_zero_point;
  p.out_zero_point = a.out_zero_point;
  p.a = {a.a_mult, a.a_shift};
  p.b = {a.b_mult, a.b_shift};
  p.out = {a.out_mult, a.out_shift};
  p.act_min = a.act_min;
  p.act_max = a.act_max;
  return p;
}
}  // namespace

math::AddParams add_params(const AddArgs& a) { return add_params_of(a); }
math::AddParams add_params(const BinaryArgs& b) { return add_params_of(b); }
math::MulParams mul_params(const BinaryArgs& b) {
  return {b.a_zero_point, b.b_zero_point, b.out_zero_point, {b.out_mult, b.out_shift}, b.act_min, b.act_max};
}

uint64_t binary_count(const BinaryArgs& b) {
  uint64_t n = 1;
  for (uint32_t d : b.shape) n *= d;
  return n;
}

uint64_t binary_extent(const BinaryArgs& b, const uint32_t* stride) {
  if (binary_count(b) == 0) return 0;
  uint64_t last = 0;  // offset of the last element read
  for (int k = 0; k < kBinaryRank; ++k) last += static_cast<uint64_t>(b.shape[k] - 1) * stride[k];
  return last + 1;
}

Unit opcode_unit(Opcode op) {
  switch (op) {
    case Opcode::kDmaLoad: case Opcode::kDmaStore: return Unit::kDma;
    case Opcode::kConv: case Opcode::kMatMul: return Unit::kMac;
    default: return Unit::kVector;
  }
}

uint64_t conv_macs(const ConvArgs& c) {
  const uint64_t per_out = static_cast<uint64_t>(c.in_c / (c.groups ? c.groups : 1)) * c.kernel_h * c.kernel_w;
  return static_cast<uint64_t>(c.n) * c.out_c * c.out_h * c.out_w * per_out;
}

uint64_t matmul_macs(const MatMulArgs& m) { return static_cast<uint64_t>(m.batch) * m.m * m.n * m.k; }

uint64_t vector_elements(const Instruction& inst) {
  switch (inst.opcode) {
    case Opcode::kAdd: return inst.add.count;
    case Opcode::kRequant: return inst.requant.count;
    case Opcode::kLut: return inst.lut.count;
    case Opcode::kCopy: return copy_elements(inst.copy);
    case Opcode::kBinary: return binary_count(inst.binary);
    case Opcode::kSoftmax: return 3 * static_cast<uint64_t>(inst.softmax.outer) * inst.softmax.length * inst.softmax.inner;
    case Opcode::kResize: return 4 * static_cast<uint64_t>(inst.resize.planes) * inst.resize.out_h * inst.resize.out_w;
    case Opcode::kMaxPool:
    case Opcode::kAvgPool: {
      const PoolArgs& p = inst.pool;
      return static_cast<uint64_t>(p.n) * p.c * p.out_h * p.out_w * p.kernel_h * p.kernel_w;
    }
    default: return 0;
  }
}

CopySpan copy_span(const uint32_t (&shape)[kCopyDims], const int32_t (&stride)[kCopyDims]) {
  CopySpan s;
  for (int k = 0; k < kCopyDims; ++k) {
    const int64_t extent = (shape[k] == 0 ? 0 : static_cast<int64_t>(shape[k]) - 1) * stride[k];
    (extent < 0 ? s.lo : s.hi) += extent;
  }
  return s;
}

uint64_t copy_elements(const CopyArgs& c) {
  uint64_t n = 1;
  for (uint32_t d : c.shape) {
    if (d == 0) return 0;
    n = n > UINT64_MAX / d ? UINT64_MAX : n * d;  // saturates: 6 x 32-bit factors can overflow
  }
  return n;
}

std::string to_string(const Instruction& i) {
  std::ostringstream os;
  os << opcode_name(i.opcode) << " [wait dma>=" << i.wait[0] << " mac>=" << i.wait[1] << " vec>=" << i.wait[2] << "]";
  switch (i.opcode) {
    case Opcode::kDmaLoad: case Opcode::kDmaStore:
      os << " region=" << int(i.dma.region) << " dram+" << i.dma.dram_offset << " sram@" << i.dma.sram_addr << " "
         << i.dma.rows << "x" << i.dma.row_bytes << "B";
      break;
    case Opcode::kConv:
      os << " in@" << i.conv.in_addr << " " << i.conv.n << "x" << i.conv.in_c << "x" << i.conv.in_h << "x" << i.conv.in_w
         << " -> out@" << i.conv.out_addr << " " << i.conv.out_c << "x" << i.conv.out_h << "x" << i.conv.out_w << " k"
         << i.conv.kernel_h << "x" << i.conv.kernel_w << " s" << i.conv.stride_h << " g" << i.conv.groups;
      break;
    case Opcode::kAdd:
      os << " a@" << i.add.a_addr << " b@" << i.add.b_addr << " -> @" << i.add.out_addr << " n=" << i.add.count;
      break;
    case Opcode::kMaxPool: case Opcode::kAvgPool:
      os << " in@" << i.pool.in_addr << " " << i.pool.n << "x" << i.pool.c << "x" << i.pool.in_h << "x" << i.pool.in_w
         << " -> out@" << i.pool.out_addr << " " << i.pool.out_h << "x" << i.pool.out_w << " k" << i.pool.kernel_h << "x"
         << i.pool.kernel_w;
      break;
    case Opcode::kRequant:
      os << " in@" << i.requant.in_addr << " -> @" << i.requant.out_addr << " n=" << i.requant.count;
      break;
    case Opcode::kLut:
      os << " in@" << i.lut.in_addr << " table@" << i.lut.table_addr << " -> @" << i.lut.out_addr << " n=" << i.lut.count;
      break;
    case Opcode::kCopy: {
      static const char* const kModes[] = {"copy", "requant", "fill"};
      os << " " << (i.copy.mode < 3 ? kModes[i.copy.mode] : "?") << " in@" << i.copy.in_addr << " -> @" << i.copy.out_addr
         << " shape";
      for (int k = 0; k < kCopyDims; ++k) os << (k ? "x" : " ") << i.copy.shape[k];
      os << " in_stride";
      for (int k = 0; k < kCopyDims; ++k) os << (k ? "," : " ") << i.copy.in_stride[k];
      os << " out_stride";
      for (int k = 0; k < kCopyDims; ++k) os << (k ? "," : " ") << i.copy.out_stride[k];
      break;
    }
    case Opcode::kBinary: {
      const BinaryArgs& b = i.binary;
      static const char* const kOps[] = {"add", "sub", "mul"};
      os << " " << (b.op < 3 ? kOps[b.op] : "?") << " a@" << b.a_addr << " b@" << b.b_addr << " -> @" << b.out_addr
         << " " << b.shape[0] << "x" << b.shape[1] << "x" << b.shape[2] << "x" << b.shape[3] << " a_stride " << b.a_stride[0]
         << "," << b.a_stride[1] << "," << b.a_stride[2] << "," << b.a_stride[3] << " b_stride " << b.b_stride[0] << ","
         << b.b_stride[1] << "," << b.b_stride[2] << "," << b.b_stride[3];
      break;
    }
    case Opcode::kMatMul:
      os << " a@" << i.matmul.a_addr << " b@" << i.matmul.b_addr << " -> @" << i.matmul.out_addr << " " << i.matmul.batch
         << "x(" << i.matmul.m << "x" << i.matmul.k << " * " << i.matmul.k << "x" << i.matmul.n << ")";
      break;
    case Opcode::kSoftmax:
      os << " in@" << i.softmax.in_addr << " table@" << i.softmax.table_addr << " -> @" << i.softmax.out_addr << " "
         << i.softmax.outer << "x" << i.softmax.length << "x" << i.softmax.inner;
      break;
    case Opcode::kResize:
      os << " in@" << i.resize.in_addr << " rows@" << i.resize.rows_addr << " cols@" << i.resize.cols_addr << " -> @"
         << i.resize.out_addr << " " << i.resize.planes << "x" << i.resize.in_h << "x" << i.resize.in_w << " -> "
         << i.resize.out_h << "x" << i.resize.out_w;
      break;
    case Opcode::kNop: break;
  }
  return os.str();
}

}  // namespace anvil::isa
