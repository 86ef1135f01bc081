#pragma once
/// The virtual device as a separate process: a DeviceServer owns the process's simulated chip
/// and serves runtimes that attach with the device spec "unix:PATH" over a Unix domain socket
/// (protocol in docs/runtime.md). Host memory the device reaches by DMA (queue rings, tensors) is
/// shared memory both processes map; registers, interrupts and control travel on the socket.
/// `anvil device serve` is this class on the command line.
#include <atomic>
#include <memory>
#include <string>

#include "anvil/hw/config.h"

namespace anvil::rt {

struct ServeOptions {
  std::string socket_path;
  hw::HwConfig config = hw::HwConfig::preset("warboy-2pe");  ///< the chip clients see
  bool once = false;  ///< return from run() after the first client (one that said HELLO) disconnected
  /// Host seconds a new connection has to send its HELLO; one that stays silent is dropped, so it
  /// cannot hold the device from every other client.
  double hello_timeout_s = 10.0;
};

/// One client (one runtime process) at a time: a second process that attaches meanwhile is
/// refused with kBusy. A connection becomes the client once its HELLO is answered: one that
/// closes or stays silent before (another server probing the socket, a stray program) is not
/// counted as a client served and does not end a `once` server. When a client disconnects, orderly or by crashing, the device is reset
/// (power cycle, host buffers dropped) before the next one is served.
class DeviceServer {
 public:
  /// Powers the chip with options.config and listens on options.socket_path. Throws
  /// kInvalidArgument for a bad config, a path too long for a socket address, a path where a
  /// server already answers ("in use") or a path that exists and is not a socket.
  explicit DeviceServer(ServeOptions options);
  /// Stops (as stop() + the end of run()) and removes the socket file.
  ~DeviceServer();
  DeviceServer(const DeviceServer&) = delete;
  DeviceServer& operator=(const DeviceServer&) = delete;

  /// Serves clients until stop() (or after the first client with `once`). Call once.
  void run();
  /// Makes run() return after disconnecting the current client. Thread-safe and
  /// async-signal-safe (one write to a pipe): a SIGINT/SIGTERM handler may call it.
  void stop();
  /// Clients (attached with HELLO) served to the end so far.
  uint64_t clients_served() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace anvil::rt
