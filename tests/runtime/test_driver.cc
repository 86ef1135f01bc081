// The platform as a raw driver sees it: BAR accesses, rings in host memory and MSIs, without the
// runtime's Device/Session. Covers device-side errors the runtime's own checks would pre-empt.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "program_builder.h"

namespace anvil::hw {
namespace {

namespace reg = isa::reg;
namespace field = isa::field;

class RawDriver : public ::testing::Test {
 protected:
  void SetUp() override {
    p.reset(HwConfig::preset("warboy-2pe"));
    sq = p.host_alloc(8 * sizeof(isa::SubmissionEntry));
    cq = p.host_alloc(8 * sizeof(isa::CompletionEntry));
    p.write32(reg::SQ_BASE_LO, static_cast<uint32_t>(sq.bus_addr));
    p.write32(reg::SQ_BASE_HI, static_cast<uint32_t>(sq.bus_addr >> 32));
    p.write32(reg::SQ_SIZE, 8);
    p.write32(reg::CQ_BASE_LO, static_cast<uint32_t>(cq.bus_addr));
    p.write32(reg::CQ_BASE_HI, static_cast<uint32_t>(cq.bus_addr >> 32));
    p.write32(reg::CQ_SIZE, 8);
    p.write32(reg::INT_ENABLE, field::INT_STATUS_COMPLETION_MASK);
    p.set_interrupt_handler([this](uint32_t bits) { msis += bits != 0; });
  }
  void TearDown() override { p.set_interrupt_handler(nullptr); }

  /// Submits one entry, waits until the device is idle and returns its completion.
  isa::CompletionEntry submit(isa::SubmissionEntry e) {
    std::memcpy(sq.data + tail * sizeof e, &e, sizeof e);
    tail = (tail + 1) % 8;
    p.write32(reg::SQ_TAIL, tail);
    p.wait_idle();
    EXPECT_EQ(p.read32(reg::CQ_TAIL), tail);
    isa::CompletionEntry c;
    std::memcpy(&c, cq.data + ((tail + 7) % 8) * sizeof c, sizeof c);
    p.write32(reg::CQ_HEAD, tail);
    return c;
  }
  /// Places `image` in device DRAM at `addr` with a kLoad command.
  void load(const std::string& image, uint64_t addr) {
    HostBuffer staging = p.host_alloc(image.size());
    std::memcpy(staging.data, image.data(), image.size());
    isa::SubmissionEntry e{};
    e.opcode = static_cast<uint32_t>(isa::CommandOp::kLoad);
    e.io_addr = addr;
    e.host_io_addr = staging.bus_addr;
    e.input_bytes = static_cast<uint32_t>(image.size());
    EXPECT_EQ(submit(e).status, 0u);
    p.host_free(staging.bus_addr);
  }
  isa::SubmissionEntry run_entry(uint32_t pe_mask) {
    isa::SubmissionEntry e{};
    e.opcode = static_cast<uint32_t>(isa::CommandOp::kRun);
    e.tag = 77;
    e.pe_mask = pe_mask;
    e.program_addr = 0;
    e.scratch_addr = 1 << 20;
    e.io_addr = 2 << 20;
    e.host_io_addr = io.bus_addr;
    return e;
  }

  Platform& p = Platform::instance();
  HostBuffer sq, cq, io = p.host_alloc(4096);
  uint32_t tail = 0;
  std::atomic<int> msis{0};
};

TEST_F(RawDriver, TruncatedOrCorruptProgramIsABadProgramCompletion) {
  anvil::testing::ConvLayer g = anvil::testing::ConvLayer::random(1, anvil::testing::ConvLayer{});
  io = p.host_alloc(4096);
  const std::string image = g.program().serialize();
  load(image.substr(0, image.size() - 100), 0);  // truncated: DRAM after it is zero, the CRC fails
  isa::CompletionEntry c = submit(run_entry(1));
  EXPECT_EQ(c.tag, 77u);
  EXPECT_EQ(c.status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  const uint32_t status = p.read32(reg::STATUS);
  EXPECT_TRUE(status & field::STATUS_ERROR_MASK);
  EXPECT_EQ((status & field::STATUS_ERROR_CODE_MASK) >> field::STATUS_ERROR_CODE_SHIFT,
            static_cast<uint32_t>(isa::DeviceError::kBadProgram));
  EXPECT_GE(msis.load(), 2);  // the kLoad's and the kRun's completions

  std::string corrupt = image;
  corrupt[200] ^= 0x10;  // inside the instructions
  load(corrupt, 0);
  EXPECT_EQ(submit(run_entry(1)).status, static_cast<uint32_t>(isa::DeviceError::kBadProgram));

  // The good image runs; a wrong PE mask is a PE mismatch.
  load(image, 0);
  EXPECT_EQ(submit(run_entry(1)).status, 0u);
  EXPECT_EQ(submit(run_entry(3)).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  EXPECT_EQ(submit(run_entry(4)).status, static_cast<uint32_t>(isa::DeviceError::kPeMismatch));
  // CONTROL.RESET clears the latched error; the firmware reboots and the queues must be set up again.
  p.write32(reg::CONTROL, field::CONTROL_RESET_MASK);
  p.wait_idle();
  EXPECT_EQ(p.read32(reg::STATUS), field::STATUS_READY_MASK);
  EXPECT_EQ(p.read32(reg::SQ_SIZE), 0u);
}

TEST_F(RawDriver, BarErrorsReachTheHostAsResponsesAndExceptions) {
  uint32_t v = 0;
  EXPECT_EQ(p.bar_access(false, 0x034, &v, 4), BarResponse::kAddressError);
  EXPECT_EQ(p.bar_access(false, reg::STATUS, &v, 2), BarResponse::kBurstError);
  EXPECT_EQ(p.bar_access(true, reg::DEVICE_ID, &v, 4), BarResponse::kCommandError);
  try {
    p.read32(0x2000);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find("0x2000"), std::string::npos) << e.what();
  }
  EXPECT_EQ(p.read32(reg::STATUS), field::STATUS_READY_MASK);  // the device is unaffected
}

TEST_F(RawDriver, ResetRejectsAnInvalidConfigAndKeepsTheDevice) {
  HwConfig bad = HwConfig::preset("warboy");
  bad.dram_gbps = 0;
  const uint64_t gen = p.generation();
  try {
    p.reset(bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dram_gbps"), std::string::npos);
  }
  EXPECT_EQ(p.generation(), gen);
  EXPECT_EQ(p.read32(reg::NUM_PES), 2u);
}

}  // namespace
}  // namespace anvil::hw
