#pragma once
/// The anvil runtime: the host driver of the virtual NPU.
///
///   Device  = an opened device: one or more units (a PE, or the fused pair) on the process's platform
///   Session = a program loaded into that device's DRAM, run synchronously (run) or through an
///             asynchronous queue (submit -> Request -> wait / receive)
///   Request = one submitted inference: state, outputs, statistics and the caller's context
///
/// The runtime drives the device only as a PCIe driver would: BAR register reads and writes,
/// submission/completion rings in host memory, and MSI interrupts (a condition variable the
/// interrupt handler signals). One completion thread per Device consumes the completion ring.
///
/// Typed errors (anvil::Error codes):
///   kBusy            "device busy": a non-blocking submit on a full queue
///   kInvalidArgument invalid input (tensor name/shape/dtype), bad spec or options,
///                    program/device mismatch (the program needs another PE count than a unit has)
///   kTimeout         "queue timeout": no free queue slot or no result within the caller's timeout
///   kDeviceError     "device fault": the device reported an error (DMA fault, PE watchdog, bad
///                    program) or did not complete a request; the runtime then resets the device
///   kClosed          closed session or device (or one reset by a later Device::open)
#include <any>
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

/// One segment of a partitioned program's request (RunStats::segments).
struct SegmentStats {
  bool host = false;      ///< true: a host segment (ref::run_int8), false: an NPU segment
  uint64_t cycles = 0;    ///< NPU: device cycles of its program run on the PE(s)
  uint32_t pe_mask = 0;   ///< NPU: the unit that ran it (bit i = PE i)
  double host_us = 0.0;   ///< host: wall-clock microseconds of its ref::run_int8 call
};

struct RunStats {
  uint64_t cycles = 0;          ///< device cycles of the program run on the PE(s)
  uint64_t request_cycles = 0;  ///< submission fetched to completion posted, incl. PCIe transfers
  double latency_us = 0.0;      ///< request_cycles at the configured clock
  uint64_t macs = 0;            ///< multiply-accumulates of the program's kConv instructions
  double mac_utilization = 0.0; ///< macs / (cycles * mac_rows * mac_cols * slices * num_pes_used)
  uint64_t submit_cycle = 0;    ///< device cycle when the host rang the doorbell for the request
  uint64_t start_cycle = 0;     ///< device cycle when the firmware started the request
  uint64_t end_cycle = 0;       ///< device cycle when its outputs were in host memory
  uint32_t pe_mask = 0;         ///< the unit that ran it (bit i = PE i)
  /// Submission to completion in simulated time (queueing included), microseconds.
  double queue_latency_us = 0.0;
  /// Partitioned programs: host wall-clock microseconds of the host segments (ref::run_int8). The
  /// device fields above then sum the NPU segments (cycles, request_cycles, macs) or span them
  /// (submit_cycle of the first, end_cycle of the last); host segments take no simulated time.
  double host_us = 0.0;
  /// Partitioned programs: one entry per segment, in program order (empty for a program that runs
  /// wholly on the NPU). The host entries' host_us add up to host_us above.
  std::vector<SegmentStats> segments;
};

/// Device specification (one string names a set of units; a unit is what one request runs on):
///   "warboy(P)*D"       D devices of P independent PEs each, in-process one chip: P*D units of one PE
///                       (warboy(1)*1 = PE 0; warboy(2)*1 and warboy(1)*2 = PE 0 and PE 1)
///   "npu0peI"           PE I;   "npu0pe0-1" = the fused pair (one unit of two PEs)
///   "warboy"            PE 0;   "warboy-2pe" = the fused pair
///   "A,B,..."           the union of the lists (a PE may appear once)
///   "unix:PATH[#SPEC]"  the units SPEC (any of the above; default warboy(1)*1) of the chip a device
///                       server simulates in another process (`anvil device serve --socket PATH`)
///   ""                  $ANVIL_DEVICES, or "warboy(1)*1" when unset
/// Returns the units' PE masks (1, 2 or 3). Throws kInvalidArgument naming the spec.
std::vector<uint32_t> parse_device_spec(const std::string& spec);

/// The specs of the units a platform with `config` offers (npu0pe0, npu0pe1, npu0pe0-1).
std::vector<std::string> discover(const hw::HwConfig& config);

class Device {  // value-type handle (shared pimpl), RAII
 public:
  Device() = default;
  /// Opens the virtual device (see parse_device_spec). Resets the platform with `config` (a power
  /// cycle: every earlier Device becomes stale and throws kClosed). The power cycle waits for the
  /// earlier devices' accesses to their host buffers in progress; their requests in flight then
  /// end with kClosed, and so does their later use. Throws kInvalidArgument for a
  /// bad spec or config (a PE the config does not have), kDeviceError if the device does not boot.
  /// A "unix:" spec attaches to a device server: its chip is the server's (config() reports it,
  /// `config` is not used); kDeviceError names the path when no server answers, kBusy when it
  /// serves another process. Devices of one process share one connection per server, as they
  /// share the in-process platform.
  static Device open(const std::string& spec, const hw::HwConfig& config);
  const hw::HwConfig& config() const;
  const std::string& spec() const;
  /// PE masks of the units requests are spread over.
  const std::vector<uint32_t>& units() const;
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
  /// Device resets the runtime performed to recover from faults since open.
  uint64_t recoveries() const;
  /// Closes the handle (idempotent); later use throws kClosed. Requests already submitted finish.
  void close();
  explicit operator bool() const;

  struct Impl;

 private:
  friend class Session;
  std::shared_ptr<Impl> impl_;
};

/// An input or output of a loaded program, as the host sees it.
struct TensorInfo {
  std::string name;
  Shape shape;                 ///< including the batch dimension
  DType dtype = DType::kInt8;  ///< element type on the device
  isa::Layout layout = isa::Layout::kNCHW;
  float scale = 1.0f;          ///< real = (q - zero_point) * scale
  int32_t zero_point = 0;
  uint64_t bytes = 0;          ///< on the device
};

/// Timeouts. Every timeout in this API (SessionOptions, Request::wait, Session::receive) is in host
/// seconds: kNoTimeoutS or more (+infinity included) means no limit, and NaN is kInvalidArgument.
/// For Request::wait and Session::receive 0 or less does not wait; SessionOptions' must be > 0.
/// Values are never converted to a clock count that could overflow.
constexpr double kNoTimeoutS = 1e9;  ///< about 31.7 years

struct SessionOptions {
  /// Requests of this session in flight at once (each has its own IO and scratch memory), 1..63.
  uint32_t queue_depth = 2;
  /// submit() on a full queue: wait up to timeout_s for a slot (then kTimeout), or throw kBusy at once.
  bool blocking_submit = true;
  /// Host wall-clock limit (seconds) for a blocking submit and for run(). A request the device has
  /// not completed after device_timeout_s is a device fault (the device is reset).
  double timeout_s = 60.0;
  double device_timeout_s = 300.0;
};

/// What Request::wait reports.
enum class RequestState { kPending, kCompleted, kTimeout, kError };
const char* request_state_name(RequestState s);

class Request {  // value-type handle
 public:
  Request() = default;
  /// Waits up to timeout_s (host seconds) for the request: kCompleted, kError (see error()), or
  /// kTimeout when it is still pending (the request stays queued). Throws kClosed on an empty handle.
  RequestState wait(double timeout_s) const;
  /// kPending until the device completed it.
  RequestState state() const;
  /// The int8 outputs by name. Throws the request's error if it failed, kBusy if it is pending.
  const TensorMap& outputs() const;
  /// Its statistics once it completed or failed; throws kBusy while it is pending (complete()
  /// writes them then, so a reference handed out earlier would race with that write).
  const RunStats& stats() const;
  /// The context given to submit().
  const std::any& context() const;
  /// The error of a failed request (code and message); kInternal/"" when it did not fail or is pending.
  ErrorCode error_code() const;
  const std::string& error_message() const;
  /// Submission number within its session, from 0.
  uint64_t id() const;
  explicit operator bool() const { return static_cast<bool>(state_); }

  struct State;

 private:
  friend class Session;
  std::shared_ptr<State> state_;
};

/// Throughput of a session over every request completed since it was created (or stats_reset).
struct SessionStats {
  uint64_t completed = 0, failed = 0;
  uint64_t first_submit_cycle = 0, last_end_cycle = 0;
  double throughput_per_sim_s = 0.0;     ///< completed / (last_end - first_submit) at the clock
  std::vector<uint64_t> per_unit;        ///< completed requests that ran on each unit (Device::units() order; a
                                         ///< partitioned program's request counts on every unit a segment used)
};

/// A program loaded on a device. Thread-safe: any number of threads may run/submit/receive.
///
/// A partitioned program (isa::Program::segments, from the compiler's host fallback) runs as the
/// chain of its segments: each NPU segment on the device as above (it is loaded as a program of
/// its own), each host segment on the host with ref::run_int8, values passed through host memory.
/// run/submit/receive behave the same; a session worker thread advances each request's chain.
class Session {
 public:
  /// Loads the program into device DRAM (through the command queue / PCIe DMA, as a driver would)
  /// and allocates queue_depth request slots. Throws kInvalidArgument when the program needs a
  /// different number of PEs than the device's units have or for bad options, kDeviceError when
  /// the device rejects the load, kClosed for a closed device.
  Session(Device device, const isa::Program& program, const SessionOptions& options = {});
  /// Waits for the session's requests in flight (up to device_timeout_s; then they fail).
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  std::vector<TensorInfo> inputs() const;
  std::vector<TensorInfo> outputs() const;
  const SessionOptions& options() const;

  /// Runs one request and waits for it (submit + wait(timeout_s) + outputs). inputs by name:
  /// float32 tensors are quantized on the host with the descriptor's scale/zero point
  /// (math::quantize_float); int8 tensors are taken as they are. Throws kInvalidArgument for a
  /// wrong name/shape/dtype (naming the tensor and both shapes), kDeviceError for a device fault,
  /// kTimeout when no result came within timeout_s.
  TensorMap run(const TensorMap& inputs);
  /// Statistics of the last run() that returned (for concurrent use, Request::stats()).
  RunStats last_stats() const;  ///< a copy; safe while other threads call run()
  const isa::Program& program() const;

  /// Queues one request on the least loaded unit and returns at once with its handle. A full
  /// queue (queue_depth requests in flight): waits for a slot (blocking_submit; kTimeout after
  /// timeout_s) or throws kBusy "device busy". Invalid inputs throw kInvalidArgument (nothing queued).
  Request submit(const TensorMap& inputs, std::any context = {});
  /// The next request of this session that finished (completed or failed) and was not yet
  /// received or waited for, in completion order. Throws kTimeout "queue timeout" after timeout_s.
  Request receive(double timeout_s);
  /// Requests submitted and not yet finished.
  uint32_t in_flight() const;
  SessionStats stats() const;
  void stats_reset();
  /// Waits for the requests in flight (as the destructor does) and closes the session: later
  /// run/submit/receive throw kClosed "session closed". Idempotent.
  void close();

  struct Impl;

 private:
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
/// is invalid, and what Device::open / Session / Session::run throw. Each point's session has
/// `options` (its timeouts bound a point that hangs).
std::vector<SweepPoint> sweep(const std::string& spec, const hw::HwConfig& base, const std::string& key,
                              const std::vector<std::string>& values, const isa::Program& program,
                              const TensorMap& inputs, const SessionOptions& options = {});

}  // namespace anvil::rt
