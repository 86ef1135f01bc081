#include "driver.h"

#include <chrono>
#include <cstring>

#include "anvil/common/status.h"

namespace anvil::rt {

namespace reg = isa::reg;
namespace field = isa::field;

namespace {
constexpr uint64_t kGranule = 4096;
std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llX", static_cast<unsigned long long>(v));
  return b;
}
}  // namespace

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

Device::Impl::Impl(std::string s, const hw::HwConfig& cfg, uint32_t mask)
    : platform(hw::Platform::instance()), spec(std::move(s)), config(cfg), pe_mask(mask), dram_(cfg.dram_bytes) {
  platform.reset(config);
  generation = platform.generation();
  const uint32_t id = platform.read32(reg::DEVICE_ID), fw = platform.read32(reg::FW_VERSION);
  const uint32_t status = platform.read32(reg::STATUS);
  if (id != isa::kProgramMagic || fw != isa::kFirmwareVersion || !(status & field::STATUS_READY_MASK))
    fail(ErrorCode::kDeviceError, "device '" + spec + "' did not boot: DEVICE_ID " + hex(id) + ", FW_VERSION " +
                                      hex(fw) + ", STATUS " + hex(status));
  sq_ = platform.host_alloc(kQueueEntries * sizeof(isa::SubmissionEntry));
  cq_ = platform.host_alloc(kQueueEntries * sizeof(isa::CompletionEntry));
  platform.write32(reg::SQ_BASE_LO, static_cast<uint32_t>(sq_.bus_addr));
  platform.write32(reg::SQ_BASE_HI, static_cast<uint32_t>(sq_.bus_addr >> 32));
  platform.write32(reg::SQ_SIZE, kQueueEntries);
  platform.write32(reg::CQ_BASE_LO, static_cast<uint32_t>(cq_.bus_addr));
  platform.write32(reg::CQ_BASE_HI, static_cast<uint32_t>(cq_.bus_addr >> 32));
  platform.write32(reg::CQ_SIZE, kQueueEntries);
  std::weak_ptr<Irq> irq = irq_;
  platform.set_interrupt_handler([irq](uint32_t) {
    if (auto s = irq.lock()) {
      std::lock_guard<std::mutex> lock(s->mutex);
      s->count++;
      s->cv.notify_all();
    }
  });
  platform.write32(reg::INT_ENABLE, field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK);
}

Device::Impl::~Impl() {
  if (stale()) return;  // a later open() owns the platform now
  platform.set_interrupt_handler(nullptr);
  platform.host_free(sq_.bus_addr);
  platform.host_free(cq_.bus_addr);
}

bool Device::Impl::stale() const { return platform.generation() != generation; }

void Device::Impl::check_open() const {
  if (closed) fail(ErrorCode::kClosed, "device '" + spec + "' is closed");
  if (stale()) fail(ErrorCode::kClosed, "device '" + spec + "' was reset by a later Device::open");
}

uint64_t Device::Impl::dram_alloc(uint64_t bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  return dram_.allocate(bytes, what);
}

void Device::Impl::dram_free(uint64_t addr) {
  std::lock_guard<std::mutex> lock(mutex_);
  dram_.release(addr);
}

hw::HostBuffer Device::Impl::host_alloc(uint64_t bytes) { return platform.host_alloc(bytes ? bytes : 1); }

void Device::Impl::host_free(const hw::HostBuffer& b) {
  if (!stale()) platform.host_free(b.bus_addr);
}

bool Device::Impl::poll_completion(isa::CompletionEntry* out) {
  isa::CompletionEntry c;
  std::memcpy(&c, cq_.data + static_cast<size_t>(cq_head_) * sizeof c, sizeof c);
  if (c.phase != cq_phase_) return false;
  cq_head_ = (cq_head_ + 1) % kQueueEntries;
  if (cq_head_ == 0) cq_phase_ ^= 1;
  platform.write32(reg::CQ_HEAD, cq_head_);
  platform.write32(reg::INT_STATUS, field::INT_STATUS_COMPLETION_MASK | field::INT_STATUS_ERROR_MASK);
  *out = c;
  return true;
}

isa::CompletionEntry Device::Impl::submit(isa::SubmissionEntry e) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_open();
  e.tag = next_tag_++;
  uint64_t seen;
  {
    std::lock_guard<std::mutex> l(irq_->mutex);
    seen = irq_->count;
  }
  std::memcpy(sq_.data + static_cast<size_t>(sq_tail_) * sizeof e, &e, sizeof e);
  sq_tail_ = (sq_tail_ + 1) % kQueueEntries;
  platform.write32(reg::SQ_TAIL, sq_tail_);  // the doorbell
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    bool interrupted;
    {
      std::unique_lock<std::mutex> l(irq_->mutex);
      interrupted = irq_->cv.wait_for(l, std::chrono::milliseconds(20), [&] { return irq_->count != seen; });
      seen = irq_->count;
    }
    // The completion ring is read only after an interrupt or once the device is idle: both order
    // the device's writes before this read.
    const bool idle = !interrupted && platform.idle();
    if (interrupted || idle) {
      isa::CompletionEntry c;
      while (poll_completion(&c))
        if (c.tag == e.tag) return c;
      if (idle)
        fail(ErrorCode::kTimeout, "device '" + spec + "' went idle without completing command " +
                                      std::to_string(e.tag) + " (STATUS " + hex(platform.read32(reg::STATUS)) + ")");
    }
    if (std::chrono::steady_clock::now() > deadline)
      fail(ErrorCode::kTimeout, "device '" + spec + "': no completion for command " + std::to_string(e.tag) +
                                    " within " + std::to_string(timeout_s) + " s");
  }
}

}  // namespace anvil::rt
