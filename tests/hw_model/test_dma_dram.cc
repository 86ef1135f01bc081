// DMA engine, DRAM and host memory driven directly: descriptors through a PE's sequencer,
// error responses for out-of-range accesses, DRAM bandwidth shared by two PEs.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "testbench.h"

namespace anvil::hw::testing {
namespace {

isa::Instruction descriptor(isa::Opcode op, isa::Region region, uint64_t dram_offset, uint32_t sram, uint32_t row_bytes,
                            uint32_t rows, uint32_t dram_stride, uint32_t sram_stride, uint32_t wait_dma = 0) {
  isa::Instruction i;
  i.opcode = op;
  i.dma.region = static_cast<uint8_t>(region);
  i.dma.dram_offset = dram_offset;
  i.dma.sram_addr = sram;
  i.dma.row_bytes = row_bytes;
  i.dma.rows = rows;
  i.dma.dram_stride = dram_stride;
  i.dma.sram_stride = sram_stride;
  i.wait[0] = wait_dma;
  return i;
}

class DmaDram : public ::testing::Test {
 protected:
  static constexpr uint64_t kIo = 0x100000, kScratch = 0x200000;
  void SetUp() override { b.power(HwConfig::preset("warboy-2pe")); }

  PeLaunch launch(std::vector<isa::Instruction> code) {
    PeLaunch l;
    l.instructions = std::move(code);
    l.regions[static_cast<int>(isa::Region::kIo)] = {kIo, 0x10000};
    l.regions[static_cast<int>(isa::Region::kScratch)] = {kScratch, 0x10000};
    return l;
  }
  /// Runs one launch on PE `pe` to the end; returns the sequencer.
  Sequencer& run(int pe, PeLaunch l) {
    Sequencer& seq = b.chip.pes[pe]->seq;
    EXPECT_TRUE(seq.load(std::move(l)));
    seq.start();
    b.run();
    EXPECT_FALSE(seq.running());
    return seq;
  }
  double dma_cycles(uint64_t bytes) const {
    const HwConfig& c = b.chip.ctx.config;
    return c.dram_latency_ns * c.clock_ghz + static_cast<double>(bytes) / c.dram_bytes_per_cycle();
  }
  Bench& b = bench();
};

TEST_F(DmaDram, StridedLoadAndStoreMoveTheRightBytes) {
  std::vector<uint8_t> src(1000);
  std::iota(src.begin(), src.end(), 0);
  ASSERT_TRUE(b.chip.dram.write(kIo, src.data(), src.size()));
  // Load rows 0..3 of 100 bytes at DRAM stride 250 packed into SRAM, store them contiguously to scratch.
  Sequencer& seq = run(0, launch({descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 64, 100, 4, 250, 100),
                                  descriptor(isa::Opcode::kDmaStore, isa::Region::kScratch, 8, 64, 400, 1, 400, 400, 1)}));
  EXPECT_EQ(seq.error(), isa::DeviceError::kOk);
  std::vector<uint8_t> got(400);
  ASSERT_TRUE(b.chip.dram.read(kScratch + 8, got.data(), got.size()));
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 100; ++i) ASSERT_EQ(got[r * 100 + i], src[r * 250 + i]) << r << "," << i;
  // Timing: two dependent descriptors of 400 bytes each.
  EXPECT_NEAR(static_cast<double>(seq.last_run_cycles()), 2 * dma_cycles(400), 2.0);
  EXPECT_EQ(b.chip.pes[0]->dma.counters().bytes_loaded, 400u);
  EXPECT_EQ(b.chip.pes[0]->dma.counters().bytes_stored, 400u);
  EXPECT_EQ(b.chip.pes[0]->dma.sram_high_water(), 464u);
}

TEST_F(DmaDram, OutOfRangeDmaIsAFaultAndTheSimulationContinues) {
  const uint64_t dram = b.chip.ctx.config.dram_bytes;
  // A region that runs past the end of DRAM: the DRAM answers with an address error.
  PeLaunch past_end = launch({descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0, 128, 1, 128, 128)});
  past_end.regions[static_cast<int>(isa::Region::kIo)] = {dram - 64, 4096};
  Sequencer& seq = run(0, past_end);
  EXPECT_EQ(seq.error(), isa::DeviceError::kDmaFault);
  EXPECT_EQ(seq.error_info(), static_cast<uint32_t>(dram - 64));
  // A descriptor outside its region is refused before it reaches the DRAM.
  run(0, launch({descriptor(isa::Opcode::kDmaStore, isa::Region::kScratch, 0xFF00, 0, 512, 1, 512, 512)}));
  EXPECT_EQ(seq.error(), isa::DeviceError::kDmaFault);
  // An SRAM range outside the PE's SRAM is a bad program.
  run(0, launch({descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0xFFFFFF00u, 512, 1, 512, 512)}));
  EXPECT_EQ(seq.error(), isa::DeviceError::kBadProgram);
  // Instructions after a fault do not run; the next launch runs normally.
  run(0, launch({descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0, 64, 1, 64, 64)}));
  EXPECT_EQ(seq.error(), isa::DeviceError::kOk);
  // Direct TLM access beyond DRAM: address error response.
  tlm::tlm_generic_payload gp;
  uint8_t buf[16];
  gp.set_command(tlm::TLM_READ_COMMAND);
  gp.set_address(dram - 8);
  gp.set_data_ptr(buf);
  gp.set_data_length(16);
  gp.set_streaming_width(16);
  sc_core::sc_time d;
  b.chip.pes[0]->dma.dram_socket->b_transport(gp, d);
  EXPECT_EQ(gp.get_response_status(), tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

TEST_F(DmaDram, TwoPesStreamingAtOnceShareTheBandwidth) {
  // Each PE loads 16 descriptors of 64 KiB; alone it takes T, together both take about 2x the transfer time.
  std::vector<isa::Instruction> code;
  for (uint32_t i = 0; i < 16; ++i)
    code.push_back(descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0, 65536, 1, 65536, 65536));
  Sequencer& s0 = run(0, launch(code));
  const double alone = static_cast<double>(s0.last_run_cycles());
  EXPECT_NEAR(alone, 16 * dma_cycles(65536), 0.02 * alone);
  Sequencer& s1 = b.chip.pes[1]->seq;
  ASSERT_TRUE(s0.load(launch(code)));
  ASSERT_TRUE(s1.load(launch(code)));
  s0.start();
  s1.start();
  b.run();
  const double transfer = 16 * 65536 / b.chip.ctx.config.dram_bytes_per_cycle();
  for (Sequencer* s : {&s0, &s1}) {
    EXPECT_EQ(s->error(), isa::DeviceError::kOk);
    // Each got about half the bandwidth: between 1.7x and 2.3x of its transfer time alone.
    EXPECT_GT(static_cast<double>(s->last_run_cycles()), 1.7 * transfer) << "pe" << s->pe();
    EXPECT_LT(static_cast<double>(s->last_run_cycles()), 2.3 * transfer + 16 * 200) << "pe" << s->pe();
  }
  EXPECT_GT(b.chip.dram.counters().stall_ps, 0u);
}

TEST_F(DmaDram, HostMemoryIsReachedOverPcieWithDmi) {
  HostMemory::Buffer buf = b.chip.host_memory.allocate(256);
  for (int i = 0; i < 256; ++i) buf.data[i] = static_cast<uint8_t>(i * 3);
  uint8_t got[16];
  sc_core::sc_time d = sc_core::SC_ZERO_TIME;
  ASSERT_TRUE(b.chip.pcie.host_read(buf.bus_addr + 16, got, 16, d));
  EXPECT_EQ(got[0], 48);
  const HwConfig& c = b.chip.ctx.config;
  EXPECT_NEAR(d.to_seconds() * 1e9, c.pcie_latency_ns + 16 / c.pcie_gbps, 0.01);
  // Past the end of the buffer (into the guard gap): an error, not a crash.
  EXPECT_FALSE(b.chip.pcie.host_read(buf.bus_addr + 250, got, 16, d));
  uint64_t fault = 0;
  EXPECT_FALSE(b.chip.pcie.host_to_dram(0x42, 0, 16, d, &fault));
  EXPECT_EQ(fault, 0x42u);
  // DMI: the target hands out the buffer itself.
  tlm::tlm_generic_payload gp;
  gp.set_address(buf.bus_addr + 5);
  tlm::tlm_dmi dmi;
  ASSERT_TRUE(b.chip.pcie.host_socket->get_direct_mem_ptr(gp, dmi));
  EXPECT_EQ(dmi.get_dmi_ptr(), buf.data);
  EXPECT_EQ(dmi.get_start_address(), buf.bus_addr);
  b.chip.host_memory.release(buf.bus_addr);
  EXPECT_FALSE(b.chip.pcie.host_read(buf.bus_addr, got, 16, d));
}

TEST_F(DmaDram, FaultInjectionFailsTheNthDma) {
  PeLaunch l = launch({descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, 0, 64, 1, 64, 64),
                       descriptor(isa::Opcode::kDmaLoad, isa::Region::kIo, 64, 64, 64, 1, 64, 64)});
  l.fault_mode = 1;
  l.fault_arg = 2;
  Sequencer& seq = run(0, l);
  EXPECT_EQ(seq.error(), isa::DeviceError::kDmaFault);
  EXPECT_EQ(b.chip.pes[0]->dma.counters().descriptors, 1u);
}

}  // namespace
}  // namespace anvil::hw::testing
