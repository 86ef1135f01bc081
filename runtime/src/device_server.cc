#include "anvil/runtime/device_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "anvil/common/status.h"
#include "anvil/hw/platform.h"
#include "device_protocol.h"

namespace anvil::rt {

namespace {

/// Host seconds a refused client has to send its HELLO before the server hangs up.
constexpr int kRefuseReadTimeoutS = 2;

uint64_t page_round(uint64_t bytes) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return ((bytes ? bytes : 1) + page - 1) / page * page;
}

std::string errno_text(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

void send_error(int socket, std::mutex& send_mutex, uint32_t seq, ErrorCode code, const std::string& message) {
  std::lock_guard<std::mutex> lock(send_mutex);
  proto::send_message(socket, proto::kError, seq, proto::Writer().u32(static_cast<uint32_t>(code)).str(message).take());
}

/// One attached runtime: its connection, its shared host buffers and the interrupts it is sent.
class Client {
 public:
  Client(const ServeOptions& options, int socket, int wake_fd)
      : options_(options), socket_(socket), wake_fd_(wake_fd), thread_([this] { serve(); }) {}
  ~Client() {
    disconnect();
    thread_.join();
    ::close(socket_);
  }
  /// True when the peer has closed its end (its process may have died).
  bool peer_gone() const {
    pollfd p{socket_, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
  }
  /// True once serve() returned (BYE, end of stream or broken connection).
  bool done() const { return done_; }
  /// True once its HELLO was answered: a runtime, not a probe or a silent connection.
  bool attached() const { return attached_; }
  /// Makes serve() see the end of the stream (it then resets the device and returns).
  void disconnect() { ::shutdown(socket_, SHUT_RDWR); }

 private:
  struct Irq {
    std::mutex mutex;
    std::condition_variable cv;
    uint32_t bits = 0;
    bool stop = false;
  };

  void serve();
  /// Executes one request after HELLO; false for BYE.
  bool handle(const proto::Message& m);
  void reply(uint32_t seq, const std::string& payload, int fd = -1) {
    std::lock_guard<std::mutex> lock(send_mutex_);
    proto::send_message(socket_, proto::kReply, seq, payload, fd);
  }
  void interrupt_loop();
  /// Interrupts off, power cycle with the server's config, shared buffers unmapped: the device
  /// as the next client should find it. Drops buffers only after the reset (no DMA into them).
  void reset_device();

  const ServeOptions& options_;
  const int socket_, wake_fd_;
  hw::Platform& platform_ = hw::Platform::instance();
  std::mutex send_mutex_;
  std::map<uint64_t, std::pair<void*, uint64_t>> buffers_;  ///< bus address -> mapping, length
  std::shared_ptr<Irq> irq_ = std::make_shared<Irq>();
  std::thread interrupt_thread_;
  std::atomic<bool> done_{false}, attached_{false};
  std::thread thread_;  ///< last member: starts after the others exist
};

/// Sets the socket's receive timeout (0: none).
void set_receive_timeout(int socket, double seconds) {
  timeval tv{};
  if (seconds > 0) {
    const double whole = std::min(seconds, 1e6);  // timeval seconds; more is "very long" anyway
    tv.tv_sec = static_cast<time_t>(whole);
    tv.tv_usec = static_cast<suseconds_t>((whole - static_cast<double>(tv.tv_sec)) * 1e6);
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  }
  ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void Client::serve() {
  try {
    proto::Message m;
    // Until HELLO the connection is nobody's client yet: it may not hold the device for long.
    set_receive_timeout(socket_, options_.hello_timeout_s);
    if (proto::receive_message(socket_, m)) {
      set_receive_timeout(socket_, 0);  // an attached runtime may be idle for as long as it likes
      if (m.fd >= 0) ::close(m.fd);
      uint32_t magic = 0, version = 0;
      if (m.op == proto::kHello && m.payload.size() >= 8) {
        proto::Reader r(m);
        magic = r.u32();
        version = r.u32();
      }
      if (m.op != proto::kHello || magic != proto::kMagic) {
        send_error(socket_, send_mutex_, m.seq, ErrorCode::kInvalidArgument,
                   "device server at " + options_.socket_path + ": expected HELLO from an anvil runtime, got " +
                       proto::op_name(m.op));
      } else if (version != proto::kVersion) {
        send_error(socket_, send_mutex_, m.seq, ErrorCode::kDeviceError,
                   "device server at " + options_.socket_path + " speaks protocol version " +
                       std::to_string(proto::kVersion) + ", the runtime version " + std::to_string(version));
      } else {
        platform_.reset(options_.config);
        std::weak_ptr<Irq> weak = irq_;
        platform_.set_interrupt_handler([weak](uint32_t bits) {
          if (auto irq = weak.lock()) {
            std::lock_guard<std::mutex> lock(irq->mutex);
            irq->bits |= bits;
            irq->cv.notify_all();
          }
        });
        interrupt_thread_ = std::thread([this] { interrupt_loop(); });
        attached_ = true;
        reply(m.seq, proto::Writer().u32(proto::kVersion).str(options_.config.to_json().dump()).take());
        while (proto::receive_message(socket_, m)) {
          if (m.fd >= 0) ::close(m.fd);  // runtimes pass none
          try {
            if (!handle(m)) break;
          } catch (const Error& e) {
            send_error(socket_, send_mutex_, m.seq, e.code(), e.what());
          }
        }
      }
    }
  } catch (const Error&) {
    // The connection broke (the client died): clean up as for an orderly end.
  }
  if (attached_) {
    try {
      reset_device();
    } catch (const Error&) {
      // Already reported by the session; the next client's HELLO resets again.
    }
  }
  done_ = true;
  const char ended = 's';
  (void)!::write(wake_fd_, &ended, 1);
}

void Client::reset_device() {
  platform_.set_interrupt_handler(nullptr);
  if (interrupt_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(irq_->mutex);
      irq_->stop = true;
      irq_->cv.notify_all();
    }
    interrupt_thread_.join();
  }
  platform_.reset(options_.config);
  for (const auto& [bus, mapping] : buffers_) ::munmap(mapping.first, mapping.second);
  buffers_.clear();
}

void Client::interrupt_loop() {
  for (;;) {
    uint32_t bits;
    {
      std::unique_lock<std::mutex> lock(irq_->mutex);
      irq_->cv.wait(lock, [&] { return irq_->stop || irq_->bits != 0; });
      if (irq_->stop) return;
      bits = irq_->bits;
      irq_->bits = 0;
    }
    try {
      std::lock_guard<std::mutex> lock(send_mutex_);
      proto::send_message(socket_, proto::kInterrupt, 0, proto::Writer().u32(bits).take());
    } catch (const Error&) {
      return;  // the client is gone; serve() sees it too
    }
  }
}

bool Client::handle(const proto::Message& m) {
  proto::Reader r(m);
  switch (m.op) {
    case proto::kReset:
      platform_.reset(options_.config);
      for (const auto& [bus, mapping] : buffers_) ::munmap(mapping.first, mapping.second);
      buffers_.clear();
      reply(m.seq, {});
      return true;
    case proto::kRead32: {
      const uint32_t offset = r.u32();
      reply(m.seq, proto::Writer().u32(platform_.read32(offset)).take());
      return true;
    }
    case proto::kWrite32: {
      const uint32_t offset = r.u32(), value = r.u32();
      platform_.write32(offset, value);
      reply(m.seq, {});
      return true;
    }
    case proto::kHostAlloc: {
      const uint64_t bytes = r.u64();
      if (bytes == 0) fail(ErrorCode::kInvalidArgument, "host_alloc: 0 bytes");
      const uint64_t length = page_round(bytes);
      const int fd = ::memfd_create("anvil-host-buffer", MFD_CLOEXEC);
      if (fd < 0) fail(ErrorCode::kBusy, "host memory: " + errno_text("memfd_create"));
      void* p = MAP_FAILED;
      if (::ftruncate(fd, static_cast<off_t>(length)) == 0)
        p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        const std::string why = errno_text("mapping");
        ::close(fd);
        fail(ErrorCode::kBusy, "host memory: no room for " + std::to_string(bytes) + " bytes (" + why + ")");
      }
      const hw::HostBuffer b = platform_.host_attach(p, bytes);
      buffers_[b.bus_addr] = {p, length};
      try {
        reply(m.seq, proto::Writer().u64(b.bus_addr).u64(b.bytes).take(), fd);
      } catch (...) {
        ::close(fd);
        throw;
      }
      ::close(fd);
      return true;
    }
    case proto::kHostFree: {  // no reply
      const uint64_t bus = r.u64();
      platform_.host_free(bus);
      auto it = buffers_.find(bus);
      if (it != buffers_.end()) {
        ::munmap(it->second.first, it->second.second);
        buffers_.erase(it);
      }
      return true;
    }
    case proto::kIdle: reply(m.seq, proto::Writer().u8(platform_.idle() ? 1 : 0).take()); return true;
    case proto::kWaitIdle: platform_.wait_idle(); reply(m.seq, {}); return true;
    case proto::kCounters: reply(m.seq, proto::Writer().str(platform_.counters().dump()).take()); return true;
    case proto::kSetTrace: platform_.set_trace(r.u8() != 0); reply(m.seq, {}); return true;
    case proto::kTraceJson: reply(m.seq, proto::Writer().str(platform_.trace_json().dump()).take()); return true;
    case proto::kClearTrace: platform_.clear_trace(); reply(m.seq, {}); return true;
    case proto::kBye:
      reset_device();
      reply(m.seq, {});
      return false;
    default:
      fail(ErrorCode::kInvalidArgument, "device server: unknown request op " + std::to_string(m.op));
  }
}

}  // namespace

struct DeviceServer::Impl {
  ServeOptions options;
  int listener = -1;
  int wake[2] = {-1, -1};  ///< 'q': stop; 's': a client session ended
  bool own_socket_file = false;
  std::atomic<uint64_t> served{0};
  std::unique_ptr<Client> client;

  /// Ends the current client; true when it was a runtime (attached with HELLO), which counts as
  /// served. A probe or a silent connection does not.
  bool finish_client() {
    const bool attached = client->attached();
    client.reset();
    if (attached) served++;
    return attached;
  }

  /// Answers a second process's HELLO with kBusy and hangs up.
  void refuse(int socket) {
    set_receive_timeout(socket, kRefuseReadTimeoutS);
    try {
      proto::Message m;
      std::mutex send_mutex;
      if (proto::receive_message(socket, m)) {
        if (m.fd >= 0) ::close(m.fd);
        send_error(socket, send_mutex, m.seq, ErrorCode::kBusy,
                   "device server at " + options.socket_path + " is serving another runtime process (one at a time)");
      }
    } catch (const Error&) {
      // It said nothing in time or went away.
    }
    ::close(socket);
  }
};

DeviceServer::DeviceServer(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  const std::string& path = s.options.socket_path;
  s.options.config.validate();
  const sockaddr_un addr = proto::unix_address(path);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) fail(ErrorCode::kInvalidArgument, "socket path " + path + " exists and is not a socket");
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool answered = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) ::close(probe);
    if (answered) fail(ErrorCode::kInvalidArgument, "socket path " + path + " is in use by a running device server");
    ::unlink(path.c_str());  // left behind by a server that did not exit cleanly
  }
  if (::pipe2(s.wake, O_CLOEXEC | O_NONBLOCK) != 0) fail(ErrorCode::kInternal, errno_text("pipe2"));
  s.listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.listener < 0) fail(ErrorCode::kInternal, errno_text("socket(AF_UNIX)"));
  if (::bind(s.listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    fail(ErrorCode::kInvalidArgument, "socket path " + path + ": " + errno_text("bind"));
  s.own_socket_file = true;
  if (::listen(s.listener, 8) != 0) fail(ErrorCode::kInternal, "socket path " + path + ": " + errno_text("listen"));
  hw::Platform::instance().reset(s.options.config);  // the chip exists before the first client
}

DeviceServer::~DeviceServer() {
  Impl& s = *impl_;
  s.client.reset();
  if (s.listener >= 0) ::close(s.listener);
  if (s.own_socket_file) ::unlink(s.options.socket_path.c_str());
  for (int fd : s.wake)
    if (fd >= 0) ::close(fd);
}

void DeviceServer::stop() {
  const char quit = 'q';
  (void)!::write(impl_->wake[1], &quit, 1);
}

uint64_t DeviceServer::clients_served() const { return impl_->served; }

void DeviceServer::run() {
  Impl& s = *impl_;
  for (;;) {
    pollfd fds[2] = {{s.listener, POLLIN, 0}, {s.wake[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::kInternal, errno_text("poll"));
    }
    if (fds[1].revents & POLLIN) {
      char c;
      bool quit = false, ended = false;
      while (::read(s.wake[0], &c, 1) == 1) (c == 'q' ? quit : ended) = true;
      if (ended && s.client && s.client->done() && s.finish_client() && s.options.once) return;
      if (quit) {
        if (s.client) s.finish_client();
        return;
      }
    }
    if (fds[0].revents & POLLIN) {
      const int socket = ::accept4(s.listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (socket < 0) continue;
      // A client that already hung up (or crashed) is finished first, so the next one is served.
      if (s.client && (s.client->done() || s.client->peer_gone()) && s.finish_client() && s.options.once) {
        s.refuse(socket);
        return;
      }
      if (s.client) s.refuse(socket);
      else s.client = std::make_unique<Client>(s.options, socket, s.wake[1]);
    }
  }
}

}  // namespace anvil::rt
