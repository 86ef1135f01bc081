#pragma once
/// The device driver behind rt::Device: queue rings in host memory, doorbells, interrupts, the
/// completion thread, fault recovery by reset, and the device DRAM allocator. Internal to anvil_runtime.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "anvil/common/status.h"
#include "anvil/isa/device.h"
#include "anvil/runtime/runtime.h"
#include "platform_link.h"

namespace anvil::rt {

/// The steady-clock time `seconds` host seconds from now, saturating: kNoTimeoutS or more (or
/// +inf) is time_point::max() (no limit), 0 or less is now. Throws kInvalidArgument for NaN,
/// naming `what` (the timeout's name).
std::chrono::steady_clock::time_point deadline_after(double seconds, const char* what);

/// First-fit allocator over device DRAM, 4 KiB granules.
class DramAllocator {
 public:
  explicit DramAllocator(uint64_t bytes) { free_[0] = bytes; }
  /// Throws kBusy naming `what` when no free range is large enough.
  uint64_t allocate(uint64_t bytes, const std::string& what);
  void release(uint64_t addr);

 private:
  std::map<uint64_t, uint64_t> free_;  ///< offset -> length, coalesced
  std::map<uint64_t, uint64_t> used_;
};

/// How a posted command ended, handed to its callback on the completion thread: the completion
/// entry (status 0 or the device's error), or `error` set when the runtime gave up on it (device
/// reset, no completion, stale device).
struct CommandResult {
  isa::CompletionEntry completion{};
  uint64_t submit_cycle = 0;
  int unit = -1;  ///< index into Device::Impl::units, -1 for a command without a PE
  bool has_error = false;
  ErrorCode error_code = ErrorCode::kInternal;
  std::string error;
};

struct Device::Impl {
  using Callback = std::function<void(const CommandResult&)>;

  /// Drives the chip behind `link` (LocalLink: this process's platform; RemoteLink: a device server).
  Impl(std::string spec, const hw::HwConfig& cfg, std::vector<uint32_t> units, std::shared_ptr<PlatformLink> link);
  ~Impl();
  /// Throws kClosed when closed, when the platform was reset by a later open() or when the link
  /// to a device server is lost.
  void check_open() const;
  /// Posts one submission entry (the tag is filled in) and returns; `done` runs on the completion
  /// thread when it ends, with the power mutex held shared: a successful command's host buffers
  /// stay valid (no power cycle) while it runs, so it may read them; it must not lock the mutex. on_unit: the entry runs on the least loaded unit (pe_mask filled in).
  /// Blocks while the device's rings are full, up to `wait_until` (then kTimeout). No completion
  /// by `device_deadline` is a device fault.
  void post(isa::SubmissionEntry e, bool on_unit, Callback done, std::chrono::steady_clock::time_point wait_until,
            std::chrono::steady_clock::time_point device_deadline);
  /// post() and wait for the result (kLoad).
  CommandResult execute(const isa::SubmissionEntry& e, double timeout_s);
  /// Device DRAM allocation (the handle's own regions: programs, scratch, IO).
  uint64_t dram_alloc(uint64_t bytes, const std::string& what);
  void dram_free(uint64_t addr);
  hw::HostBuffer host_alloc(uint64_t bytes);
  void host_free(const hw::HostBuffer& b);
  /// Runs f, which reads or writes this device's host buffers through their pointers, with the
  /// power mutex held shared: a later Device::open cannot power-cycle the chip (which frees every
  /// host buffer) while f runs. Throws kClosed, without running f, when one already did.
  template <typename F>
  void with_host_memory(F&& f) {
    std::shared_lock<std::shared_mutex> power(platform.power_mutex());
    if (stale()) fail(ErrorCode::kClosed, reset_by_later_open());
    f();
  }
  uint64_t recoveries() const;

  const std::shared_ptr<PlatformLink> link;
  PlatformLink& platform;  ///< *link
  const std::string spec;
  const hw::HwConfig config;
  const std::vector<uint32_t> units;  ///< PE masks
  const uint32_t pes_per_unit;
  uint64_t generation = 0;
  std::atomic<bool> closed{false};

 private:
  struct Pending {
    int unit = -1;
    uint64_t post_seq = 0, submit_cycle = 0;
    std::chrono::steady_clock::time_point deadline;
    Callback done;
  };
  /// Interrupt state shared with the platform's handler.
  struct Irq {
    std::mutex mutex;
    std::condition_variable cv;
    uint64_t count = 0;
    bool stop = false;
  };
  bool stale() const;
  std::string reset_by_later_open() const;
  void init_rings();
  uint64_t read_cycle();
  /// The completion thread: consumes the completion ring after interrupts, detects lost and
  /// overdue commands, resets the device after a fault.
  void completion_loop();
  /// Consumes every posted completion (CQ_TAIL read first: it orders the device's ring writes
  /// before ours) and appends the finished commands to `done`, as it takes them: when the
  /// platform fails half way (a lost device server), the ones taken are still there to report.
  void reap(std::vector<std::pair<Pending, CommandResult>>& done);
  /// Called with the power mutex held shared (the device not stale).
  /// CONTROL.RESET, waits for the firmware to boot, re-arms the rings; every command still in
  /// flight fails with `why`. Returns those commands; *status_note (optional) names the error
  /// STATUS had latched before the reset.
  std::vector<std::pair<Pending, CommandResult>> recover(const std::string& why, std::string* status_note = nullptr);
  /// Moves every pending command to `done`, failed with `code` and `why` (a stale device, a
  /// failed platform); the callbacks run later, in finish(), without the lock.
  void fail_pending(ErrorCode code, const std::string& why, std::vector<std::pair<Pending, CommandResult>>& done);
  static void finish(std::vector<std::pair<Pending, CommandResult>>& done);

  std::shared_ptr<Irq> irq_ = std::make_shared<Irq>();
  hw::HostBuffer sq_, cq_;
  static constexpr uint32_t kQueueEntries = 64;
  /// SQ tail and doorbell; recovery holds it so nothing is posted meanwhile. Lock order: the
  /// platform's power mutex (shared), then ring_mutex_, then pending_mutex_.
  std::mutex ring_mutex_;
  uint32_t sq_tail_ = 0, cq_head_ = 0, cq_phase_ = 1, next_tag_ = 1;
  uint64_t post_seq_ = 0;
  mutable std::mutex pending_mutex_;  ///< pending_, reserved_, unit_load_, recoveries_
  std::condition_variable room_cv_;
  std::map<uint32_t, Pending> pending_;  ///< by tag
  uint32_t reserved_ = 0;
  std::vector<uint32_t> unit_load_;
  uint64_t recoveries_ = 0;
  /// The STATUS latch (code << 32 | ERROR_INFO) of the last error a completion reported, 0 after a
  /// reset; completion thread only. recover() does not quote it as a later fault's.
  uint64_t reported_latch_ = 0;
  std::mutex dram_mutex_;
  DramAllocator dram_;
  std::thread completion_thread_;
};

}  // namespace anvil::rt
