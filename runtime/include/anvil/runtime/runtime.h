#pragma once
/// The anvil runtime: the host driver of the virtual NPU.
///
///   Device  = an opened device (one PE or the fused pair) on the process's platform
///   Session = a program loaded into that device's DRAM, run request by request
///
/// The runtime drives the device only as a PCIe driver would: BAR register reads and writes,
/// submission/completion rings in host memory, and MSI interrupts (a condition variable the
/// interrupt handler signals). Errors are anvil::Error: kInvalidArgument (bad spec, tensor
/// name/shape/dtype), kDeviceError (the device's error name), kTimeout, kClosed.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/common/tensor.h"
#include "anvil/hw/config.h"
#include "anvil/isa/program.h"

namespace anvil::rt {

struct RunStats {
  uint64_t cycles = 0;          ///< device cycles from program start to end on the PE(s)
  uint64_t request_cycles = 0;  ///< submission fetched to completion posted, incl. PCIe transfers
  double latency_us = 0.0;      ///< request_cycles at the configured clock
  uint64_t macs = 0;            ///< multiply-accumulates of the program's kConv instructions
  double mac_utilization = 0.0; ///< macs / (cycles * mac_rows * mac_cols * slices * num_pes_used)
};

class Device {  // value-type handle (shared pimpl), RAII
 public:
  Device() = default;
  /// Opens the virtual device: spec "warboy(1)*1" / "npu0pe0" = PE 0, "npu0pe1" = PE 1,
  /// "warboy-2pe" / "warboy(2)*1" / "npu0pe0-1" = the fused pair. Resets the platform with
  /// `config` (a power cycle: every earlier Device becomes stale and throws kClosed). Throws
  /// anvil::Error kInvalidArgument for a bad spec or config, kDeviceError if the device does not boot.
  static Device open(const std::string& spec, const hw::HwConfig& config);
  const hw::HwConfig& config() const;
  /// Performance counters of the device's units (hardware model debug interface).
  nlohmann::json counters() const;
  /// Activity trace of the device (hw::Platform::set_trace): off by default; while on, every
  /// instruction, DMA transfer, PE run, PCIe transfer and host command is recorded.
  void set_trace(bool enabled) const;
  /// The recorded events as Chrome / Perfetto JSON ({"traceEvents": [...]}, simulated time in
  /// microseconds since the device was opened; see hw::Platform::trace_json).
  nlohmann::json trace_json() const;
  /// Drops the recorded events (the setting stays).
  void clear_trace() const;
  /// Closes the handle (idempotent); later use throws kClosed.
  void close();
  explicit operator bool() const;

  struct Impl;

 private:
  friend class Session;
  std::shared_ptr<Impl> impl_;
};

/// A program loaded on a device. Requests on one Session are serialised by the caller (it owns
/// one IO buffer); several Sessions may share a Device from different threads.
class Session {
 public:
  /// Loads the program into device DRAM (through the command queue / PCIe DMA, as a driver would).
  /// Throws kInvalidArgument when the program needs a different number of PEs than the device
  /// has, kDeviceError when the device rejects the load, kClosed for a closed device.
  Session(Device device, const isa::Program& program);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  /// Runs one request. inputs by name: float32 tensors are quantized on the host with the
  /// descriptor's scale/zero point (math::quantize_float); int8 tensors are taken as they are.
  /// Wrong name/shape/dtype -> anvil::Error kInvalidArgument naming the tensor and both shapes.
  /// Returns int8 outputs by name (shape per descriptor). A device error -> kDeviceError with the
  /// device's error name; the device's watchdog or no completion -> kTimeout.
  TensorMap run(const TensorMap& inputs);
  const RunStats& last_stats() const;
  const isa::Program& program() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One point of a parameter sweep: the value and the run's statistics.
struct SweepPoint {
  std::string value;
  RunStats stats;
};

/// Parses "key=v1,v2,..." into the key and its values. Throws kInvalidArgument (naming the text)
/// when there is no '=', the key is empty or a value is empty.
std::pair<std::string, std::vector<std::string>> parse_sweep(const std::string& key_equals_values);

/// Runs `program` on `inputs` once per value: each time the device `spec` is opened afresh (a
/// power cycle) with `base` and `key=value` applied (hw::HwConfig::set, then validate), so every
/// point starts from a cold device. Throws kInvalidArgument naming the key/value when the config
/// is invalid, and what Device::open / Session / Session::run throw.
std::vector<SweepPoint> sweep(const std::string& spec, const hw::HwConfig& base, const std::string& key,
                              const std::vector<std::string>& values, const isa::Program& program,
                              const TensorMap& inputs);

}  // namespace anvil::rt
