#pragma once
/// The device server protocol (version 1), spoken over a Unix domain stream socket between a
/// runtime (RemoteLink) and `anvil device serve` (DeviceServer). Documented in docs/runtime.md.
///
/// Every message is a 16-byte header {uint32 op, uint32 seq, uint64 length} and `length` payload
/// bytes, all integers little-endian (both ends share one host). A request's reply carries its
/// seq; kInterrupt (seq 0) is the server's unsolicited MSI. A kHostAlloc reply carries, as
/// SCM_RIGHTS ancillary data, the memfd of the buffer: both processes map it, so DMA payloads
/// (queue rings, tensors, program images) never cross the socket. The first request must be
/// kHello {uint32 kMagic, uint32 version}; a server speaking another version answers kError.
#include <sys/un.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace anvil::rt::proto {

constexpr uint32_t kMagic = 0x44564E41;  ///< "ANVD"
constexpr uint32_t kVersion = 1;
constexpr uint64_t kMaxPayload = uint64_t{1} << 30;  ///< a longer message is a protocol error

enum Op : uint32_t {
  // Requests (client -> server); payload -> reply payload.
  kHello = 1,      ///< {u32 magic, u32 version} -> {u32 version, str hw config JSON}
  kReset = 2,      ///< {} -> {}: power cycle with the server's config (host buffers are dropped)
  kRead32 = 3,     ///< {u32 offset} -> {u32 value}
  kWrite32 = 4,    ///< {u32 offset, u32 value} -> {}
  kHostAlloc = 5,  ///< {u64 bytes} -> {u64 bus_addr, u64 bytes} + memfd (mapping length = bytes)
  kHostFree = 6,   ///< {u64 bus_addr}, no reply
  kIdle = 7,       ///< {} -> {u8 idle}
  kWaitIdle = 8,   ///< {} -> {}
  kCounters = 9,   ///< {} -> {str JSON}
  kSetTrace = 10,  ///< {u8 enabled} -> {}
  kTraceJson = 11, ///< {} -> {str JSON}
  kClearTrace = 12,///< {} -> {}
  kBye = 13,       ///< {} -> {}: the server resets the device, replies, and closes the connection
  // Server -> client.
  kReply = 0x100,     ///< success; payload as listed above
  kError = 0x101,     ///< {u32 anvil::ErrorCode, str message}
  kInterrupt = 0x102, ///< seq 0, {u32 INT_STATUS bits}
};

struct Header {
  uint32_t op = 0;
  uint32_t seq = 0;
  uint64_t length = 0;
};
static_assert(sizeof(Header) == 16, "the wire header is 16 bytes");

const char* op_name(uint32_t op);

struct Message {
  uint32_t op = 0, seq = 0;
  std::string payload;
  int fd = -1;  ///< a descriptor received with the message (the receiver owns it), or -1
};

/// Payload building and parsing. Strings are {u32 length, bytes}.
class Writer {
 public:
  Writer& u8(uint8_t v) { return raw(&v, 1); }
  Writer& u32(uint32_t v) { return raw(&v, 4); }
  Writer& u64(uint64_t v) { return raw(&v, 8); }
  Writer& str(const std::string& s) { return u32(static_cast<uint32_t>(s.size())).raw(s.data(), s.size()); }
  std::string take() { return std::move(out_); }

 private:
  Writer& raw(const void* p, size_t n) {
    out_.append(static_cast<const char*>(p), n);
    return *this;
  }
  std::string out_;
};

/// Throws kDeviceError "malformed <op> message" when the payload is too short.
class Reader {
 public:
  Reader(const Message& m) : m_(m) {}
  uint8_t u8() { return get<uint8_t>(); }
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  std::string str();

 private:
  template <typename T>
  T get() {
    T v;
    need(sizeof v);
    std::memcpy(&v, m_.payload.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  void need(size_t n) const;
  const Message& m_;
  size_t pos_ = 0;
};

/// The address of the Unix socket at `path`. Throws kInvalidArgument naming the path when it is
/// empty or longer than sockaddr_un holds.
sockaddr_un unix_address(const std::string& path);

/// Sends one message (with `fd` as SCM_RIGHTS when >= 0). Never raises SIGPIPE. Throws
/// kDeviceError naming the errno when the peer is gone.
void send_message(int socket, uint32_t op, uint32_t seq, const std::string& payload, int fd = -1);
/// Receives one message. Returns false on end of stream at a message boundary; throws
/// kDeviceError on a read error, a stream cut inside a message or an oversized length.
bool receive_message(int socket, Message& out);

}  // namespace anvil::rt::proto
