// The register block behind the PCIe BAR, driven through the endpoint's TLM target socket.
#include <gtest/gtest.h>

#include "anvil/isa/program.h"
#include "testbench.h"

namespace anvil::hw::testing {
namespace {

namespace reg = isa::reg;
namespace field = isa::field;

class Registers : public ::testing::Test {
 protected:
  void SetUp() override { bench().power(HwConfig::preset("warboy-2pe")); }
  Bench& b = bench();
};

TEST_F(Registers, ResetValuesAndFirmwareBoot) {
  EXPECT_EQ(b.read(reg::DEVICE_ID), isa::kProgramMagic);
  EXPECT_EQ(b.read(reg::NUM_PES), 2u);
  EXPECT_EQ(b.read(reg::FW_VERSION), isa::kFirmwareVersion);
  EXPECT_EQ(b.read(reg::STATUS), field::STATUS_READY_MASK);
  EXPECT_EQ(b.read(reg::INT_STATUS), 0u);
  b.power(HwConfig::preset("warboy"));
  EXPECT_EQ(b.read(reg::NUM_PES), 1u);
}

TEST_F(Registers, ReadWriteRegistersKeepTheirValue) {
  EXPECT_EQ(b.write(reg::SQ_BASE_LO, 0x12345000u), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(b.write(reg::INT_ENABLE, 3u), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(b.read(reg::SQ_BASE_LO), 0x12345000u);
  EXPECT_EQ(b.read(reg::INT_ENABLE), 3u);
}

TEST_F(Registers, WritesToReadOnlyRegistersAreRejected) {
  EXPECT_EQ(b.write(reg::DEVICE_ID, 0), tlm::TLM_COMMAND_ERROR_RESPONSE);
  EXPECT_EQ(b.write(reg::SQ_HEAD, 5), tlm::TLM_COMMAND_ERROR_RESPONSE);
  EXPECT_EQ(b.read(reg::DEVICE_ID), isa::kProgramMagic);
  EXPECT_EQ(b.read(reg::SQ_HEAD), 0u);
}

TEST_F(Registers, WriteOneToClear) {
  b.chip.pcie.regs().put(reg::INT_STATUS, field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK);
  EXPECT_EQ(b.write(reg::INT_STATUS, field::INT_STATUS_COMPLETION_MASK), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(b.read(reg::INT_STATUS), field::INT_STATUS_ERROR_MASK);
  EXPECT_EQ(b.write(reg::INT_STATUS, 0), tlm::TLM_OK_RESPONSE);  // writing 0 clears nothing
  EXPECT_EQ(b.read(reg::INT_STATUS), field::INT_STATUS_ERROR_MASK);
  EXPECT_EQ(b.write(reg::INT_STATUS, 0xFFFFFFFFu), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(b.read(reg::INT_STATUS), 0u);
}

TEST_F(Registers, BadAccessesGetErrorResponsesNotAborts) {
  uint32_t v = 0;
  uint64_t wide = 0;
  EXPECT_EQ(b.bar(tlm::TLM_READ_COMMAND, 0x034, &v, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);  // a hole in the map
  EXPECT_EQ(b.bar(tlm::TLM_READ_COMMAND, isa::kBarBytes, &v, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);
  EXPECT_EQ(b.bar(tlm::TLM_READ_COMMAND, 0xFFFFFFFFFFFFull, &v, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);
  EXPECT_EQ(b.bar(tlm::TLM_WRITE_COMMAND, reg::SQ_SIZE + 2, &v, 4), tlm::TLM_ADDRESS_ERROR_RESPONSE);  // misaligned
  EXPECT_EQ(b.bar(tlm::TLM_READ_COMMAND, reg::STATUS, &v, 2), tlm::TLM_BURST_ERROR_RESPONSE);
  EXPECT_EQ(b.bar(tlm::TLM_READ_COMMAND, reg::SQ_BASE_LO, &wide, 8), tlm::TLM_BURST_ERROR_RESPONSE);
  unsigned char be[4] = {0xFF, 0, 0, 0};
  EXPECT_EQ(b.bar(tlm::TLM_WRITE_COMMAND, reg::SQ_SIZE, &v, 4, be), tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
  // The device is unaffected.
  EXPECT_EQ(b.read(reg::STATUS), field::STATUS_READY_MASK);
}

TEST_F(Registers, CycleCounterFollowsSimulatedTime) {
  const uint32_t before = b.read(reg::CYCLE_LO);
  sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_US));  // 2000 cycles at 2 GHz
  EXPECT_EQ(b.read(reg::CYCLE_LO) - before, 2000u);
  EXPECT_EQ(b.read(reg::CYCLE_HI), 0u);
}

TEST_F(Registers, ControlResetClearsTheErrorLatchAndRebootsTheFirmware) {
  b.chip.pcie.regs().put(reg::STATUS, field::STATUS_READY_MASK | field::STATUS_ERROR_MASK | (3u << field::STATUS_ERROR_CODE_SHIFT));
  b.chip.pcie.regs().put(reg::FW_VERSION, 0);
  EXPECT_EQ(b.write(reg::SQ_SIZE, 16), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(b.write(reg::CONTROL, field::CONTROL_RESET_MASK), tlm::TLM_OK_RESPONSE);
  b.run();
  EXPECT_EQ(b.read(reg::STATUS), field::STATUS_READY_MASK);
  EXPECT_EQ(b.read(reg::FW_VERSION), isa::kFirmwareVersion);
  EXPECT_EQ(b.read(reg::SQ_SIZE), 0u);
  EXPECT_EQ(b.read(reg::CONTROL), 0u);
}

}  // namespace
}  // namespace anvil::hw::testing
