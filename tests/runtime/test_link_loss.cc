// The driver when its platform link fails half way through a register sequence, as a device
// server that dies does: every command still ends exactly once, through its callback or through
// post()'s exception, never both and never neither. A link over this process's own chip fails on
// the chosen register, so the moment is exact (a killed server only makes it likely).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "driver.h"

namespace anvil::rt {
namespace {

namespace reg = isa::reg;

/// LocalLink, except that writing `fail_register` throws kDeviceError while `failures` > 0.
class FailingLink final : public PlatformLink {
 public:
  explicit FailingLink(uint32_t fail_register) : fail_register_(fail_register) {}
  std::atomic<int> failures{0};

  void reset(const hw::HwConfig& config) override { local_->reset(config); }
  uint64_t generation() const override { return local_->generation(); }
  uint32_t read32(uint32_t offset) override { return local_->read32(offset); }
  void write32(uint32_t offset, uint32_t value) override {
    if (offset == fail_register_ && failures > 0) {
      failures--;
      fail(ErrorCode::kDeviceError, "test link: write to register " + std::to_string(offset) + " lost");
    }
    local_->write32(offset, value);
  }
  hw::HostBuffer host_alloc(uint64_t bytes) override { return local_->host_alloc(bytes); }
  void host_free(uint64_t bus_addr) override { local_->host_free(bus_addr); }
  void set_interrupt_handler(std::function<void(uint32_t)> h) override { local_->set_interrupt_handler(std::move(h)); }
  bool idle() override { return local_->idle(); }
  void wait_idle() override { local_->wait_idle(); }
  nlohmann::json counters() override { return local_->counters(); }
  void set_trace(bool enabled) override { local_->set_trace(enabled); }
  nlohmann::json trace_json() override { return local_->trace_json(); }
  void clear_trace() override { local_->clear_trace(); }

 private:
  const uint32_t fail_register_;
  std::shared_ptr<PlatformLink> local_ = LocalLink::instance();
};

isa::SubmissionEntry nop() {
  isa::SubmissionEntry e{};
  e.opcode = static_cast<uint32_t>(isa::CommandOp::kNop);
  return e;
}

/// Counts a command's callbacks and keeps the last result.
struct Ends {
  std::mutex m;
  std::condition_variable cv;
  int count = 0;
  CommandResult last;
  Device::Impl::Callback callback() {
    return [this](const CommandResult& r) {
      std::lock_guard<std::mutex> lock(m);
      count++;
      last = r;
      cv.notify_all();
    };
  }
  /// Waits (up to a generous bound, so a lost callback fails instead of hanging) for `n` ends.
  bool wait_for(int n) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return count >= n; });
  }
};

std::chrono::steady_clock::time_point in_seconds(int s) { return std::chrono::steady_clock::now() + std::chrono::seconds(s); }

TEST(LinkLoss, ACompletionTakenBeforeTheLinkFailsIsStillReported) {
  // The completion thread reads CQ_TAIL and takes the completed entry, then acknowledging it
  // (CQ_HEAD) fails. The command did complete: its caller must hear so, not wait forever.
  auto link = std::make_shared<FailingLink>(reg::CQ_HEAD);
  Device::Impl device("test", hw::HwConfig::preset("warboy-2pe"), {1}, link);
  link->failures = 1'000'000;
  Ends ends;
  device.post(nop(), false, ends.callback(), in_seconds(10), in_seconds(10));
  ASSERT_TRUE(ends.wait_for(1)) << "the completed command's callback was lost";
  EXPECT_FALSE(ends.last.has_error) << ends.last.error;
  EXPECT_EQ(ends.last.completion.status, 0u);
}

TEST(LinkLoss, AFailedDoorbellIsReportedOnceByTheExceptionAlone) {
  auto link = std::make_shared<FailingLink>(reg::SQ_TAIL);
  Device::Impl device("test", hw::HwConfig::preset("warboy-2pe"), {1}, link);
  link->failures = 1;
  Ends failed;
  try {
    device.post(nop(), false, failed.callback(), in_seconds(10), in_seconds(10));
    FAIL() << "a lost doorbell was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError) << e.what();
  }
  // The ring is usable afterwards, and the command taken back never runs nor calls back: the
  // next command's completion is the only one.
  Ends next;
  device.post(nop(), false, next.callback(), in_seconds(10), in_seconds(10));
  ASSERT_TRUE(next.wait_for(1));
  EXPECT_FALSE(next.last.has_error) << next.last.error;
  EXPECT_EQ(device.recoveries(), 0u) << "the device was reset for a command that was taken back";
  std::lock_guard<std::mutex> lock(failed.m);
  EXPECT_EQ(failed.count, 0) << "a command reported by an exception also called back";
}

}  // namespace
}  // namespace anvil::rt
