// The firmware's command loop against an in-memory HAL: no SystemC, every path checked directly.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "anvil/firmware/firmware.h"
#include "anvil/isa/program.h"

namespace anvil::fw {
namespace {

namespace reg = isa::reg;
namespace field = isa::field;

constexpr uint64_t kHostBase = 0x100000000ull;

class FakeHal : public Hal {
 public:
  std::map<uint32_t, uint32_t> regs;
  std::vector<uint8_t> host = std::vector<uint8_t>(1 << 20), dram = std::vector<uint8_t>(1 << 20);
  std::vector<PeRun> runs;
  std::vector<std::vector<isa::Instruction>> run_code;
  PeResult next_result;
  std::vector<uint32_t> msis;
  uint32_t pes = 2;
  uint64_t imem = 256 * 1024;
  uint64_t now = 0;

  uint32_t reg_read(uint32_t o) override { return regs[o]; }
  void reg_write(uint32_t o, uint32_t v) override { regs[o] = v; }
  void wait_event() override { throw std::runtime_error("firmware would sleep"); }
  uint8_t* host_ptr(uint64_t a, uint64_t n) {
    if (a < kHostBase || a - kHostBase + n > host.size()) throw HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(a)};
    return host.data() + (a - kHostBase);
  }
  uint8_t* dram_ptr(uint64_t a, uint64_t n) {
    if (a + n > dram.size()) throw HalFault{isa::DeviceError::kDmaFault, static_cast<uint32_t>(a)};
    return dram.data() + a;
  }
  void host_read(uint64_t a, void* d, uint64_t n) override { std::memcpy(d, host_ptr(a, n), n), now += 10; }
  void host_write(uint64_t a, const void* s, uint64_t n) override { std::memcpy(host_ptr(a, n), s, n), now += 10; }
  void host_to_dram(uint64_t h, uint64_t d, uint64_t n) override { std::memcpy(dram_ptr(d, n), host_ptr(h, n), n), now += 100; }
  void dram_to_host(uint64_t d, uint64_t h, uint64_t n) override { std::memcpy(host_ptr(h, n), dram_ptr(d, n), n), now += 100; }
  void dram_read(uint64_t a, void* d, uint64_t n) override { std::memcpy(d, dram_ptr(a, n), n); }
  uint32_t num_pes() const override { return pes; }
  uint64_t instr_mem_bytes() const override { return imem; }
  uint64_t sram_bytes_per_pe() const override { return 16 << 20; }
  uint64_t dram_bytes() const override { return dram.size(); }
  /// Runs started and not yet collected by the firmware, by pe_mask: a run ends at once.
  std::map<uint32_t, PeResult> started;
  bool hold = false;  ///< runs do not end while set
  PeResult start_pes(const PeRun& r) override {
    if (started.count(r.pe_mask)) throw std::runtime_error("two runs on the same PEs");
    runs.push_back(r);
    run_code.emplace_back(r.instructions, r.instructions + r.count);
    // The "program": output byte = input byte + 1, for the IO region's first 4 bytes.
    const auto& io = r.regions[static_cast<int>(isa::Region::kIo)];
    for (int i = 0; i < 4; ++i) dram[io.base + 16 + i] = dram[io.base + i] + 1;
    now += 1000;
    started[r.pe_mask] = next_result;
    return {};
  }
  bool pes_finished(uint32_t pe_mask, PeResult* result) override {
    auto it = started.find(pe_mask);
    if (it == started.end() || hold) return false;
    *result = it->second;
    started.erase(it);
    return true;
  }
  uint64_t cycle() const override { return now; }
  void send_msi(uint32_t bits) override { msis.push_back(bits); }
};

class FirmwareTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSq = kHostBase, kCq = kHostBase + 0x1000, kHostIo = kHostBase + 0x2000;
  static constexpr uint64_t kProgramAddr = 0x1000, kScratch = 0x40000, kIo = 0x50000;

  void SetUp() override {
    fw.boot();
    hal.regs[reg::SQ_BASE_LO] = static_cast<uint32_t>(kSq);
    hal.regs[reg::SQ_BASE_HI] = static_cast<uint32_t>(kSq >> 32);
    hal.regs[reg::SQ_SIZE] = 4;
    hal.regs[reg::CQ_BASE_LO] = static_cast<uint32_t>(kCq);
    hal.regs[reg::CQ_BASE_HI] = static_cast<uint32_t>(kCq >> 32);
    hal.regs[reg::CQ_SIZE] = 4;
    hal.regs[reg::INT_ENABLE] = field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK;
    program.num_pes = 1;
    program.io_bytes = 32;
    program.scratch_bytes = 64;
    program.constants = {1, 2, 3, 4, 5};
    program.instructions.resize(3);
    program.instructions[1].opcode = isa::Opcode::kDmaLoad;
    place_image(program.serialize());
  }
  void place_image(const std::string& image) { std::memcpy(hal.dram.data() + kProgramAddr, image.data(), image.size()); }

  isa::SubmissionEntry run_entry(uint32_t tag, uint32_t pe_mask = 1) {
    isa::SubmissionEntry e{};
    e.opcode = static_cast<uint32_t>(isa::CommandOp::kRun);
    e.tag = tag;
    e.pe_mask = pe_mask;
    e.program_addr = kProgramAddr;
    e.scratch_addr = kScratch;
    e.io_addr = kIo;
    e.host_io_addr = kHostIo;
    e.input_bytes = 4;
    e.output_offset = 16;
    e.output_bytes = 4;
    return e;
  }
  /// Posts entries, rings the doorbell and serves them; returns the completions posted.
  std::vector<isa::CompletionEntry> submit(const std::vector<isa::SubmissionEntry>& entries) {
    uint32_t tail = hal.regs[reg::SQ_TAIL];
    for (const auto& e : entries) {
      std::memcpy(hal.host.data() + (kSq - kHostBase) + tail * sizeof e, &e, sizeof e);
      tail = (tail + 1) % 4;
    }
    hal.regs[reg::SQ_TAIL] = tail;
    const uint32_t cq_before = hal.regs[reg::CQ_TAIL];
    fw.serve_pending();
    std::vector<isa::CompletionEntry> out;
    for (uint32_t i = cq_before; i != hal.regs[reg::CQ_TAIL]; i = (i + 1) % 4) {
      isa::CompletionEntry c;
      std::memcpy(&c, hal.host.data() + (kCq - kHostBase) + i * sizeof c, sizeof c);
      out.push_back(c);
    }
    hal.regs[reg::CQ_HEAD] = hal.regs[reg::CQ_TAIL];  // the host consumed them
    return out;
  }
  uint32_t error_code() const {
    return (const_cast<FakeHal&>(hal).regs[reg::STATUS] & field::STATUS_ERROR_CODE_MASK) >> field::STATUS_ERROR_CODE_SHIFT;
  }

  FakeHal hal;
  Firmware fw{hal};
  isa::Program program;
};

TEST_F(FirmwareTest, BootAnnouncesVersionAndReady) {
  EXPECT_EQ(hal.regs[reg::FW_VERSION], isa::kFirmwareVersion);
  EXPECT_TRUE(hal.regs[reg::STATUS] & field::STATUS_READY_MASK);
  EXPECT_EQ(hal.regs[reg::NUM_PES], 2u);
}

TEST_F(FirmwareTest, RunCopiesInputsRunsAndPostsCompletion) {
  const uint8_t in[4] = {10, 20, 30, 40};
  std::memcpy(hal.host.data() + (kHostIo - kHostBase), in, 4);
  const auto done = submit({run_entry(7)});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 7u);
  EXPECT_EQ(done[0].status, 0u);
  EXPECT_EQ(done[0].phase, 1u);
  EXPECT_LT(done[0].start_cycle, done[0].end_cycle);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(hal.host[(kHostIo - kHostBase) + 16 + i], in[i] + 1);
  ASSERT_EQ(hal.runs.size(), 1u);
  const PeRun& r = hal.runs[0];
  EXPECT_EQ(r.pe_mask, 1u);
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(hal.run_code[0][1].opcode, isa::Opcode::kDmaLoad);
  // Regions: constants inside the image, scratch and IO as submitted, with the program's sizes.
  const auto& k = r.regions[static_cast<int>(isa::Region::kConst)];
  EXPECT_EQ(k.bytes, 5u);
  EXPECT_EQ(hal.dram[k.base], 1);
  EXPECT_EQ(hal.dram[k.base + 4], 5);
  EXPECT_EQ(r.regions[static_cast<int>(isa::Region::kScratch)].base, kScratch);
  EXPECT_EQ(r.regions[static_cast<int>(isa::Region::kScratch)].bytes, 64u);
  EXPECT_EQ(r.regions[static_cast<int>(isa::Region::kIo)].bytes, 32u);
  EXPECT_EQ(hal.regs[reg::SQ_HEAD], 1u);
  EXPECT_EQ(hal.regs[reg::CQ_TAIL], 1u);
  EXPECT_TRUE(hal.regs[reg::INT_STATUS] & field::INT_STATUS_COMPLETION_MASK);
  ASSERT_EQ(hal.msis.size(), 1u);
  EXPECT_EQ(hal.msis[0], field::INT_STATUS_COMPLETION_MASK);
  EXPECT_FALSE(hal.regs[reg::STATUS] & field::STATUS_ERROR_MASK);
  EXPECT_FALSE(hal.regs[reg::STATUS] & field::STATUS_BUSY_MASK);
}

TEST_F(FirmwareTest, NoMsiWhenInterruptsDisabled) {
  hal.regs[reg::INT_ENABLE] = 0;
  submit({run_entry(1)});
  EXPECT_TRUE(hal.msis.empty());
  EXPECT_TRUE(hal.regs[reg::INT_STATUS] & field::INT_STATUS_COMPLETION_MASK);
}

TEST_F(FirmwareTest, PhaseTogglesWhenTheRingWraps) {
  std::vector<uint32_t> phases;
  for (uint32_t t = 0; t < 6; ++t)
    for (const auto& c : submit({run_entry(t)})) phases.push_back(c.phase);
  EXPECT_EQ(phases, (std::vector<uint32_t>{1, 1, 1, 1, 0, 0}));
}

TEST_F(FirmwareTest, CorruptProgramGivesBadProgramAndLatchesError) {
  std::string image = program.serialize();
  image[image.size() - 2] ^= 0x5A;  // a constant byte: only the CRC notices
  place_image(image);
  const auto done = submit({run_entry(3)});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  EXPECT_TRUE(hal.runs.empty());
  EXPECT_TRUE(hal.regs[reg::STATUS] & field::STATUS_ERROR_MASK);
  EXPECT_EQ(error_code(), static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  EXPECT_TRUE(hal.regs[reg::INT_STATUS] & field::INT_STATUS_ERROR_MASK);
  // The firmware keeps serving: a good image afterwards runs (the error stays latched).
  place_image(program.serialize());
  const auto again = submit({run_entry(4)});
  EXPECT_EQ(again.at(0).status, 0u);
  EXPECT_TRUE(hal.regs[reg::STATUS] & field::STATUS_ERROR_MASK);
}

TEST_F(FirmwareTest, TruncatedProgramAndBadMagicAreBadPrograms) {
  std::string image = program.serialize();
  isa::Program big = program;
  big.constants.assign(4096, 7);
  std::string header = big.serialize().substr(0, 64);  // a header promising more than is there
  std::memset(hal.dram.data() + kProgramAddr, 0, 8192);
  place_image(header + image.substr(64));
  EXPECT_EQ(submit({run_entry(1)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  image[0] = 'X';
  place_image(image);
  EXPECT_EQ(submit({run_entry(2)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
}

TEST_F(FirmwareTest, LoadCommandInvalidatesTheValidatedImage) {
  EXPECT_EQ(submit({run_entry(1)}).at(0).status, 0u);
  // Corrupt the image through a kLoad (as the driver would write DRAM): the firmware validates again.
  std::string image = program.serialize();
  image[image.size() - 1] ^= 1;
  std::memcpy(hal.host.data() + 0x8000, image.data(), image.size());
  isa::SubmissionEntry load{};
  load.opcode = static_cast<uint32_t>(isa::CommandOp::kLoad);
  load.io_addr = kProgramAddr;
  load.host_io_addr = kHostBase + 0x8000;
  load.input_bytes = static_cast<uint32_t>(image.size());
  const auto done = submit({load, run_entry(2)});
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].status, 0u);
  EXPECT_EQ(done[1].status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
}

TEST_F(FirmwareTest, PeMaskMustMatchTheProgram) {
  EXPECT_EQ(submit({run_entry(1, 3)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  EXPECT_EQ(submit({run_entry(2, 0)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  EXPECT_EQ(submit({run_entry(3, 4)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  hal.pes = 1;
  EXPECT_EQ(submit({run_entry(4, 2)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  EXPECT_EQ(submit({run_entry(5, 1)}).at(0).status, 0u);
  program.num_pes = 2;
  place_image(program.serialize());
  hal.pes = 2;
  EXPECT_EQ(submit({run_entry(6, 3)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch))
      << "validated image is cached until a kLoad; the stale 1-PE image is still what runs";
  EXPECT_TRUE(hal.runs.size() == 1u);
}

TEST_F(FirmwareTest, ProgramLargerThanInstructionMemoryIsRejected) {
  hal.imem = 2 * sizeof(isa::Instruction);
  EXPECT_EQ(submit({run_entry(1)}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  EXPECT_TRUE(hal.runs.empty());
}

TEST_F(FirmwareTest, BadCommandsAndFaultsBecomeErrorCompletions) {
  isa::SubmissionEntry bad{};
  bad.opcode = 99;
  bad.tag = 5;
  auto done = submit({bad});
  EXPECT_EQ(done.at(0).status, static_cast<uint32_t>(isa::DeviceError::kBadCommand));
  EXPECT_EQ(done.at(0).tag, 5u);
  auto e = run_entry(6);
  e.output_offset = 30;  // outputs beyond the IO region
  EXPECT_EQ(submit({e}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kBadCommand));
  e = run_entry(7);
  e.host_io_addr = 0x42;  // the host never mapped this
  EXPECT_EQ(submit({e}).at(0).status, static_cast<uint32_t>(isa::DeviceError::kDmaFault));
  hal.next_result = {isa::DeviceError::kDmaFault, 0xBEEF};
  done = submit({run_entry(8)});
  EXPECT_EQ(done.at(0).status, static_cast<uint32_t>(isa::DeviceError::kDmaFault));
  EXPECT_EQ(done.at(0).error_info, 0xBEEFu);
  EXPECT_EQ(hal.regs[reg::ERROR_INFO], 0xBEEFu);
}

TEST_F(FirmwareTest, InvalidQueueSetupLatchesBadCommand) {
  hal.regs[reg::SQ_SIZE] = 3;  // not a power of two
  hal.regs[reg::SQ_TAIL] = 1;
  fw.serve_pending();
  EXPECT_EQ(error_code(), static_cast<uint32_t>(isa::DeviceError::kBadCommand));
  EXPECT_EQ(hal.regs[reg::SQ_HEAD], 1u);
  EXPECT_TRUE(hal.runs.empty());
}

TEST_F(FirmwareTest, CompletionRingInvalidatedDuringARunLatchesBadCommandInsteadOfDividingByZero) {
  for (const uint32_t cq_size : {0u, 3u}) {
    hal.hold = true;
    EXPECT_TRUE(submit({run_entry(1)}).empty());
    hal.regs[reg::CQ_SIZE] = cq_size;  // the host breaks the ring while the run is in flight
    hal.hold = false;
    const uint32_t cq_tail = hal.regs[reg::CQ_TAIL];
    fw.serve_pending();
    EXPECT_EQ(error_code(), static_cast<uint32_t>(isa::DeviceError::kBadCommand));
    EXPECT_EQ(hal.regs[reg::ERROR_INFO], cq_size);
    EXPECT_EQ(hal.regs[reg::CQ_TAIL], cq_tail) << "no completion is posted without a ring";
    EXPECT_FALSE(hal.regs[reg::STATUS] & field::STATUS_BUSY_MASK);
    hal.regs[reg::CQ_SIZE] = 4;
  }
  // A CQ_TAIL outside the ring is caught the same way; a valid ring works again afterwards.
  hal.regs[reg::CQ_TAIL] = 9;
  hal.regs[reg::CQ_HEAD] = 9;
  EXPECT_TRUE(submit({run_entry(2)}).empty());
  EXPECT_EQ(hal.regs[reg::ERROR_INFO], 4u);
  hal.regs[reg::CQ_TAIL] = hal.regs[reg::CQ_HEAD] = 0;
  EXPECT_EQ(submit({run_entry(3)}).at(0).status, 0u);
}

TEST_F(FirmwareTest, RunsOnDifferentPesOverlapAndARunForABusyPeWaitsAtTheHead) {
  hal.hold = true;
  // PE 0, PE 1, then PE 0 again: the first two start at once, the third waits for PE 0.
  std::vector<isa::CompletionEntry> c = submit({run_entry(1, 1), run_entry(2, 2), run_entry(3, 1)});
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(hal.runs.size(), 2u);
  EXPECT_EQ(hal.regs[reg::SQ_HEAD], 2u);
  EXPECT_TRUE(hal.regs[reg::STATUS] & field::STATUS_BUSY_MASK);
  hal.hold = false;
  c = submit({});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(hal.runs.size(), 3u);
  EXPECT_EQ(c[0].tag, 1u);
  EXPECT_EQ(c[1].tag, 2u);
  EXPECT_EQ(c[2].tag, 3u);
  for (const auto& e : c) EXPECT_EQ(e.status, 0u);
  EXPECT_FALSE(hal.regs[reg::STATUS] & field::STATUS_BUSY_MASK);
}

}  // namespace
}  // namespace anvil::fw
