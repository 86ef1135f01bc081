#include "anvil/runtime/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <regex>
#include <thread>
#include <vector>

#include "anvil/common/requant.h"
#include "anvil/common/status.h"
#include "anvil/reference/int8_graph.h"
#include "driver.h"
#include "remote_link.h"

namespace anvil::rt {

using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kMaxQueueDepth = 63;  ///< the device rings hold 63 commands in flight
constexpr int kPlatformPes = 2;          ///< PEs of the simulated chip (hw::WarboyChip::kMaxPes)

/// Units of one comma-free spec item; empty when it is not one.
std::vector<uint32_t> parse_item(const std::string& item) {
  static const std::regex warboy(R"(warboy\(([0-9]+)\)\*([0-9]+))"), npu(R"(npu0pe([0-9])(-([0-9]))?)");
  std::smatch m;
  if (item == "warboy") return {1};
  if (item == "warboy-2pe") return {3};
  // At most two digits each: the platform has two PEs, and std::stoi must not overflow.
  if (std::regex_match(item, m, warboy) && m[1].length() <= 2 && m[2].length() <= 2) {
    const int pes = std::stoi(m[1]), devices = std::stoi(m[2]);
    if (pes < 1 || devices < 1 || pes * devices > kPlatformPes) return {};
    std::vector<uint32_t> units;
    for (int i = 0; i < pes * devices; ++i) units.push_back(1u << i);
    return units;
  }
  if (std::regex_match(item, m, npu)) {
    const int first = std::stoi(m[1]);
    if (m[2].matched) return first == 0 && m[3] == "1" ? std::vector<uint32_t>{3} : std::vector<uint32_t>{};
    if (first < kPlatformPes) return {1u << first};
  }
  return {};
}

constexpr const char* kRemotePrefix = "unix:";

/// "unix:PATH[#PES]": the socket path of a device server and the PE part (default PE 0).
struct RemoteSpec {
  std::string path, pes;
};
std::optional<RemoteSpec> split_remote(const std::string& spec) {
  if (spec.rfind(kRemotePrefix, 0) != 0) return std::nullopt;
  const std::string rest = spec.substr(std::strlen(kRemotePrefix));
  const size_t hash = rest.find('#');
  RemoteSpec r{rest.substr(0, hash), hash == std::string::npos ? "warboy(1)*1" : rest.substr(hash + 1)};
  if (r.path.empty() || r.pes.empty())
    fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "': expected unix:SOCKET_PATH or unix:SOCKET_PATH#PES");
  return r;
}

/// An empty spec means $ANVIL_DEVICES, or PE 0 when that is unset.
std::string resolve_spec(const std::string& spec) {
  if (!spec.empty()) return spec;
  const char* env = std::getenv("ANVIL_DEVICES");
  return env && *env ? env : "warboy(1)*1";
}

/// Runs `f`; when the caller gave no spec and $ANVIL_DEVICES supplied it, an error names the variable.
template <typename F>
auto naming_env(const std::string& spec_in, F f) {
  try {
    return f();
  } catch (const Error& e) {
    const char* env = std::getenv("ANVIL_DEVICES");
    if (!spec_in.empty() || !env || !*env) throw;
    throw Error(e.code(), std::string("ANVIL_DEVICES: ") + e.what());
  }
}

/// The units of a spec already resolved (resolve_spec).
std::vector<uint32_t> parse_resolved_spec(const std::string& resolved) {
  const std::optional<RemoteSpec> remote = split_remote(resolved);
  const std::string spec = remote ? remote->pes : resolved;
  std::vector<uint32_t> units;
  uint32_t used = 0;
  size_t pos = 0;
  for (;;) {
    const size_t comma = spec.find(',', pos);
    const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const std::vector<uint32_t> got = parse_item(item);
    if (got.empty())
      fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "': '" + item +
                                            "' not understood (expected warboy(P)*D with P*D <= 2, npu0pe0, npu0pe1, "
                                            "npu0pe0-1, warboy or warboy-2pe, comma-separated)");
    for (uint32_t u : got) {
      if (used & u) fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "' names a PE twice ('" + item + "')");
      used |= u;
      units.push_back(u);
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (units.size() > 1 && std::any_of(units.begin(), units.end(), [](uint32_t u) { return u == 3; }))
    fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "' mixes the fused pair with single PEs");
  return units;
}

}  // namespace

std::vector<uint32_t> parse_device_spec(const std::string& spec_in) {
  return naming_env(spec_in, [&] { return parse_resolved_spec(resolve_spec(spec_in)); });
}

std::vector<std::string> discover(const hw::HwConfig& config) {
  std::vector<std::string> specs{"npu0pe0"};
  if (config.num_pes >= 2) specs.insert(specs.end(), {"npu0pe1", "npu0pe0-1"});
  return specs;
}

Device Device::open(const std::string& spec_in, const hw::HwConfig& config_in) {
  const std::string spec = resolve_spec(spec_in);
  const std::optional<RemoteSpec> remote = naming_env(spec_in, [&] { return split_remote(spec); });
  // A local chip's settings are checked apart, so that a bad one is not blamed on $ANVIL_DEVICES
  // below; a device server's chip has the server's settings and `config_in` does not apply.
  if (!remote) config_in.validate();
  return naming_env(spec_in, [&] {
    std::vector<uint32_t> units = parse_resolved_spec(spec);
    std::shared_ptr<PlatformLink> link;
    hw::HwConfig config = config_in;
    if (remote) {
      auto remote_link = RemoteLink::attach(remote->path);
      config = remote_link->server_config();
      link = std::move(remote_link);
    } else {
      link = LocalLink::instance();
    }
    config.validate();
    for (uint32_t u : units)
      if ((u >> config.num_pes) != 0)
        fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "' needs PE 1 but the hw config has num_pes=" +
                                              std::to_string(config.num_pes) + " (use preset warboy-2pe)");
    Device d;
    d.impl_ = std::make_shared<Impl>(spec, config, std::move(units), std::move(link));
    return d;
  });
}

namespace {
Device::Impl& checked(const std::shared_ptr<Device::Impl>& impl, const char* what) {
  if (!impl) fail(ErrorCode::kClosed, std::string("Device::") + what + " on an empty device handle");
  return *impl;
}
}  // namespace

const hw::HwConfig& Device::config() const { return checked(impl_, "config").config; }
const std::string& Device::spec() const { return checked(impl_, "spec").spec; }
const std::vector<uint32_t>& Device::units() const { return checked(impl_, "units").units; }
uint64_t Device::recoveries() const { return checked(impl_, "recoveries").recoveries(); }

nlohmann::json Device::counters() const {
  checked(impl_, "counters").check_open();
  return impl_->platform.counters();
}

void Device::set_trace(bool enabled) const {
  checked(impl_, "set_trace").check_open();
  impl_->platform.set_trace(enabled);
}

nlohmann::json Device::trace_json() const {
  checked(impl_, "trace_json").check_open();
  return impl_->platform.trace_json();
}

void Device::clear_trace() const {
  checked(impl_, "clear_trace").check_open();
  impl_->platform.clear_trace();
}

void Device::close() {
  if (impl_) impl_->closed = true;
}

Device::operator bool() const { return impl_ && !impl_->closed; }

// ---------------------------------------------------------------------------------------------

const char* request_state_name(RequestState s) {
  switch (s) {
    case RequestState::kPending: return "pending";
    case RequestState::kCompleted: return "completed";
    case RequestState::kTimeout: return "timeout";
    case RequestState::kError: return "error";
  }
  return "?";
}

namespace {

/// A request's device memory: its own IO region (host and device) and scratch.
struct Slot {
  uint64_t io_addr = 0, scratch_addr = 0;
  hw::HostBuffer io_host;
};

/// What a session shares with its requests and the device's completion thread. It does not own
/// the Device: the Session does, and drains its requests before letting go of it.
struct Core {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Slot> slots;
  std::vector<int> free_slots;
  uint32_t in_flight = 0;
  std::deque<std::shared_ptr<Request::State>> finished;  ///< not yet received, completion order
  uint64_t next_id = 0;
  SessionStats stats;
  // Constant after construction.
  std::vector<isa::TensorDesc> outputs;
  std::vector<uint32_t> units;
  uint64_t macs = 0;
  double clock_ghz = 1.0, peak_macs_per_cycle = 1.0;
};

}  // namespace

struct Request::State {
  std::shared_ptr<Core> core;
  uint64_t id = 0;
  int slot = -1;
  std::any context;
  RequestState state = RequestState::kPending;  ///< guarded by core->mutex, as every field below
  bool taken = false;                           ///< returned by receive() or a final wait()
  TensorMap outputs;
  RunStats stats;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

namespace {
Request::State& checked(const std::shared_ptr<Request::State>& s) {
  if (!s) fail(ErrorCode::kClosed, "Request: empty request handle");
  return *s;
}
}  // namespace

RequestState Request::wait(double timeout_s) const {
  State& s = checked(state_);
  std::unique_lock<std::mutex> lock(s.core->mutex);
  if (!s.core->cv.wait_until(lock, deadline_after(timeout_s, "timeout_s"), [&] { return s.state != RequestState::kPending; }))
    return RequestState::kTimeout;
  s.taken = true;
  return s.state;
}

RequestState Request::state() const {
  State& s = checked(state_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  return s.state;
}

const TensorMap& Request::outputs() const {
  State& s = checked(state_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  if (s.state == RequestState::kPending)
    fail(ErrorCode::kBusy, "request " + std::to_string(s.id) + " is still pending (wait for it first)");
  if (s.state == RequestState::kError) throw Error(s.code, s.message);
  return s.outputs;  // final: never written again
}

const RunStats& Request::stats() const {
  State& s = checked(state_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  if (s.state == RequestState::kPending)
    fail(ErrorCode::kBusy, "request " + std::to_string(s.id) + " is still pending (wait for it first)");
  return s.stats;  // final: never written again
}

const std::any& Request::context() const { return checked(state_).context; }

ErrorCode Request::error_code() const {
  State& s = checked(state_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  return s.code;
}

const std::string& Request::error_message() const {
  static const std::string kNone;
  State& s = checked(state_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  return s.state == RequestState::kPending ? kNone : s.message;  // final once it is not pending
}

uint64_t Request::id() const { return checked(state_).id; }

// ---------------------------------------------------------------------------------------------

struct Session::Impl {
  Device device;
  isa::Program program;
  SessionOptions options;
  uint64_t program_addr = 0;
  uint32_t input_bytes = 0, output_offset = 0, output_bytes = 0;
  std::shared_ptr<Core> core = std::make_shared<Core>();
  RunStats last;
  bool closed = false;
  std::vector<uint64_t> dram_allocations;

  uint64_t dram_alloc(uint64_t bytes, const std::string& what) {
    dram_allocations.push_back(device.impl_->dram_alloc(bytes, what));
    return dram_allocations.back();
  }
  /// Waits until no request is in flight: the completion thread fails overdue ones, so this ends.
  void drain() {
    std::unique_lock<std::mutex> lock(core->mutex);
    core->cv.wait(lock, [&] { return core->in_flight == 0; });
  }
  ~Impl() {
    if (!device.impl_) return;
    drain();
    stop_workers();
    {
      // Finished requests nobody received hold the core, and it holds them: let go of them.
      std::lock_guard<std::mutex> lock(core->mutex);
      core->finished.clear();
    }
    for (uint64_t a : dram_allocations) device.impl_->dram_free(a);
    for (const Slot& s : core->slots)
      if (s.io_host.data) device.impl_->host_free(s.io_host);
  }
  void check_usable() const {
    if (closed) fail(ErrorCode::kClosed, "session closed");
    device.impl_->check_open();
  }
  /// Checks the inputs and writes them (quantized when float32) into a request's host IO buffer.
  void check_inputs(const TensorMap& inputs) const;
  void write_inputs(const TensorMap& inputs, uint8_t* io) const;

  // ---- partitioned programs (program.segments) ----------------------------------------------
  // Each NPU segment is a Session of its own on the same device (its program loaded, its own
  // request slots); each host segment is its integer graph, run with ref::run_int8. A request is
  // a job for one of `workers`, which walks the segments in order with the values in host memory.
  struct Stage {
    const isa::Segment* segment = nullptr;  ///< into program.segments
    std::unique_ptr<Session> npu;
    ref::Int8Graph host;
  };
  struct ChainJob {
    std::shared_ptr<Request::State> state;
    TensorMap values;  ///< by value name: the inputs, then every segment's outputs
  };
  std::vector<Stage> stages;
  std::mutex jobs_mutex;
  std::condition_variable jobs_cv;
  std::deque<ChainJob> jobs;
  bool stopping = false;
  std::vector<std::thread> workers;

  /// Prepares the stages (loading the NPU segments) and starts the workers.
  void start_chain();
  /// Queues a request whose slot is taken: its inputs, quantized, by value name.
  void enqueue_chain(const std::shared_ptr<Request::State>& state, const TensorMap& inputs);
  void run_chain(ChainJob& job);
  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(jobs_mutex);
      stopping = true;
    }
    jobs_cv.notify_all();
    for (std::thread& t : workers) t.join();
    workers.clear();
  }
};

namespace {
Session::Impl& checked(const std::unique_ptr<Session::Impl>& impl) {
  if (!impl) fail(ErrorCode::kClosed, "session closed (moved from)");
  return *impl;
}

TensorInfo info_of(const isa::TensorDesc& d) {
  return TensorInfo{d.name, d.shape, d.dtype, d.layout, d.scale, d.zero_point, d.bytes()};
}
}  // namespace

Session::Session(Device device, const isa::Program& program, const SessionOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (!device.impl_) fail(ErrorCode::kClosed, "Session: empty device handle");
  Device::Impl& d = *device.impl_;
  d.check_open();
  if (options.queue_depth < 1 || options.queue_depth > kMaxQueueDepth)
    fail(ErrorCode::kInvalidArgument, "session queue_depth " + std::to_string(options.queue_depth) + " is outside 1.." +
                                          std::to_string(kMaxQueueDepth));
  if (!(options.timeout_s > 0) || !(options.device_timeout_s > 0))
    fail(ErrorCode::kInvalidArgument, "session timeout_s and device_timeout_s must be positive");
  if (program.num_pes != d.pes_per_unit)
    fail(ErrorCode::kInvalidArgument, "program/device mismatch: the program needs " + std::to_string(program.num_pes) +
                                          " PE(s) per request but each unit of device '" + d.spec + "' has " +
                                          std::to_string(d.pes_per_unit));
  // What the firmware would refuse as "bad program", said here with the cause (the program was
  // compiled for a larger instruction memory or SRAM than this device has).
  const uint64_t code_bytes = program.instructions.size() * sizeof(isa::Instruction);
  if (code_bytes > d.config.instr_mem_bytes)
    fail(ErrorCode::kInvalidArgument, "program/device mismatch: the program has " +
                                          std::to_string(program.instructions.size()) + " instructions (" +
                                          std::to_string(code_bytes) + " bytes) but device '" + d.spec + "' holds " +
                                          std::to_string(d.config.instr_mem_bytes) + " bytes per PE (instr_mem_bytes)");
  if (program.sram_bytes > d.config.sram_bytes_per_pe() * program.num_pes)
    fail(ErrorCode::kInvalidArgument, "program/device mismatch: the program uses " + std::to_string(program.sram_bytes) +
                                          " bytes of SRAM but device '" + d.spec + "' has " +
                                          std::to_string(d.config.sram_bytes_per_pe() * program.num_pes) +
                                          " (slices_per_pe x sram_per_slice x PEs)");
  Impl& s = *impl_;
  s.device = device;
  s.program = program;
  s.options = options;
  Core& core = *s.core;
  for (const auto& in : program.inputs) {
    if (in.dtype != DType::kInt8)
      fail(ErrorCode::kUnsupported, "program input '" + in.name + "' is " + dtype_name(in.dtype) + "; the device takes int8");
    s.input_bytes = static_cast<uint32_t>(std::max<uint64_t>(s.input_bytes, in.io_offset + in.bytes()));
  }
  uint64_t out_begin = program.io_bytes, out_end = 0;
  for (const auto& out : program.outputs) {
    // A partitioned program's output may be a host segment's float value (runtime: run_chain).
    if (out.dtype != DType::kInt8 && program.segments.empty())
      fail(ErrorCode::kUnsupported, "program output '" + out.name + "' is " + dtype_name(out.dtype) + "; the device produces int8");
    out_begin = std::min(out_begin, out.io_offset);
    out_end = std::max(out_end, out.io_offset + out.bytes());
  }
  if (out_end > out_begin) s.output_offset = static_cast<uint32_t>(out_begin), s.output_bytes = static_cast<uint32_t>(out_end - out_begin);
  for (const auto& inst : program.instructions)
    if (inst.opcode == isa::Opcode::kConv) core.macs += isa::conv_macs(inst.conv);
    else if (inst.opcode == isa::Opcode::kMatMul) core.macs += isa::matmul_macs(inst.matmul);
  core.outputs = program.outputs;
  core.units = d.units;
  core.stats.per_unit.assign(d.units.size(), 0);
  core.clock_ghz = d.config.clock_ghz;
  core.peak_macs_per_cycle = static_cast<double>(d.config.mac_rows) * d.config.mac_cols * d.config.slices_per_pe * d.pes_per_unit;

  if (!program.segments.empty()) {
    s.start_chain();
    return;
  }
  // The image goes to DRAM the way a driver puts it there: a host buffer and a kLoad command.
  const std::string image = program.serialize();
  s.program_addr = s.dram_alloc(image.size(), "the program image");
  for (uint32_t i = 0; i < options.queue_depth; ++i) {
    Slot slot;
    slot.scratch_addr = s.dram_alloc(program.scratch_bytes, "the program's scratch memory");
    slot.io_addr = s.dram_alloc(program.io_bytes, "the program's IO region");
    slot.io_host = d.host_alloc(program.io_bytes);
    core.slots.push_back(slot);
    core.free_slots.push_back(static_cast<int>(options.queue_depth - 1 - i));
  }
  hw::HostBuffer staging = d.host_alloc(image.size());
  isa::SubmissionEntry e{};
  e.opcode = static_cast<uint32_t>(isa::CommandOp::kLoad);
  e.io_addr = s.program_addr;
  e.host_io_addr = staging.bus_addr;
  e.input_bytes = static_cast<uint32_t>(image.size());
  CommandResult r;
  try {
    d.with_host_memory([&] { std::memcpy(staging.data, image.data(), image.size()); });
    r = d.execute(e, options.device_timeout_s);
  } catch (...) {
    d.host_free(staging);
    throw;
  }
  d.host_free(staging);
  if (r.has_error) fail(r.error_code, r.error + " (loading the program)");
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

RunStats Session::last_stats() const {
  const Impl& s = checked(impl_);
  std::lock_guard<std::mutex> lock(s.core->mutex);
  return s.last;
}
const isa::Program& Session::program() const { return checked(impl_).program; }
const SessionOptions& Session::options() const { return checked(impl_).options; }

std::vector<TensorInfo> Session::inputs() const {
  std::vector<TensorInfo> v;
  for (const auto& d : checked(impl_).program.inputs) v.push_back(info_of(d));
  return v;
}

std::vector<TensorInfo> Session::outputs() const {
  std::vector<TensorInfo> v;
  for (const auto& d : checked(impl_).program.outputs) v.push_back(info_of(d));
  return v;
}

void Session::Impl::check_inputs(const TensorMap& inputs) const {
  for (const auto& [name, t] : inputs) {
    bool known = false;
    for (const auto& desc : program.inputs) known |= desc.name == name;
    if (!known) {
      std::string names;
      for (const auto& desc : program.inputs) names += (names.empty() ? "" : ", ") + desc.name;
      fail(ErrorCode::kInvalidArgument, "input '" + name + "' is not an input of the program (inputs: " + names + ")");
    }
  }
  for (const auto& desc : program.inputs) {
    auto it = inputs.find(desc.name);
    if (it == inputs.end()) fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' is missing");
    const Tensor& t = it->second;
    if (t.shape() != desc.shape)
      fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' has shape " + shape_str(t.shape()) +
                                            ", the program expects " + shape_str(desc.shape));
    if (t.dtype() != DType::kFloat32 && t.dtype() != DType::kInt8)
      fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' has dtype " + dtype_name(t.dtype()) +
                                            ", expected float32 (quantized on the host) or int8");
    // int8 has no code for NaN or infinity (quantize_float would make a NaN the zero point).
    if (t.dtype() == DType::kFloat32)
      for (int64_t i = 0; i < t.numel(); ++i)
        if (!std::isfinite(t.data<float>()[i]))
          fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' has " +
                                                (std::isnan(t.data<float>()[i]) ? "a NaN" : "an infinite value") +
                                                " at element " + std::to_string(i));
  }
}

namespace {
/// An input as the device takes it: float32 quantized with the descriptor's parameters, int8 as is.
void quantize_input(const Tensor& t, const isa::TensorDesc& desc, int8_t* dst) {
  if (t.dtype() == DType::kFloat32) {
    const float* x = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = math::quantize_float(x[i], desc.scale, desc.zero_point);
  } else {
    std::memcpy(dst, t.raw(), t.nbytes());
  }
}
}  // namespace

void Session::Impl::write_inputs(const TensorMap& inputs, uint8_t* io) const {
  for (const auto& desc : program.inputs)
    quantize_input(inputs.at(desc.name), desc, reinterpret_cast<int8_t*>(io + desc.io_offset));
}

namespace {

/// Runs on the device's completion thread when a request's command ended, with the platform's
/// power mutex held (driver.h): the slot's host buffer is still this device's while it is read.
void complete(const std::shared_ptr<Request::State>& state, const CommandResult& r) {
  Core& core = *state->core;
  std::lock_guard<std::mutex> lock(core.mutex);
  Request::State& s = *state;
  const isa::CompletionEntry& c = r.completion;
  RunStats& st = s.stats;
  st.submit_cycle = r.submit_cycle;
  st.pe_mask = r.unit >= 0 ? core.units[r.unit] : 0;
  if (r.has_error) {
    s.state = RequestState::kError;
    s.code = r.error_code;
    s.message = r.error;
    core.stats.failed++;
  } else {
    const Slot& slot = core.slots[s.slot];
    for (const auto& desc : core.outputs) {
      Tensor t(DType::kInt8, desc.shape);
      std::memcpy(t.raw(), slot.io_host.data + desc.io_offset, t.nbytes());
      s.outputs.emplace(desc.name, std::move(t));
    }
    // On success the completion's error_info carries the PE run's cycles (firmware.h).
    st.cycles = c.error_info;
    st.start_cycle = c.start_cycle;
    st.end_cycle = c.end_cycle;
    st.request_cycles = c.end_cycle - c.start_cycle;
    st.latency_us = static_cast<double>(st.request_cycles) / (core.clock_ghz * 1000.0);
    st.queue_latency_us = static_cast<double>(c.end_cycle - r.submit_cycle) / (core.clock_ghz * 1000.0);
    st.macs = core.macs;
    st.mac_utilization = st.cycles ? static_cast<double>(st.macs) / (static_cast<double>(st.cycles) * core.peak_macs_per_cycle) : 0.0;
    s.state = RequestState::kCompleted;
    SessionStats& ss = core.stats;
    if (ss.completed == 0 || r.submit_cycle < ss.first_submit_cycle) ss.first_submit_cycle = r.submit_cycle;
    ss.last_end_cycle = std::max(ss.last_end_cycle, c.end_cycle);
    ss.completed++;
    if (r.unit >= 0) ss.per_unit[r.unit]++;
    const uint64_t span = ss.last_end_cycle - ss.first_submit_cycle;
    ss.throughput_per_sim_s = span ? static_cast<double>(ss.completed) * core.clock_ghz * 1e9 / static_cast<double>(span) : 0.0;
  }
  core.free_slots.push_back(s.slot);
  core.in_flight--;
  while (!core.finished.empty() && core.finished.front()->taken) core.finished.pop_front();
  core.finished.push_back(state);
  core.cv.notify_all();
}

}  // namespace

Request Session::submit(const TensorMap& inputs, std::any context) {
  Impl& s = checked(impl_);
  s.check_usable();
  s.check_inputs(inputs);
  Core& core = *s.core;
  auto state = std::make_shared<Request::State>();
  state->core = s.core;
  state->context = std::move(context);
  const auto wait_until = deadline_after(s.options.timeout_s, "timeout_s");
  {
    std::unique_lock<std::mutex> lock(core.mutex);
    if (core.free_slots.empty()) {
      if (!s.options.blocking_submit)
        fail(ErrorCode::kBusy, "device busy: " + std::to_string(s.options.queue_depth) +
                                   " requests of the session are in flight (queue_depth)");
      if (!core.cv.wait_until(lock, wait_until, [&] { return !core.free_slots.empty(); }))
        fail(ErrorCode::kTimeout, "queue timeout: no free slot in the session's queue within " +
                                      std::to_string(s.options.timeout_s) + " s");
    }
    state->slot = core.free_slots.back();
    core.free_slots.pop_back();
    state->id = core.next_id++;
    core.in_flight++;
  }
  if (!s.stages.empty()) {
    s.enqueue_chain(state, inputs);
    Request r;
    r.state_ = std::move(state);
    return r;
  }
  const Slot& slot = core.slots[state->slot];
  isa::SubmissionEntry e{};
  e.opcode = static_cast<uint32_t>(isa::CommandOp::kRun);
  e.program_addr = s.program_addr;
  e.scratch_addr = slot.scratch_addr;
  e.io_addr = slot.io_addr;
  e.host_io_addr = slot.io_host.bus_addr;
  e.input_bytes = s.input_bytes;
  e.output_offset = s.output_offset;
  e.output_bytes = s.output_bytes;
  try {
    s.device.impl_->with_host_memory([&] { s.write_inputs(inputs, slot.io_host.data); });
    s.device.impl_->post(e, true, [state](const CommandResult& r) { complete(state, r); }, wait_until,
                         deadline_after(s.options.device_timeout_s, "device_timeout_s"));
  } catch (...) {
    std::lock_guard<std::mutex> lock(core.mutex);
    core.free_slots.push_back(state->slot);
    core.in_flight--;
    core.cv.notify_all();
    throw;
  }
  Request r;
  r.state_ = std::move(state);
  return r;
}

// ---- partitioned programs --------------------------------------------------------------------

void Session::Impl::start_chain() {
  Core& c = *core;
  for (uint32_t i = 0; i < options.queue_depth; ++i) {  // slots without memory: they count requests
    c.slots.emplace_back();
    c.free_slots.push_back(static_cast<int>(options.queue_depth - 1 - i));
  }
  for (size_t i = 0; i < program.segments.size(); ++i) {
    const isa::Segment& seg = program.segments[i];
    Stage stage;
    stage.segment = &seg;
    const std::string what = "segment " + std::to_string(i);
    if (seg.kind == isa::SegmentKind::kNpu) {
      stage.npu = std::make_unique<Session>(device, isa::Program::parse(seg.payload, what), options);
    } else {
      Expected<ref::Int8Graph> g = ref::parse_int8_graph(seg.payload, what);
      if (!g.ok()) throw g.error();
      stage.host = std::move(g.value());
      if (stage.host.input_names != seg.inputs || stage.host.output_names != seg.outputs)
        fail(ErrorCode::kInvalidArgument, what + ": the host graph's inputs and outputs are not the segment's");
    }
    stages.push_back(std::move(stage));
  }
  // One worker per request in flight (up to 8): NPU segments of different requests overlap.
  const uint32_t n = std::min<uint32_t>(options.queue_depth, 8);
  for (uint32_t i = 0; i < n; ++i)
    workers.emplace_back([this] {
      for (;;) {
        ChainJob job;
        {
          std::unique_lock<std::mutex> lock(jobs_mutex);
          jobs_cv.wait(lock, [&] { return stopping || !jobs.empty(); });
          if (jobs.empty()) return;
          job = std::move(jobs.front());
          jobs.pop_front();
        }
        run_chain(job);
      }
    });
}

void Session::Impl::enqueue_chain(const std::shared_ptr<Request::State>& state, const TensorMap& inputs) {
  ChainJob job{state, {}};
  for (size_t i = 0; i < program.inputs.size(); ++i) {
    const isa::TensorDesc& desc = program.inputs[i];
    Tensor t(DType::kInt8, desc.shape);
    quantize_input(inputs.at(desc.name), desc, t.data<int8_t>());
    job.values.emplace(program.input_values[i], std::move(t));
  }
  {
    std::lock_guard<std::mutex> lock(jobs_mutex);
    jobs.push_back(std::move(job));
  }
  jobs_cv.notify_one();
}

/// Runs a request's segments in order and completes it: outputs, statistics summed over the NPU
/// segments (device cycles; the simulated span from the first segment's submission to the last
/// one's end) and the host segments' wall time in host_us.
void Session::Impl::run_chain(ChainJob& job) {
  RunStats st;
  TensorMap outputs;
  std::optional<Error> error;
  bool first_npu = true;
  try {
    for (const Stage& stage : stages) {
      TensorMap in;
      for (const std::string& v : stage.segment->inputs) in.emplace(v, job.values.at(v));
      TensorMap out;
      if (stage.npu) {
        Request r = stage.npu->submit(in);
        // Past the segment's device deadline, where the driver fails it as the device fault it
        // is: waiting exactly that long raced with it and reported a queue timeout instead.
        if (r.wait(options.device_timeout_s + std::max(options.device_timeout_s, 1.0)) == RequestState::kTimeout)
          fail(ErrorCode::kTimeout, "queue timeout: an NPU segment of request " + std::to_string(job.state->id) +
                                        " did not finish within " + std::to_string(options.device_timeout_s) + " s");
        out = r.outputs();
        const RunStats& s = r.stats();
        st.cycles += s.cycles;
        st.request_cycles += s.request_cycles;
        st.macs += s.macs;
        st.pe_mask |= s.pe_mask;
        if (first_npu) st.submit_cycle = s.submit_cycle, st.start_cycle = s.start_cycle;
        st.end_cycle = s.end_cycle;
        first_npu = false;
        st.segments.push_back({false, s.cycles, s.pe_mask, 0.0});
      } else {
        const auto t0 = Clock::now();
        Expected<TensorMap> ran = ref::run_int8(stage.host, in);
        const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        st.host_us += us;
        st.segments.push_back({true, 0, 0, us});
        if (!ran.ok()) throw ran.error();
        out = std::move(ran.value());
      }
      for (auto& [name, t] : out) job.values.insert_or_assign(name, std::move(t));
    }
    for (size_t i = 0; i < program.outputs.size(); ++i)
      outputs.emplace(program.outputs[i].name, job.values.at(program.output_values[i]));
  } catch (const Error& e) {
    error = e;
  } catch (const std::exception& e) {
    error = Error(ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
  Core& c = *core;
  std::lock_guard<std::mutex> lock(c.mutex);
  Request::State& s = *job.state;
  if (error) {
    s.state = RequestState::kError;
    s.code = error->code();
    s.message = error->what();
    c.stats.failed++;
  } else {
    st.latency_us = static_cast<double>(st.request_cycles) / (c.clock_ghz * 1000.0);
    st.queue_latency_us = static_cast<double>(st.end_cycle - st.submit_cycle) / (c.clock_ghz * 1000.0);
    st.mac_utilization = st.cycles ? static_cast<double>(st.macs) / (static_cast<double>(st.cycles) * c.peak_macs_per_cycle) : 0.0;
    s.stats = st;
    s.outputs = std::move(outputs);
    s.state = RequestState::kCompleted;
    SessionStats& ss = c.stats;
    if (ss.completed == 0 || st.submit_cycle < ss.first_submit_cycle) ss.first_submit_cycle = st.submit_cycle;
    ss.last_end_cycle = std::max(ss.last_end_cycle, st.end_cycle);
    ss.completed++;
    for (size_t u = 0; u < c.units.size(); ++u)
      if (st.pe_mask & c.units[u]) ss.per_unit[u]++;
    const uint64_t span = ss.last_end_cycle - ss.first_submit_cycle;
    ss.throughput_per_sim_s = span ? static_cast<double>(ss.completed) * c.clock_ghz * 1e9 / static_cast<double>(span) : 0.0;
  }
  c.free_slots.push_back(s.slot);
  c.in_flight--;
  while (!c.finished.empty() && c.finished.front()->taken) c.finished.pop_front();
  c.finished.push_back(job.state);
  c.cv.notify_all();
}

Request Session::receive(double timeout_s) {
  Impl& s = checked(impl_);
  if (s.closed) fail(ErrorCode::kClosed, "session closed");
  Core& core = *s.core;
  std::unique_lock<std::mutex> lock(core.mutex);
  auto ready = [&] {
    while (!core.finished.empty() && core.finished.front()->taken) core.finished.pop_front();
    return !core.finished.empty();
  };
  if (!core.cv.wait_until(lock, deadline_after(timeout_s, "timeout_s"), ready))
    fail(ErrorCode::kTimeout, "queue timeout: no request of the session finished within " + std::to_string(timeout_s) +
                                  " s (" + std::to_string(core.in_flight) + " in flight)");
  Request r;
  r.state_ = core.finished.front();
  r.state_->taken = true;
  core.finished.pop_front();
  return r;
}

TensorMap Session::run(const TensorMap& inputs) {
  Impl& s = checked(impl_);
  Request r = submit(inputs);
  if (r.wait(s.options.timeout_s) == RequestState::kTimeout)
    fail(ErrorCode::kTimeout, "queue timeout: request " + std::to_string(r.id()) + " did not finish within " +
                                  std::to_string(s.options.timeout_s) + " s");
  TensorMap out = r.outputs();
  const RunStats st = r.stats();
  std::lock_guard<std::mutex> lock(s.core->mutex);  // run() may be called from several threads
  s.last = st;
  return out;
}

uint32_t Session::in_flight() const {
  Core& core = *checked(impl_).core;
  std::lock_guard<std::mutex> lock(core.mutex);
  return core.in_flight;
}

SessionStats Session::stats() const {
  Core& core = *checked(impl_).core;
  std::lock_guard<std::mutex> lock(core.mutex);
  return core.stats;
}

void Session::stats_reset() {
  Core& core = *checked(impl_).core;
  std::lock_guard<std::mutex> lock(core.mutex);
  core.stats = SessionStats{};
  core.stats.per_unit.assign(core.units.size(), 0);
}

void Session::close() {
  if (!impl_ || impl_->closed) return;
  impl_->drain();
  impl_->closed = true;
}

std::pair<std::string, std::vector<std::string>> parse_sweep(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    fail(ErrorCode::kInvalidArgument, "sweep '" + text + "': expected key=v1,v2,...");
  std::pair<std::string, std::vector<std::string>> r{text.substr(0, eq), {}};
  std::string rest = text.substr(eq + 1);
  size_t pos = 0;
  for (;;) {
    const size_t comma = rest.find(',', pos);
    const std::string v = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (v.empty()) fail(ErrorCode::kInvalidArgument, "sweep '" + text + "': empty value");
    r.second.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return r;
}

std::vector<SweepPoint> sweep(const std::string& spec, const hw::HwConfig& base, const std::string& key,
                              const std::vector<std::string>& values, const isa::Program& program,
                              const TensorMap& inputs, const SessionOptions& options) {
  if (split_remote(resolve_spec(spec)))
    fail(ErrorCode::kInvalidArgument, "sweep on device '" + resolve_spec(spec) +
                                          "': a device server's chip has the server's fixed config; sweep in-process");
  // Validate every point before simulating any, so a typo in the last value fails fast.
  std::vector<hw::HwConfig> configs;
  for (const std::string& v : values) {
    hw::HwConfig c = base;
    c.set(key + "=" + v);
    c.validate();
    configs.push_back(c);
  }
  std::vector<SweepPoint> points;
  for (size_t i = 0; i < values.size(); ++i) {
    Device device = Device::open(spec, configs[i]);
    Session session(device, program, options);
    session.run(inputs);
    points.push_back({values[i], session.last_stats()});
  }
  return points;
}

}  // namespace anvil::rt
