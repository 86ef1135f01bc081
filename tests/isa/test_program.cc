#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "anvil/isa/program.h"

using namespace anvil;
using namespace anvil::isa;

namespace {
Program sample() {
  Program p;
  p.batch = 2;
  p.io_bytes = 64;
  p.scratch_bytes = 128;
  Instruction i;
  i.opcode = Opcode::kDmaLoad;
  i.dma.region = static_cast<uint8_t>(Region::kIo);
  i.dma.row_bytes = 16;
  i.dma.rows = 1;
  p.instructions.push_back(i);
  TensorDesc in;
  in.name = "input";
  in.shape = {2, 1, 4, 4};
  in.scale = 0.1f;
  in.zero_point = -3;
  p.inputs.push_back(in);
  TensorDesc out;
  out.name = "logits";
  out.shape = {2, 10};
  out.io_offset = 32;
  out.layout = Layout::kNC;
  p.outputs.push_back(out);
  p.constants = {1, 2, 3, 4, 5};
  p.metadata = R"({"model":"x"})";
  return p;
}
}  // namespace

TEST(Program, RoundTrip) {
  const std::string bytes = sample().serialize();
  Program q = Program::parse(bytes, "mem");
  EXPECT_EQ(q.batch, 2u);
  EXPECT_EQ(q.instructions.size(), 1u);
  EXPECT_EQ(q.instructions[0].opcode, Opcode::kDmaLoad);
  EXPECT_EQ(q.inputs[0].name, "input");
  EXPECT_EQ(q.inputs[0].zero_point, -3);
  EXPECT_EQ(q.outputs[0].shape, (Shape{2, 10}));
  EXPECT_EQ(q.constants, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(q.serialize(), bytes);  // deterministic
}

TEST(Program, TruncatedFileIsRejected) {
  std::string bytes = sample().serialize();
  bytes.resize(bytes.size() - 1);
  try {
    Program::parse(bytes, "prog.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_NE(std::string(e.what()).find("prog.bin"), std::string::npos);
  }
}

TEST(Program, EveryFlippedByteIsRejected) {
  const std::string bytes = sample().serialize();
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    EXPECT_THROW(Program::parse(bad, "prog.bin"), Error) << "byte " << i;
  }
}

TEST(Program, ChecksumValidProgramsWithInvalidContentsAreRejectedNamingWhat) {
  // serialize() writes a correct checksum, so only the content checks can refuse these.
  struct Case {
    std::string what;
    std::function<void(Program&)> spoil;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"zero scale", [](Program& p) { p.inputs[0].scale = 0.0f; }, "tensor 'input' has scale"},
      {"NaN scale", [](Program& p) { p.inputs[0].scale = NAN; }, "tensor 'input' has scale"},
      {"infinite scale", [](Program& p) { p.outputs[0].scale = INFINITY; }, "tensor 'logits' has scale"},
      {"zero point 999", [](Program& p) { p.inputs[0].zero_point = 999; }, "zero point 999"},
      {"batch 0", [](Program& p) { p.batch = 0; }, "batch 0"},
      {"store into kConst",
       [](Program& p) {
         p.instructions[0].opcode = Opcode::kDmaStore;
         p.instructions[0].dma.region = static_cast<uint8_t>(Region::kConst);
       },
       "instruction 0 stores into the constant region"},
      {"region 7", [](Program& p) { p.instructions[0].dma.region = 7; }, "instruction 0 names DRAM region 7"},
  };
  for (const Case& c : cases) {
    Program p = sample();
    c.spoil(p);
    try {
      Program::parse(p.serialize(), "prog.bin");
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError) << c.what;
      EXPECT_NE(std::string(e.what()).find("prog.bin: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.what << ": " << e.what();
    }
  }
}

TEST(Program, NotAProgram) { EXPECT_THROW(Program::parse("hello", "x"), Error); }

namespace {
/// The file with its ISA version field (header offset 6) set to `v` and the CRC (offset 56)
/// recomputed, as docs/program-format.md lays them out.
std::string with_isa_version(std::string bytes, uint16_t v) {
  std::memcpy(&bytes[6], &v, 2);
  const uint32_t zero = 0;
  std::memcpy(&bytes[56], &zero, 4);
  const uint32_t crc = crc32(bytes.data(), bytes.size());
  std::memcpy(&bytes[56], &crc, 4);
  return bytes;
}
}  // namespace

TEST(Program, LutRoundTripsAndDisassembles) {
  Program p = sample();
  Instruction lut;
  lut.opcode = Opcode::kLut;
  lut.wait[0] = 1;
  lut.lut = {64, 4096, 128, 48};
  p.instructions.push_back(lut);
  const Program q = Program::parse(p.serialize(), "mem");
  ASSERT_EQ(q.instructions.size(), 2u);
  EXPECT_EQ(q.instructions[1].opcode, Opcode::kLut);
  EXPECT_EQ(opcode_unit(Opcode::kLut), Unit::kVector);
  EXPECT_EQ(q.instructions[1].lut.table_addr, 4096u);
  EXPECT_EQ(to_string(q.instructions[1]), "lut [wait dma>=1 mac>=0 vec>=0] in@64 table@4096 -> @128 n=48");
}

TEST(Program, CopyRoundTripsAndDisassembles) {
  Program p = sample();
  Instruction copy;
  copy.opcode = Opcode::kCopy;
  copy.wait[0] = 1;
  CopyArgs& c = copy.copy;
  c.in_addr = 1000, c.out_addr = 5000;
  const uint32_t shape[kCopyDims] = {1, 1, 1, 2, 3, 4};
  const int32_t in_stride[kCopyDims] = {0, 0, 0, 12, -4, 1}, out_stride[kCopyDims] = {0, 0, 0, 12, 4, 1};
  std::copy(shape, shape + kCopyDims, c.shape);
  std::copy(in_stride, in_stride + kCopyDims, c.in_stride);
  std::copy(out_stride, out_stride + kCopyDims, c.out_stride);
  p.instructions.push_back(copy);
  const Program q = Program::parse(p.serialize(), "mem");
  ASSERT_EQ(q.instructions.size(), 2u);
  EXPECT_EQ(q.instructions[1].opcode, Opcode::kCopy);
  EXPECT_EQ(opcode_unit(Opcode::kCopy), Unit::kVector);
  EXPECT_TRUE(opcode_valid(9));
  EXPECT_FALSE(opcode_valid(14));
  EXPECT_EQ(copy_elements(q.instructions[1].copy), 24u);
  EXPECT_EQ(vector_elements(q.instructions[1]), 24u);
  const CopySpan in = copy_span(c.shape, c.in_stride), out = copy_span(c.shape, c.out_stride);
  EXPECT_EQ(in.lo, -8);  // two steps of -4
  EXPECT_EQ(in.hi, 12 + 3);
  EXPECT_EQ(out.lo, 0);
  EXPECT_EQ(out.hi, 23);
  EXPECT_EQ(to_string(q.instructions[1]),
            "copy [wait dma>=1 mac>=0 vec>=0] copy in@1000 -> @5000 shape 1x1x1x2x3x4 in_stride 0,0,0,12,-4,1 "
            "out_stride 0,0,0,12,4,1");
}

TEST(Program, ResizeRoundTripsOnTheVectorUnit) {
  Program p = sample();
  Instruction r;
  r.opcode = Opcode::kResize;
  r.resize = {0, 4096, 4156, 8192, 6, 9, 7, 5, 14, -3, 4, 1 << 30, -21};
  p.instructions.push_back(r);
  const Program q = Program::parse(p.serialize(), "mem");
  ASSERT_EQ(q.instructions.size(), 2u);
  EXPECT_TRUE(opcode_valid(13));
  EXPECT_EQ(opcode_unit(Opcode::kResize), Unit::kVector);
  EXPECT_EQ(q.instructions[1].resize.out_w, 14u);
  EXPECT_EQ(q.instructions[1].resize.shift, -21);
  EXPECT_EQ(vector_elements(q.instructions[1]), 4u * 6 * 5 * 14);  // four taps per output element
  EXPECT_EQ(to_string(q.instructions[1]),
            "resize [wait dma>=0 mac>=0 vec>=0] in@0 rows@4096 cols@4156 -> @8192 6x9x7 -> 5x14");
}

TEST(Program, VersionsBeforeTheRoundingChangeAskForARecompile) {
  const std::string bytes = sample().serialize();
  EXPECT_EQ(Program::parse(with_isa_version(bytes, kIsaVersion), "v5.anvil").instructions.size(), 1u);
  for (uint16_t v = 1; v < kOldestIsaVersion; ++v) {
    try {
      Program::parse(with_isa_version(bytes, v), "old.anvil");
      FAIL() << "version " << v;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError);
      EXPECT_NE(std::string(e.what()).find("old.anvil: program targets ISA version " + std::to_string(v) +
                                           ", whose requantization rounded twice"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("recompile the model"), std::string::npos) << e.what();
    }
  }
}

TEST(Program, LaterIsaVersionsAreRejected) {
  const std::string bytes = sample().serialize();
  for (uint16_t v : {uint16_t{0}, static_cast<uint16_t>(kIsaVersion + 1)}) {
    try {
      Program::parse(with_isa_version(bytes, v), "new.anvil");
      FAIL() << "version " << v;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError);
      EXPECT_NE(std::string(e.what()).find("new.anvil: program targets ISA version " + std::to_string(v)),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Program, MatMulAndSoftmaxRoundTripAndUndefinedOpcodesAreRejected) {
  Program p = sample();
  Instruction mm;
  mm.opcode = Opcode::kMatMul;
  mm.matmul = {0, 1024, 2048, 2, 3, 5, 7, 15, 35, 4, -6, 1, 1 << 30, -8, -128, 127};
  p.instructions.push_back(mm);
  Instruction sm;
  sm.opcode = Opcode::kSoftmax;
  sm.softmax = {2048, 4096, 2048, 2, 21, 1, -128, 1 << 30, -21};
  p.instructions.push_back(sm);
  const Program q = Program::parse(p.serialize(), "mem");
  ASSERT_EQ(q.instructions.size(), 3u);
  EXPECT_EQ(opcode_unit(Opcode::kMatMul), Unit::kMac);
  EXPECT_EQ(opcode_unit(Opcode::kSoftmax), Unit::kVector);
  EXPECT_EQ(q.instructions[1].matmul.b_step, 35u);
  EXPECT_EQ(q.instructions[2].softmax.shift, -21);
  EXPECT_EQ(to_string(q.instructions[1]), "matmul [wait dma>=0 mac>=0 vec>=0] a@0 b@1024 -> @2048 2x(3x5 * 5x7)");
  EXPECT_EQ(to_string(q.instructions[2]), "softmax [wait dma>=0 mac>=0 vec>=0] in@2048 table@4096 -> @2048 2x21x1");
  EXPECT_EQ(matmul_macs(mm.matmul), 2u * 3 * 5 * 7);
  EXPECT_EQ(vector_elements(q.instructions[1]), 0u);             // a MAC-unit instruction
  EXPECT_EQ(vector_elements(q.instructions[2]), 3u * 2 * 21 * 1);  // max, sum of exponentials, normalise
  EXPECT_EQ(vector_elements(Instruction{}), 0u);                 // kNop
  // Opcodes past the last one this ISA defines (13) are invalid.
  for (int op : {14, 15, 255}) {
    EXPECT_FALSE(opcode_valid(static_cast<uint8_t>(op))) << op;
    Program bad = sample();
    bad.instructions[0].opcode = static_cast<Opcode>(op);
    try {
      Program::parse(bad.serialize(), "bad.anvil");
      FAIL() << "opcode " << op;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError);
      EXPECT_NE(std::string(e.what()).find("invalid opcode " + std::to_string(op)), std::string::npos) << e.what();
    }
  }
}
