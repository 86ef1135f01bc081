#pragma once
/// The device driver behind rt::Device: queue rings in host memory, doorbells, interrupts and the
/// device DRAM allocator. Internal to anvil_runtime.
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "anvil/runtime/runtime.h"

namespace anvil::rt {

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

struct Device::Impl {
  /// Interrupt state shared with the platform's handler (which may outlive nothing: it holds a shared_ptr).
  struct Irq {
    std::mutex mutex;
    std::condition_variable cv;
    uint64_t count = 0;
  };

  Impl(std::string spec, const hw::HwConfig& cfg, uint32_t pe_mask);
  ~Impl();
  /// Throws kClosed when closed or when the platform was reset by a later open().
  void check_open() const;
  /// Posts one submission entry and waits for its completion (the tag is filled in).
  isa::CompletionEntry submit(isa::SubmissionEntry e);
  /// Device DRAM allocation (the handle's own regions: programs, scratch, IO).
  uint64_t dram_alloc(uint64_t bytes, const std::string& what);
  void dram_free(uint64_t addr);
  hw::HostBuffer host_alloc(uint64_t bytes);
  void host_free(const hw::HostBuffer& b);
  uint32_t pes_used() const { return pe_mask == 3 ? 2 : 1; }

  hw::Platform& platform;
  const std::string spec;
  const hw::HwConfig config;
  const uint32_t pe_mask;
  uint64_t generation = 0;
  bool closed = false;
  double timeout_s = 300.0;  ///< wall-clock limit for one command (the device watchdog normally answers first)

 private:
  bool stale() const;
  /// Consumes the completion at CQ head if the device posted one.
  bool poll_completion(isa::CompletionEntry* out);

  std::mutex mutex_;  ///< one command at a time
  std::shared_ptr<Irq> irq_ = std::make_shared<Irq>();
  hw::HostBuffer sq_, cq_;
  static constexpr uint32_t kQueueEntries = 64;
  uint32_t sq_tail_ = 0, cq_head_ = 0, cq_phase_ = 1, next_tag_ = 1;
  DramAllocator dram_;
};

}  // namespace anvil::rt
