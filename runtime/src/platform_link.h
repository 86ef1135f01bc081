#pragma once
/// The driver's transport seam: exactly the platform operations the runtime uses, over either the
/// process's own simulated chip (LocalLink, hw::Platform itself) or a device server in another
/// process (RemoteLink, remote_link.h). Internal to anvil_runtime.
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "anvil/hw/platform.h"

namespace anvil::rt {

class PlatformLink {
 public:
  virtual ~PlatformLink() = default;
  /// Orders power cycles against the devices that use the chip: Device::open holds it exclusively
  /// from reset() until it owns the chip (its generation read and its rings set up), so two opens
  /// cannot both take one generation for their own.
  std::shared_mutex& power_mutex() { return power_mutex_; }
  /// Power cycle (see hw::Platform::reset). A remote link resets with the server's config: the
  /// card's hardware is the server's, `config` is ignored there.
  virtual void reset(const hw::HwConfig& config) = 0;
  virtual uint64_t generation() const = 0;
  /// Register access; throws kDeviceError naming the offset (or the lost server).
  virtual uint32_t read32(uint32_t offset) = 0;
  virtual void write32(uint32_t offset, uint32_t value) = 0;
  /// Host memory the device reaches by DMA (zeroed); valid until host_free or the next reset.
  virtual hw::HostBuffer host_alloc(uint64_t bytes) = 0;
  /// Never throws.
  virtual void host_free(uint64_t bus_addr) = 0;
  /// The handler runs on the platform's thread (local) or the link's reader thread (remote); it
  /// must only wake a host thread. nullptr removes it.
  virtual void set_interrupt_handler(std::function<void(uint32_t bits)> handler) = 0;
  virtual bool idle() = 0;
  virtual void wait_idle() = 0;
  virtual nlohmann::json counters() = 0;
  virtual void set_trace(bool enabled) = 0;
  virtual nlohmann::json trace_json() = 0;
  virtual void clear_trace() = 0;
  /// "" while the link is usable, else why it is not (a remote server that went away).
  virtual std::string lost() const { return {}; }

 private:
  std::shared_mutex power_mutex_;
};

/// The process's own chip: every call goes straight to hw::Platform::instance().
class LocalLink final : public PlatformLink {
 public:
  /// The one local link of the process (never destroyed, like the platform).
  static std::shared_ptr<PlatformLink> instance() {
    static const std::shared_ptr<PlatformLink> link(new LocalLink, [](PlatformLink*) {});
    return link;
  }
  void reset(const hw::HwConfig& config) override { p_.reset(config); }
  uint64_t generation() const override { return p_.generation(); }
  uint32_t read32(uint32_t offset) override { return p_.read32(offset); }
  void write32(uint32_t offset, uint32_t value) override { p_.write32(offset, value); }
  hw::HostBuffer host_alloc(uint64_t bytes) override { return p_.host_alloc(bytes); }
  void host_free(uint64_t bus_addr) override { p_.host_free(bus_addr); }
  void set_interrupt_handler(std::function<void(uint32_t)> h) override { p_.set_interrupt_handler(std::move(h)); }
  bool idle() override { return p_.idle(); }
  void wait_idle() override { p_.wait_idle(); }
  nlohmann::json counters() override { return p_.counters(); }
  void set_trace(bool enabled) override { p_.set_trace(enabled); }
  nlohmann::json trace_json() override { return p_.trace_json(); }
  void clear_trace() override { p_.clear_trace(); }

 private:
  LocalLink() : p_(hw::Platform::instance()) {}
  hw::Platform& p_;
};

}  // namespace anvil::rt
