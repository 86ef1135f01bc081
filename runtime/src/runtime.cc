#include "anvil/runtime/runtime.h"

#include <cstring>
#include <regex>
#include <vector>

#include "anvil/common/requant.h"
#include "anvil/common/status.h"
#include "driver.h"

namespace anvil::rt {

namespace {

/// PE mask of a device spec: 1 (PE 0), 2 (PE 1) or 3 (the fused pair); 0 when not a spec.
uint32_t parse_spec(const std::string& spec) {
  static const std::regex warboy(R"(warboy\((1|2)\)\*1)"), npu(R"(npu0pe(0|1)(-1)?)");
  std::smatch m;
  if (spec == "warboy") return 1;
  if (spec == "warboy-2pe") return 3;
  if (std::regex_match(spec, m, warboy)) return m[1] == "1" ? 1 : 3;
  if (std::regex_match(spec, m, npu)) {
    if (m[2].matched) return m[1] == "0" ? 3 : 0;  // "npu0pe0-1" is the pair; "npu0pe1-1" is nothing
    return m[1] == "0" ? 1 : 2;
  }
  return 0;
}

}  // namespace

Device Device::open(const std::string& spec, const hw::HwConfig& config) {
  const uint32_t mask = parse_spec(spec);
  if (mask == 0)
    fail(ErrorCode::kInvalidArgument, "device spec '" + spec +
                                          "' not understood (expected warboy(1)*1, warboy(2)*1, warboy-2pe, npu0pe0, "
                                          "npu0pe1 or npu0pe0-1)");
  config.validate();
  const uint32_t highest_pe = mask == 1 ? 0 : 1;
  if (highest_pe >= config.num_pes)
    fail(ErrorCode::kInvalidArgument, "device spec '" + spec + "' needs a 2-PE device but the hw config has num_pes=" +
                                          std::to_string(config.num_pes) + " (use preset warboy-2pe)");
  Device d;
  d.impl_ = std::make_shared<Impl>(spec, config, mask);
  return d;
}

const hw::HwConfig& Device::config() const {
  if (!impl_) fail(ErrorCode::kClosed, "Device::config on an empty device handle");
  return impl_->config;
}

nlohmann::json Device::counters() const {
  if (!impl_) fail(ErrorCode::kClosed, "Device::counters on an empty device handle");
  impl_->check_open();
  return impl_->platform.counters();
}

void Device::set_trace(bool enabled) const {
  if (!impl_) fail(ErrorCode::kClosed, "Device::set_trace on an empty device handle");
  impl_->check_open();
  impl_->platform.set_trace(enabled);
}

nlohmann::json Device::trace_json() const {
  if (!impl_) fail(ErrorCode::kClosed, "Device::trace_json on an empty device handle");
  impl_->check_open();
  return impl_->platform.trace_json();
}

void Device::clear_trace() const {
  if (!impl_) fail(ErrorCode::kClosed, "Device::clear_trace on an empty device handle");
  impl_->check_open();
  impl_->platform.clear_trace();
}

void Device::close() {
  if (impl_) impl_->closed = true;
}

Device::operator bool() const { return impl_ && !impl_->closed; }

// ---------------------------------------------------------------------------------------------

struct Session::Impl {
  Device device;
  isa::Program program;
  uint64_t program_addr = 0, scratch_addr = 0, io_addr = 0;
  hw::HostBuffer io_host;
  uint32_t input_bytes = 0, output_offset = 0, output_bytes = 0;
  uint64_t macs = 0;
  RunStats stats;

  std::vector<uint64_t> dram_allocations;

  uint64_t dram_alloc(uint64_t bytes, const std::string& what) {
    dram_allocations.push_back(device.impl_->dram_alloc(bytes, what));
    return dram_allocations.back();
  }
  ~Impl() {
    if (!device.impl_) return;
    for (uint64_t a : dram_allocations) device.impl_->dram_free(a);
    if (io_host.data) device.impl_->host_free(io_host);
  }
};

Session::Session(Device device, const isa::Program& program) : impl_(std::make_unique<Impl>()) {
  if (!device.impl_) fail(ErrorCode::kClosed, "Session: empty device handle");
  Device::Impl& d = *device.impl_;
  d.check_open();
  if (program.num_pes != d.pes_used())
    fail(ErrorCode::kInvalidArgument, "program needs " + std::to_string(program.num_pes) + " PE(s) but device '" +
                                          d.spec + "' has " + std::to_string(d.pes_used()));
  Impl& s = *impl_;
  s.device = device;
  s.program = program;
  for (const auto& in : program.inputs) {
    if (in.dtype != DType::kInt8)
      fail(ErrorCode::kUnsupported, "program input '" + in.name + "' is " + dtype_name(in.dtype) + "; the device takes int8");
    s.input_bytes = static_cast<uint32_t>(std::max<uint64_t>(s.input_bytes, in.io_offset + in.bytes()));
  }
  uint64_t out_begin = program.io_bytes, out_end = 0;
  for (const auto& out : program.outputs) {
    if (out.dtype != DType::kInt8)
      fail(ErrorCode::kUnsupported, "program output '" + out.name + "' is " + dtype_name(out.dtype) + "; the device produces int8");
    out_begin = std::min(out_begin, out.io_offset);
    out_end = std::max(out_end, out.io_offset + out.bytes());
  }
  if (out_end > out_begin) s.output_offset = static_cast<uint32_t>(out_begin), s.output_bytes = static_cast<uint32_t>(out_end - out_begin);
  for (const auto& inst : program.instructions)
    if (inst.opcode == isa::Opcode::kConv) s.macs += isa::conv_macs(inst.conv);

  // The image goes to DRAM the way a driver puts it there: a host buffer and a kLoad command.
  const std::string image = program.serialize();
  s.program_addr = s.dram_alloc(image.size(), "the program image");
  s.scratch_addr = s.dram_alloc(program.scratch_bytes, "the program's scratch memory");
  s.io_addr = s.dram_alloc(program.io_bytes, "the program's IO region");
  s.io_host = d.host_alloc(program.io_bytes);
  hw::HostBuffer staging = d.host_alloc(image.size());
  std::memcpy(staging.data, image.data(), image.size());
  isa::SubmissionEntry e{};
  e.opcode = static_cast<uint32_t>(isa::CommandOp::kLoad);
  e.io_addr = s.program_addr;
  e.host_io_addr = staging.bus_addr;
  e.input_bytes = static_cast<uint32_t>(image.size());
  isa::CompletionEntry c;
  try {
    c = d.submit(e);
  } catch (...) {
    d.host_free(staging);
    throw;
  }
  d.host_free(staging);
  if (c.status != 0)
    fail(ErrorCode::kDeviceError, std::string("device '") + d.spec + "' failed to load the program: " +
                                      isa::device_error_name(static_cast<isa::DeviceError>(c.status)));
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const RunStats& Session::last_stats() const { return impl_->stats; }
const isa::Program& Session::program() const { return impl_->program; }

TensorMap Session::run(const TensorMap& inputs) {
  Impl& s = *impl_;
  Device::Impl& d = *s.device.impl_;
  d.check_open();
  for (const auto& [name, t] : inputs) {
    bool known = false;
    for (const auto& desc : s.program.inputs) known |= desc.name == name;
    if (!known) {
      std::string names;
      for (const auto& desc : s.program.inputs) names += (names.empty() ? "" : ", ") + desc.name;
      fail(ErrorCode::kInvalidArgument, "input '" + name + "' is not an input of the program (inputs: " + names + ")");
    }
  }
  for (const auto& desc : s.program.inputs) {
    auto it = inputs.find(desc.name);
    if (it == inputs.end()) fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' is missing");
    const Tensor& t = it->second;
    if (t.shape() != desc.shape)
      fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' has shape " + shape_str(t.shape()) +
                                            ", the program expects " + shape_str(desc.shape));
    auto* dst = reinterpret_cast<int8_t*>(s.io_host.data + desc.io_offset);
    if (t.dtype() == DType::kFloat32) {
      const float* x = t.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = math::quantize_float(x[i], desc.scale, desc.zero_point);
    } else if (t.dtype() == DType::kInt8) {
      std::memcpy(dst, t.raw(), t.nbytes());
    } else {
      fail(ErrorCode::kInvalidArgument, "input '" + desc.name + "' has dtype " + dtype_name(t.dtype()) +
                                            ", expected float32 (quantized on the host) or int8");
    }
  }
  isa::SubmissionEntry e{};
  e.opcode = static_cast<uint32_t>(isa::CommandOp::kRun);
  e.pe_mask = d.pe_mask;
  e.program_addr = s.program_addr;
  e.scratch_addr = s.scratch_addr;
  e.io_addr = s.io_addr;
  e.host_io_addr = s.io_host.bus_addr;
  e.input_bytes = s.input_bytes;
  e.output_offset = s.output_offset;
  e.output_bytes = s.output_bytes;
  const isa::CompletionEntry c = d.submit(e);
  if (c.status != 0) {
    char info[16];
    std::snprintf(info, sizeof info, "0x%08X", c.error_info);
    // The device's watchdog (a PE that did not finish) is a timeout; every other code a device error.
    const ErrorCode code = c.status == static_cast<uint32_t>(isa::DeviceError::kTimeout) ? ErrorCode::kTimeout
                                                                                          : ErrorCode::kDeviceError;
    fail(code, std::string("device '") + d.spec + "': " +
                                      isa::device_error_name(static_cast<isa::DeviceError>(c.status)) +
                                      " (ERROR_INFO " + info + ")");
  }
  TensorMap outputs;
  for (const auto& desc : s.program.outputs) {
    Tensor t(DType::kInt8, desc.shape);
    std::memcpy(t.raw(), s.io_host.data + desc.io_offset, t.nbytes());
    outputs.emplace(desc.name, std::move(t));
  }
  const nlohmann::json counters = d.platform.counters();
  const std::string pe = d.pe_mask == 2 ? "pe1" : "pe0";
  const hw::HwConfig& cfg = d.config;
  RunStats st;
  st.cycles = counters[pe]["last_run_cycles"].get<uint64_t>();
  st.request_cycles = c.end_cycle - c.start_cycle;
  st.latency_us = static_cast<double>(st.request_cycles) / (cfg.clock_ghz * 1000.0);
  st.macs = s.macs;
  const double peak = static_cast<double>(cfg.mac_rows) * cfg.mac_cols * cfg.slices_per_pe * d.pes_used();
  st.mac_utilization = st.cycles ? static_cast<double>(st.macs) / (static_cast<double>(st.cycles) * peak) : 0.0;
  s.stats = st;
  return outputs;
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
                              const TensorMap& inputs) {
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
    Session session(device, program);
    session.run(inputs);
    points.push_back({values[i], session.last_stats()});
  }
  return points;
}

}  // namespace anvil::rt
