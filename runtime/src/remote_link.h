#pragma once
/// The runtime's side of a device server (`anvil device serve`, device_server.h): platform calls
/// become requests over a Unix domain socket (device_protocol.h), host buffers are shared memory
/// both processes map, interrupts arrive as messages that a reader thread hands to the driver's
/// handler. Internal to anvil_runtime.
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "device_protocol.h"
#include "platform_link.h"

namespace anvil::rt {

class RemoteLink final : public PlatformLink {
 public:
  /// The process's connection to the server at `socket_path`: one per path, shared by every
  /// Device opened on it (as in-process devices share the one platform), made on first use.
  /// Throws kDeviceError naming the path when no server answers, kBusy when it serves another
  /// process, kInvalidArgument for a path too long for a socket address.
  static std::shared_ptr<RemoteLink> attach(const std::string& socket_path);
  /// Connects and greets the server with protocol `version` (tests speak a wrong one).
  explicit RemoteLink(const std::string& socket_path, uint32_t version = proto::kVersion);
  /// Says BYE (the server resets the device for its next client) and disconnects.
  ~RemoteLink() override;
  RemoteLink(const RemoteLink&) = delete;
  RemoteLink& operator=(const RemoteLink&) = delete;

  /// The chip the server simulates (its --hw-config/--set).
  const hw::HwConfig& server_config() const { return config_; }

  void reset(const hw::HwConfig& config) override;
  uint64_t generation() const override;
  uint32_t read32(uint32_t offset) override;
  void write32(uint32_t offset, uint32_t value) override;
  hw::HostBuffer host_alloc(uint64_t bytes) override;
  void host_free(uint64_t bus_addr) override;
  void set_interrupt_handler(std::function<void(uint32_t)> handler) override;
  bool idle() override;
  void wait_idle() override;
  nlohmann::json counters() override;
  void set_trace(bool enabled) override;
  nlohmann::json trace_json() override;
  void clear_trace() override;
  std::string lost() const override;

  /// Host seconds a request waits for its reply before it fails with kDeviceError.
  static constexpr double kReplyTimeoutS = 30.0;

 private:
  /// Sends a request and waits for its reply. A kError reply is thrown with its code; a lost
  /// server or no reply within timeout_s is kDeviceError naming the path and the request.
  proto::Message call(uint32_t op, const std::string& payload = {}, double timeout_s = kReplyTimeoutS);
  void reader_loop();
  void unmap_all();
  [[noreturn]] void fail_link(const std::string& what) const;

  const std::string path_;
  int socket_ = -1;
  hw::HwConfig config_;
  std::mutex send_mutex_;
  mutable std::mutex mutex_;  ///< waiters_, next_seq_, lost_, buffers_, generation_
  std::condition_variable cv_;
  std::map<uint32_t, std::optional<proto::Message>> waiters_;  ///< by seq
  uint32_t next_seq_ = 1;
  std::string lost_;
  uint64_t generation_ = 0;
  std::map<uint64_t, std::pair<void*, uint64_t>> buffers_;  ///< bus address -> our mapping, length
  std::mutex irq_mutex_;
  std::function<void(uint32_t)> irq_;
  std::thread reader_;
};

}  // namespace anvil::rt
