#include "device_protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "anvil/common/status.h"

namespace anvil::rt::proto {

const char* op_name(uint32_t op) {
  switch (op) {
    case kHello: return "HELLO";
    case kReset: return "RESET";
    case kRead32: return "READ32";
    case kWrite32: return "WRITE32";
    case kHostAlloc: return "HOST_ALLOC";
    case kHostFree: return "HOST_FREE";
    case kIdle: return "IDLE";
    case kWaitIdle: return "WAIT_IDLE";
    case kCounters: return "COUNTERS";
    case kSetTrace: return "SET_TRACE";
    case kTraceJson: return "TRACE_JSON";
    case kClearTrace: return "CLEAR_TRACE";
    case kBye: return "BYE";
    case kReply: return "REPLY";
    case kError: return "ERROR";
    case kInterrupt: return "INTERRUPT";
  }
  return "unknown";
}

std::string Reader::str() {
  const uint32_t n = u32();
  need(n);
  std::string s = m_.payload.substr(pos_, n);
  pos_ += n;
  return s;
}

void Reader::need(size_t n) const {
  if (m_.payload.size() - pos_ < n)
    fail(ErrorCode::kDeviceError, std::string("malformed ") + op_name(m_.op) + " message (" +
                                      std::to_string(m_.payload.size()) + " payload bytes)");
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    fail(ErrorCode::kInvalidArgument, "device server socket path '" + path + "' must have 1.." +
                                          std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

void send_message(int socket, uint32_t op, uint32_t seq, const std::string& payload, int fd) {
  Header h;
  h.op = op;
  h.seq = seq;
  h.length = payload.size();
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof h);
  bytes += payload;
  size_t sent = 0;
  while (sent < bytes.size()) {
    iovec iov{const_cast<char*>(bytes.data() + sent), bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (fd >= 0 && sent == 0) {  // the descriptor travels with the message's first byte
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::kDeviceError, std::string("sending ") + op_name(op) + ": " + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
}

namespace {
/// Reads exactly n bytes; false on end of stream before the first byte. Keeps a passed fd.
bool read_exact(int socket, char* dst, size_t n, int* fd, bool boundary) {
  size_t got = 0;
  while (got < n) {
    iovec iov{dst + got, n - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(ErrorCode::kDeviceError, std::string("reading from the socket: ") + std::strerror(errno));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c), sizeof passed);
        if (*fd >= 0) ::close(*fd);
        *fd = passed;
      }
    if (r == 0) {
      if (got == 0 && boundary) return false;
      fail(ErrorCode::kDeviceError, "the connection closed in the middle of a message");
    }
    got += static_cast<size_t>(r);
  }
  return true;
}
}  // namespace

bool receive_message(int socket, Message& out) {
  Header h;
  int fd = -1;
  try {
    if (!read_exact(socket, reinterpret_cast<char*>(&h), sizeof h, &fd, true)) return false;
    if (h.length > kMaxPayload)
      fail(ErrorCode::kDeviceError, std::string("protocol error: ") + op_name(h.op) + " message of " +
                                        std::to_string(h.length) + " bytes");
    out.payload.resize(h.length);
    if (h.length) read_exact(socket, out.payload.data(), h.length, &fd, false);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    throw;
  }
  out.op = h.op;
  out.seq = h.seq;
  out.fd = fd;
  return true;
}

}  // namespace anvil::rt::proto
