#include "driver.h"

#include <cmath>
#include <cstring>

namespace anvil::rt {

namespace reg = isa::reg;
namespace field = isa::field;
using Clock = std::chrono::steady_clock;

namespace {
constexpr uint64_t kGranule = 4096;
/// The completion thread looks at the device at least this often without an interrupt (lost and
/// overdue commands).
constexpr auto kPollInterval = std::chrono::milliseconds(20);

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llX", static_cast<unsigned long long>(v));
  return b;
}

/// Device errors after which the runtime resets the device: the hardware itself failed. A bad
/// program, command or PE mask fails only its request.
bool needs_reset(uint32_t status) {
  const auto e = static_cast<isa::DeviceError>(status);
  return e == isa::DeviceError::kDmaFault || e == isa::DeviceError::kTimeout || e == isa::DeviceError::kInternal;
}

/// A latched error as one value: STATUS.ERROR_CODE and ERROR_INFO (0: none).
uint64_t latch_key(uint32_t code, uint32_t info) { return code ? static_cast<uint64_t>(code) << 32 | info : 0; }
}  // namespace

Clock::time_point deadline_after(double seconds, const char* what) {
  if (std::isnan(seconds)) fail(ErrorCode::kInvalidArgument, std::string(what) + " is NaN");
  if (seconds >= kNoTimeoutS) return Clock::time_point::max();
  const auto now = Clock::now();
  if (seconds <= 0) return now;
  // Below kNoTimeoutS (1e9 s) the nanosecond count cannot overflow: int64 ns reach 9.2e9 s.
  return now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

uint64_t DramAllocator::allocate(uint64_t bytes, const std::string& what) {
  const uint64_t size = ((bytes ? bytes : 1) + kGranule - 1) / kGranule * kGranule;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < size) continue;
    const uint64_t addr = it->first, rest = it->second - size;
    free_.erase(it);
    if (rest) free_[addr + size] = rest;
    used_[addr] = size;
    return addr;
  }
  fail(ErrorCode::kBusy, "device DRAM: no room for " + what + " (" + std::to_string(bytes) + " bytes)");
}

void DramAllocator::release(uint64_t addr) {
  auto u = used_.find(addr);
  if (u == used_.end()) return;
  uint64_t start = addr, size = u->second;
  used_.erase(u);
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + size) size += next->second, next = free_.erase(next);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) start = prev->first, size += prev->second, free_.erase(prev);
  }
  free_[start] = size;
}

Device::Impl::Impl(std::string s, const hw::HwConfig& cfg, std::vector<uint32_t> u, std::shared_ptr<PlatformLink> l)
    : link(std::move(l)),
      platform(*link),
      spec(std::move(s)),
      config(cfg),
      units(std::move(u)),
      pes_per_unit(units.at(0) == 3 ? 2 : 1),
      unit_load_(units.size(), 0),
      dram_(cfg.dram_bytes) {
  // The reset and the generation it made are one step: another open in between would leave both
  // devices holding the same generation, each "owning" the chip.
  std::unique_lock<std::shared_mutex> power(platform.power_mutex());
  platform.reset(config);
  generation = platform.generation();
  const uint32_t id = platform.read32(reg::DEVICE_ID), fw = platform.read32(reg::FW_VERSION);
  const uint32_t status = platform.read32(reg::STATUS);
  if (id != isa::kProgramMagic || fw != isa::kFirmwareVersion || !(status & field::STATUS_READY_MASK))
    fail(ErrorCode::kDeviceError, "device '" + spec + "' did not boot: DEVICE_ID " + hex(id) + ", FW_VERSION " +
                                      hex(fw) + ", STATUS " + hex(status));
  sq_ = platform.host_alloc(kQueueEntries * sizeof(isa::SubmissionEntry));
  cq_ = platform.host_alloc(kQueueEntries * sizeof(isa::CompletionEntry));
  std::weak_ptr<Irq> irq = irq_;
  platform.set_interrupt_handler([irq](uint32_t) {
    if (auto s = irq.lock()) {
      std::lock_guard<std::mutex> lock(s->mutex);
      s->count++;
      s->cv.notify_all();
    }
  });
  init_rings();
  power.unlock();
  completion_thread_ = std::thread([this] { completion_loop(); });
}

Device::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(irq_->mutex);
    irq_->stop = true;
    irq_->cv.notify_all();
  }
  completion_thread_.join();
  std::shared_lock<std::shared_mutex> power(platform.power_mutex());
  if (stale()) return;  // a later open() owns the platform now
  platform.set_interrupt_handler(nullptr);
  platform.host_free(sq_.bus_addr);
  platform.host_free(cq_.bus_addr);
}

void Device::Impl::init_rings() {
  platform.write32(reg::SQ_BASE_LO, static_cast<uint32_t>(sq_.bus_addr));
  platform.write32(reg::SQ_BASE_HI, static_cast<uint32_t>(sq_.bus_addr >> 32));
  platform.write32(reg::SQ_SIZE, kQueueEntries);
  platform.write32(reg::CQ_BASE_LO, static_cast<uint32_t>(cq_.bus_addr));
  platform.write32(reg::CQ_BASE_HI, static_cast<uint32_t>(cq_.bus_addr >> 32));
  platform.write32(reg::CQ_SIZE, kQueueEntries);
  platform.write32(reg::INT_ENABLE, field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK);
}

bool Device::Impl::stale() const { return platform.generation() != generation; }

std::string Device::Impl::reset_by_later_open() const {
  return "device '" + spec + "' was reset by a later Device::open";
}

void Device::Impl::check_open() const {
  if (closed) fail(ErrorCode::kClosed, "device '" + spec + "' is closed");
  if (stale()) fail(ErrorCode::kClosed, reset_by_later_open());
  if (const std::string lost = platform.lost(); !lost.empty()) fail(ErrorCode::kClosed, "device '" + spec + "': " + lost);
}

uint64_t Device::Impl::dram_alloc(uint64_t bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(dram_mutex_);
  return dram_.allocate(bytes, what);
}

void Device::Impl::dram_free(uint64_t addr) {
  std::lock_guard<std::mutex> lock(dram_mutex_);
  dram_.release(addr);
}

hw::HostBuffer Device::Impl::host_alloc(uint64_t bytes) {
  hw::HostBuffer b;
  with_host_memory([&] { b = platform.host_alloc(bytes ? bytes : 1); });  // not in a later open's generation
  return b;
}

void Device::Impl::host_free(const hw::HostBuffer& b) {
  std::shared_lock<std::shared_mutex> power(platform.power_mutex());
  if (!stale()) platform.host_free(b.bus_addr);  // after a power cycle its bus address may be another's
}

uint64_t Device::Impl::recoveries() const {
  std::lock_guard<std::mutex> lock(pending_mutex_);
  return recoveries_;
}

uint64_t Device::Impl::read_cycle() {
  // The counter is read in two halves: re-read when the high half moved in between.
  for (;;) {
    const uint32_t hi = platform.read32(reg::CYCLE_HI), lo = platform.read32(reg::CYCLE_LO);
    if (platform.read32(reg::CYCLE_HI) == hi) return static_cast<uint64_t>(hi) << 32 | lo;
  }
}

void Device::Impl::post(isa::SubmissionEntry e, bool on_unit, Callback done, Clock::time_point wait_until,
                        Clock::time_point device_deadline) {
  check_open();
  int unit = -1;
  {
    std::unique_lock<std::mutex> lock(pending_mutex_);
    // One entry stays free so a full ring is distinguishable from an empty one.
    if (!room_cv_.wait_until(lock, wait_until, [&] { return pending_.size() + reserved_ < kQueueEntries - 1; }))
      fail(ErrorCode::kTimeout, "device '" + spec + "': queue timeout: the device's " +
                                    std::to_string(kQueueEntries - 1) + " command slots stayed full");
    reserved_++;
    if (on_unit) {
      unit = 0;
      for (size_t u = 1; u < units.size(); ++u)
        if (unit_load_[u] < unit_load_[unit]) unit = static_cast<int>(u);
      unit_load_[unit]++;
      e.pe_mask = units[unit];
    }
  }
  // The ring is written through its host pointer and the doorbell rung with the power mutex held:
  // no later open can free the ring or take over the chip in between.
  std::shared_lock<std::shared_mutex> power(platform.power_mutex(), std::defer_lock);
  std::unique_lock<std::mutex> ring(ring_mutex_, std::defer_lock);
  bool handed = false;  // the entry is in pending_: the completion thread may end it from now on
  try {
    power.lock();
    ring.lock();
    check_open();
    e.tag = next_tag_++;
    if (next_tag_ == 0) next_tag_ = 1;
    Pending p;
    p.unit = unit;
    p.deadline = device_deadline;
    p.done = std::move(done);
    p.submit_cycle = read_cycle();
    std::memcpy(sq_.data + static_cast<size_t>(sq_tail_) * sizeof e, &e, sizeof e);
    sq_tail_ = (sq_tail_ + 1) % kQueueEntries;
    {
      std::lock_guard<std::mutex> lock(pending_mutex_);
      p.post_seq = ++post_seq_;
      reserved_--;
      pending_.emplace(e.tag, std::move(p));
      handed = true;
    }
    platform.write32(reg::SQ_TAIL, sq_tail_);  // the doorbell
  } catch (...) {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    if (handed) {
      // The doorbell failed (a lost device server). Either the completion thread already failed
      // the entry with every other pending one, and its callback reports that, or it is still
      // ours: then it is taken back, the ring slot with it, and only the exception reports it.
      if (pending_.erase(e.tag) == 0) return;
      sq_tail_ = (sq_tail_ + kQueueEntries - 1) % kQueueEntries;
    } else {
      reserved_--;
    }
    if (unit >= 0) unit_load_[unit]--;
    room_cv_.notify_all();
    throw;
  }
}

CommandResult Device::Impl::execute(const isa::SubmissionEntry& e, double timeout_s) {
  struct Wait {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    CommandResult r;
  };
  auto w = std::make_shared<Wait>();
  const auto deadline = deadline_after(timeout_s, "device_timeout_s");
  post(e, false,
       [w](const CommandResult& r) {
         std::lock_guard<std::mutex> lock(w->m);
         w->r = r;
         w->done = true;
         w->cv.notify_all();
       },
       deadline, deadline);
  std::unique_lock<std::mutex> lock(w->m);
  // The completion thread fails the command at its deadline; the extra second only covers that.
  const auto grace = deadline == Clock::time_point::max() ? deadline : deadline + std::chrono::seconds(1);
  if (!w->cv.wait_until(lock, grace, [&] { return w->done; }))
    fail(ErrorCode::kTimeout, "device '" + spec + "': no completion for a command within " + std::to_string(timeout_s) + " s");
  return w->r;
}

void Device::Impl::reap(std::vector<std::pair<Pending, CommandResult>>& done) {
  const uint32_t tail = platform.read32(reg::CQ_TAIL);
  bool consumed = false;
  while (cq_head_ != tail % kQueueEntries) {
    isa::CompletionEntry c;
    std::memcpy(&c, cq_.data + static_cast<size_t>(cq_head_) * sizeof c, sizeof c);
    if (c.phase != cq_phase_) break;  // not written yet (cannot happen after CQ_TAIL; defensive)
    cq_head_ = (cq_head_ + 1) % kQueueEntries;
    if (cq_head_ == 0) cq_phase_ ^= 1;
    consumed = true;
    std::lock_guard<std::mutex> lock(pending_mutex_);
    auto it = pending_.find(c.tag);
    if (it == pending_.end()) continue;  // a command the runtime already gave up on
    CommandResult r;
    r.completion = c;
    r.submit_cycle = it->second.submit_cycle;
    r.unit = it->second.unit;
    if (c.status != 0) {
      char info[16];
      std::snprintf(info, sizeof info, "0x%08X", c.error_info);
      r.has_error = true;
      r.error_code = ErrorCode::kDeviceError;
      r.error = "device '" + spec + "': device fault: " + isa::device_error_name(static_cast<isa::DeviceError>(c.status)) +
                " (ERROR_INFO " + info + ")";
    }
    if (it->second.unit >= 0) unit_load_[it->second.unit]--;
    done.emplace_back(std::move(it->second), std::move(r));
    pending_.erase(it);
  }
  if (consumed) {
    platform.write32(reg::CQ_HEAD, cq_head_);
    platform.write32(reg::INT_STATUS, field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK);
    room_cv_.notify_all();
  }
}

std::vector<std::pair<Device::Impl::Pending, CommandResult>> Device::Impl::recover(const std::string& why, std::string* status_out) {
  std::lock_guard<std::mutex> ring(ring_mutex_);
  // What the firmware latched, for the message: the status register names the fault too. The
  // latch stays until the reset, so it may still hold an error a completion already reported;
  // that one belongs to an earlier request and is not quoted as this fault's.
  const uint32_t latched = platform.read32(reg::STATUS);
  const uint64_t latch = latch_key((latched & field::STATUS_ERROR_CODE_MASK) >> field::STATUS_ERROR_CODE_SHIFT,
                                   platform.read32(reg::ERROR_INFO));
  std::string status_note;
  if ((latched & field::STATUS_ERROR_MASK) && latch != reported_latch_)
    status_note = std::string(" (STATUS latched ") +
                  isa::device_error_name(static_cast<isa::DeviceError>((latched & field::STATUS_ERROR_CODE_MASK) >>
                                                                       field::STATUS_ERROR_CODE_SHIFT)) + ")";
  if (status_out) *status_out = status_note;
  platform.write32(reg::CONTROL, field::CONTROL_RESET_MASK);
  reported_latch_ = 0;  // the reset clears the latch
  platform.wait_idle();
  const uint32_t status = platform.read32(reg::STATUS);
  sq_tail_ = cq_head_ = 0;
  cq_phase_ = 1;
  std::memset(cq_.data, 0, cq_.bytes);  // old phase bits must not look like new completions
  init_rings();
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    recoveries_++;
  }
  std::vector<std::pair<Pending, CommandResult>> aborted;
  fail_pending(ErrorCode::kDeviceError,
               "device '" + spec + "': device fault: " + why + status_note + "; the device was reset" +
                   ((status & field::STATUS_READY_MASK) ? "" : " but did not boot (STATUS " + hex(status) + ")"),
               aborted);
  return aborted;
}

void Device::Impl::fail_pending(ErrorCode code, const std::string& why, std::vector<std::pair<Pending, CommandResult>>& done) {
  std::lock_guard<std::mutex> lock(pending_mutex_);
  for (auto& [tag, p] : pending_) {
    CommandResult r;
    r.submit_cycle = p.submit_cycle;
    r.unit = p.unit;
    r.has_error = true;
    r.error_code = code;
    r.error = why;
    if (p.unit >= 0) unit_load_[p.unit]--;  // per entry: a post() may hold a reservation meanwhile
    done.emplace_back(std::move(p), std::move(r));
  }
  pending_.clear();
  room_cv_.notify_all();
}

void Device::Impl::finish(std::vector<std::pair<Pending, CommandResult>>& done) {
  for (auto& [p, r] : done)
    if (p.done) p.done(r);
  done.clear();
}

void Device::Impl::completion_loop() {
  uint64_t seen = 0;
  for (;;) {
    bool interrupted;
    {
      std::unique_lock<std::mutex> l(irq_->mutex);
      interrupted = irq_->cv.wait_for(l, kPollInterval, [&] { return irq_->stop || irq_->count != seen; });
      if (irq_->stop) return;
      seen = irq_->count;
    }
    {
      std::lock_guard<std::mutex> lock(pending_mutex_);
      if (pending_.empty() && !interrupted) continue;
    }
    std::vector<std::pair<Pending, CommandResult>> done;
    // Held for the whole pass, callbacks included: the rings and the requests' host buffers stay
    // this device's (no power cycle) from the stale() check to the last output copied.
    std::shared_lock<std::shared_mutex> power(platform.power_mutex());
    try {
      if (stale()) {
        fail_pending(ErrorCode::kClosed, reset_by_later_open(), done);
        finish(done);
        continue;
      }
      // Idle is judged with the ring locked, so no doorbell is half rung: an idle device has
      // posted the completion of every command rung before.
      uint64_t seq_before;
      bool idle;
      {
        std::lock_guard<std::mutex> ring(ring_mutex_);
        {
          std::lock_guard<std::mutex> lock(pending_mutex_);
          seq_before = post_seq_;
        }
        idle = platform.idle();
      }
      reap(done);
      std::string fault;
      for (const auto& [p, r] : done)
        if (r.completion.status != 0 && needs_reset(r.completion.status))
          fault = isa::device_error_name(static_cast<isa::DeviceError>(r.completion.status));
      if (!fault.empty()) {
        // The failed request is reported once the device is usable again.
        std::string status_note;
        auto aborted = recover(fault + " in another request", &status_note);
        for (auto& [p, r] : done)
          if (r.has_error && needs_reset(r.completion.status)) r.error += status_note + "; the device was reset";
        finish(done);
        finish(aborted);
        continue;
      }
      // The latch now holds the last error these completions reported (the firmware latches
      // before it posts): a later fault must not quote it as its own.
      for (const auto& [p, r] : done)
        if (r.completion.status != 0) reported_latch_ = latch_key(r.completion.status, r.completion.error_info);
      finish(done);
      std::string lost;
      {
        const auto now = Clock::now();
        std::lock_guard<std::mutex> lock(pending_mutex_);
        for (const auto& [tag, p] : pending_) {
          if (now > p.deadline) lost = "no completion for command " + std::to_string(tag) + " before its deadline";
          else if (idle && p.post_seq <= seq_before)
            lost = "the device went idle without completing command " + std::to_string(tag);
        }
      }
      if (!lost.empty()) {
        done = recover(lost);
        finish(done);
      }
    } catch (const Error& e) {
      // The platform itself failed: nothing more will complete. Commands reap() took before the
      // failure are still in `done`, with their own results.
      fail_pending(ErrorCode::kDeviceError, "device '" + spec + "': " + e.what(), done);
      finish(done);
    }
  }
}

}  // namespace anvil::rt
