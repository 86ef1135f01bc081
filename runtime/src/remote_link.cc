#include "remote_link.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "anvil/common/status.h"

namespace anvil::rt {

namespace {
/// Host seconds the server has to answer HELLO (a busy or foreign socket).
constexpr double kHelloTimeoutS = 10.0;
/// Host seconds BYE may take on disconnect (the server resets the device first).
constexpr double kByeTimeoutS = 10.0;

uint64_t page_round(uint64_t bytes) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return ((bytes ? bytes : 1) + page - 1) / page * page;
}

hw::HwConfig config_from_json(const std::string& text, const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) fail(ErrorCode::kDeviceError, "device server at " + path + ": malformed hw config in HELLO");
  hw::HwConfig c;
  for (const auto& [key, value] : j.items()) c.set(key + "=" + value.dump());
  return c;
}
}  // namespace

std::shared_ptr<RemoteLink> RemoteLink::attach(const std::string& socket_path) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<RemoteLink>> links;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto link = links[socket_path].lock(); link && link->lost().empty()) return link;
  auto link = std::make_shared<RemoteLink>(socket_path);
  links[socket_path] = link;
  return link;
}

RemoteLink::RemoteLink(const std::string& socket_path, uint32_t version) : path_(socket_path) {
  const sockaddr_un addr = proto::unix_address(path_);
  socket_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (socket_ < 0) fail(ErrorCode::kDeviceError, std::string("socket(AF_UNIX): ") + std::strerror(errno));
  if (::connect(socket_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(socket_);
    fail(ErrorCode::kDeviceError, "no device server at " + path_ + " (connect: " + std::strerror(err) +
                                      "); start one with: anvil device serve --socket " + path_);
  }
  reader_ = std::thread([this] { reader_loop(); });
  try {
    proto::Message m = call(proto::kHello, proto::Writer().u32(proto::kMagic).u32(version).take(), kHelloTimeoutS);
    proto::Reader r(m);
    const uint32_t server_version = r.u32();
    if (server_version != version)
      fail(ErrorCode::kDeviceError, "device server at " + path_ + " speaks protocol version " +
                                        std::to_string(server_version) + ", this runtime " + std::to_string(version));
    config_ = config_from_json(r.str(), path_);
  } catch (...) {
    ::shutdown(socket_, SHUT_RDWR);
    reader_.join();
    ::close(socket_);
    throw;
  }
}

RemoteLink::~RemoteLink() {
  try {
    if (lost().empty()) call(proto::kBye, {}, kByeTimeoutS);
  } catch (const Error&) {
    // The server is gone or did not answer: nothing to say goodbye to.
  }
  ::shutdown(socket_, SHUT_RDWR);
  reader_.join();
  ::close(socket_);
  std::lock_guard<std::mutex> lock(mutex_);
  unmap_all();
}

void RemoteLink::fail_link(const std::string& what) const {
  fail(ErrorCode::kDeviceError, "device server at " + path_ + ": " + what);
}

std::string RemoteLink::lost() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lost_;
}

void RemoteLink::reader_loop() {
  std::string why = "the server closed the connection";
  try {
    proto::Message m;
    while (proto::receive_message(socket_, m)) {
      if (m.op == proto::kInterrupt) {
        if (m.fd >= 0) ::close(m.fd);  // an interrupt carries no descriptor
        const uint32_t bits = proto::Reader(m).u32();
        std::lock_guard<std::mutex> lock(irq_mutex_);
        if (irq_) irq_(bits);
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = waiters_.find(m.seq);
      if (it == waiters_.end()) {  // its caller gave up waiting
        if (m.fd >= 0) ::close(m.fd);
        continue;
      }
      it->second = std::move(m);
      m = proto::Message{};
      cv_.notify_all();
    }
  } catch (const Error& e) {
    why = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lost_ = "device server at " + path_ + " is gone (" + why + ")";
    cv_.notify_all();
  }
  // Wakes the driver's completion thread: its commands will not complete.
  std::lock_guard<std::mutex> lock(irq_mutex_);
  if (irq_) irq_(0);
}

proto::Message RemoteLink::call(uint32_t op, const std::string& payload, double timeout_s) {
  uint32_t seq;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!lost_.empty()) fail(ErrorCode::kDeviceError, lost_ + "; " + proto::op_name(op) + " not sent");
    seq = next_seq_++;
    if (next_seq_ == 0) next_seq_ = 1;
    waiters_[seq];
  }
  try {
    std::lock_guard<std::mutex> lock(send_mutex_);
    proto::send_message(socket_, op, seq, payload);
  } catch (const Error& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    waiters_.erase(seq);
    fail_link(e.what());
  }
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
               [&] { return waiters_.at(seq).has_value() || !lost_.empty(); });
  std::optional<proto::Message> reply = std::move(waiters_.at(seq));
  waiters_.erase(seq);
  if (!reply) {
    if (!lost_.empty()) fail(ErrorCode::kDeviceError, lost_ + " during " + proto::op_name(op));
    fail_link(std::string("no reply to ") + proto::op_name(op) + " within " + std::to_string(timeout_s) + " s");
  }
  // Only a HOST_ALLOC reply carries a descriptor; any other one would leak.
  if (reply->fd >= 0 && (reply->op != proto::kReply || op != proto::kHostAlloc)) {
    ::close(reply->fd);
    reply->fd = -1;
  }
  if (reply->op == proto::kError) {
    proto::Reader r(*reply);
    const uint32_t code = r.u32();
    const std::string message = r.str();
    if (code > static_cast<uint32_t>(ErrorCode::kInternal))
      fail_link(std::string("ERROR reply to ") + proto::op_name(op) + " with unknown error code " +
                std::to_string(code) + ": " + message);
    throw Error(static_cast<ErrorCode>(code), message);
  }
  if (reply->op != proto::kReply) fail_link(std::string("unexpected ") + proto::op_name(reply->op) + " message");
  return std::move(*reply);
}

void RemoteLink::unmap_all() {
  for (const auto& [bus, mapping] : buffers_) ::munmap(mapping.first, mapping.second);
  buffers_.clear();
}

void RemoteLink::reset(const hw::HwConfig&) {
  call(proto::kReset);
  std::lock_guard<std::mutex> lock(mutex_);
  generation_++;
  unmap_all();  // the server dropped every host buffer with the power cycle
}

uint64_t RemoteLink::generation() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

uint32_t RemoteLink::read32(uint32_t offset) {
  const proto::Message m = call(proto::kRead32, proto::Writer().u32(offset).take());
  return proto::Reader(m).u32();
}

void RemoteLink::write32(uint32_t offset, uint32_t value) {
  call(proto::kWrite32, proto::Writer().u32(offset).u32(value).take());
}

hw::HostBuffer RemoteLink::host_alloc(uint64_t bytes) {
  if (bytes == 0) fail(ErrorCode::kInvalidArgument, "host_alloc: 0 bytes");
  const proto::Message m = call(proto::kHostAlloc, proto::Writer().u64(bytes).take());
  proto::Reader r(m);
  hw::HostBuffer b;
  b.bus_addr = r.u64();
  b.bytes = r.u64();
  if (m.fd < 0) fail_link("HOST_ALLOC reply without a shared-memory descriptor");
  // The caller will touch `bytes` bytes: a smaller buffer (or a shorter memfd behind it, which would
  // fault with SIGBUS) is the server's error, not a reason to write past the mapping.
  struct stat st {};
  const bool stat_ok = ::fstat(m.fd, &st) == 0;
  if (b.bytes < bytes || !stat_ok || static_cast<uint64_t>(st.st_size) < bytes) {
    ::close(m.fd);
    host_free(b.bus_addr);
    fail_link("HOST_ALLOC of " + std::to_string(bytes) + " bytes answered with a buffer of " + std::to_string(b.bytes) +
              " bytes" + (stat_ok ? " (memfd of " + std::to_string(st.st_size) + " bytes)" : std::string()));
  }
  const uint64_t length = page_round(b.bytes);
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
  const int err = errno;
  ::close(m.fd);
  if (p == MAP_FAILED) {
    host_free(b.bus_addr);
    fail_link(std::string("mapping a host buffer of ") + std::to_string(b.bytes) + " bytes: " + std::strerror(err));
  }
  b.data = static_cast<uint8_t*>(p);
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_[b.bus_addr] = {p, length};
  return b;
}

void RemoteLink::host_free(uint64_t bus_addr) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = buffers_.find(bus_addr);
    if (it != buffers_.end()) {
      ::munmap(it->second.first, it->second.second);
      buffers_.erase(it);
    }
    if (!lost_.empty()) return;
  }
  try {  // no reply: the server frees it before serving our next request
    std::lock_guard<std::mutex> lock(send_mutex_);
    proto::send_message(socket_, proto::kHostFree, 0, proto::Writer().u64(bus_addr).take());
  } catch (const Error&) {
    // The server is gone, and its memory with it.
  }
}

void RemoteLink::set_interrupt_handler(std::function<void(uint32_t)> handler) {
  std::lock_guard<std::mutex> lock(irq_mutex_);
  irq_ = std::move(handler);
}

bool RemoteLink::idle() { return proto::Reader(call(proto::kIdle)).u8() != 0; }

void RemoteLink::wait_idle() { call(proto::kWaitIdle); }

nlohmann::json RemoteLink::counters() {
  const proto::Message m = call(proto::kCounters);
  return nlohmann::json::parse(proto::Reader(m).str());
}

void RemoteLink::set_trace(bool enabled) { call(proto::kSetTrace, proto::Writer().u8(enabled ? 1 : 0).take()); }

nlohmann::json RemoteLink::trace_json() {
  const proto::Message m = call(proto::kTraceJson);
  return nlohmann::json::parse(proto::Reader(m).str());
}

void RemoteLink::clear_trace() { call(proto::kClearTrace); }

}  // namespace anvil::rt
