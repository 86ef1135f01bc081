// Fault injection through the runtime: the hw config's fault knobs (fault_run, fault_dma_fail_at,
// fault_pe_hang_at) make one PE run fail a DMA or hang; the firmware reports it in STATUS and the
// completion entry, the runtime reports a typed device fault within its timeout, resets the device,
// and the next request succeeds.
#include <gtest/gtest.h>

#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::random_int8;

struct Fixture {
  ConvLayer g = ConvLayer::random(51, ConvLayer{});
  TensorMap in{{"x", Tensor::from_vector<int8_t>({1, 3, 8, 8}, random_int8(192, 52))}};
  std::vector<int8_t> want = g.expected(in.at("x").to_vector<int8_t>());
};

Error error_of_run(Session& s, const TensorMap& in) {
  try {
    s.run(in);
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "(no error)");
}

TEST(FaultInjection, DmaFailureIsADeviceFaultFromCompletionAndStatusThenTheDeviceRecovers) {
  Fixture f;
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_dma_fail_at=3");  // the input load of the first run
  Device dev = Device::open("warboy(1)*1", cfg);
  Session s(dev, f.g.program());
  const Error e = error_of_run(s, f.in);
  EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
  const std::string msg = e.what();
  EXPECT_NE(msg.find("device fault: DMA fault"), std::string::npos) << msg;       // the completion entry
  EXPECT_NE(msg.find("STATUS latched DMA fault"), std::string::npos) << msg;      // the status register
  EXPECT_NE(msg.find("the device was reset"), std::string::npos) << msg;
  EXPECT_EQ(dev.recoveries(), 1u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want) << "run after recovery " << i;
  EXPECT_EQ(dev.recoveries(), 1u);
}

TEST(FaultInjection, ChosenRunHangsUntilTheWatchdogThenTheDeviceRecovers) {
  Fixture f;
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_run=3");
  cfg.set("fault_pe_hang_at=4");  // the conv of the third run
  cfg.set("watchdog_cycles=1000000");
  Device dev = Device::open("warboy(1)*1", cfg);
  Session s(dev, f.g.program());
  EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want);
  EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want);
  const Error e = error_of_run(s, f.in);
  EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
  EXPECT_NE(std::string(e.what()).find("PE timeout"), std::string::npos) << e.what();
  EXPECT_EQ(dev.counters()["command_processor"]["watchdog_timeouts"], 1);
  EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want);
  EXPECT_EQ(dev.recoveries(), 1u);
}

TEST(FaultInjection, HangWithoutWatchdogIsCaughtByTheRuntimeDeadline) {
  Fixture f;
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_pe_hang_at=1");
  cfg.set("watchdog_cycles=100000000000000");  // 14 simulated hours: the firmware never answers
  Device dev = Device::open("warboy(1)*1", cfg);
  {
    SessionOptions o;
    o.device_timeout_s = 0.5;  // the runtime's own limit per request (host time)
    Session s(dev, f.g.program(), o);
    Request r = s.submit(f.in);
    EXPECT_EQ(r.wait(60.0), RequestState::kError);
    EXPECT_EQ(r.error_code(), ErrorCode::kDeviceError);
    EXPECT_NE(r.error_message().find("no completion"), std::string::npos) << r.error_message();
    EXPECT_EQ(dev.recoveries(), 1u);
  }
  // The recovered device runs the next request; under the default deadline, because on a loaded
  // machine a healthy run can itself take longer than 0.5 s of host time.
  Session s(dev, f.g.program());
  EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want);
  EXPECT_EQ(dev.recoveries(), 1u);
}

TEST(FaultInjection, AnErrorAlreadyReportedIsNotQuotedAsTheLatchOfALaterUnrelatedFault) {
  Fixture f;
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_run=2");  // the second PE run hangs; the firmware never answers
  cfg.set("fault_pe_hang_at=1");
  cfg.set("watchdog_cycles=100000000000000");
  Device dev = Device::open("warboy(1)*1", cfg);
  isa::Program bad = f.g.program();
  bad.instructions[3].conv.out_addr = 0xFFFFFF00u;  // outside SRAM: a bad program (no reset)
  Session bad_session(dev, bad);
  const Error first = error_of_run(bad_session, f.in);
  EXPECT_NE(std::string(first.what()).find("bad program"), std::string::npos) << first.what();
  SessionOptions o;
  o.device_timeout_s = 0.5;
  Session s(dev, f.g.program(), o);
  const std::string msg = error_of_run(s, f.in).what();
  EXPECT_NE(msg.find("no completion"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("bad program"), std::string::npos) << "the earlier error, already reported: " << msg;
  EXPECT_EQ(msg.find("STATUS latched"), std::string::npos) << msg;
}

TEST(FaultInjection, RequestsInFlightOnTheOtherPeFailWithTheResetAndLaterOnesSucceed) {
  Fixture f;
  hw::HwConfig cfg = hw::HwConfig::preset("warboy-2pe");
  cfg.set("fault_dma_fail_at=1");
  Device dev = Device::open("warboy(2)*1", cfg);
  SessionOptions o;
  o.queue_depth = 4;
  Session s(dev, f.g.program(), o);
  std::vector<Request> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(s.submit(f.in, i));
  int failed = 0, completed = 0;
  for (Request& r : rs) {
    const RequestState st = r.wait(60.0);
    ASSERT_NE(st, RequestState::kTimeout);
    if (st == RequestState::kError) {
      ++failed;
      EXPECT_EQ(r.error_code(), ErrorCode::kDeviceError);
    } else {
      ++completed;
      EXPECT_EQ(r.outputs().at("y").to_vector<int8_t>(), f.want);
    }
  }
  EXPECT_GE(failed, 1);  // the faulted run, and any the reset aborted
  EXPECT_EQ(failed + completed, 4);
  EXPECT_EQ(dev.recoveries(), 1u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s.run(f.in).at("y").to_vector<int8_t>(), f.want);
}

TEST(FaultInjection, BadKnobsAreConfigErrors) {
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_run=0");
  EXPECT_THROW(cfg.validate(), Error);
  cfg = hw::HwConfig::preset("warboy");
  cfg.set("fault_dma_fail_at=1");
  cfg.set("fault_pe_hang_at=1");
  EXPECT_THROW(Device::open("warboy(1)*1", cfg), Error);
  EXPECT_THROW(cfg.set("fault_dma_fail_at=-1"), Error);
}

}  // namespace
}  // namespace anvil::rt
