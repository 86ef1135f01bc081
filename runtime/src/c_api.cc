// The C API (anvil_rt.h): thin wrappers that catch every exception at the boundary.
#include "anvil/runtime/anvil_rt.h"

#include <algorithm>
#include <any>
#include <cstring>
#include <string>
#include <vector>

#include "anvil/common/status.h"
#include "anvil/runtime/runtime.h"

struct anvil_device {
  anvil::rt::Device device;
};
struct anvil_session {
  anvil::rt::Session session;
  std::vector<anvil::rt::TensorInfo> inputs, outputs;
};
struct anvil_request {
  anvil::rt::Request request;
};

static_assert(ANVIL_ERR_INVALID_ARGUMENT == static_cast<int>(anvil::ErrorCode::kInvalidArgument) + 1 &&
                  ANVIL_ERR_DEVICE_FAULT == static_cast<int>(anvil::ErrorCode::kDeviceError) + 1 &&
                  ANVIL_ERR_TIMEOUT == static_cast<int>(anvil::ErrorCode::kTimeout) + 1 &&
                  ANVIL_ERR_BUSY == static_cast<int>(anvil::ErrorCode::kBusy) + 1 &&
                  ANVIL_ERR_CLOSED == static_cast<int>(anvil::ErrorCode::kClosed) + 1 &&
                  ANVIL_ERR_INTERNAL == static_cast<int>(anvil::ErrorCode::kInternal) + 1,
              "anvil_status is anvil::ErrorCode + 1");
static_assert(ANVIL_REQUEST_COMPLETED == static_cast<int>(anvil::rt::RequestState::kCompleted) &&
                  ANVIL_REQUEST_ERROR == static_cast<int>(anvil::rt::RequestState::kError) &&
                  ANVIL_REQUEST_TIMEOUT == static_cast<int>(anvil::rt::RequestState::kTimeout),
              "anvil_request_state is rt::RequestState");
static_assert(ANVIL_DTYPE_INT8 == static_cast<int>(anvil::DType::kInt8) &&
                  ANVIL_DTYPE_FLOAT32 == static_cast<int>(anvil::DType::kFloat32),
              "anvil_dtype is anvil::DType");

namespace {

thread_local std::string last_error;

anvil_status to_status(anvil::ErrorCode c) { return static_cast<anvil_status>(static_cast<int>(c) + 1); }

/// Runs f, turning an exception into a status and the thread's last error.
template <typename F>
anvil_status guarded(F&& f) {
  try {
    f();
    return ANVIL_OK;
  } catch (const anvil::Error& e) {
    last_error = e.what();
    return to_status(e.code());
  } catch (const std::exception& e) {
    last_error = std::string("internal error: ") + e.what();
  } catch (...) {
    last_error = "internal error: unknown exception";
  }
  return ANVIL_ERR_INTERNAL;
}

template <typename T>
T& need(T* p, const char* what) {
  if (!p) anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string(what) + " is NULL");
  return *p;
}

template <typename T>
T* nonnull(T* p, const char* what) {
  if (!p) anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string(what) + " is NULL");
  return p;
}

/// The caller's inputs as tensors. Each name and shape is checked against the session's inputs
/// before anything is allocated or copied: dims from C are untrusted, and a huge shape must be an
/// invalid argument, not an allocation failure or a read past the caller's data.
anvil::TensorMap to_map(const anvil_session& session, const anvil_tensor* inputs, size_t n) {
  if (n && !inputs) anvil::fail(anvil::ErrorCode::kInvalidArgument, "inputs is NULL");
  anvil::TensorMap m;
  for (size_t i = 0; i < n; ++i) {
    const anvil_tensor& t = inputs[i];
    if (!t.name || (t.rank && !t.dims) || !t.data || t.rank > ANVIL_MAX_RANK)
      anvil::fail(anvil::ErrorCode::kInvalidArgument, "input " + std::to_string(i) + ": NULL name, dims or data, or rank > 8");
    const auto dtype = static_cast<anvil::DType>(t.dtype);
    if (dtype != anvil::DType::kInt8 && dtype != anvil::DType::kFloat32)
      anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string("input '") + t.name + "': dtype " +
                                                          std::to_string(t.dtype) + " (expected int8 or float32)");
    const anvil::Shape shape(t.dims, t.dims + t.rank);
    const auto info = std::find_if(session.inputs.begin(), session.inputs.end(),
                                   [&](const anvil::rt::TensorInfo& d) { return d.name == t.name; });
    if (info == session.inputs.end())
      anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string("input '") + t.name + "' is not an input of the program");
    if (shape != info->shape)
      anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string("input '") + t.name + "' has shape " +
                                                          anvil::shape_str(shape) + ", the program expects " +
                                                          anvil::shape_str(info->shape));
    anvil::Tensor x(dtype, shape);
    std::memcpy(x.raw(), t.data, x.nbytes());
    m[t.name] = std::move(x);
  }
  return m;
}

void fill_info(const anvil::rt::TensorInfo& i, anvil_tensor_info* out) {
  need(out, "out");
  if (i.shape.size() > ANVIL_MAX_RANK) anvil::fail(anvil::ErrorCode::kUnsupported, "tensor '" + i.name + "' has rank > 8");
  out->name = i.name.c_str();
  out->dtype = static_cast<int32_t>(i.dtype);
  out->layout = static_cast<int32_t>(i.layout);
  out->rank = i.shape.size();
  for (size_t d = 0; d < ANVIL_MAX_RANK; ++d) out->dims[d] = d < i.shape.size() ? i.shape[d] : 0;
  out->scale = i.scale;
  out->zero_point = i.zero_point;
  out->bytes = i.bytes;
}

anvil::rt::SessionOptions to_options(const anvil_session_options* o) {
  anvil::rt::SessionOptions r;
  if (!o) return r;
  r.queue_depth = o->queue_depth;
  r.blocking_submit = o->blocking_submit != 0;
  r.timeout_s = o->timeout_s;
  r.device_timeout_s = o->device_timeout_s;
  return r;
}

anvil_status create_session(anvil_device* device, const anvil::isa::Program& program, const anvil_session_options* o,
                            anvil_session** out) {
  anvil::rt::Session s(need(device, "device").device, program, to_options(o));
  auto* h = new anvil_session{std::move(s), {}, {}};
  h->inputs = h->session.inputs();
  h->outputs = h->session.outputs();
  *out = h;
  return ANVIL_OK;
}

}  // namespace

extern "C" {

const char* anvil_last_error(void) { return last_error.c_str(); }

const char* anvil_status_name(anvil_status s) {
  if (s == ANVIL_OK) return "ok";
  if (s < ANVIL_OK || s > ANVIL_ERR_INTERNAL) return "unknown status";
  return anvil::to_string(static_cast<anvil::ErrorCode>(static_cast<int>(s) - 1));
}

anvil_status anvil_device_open(const char* spec, const char* preset, const char* const* settings, size_t num_settings,
                               anvil_device** out) {
  return guarded([&] {
    need(out, "out");
    const std::string s = spec ? spec : "";
    std::string p = preset ? preset : "";
    if (p.empty()) {
      uint32_t used = 0;
      for (uint32_t u : anvil::rt::parse_device_spec(s)) used |= u;
      p = (used & 2) ? "warboy-2pe" : "warboy";
    }
    anvil::hw::HwConfig config = anvil::hw::HwConfig::preset(p);
    if (num_settings && !settings) anvil::fail(anvil::ErrorCode::kInvalidArgument, "settings is NULL");
    for (size_t i = 0; i < num_settings; ++i) config.set(settings[i] ? settings[i] : "(NULL)");
    *out = new anvil_device{anvil::rt::Device::open(s, config)};
  });
}

anvil_status anvil_device_num_units(const anvil_device* device, size_t* out) {
  return guarded([&] { need(out, "out") = need(device, "device").device.units().size(); });
}

anvil_status anvil_device_close(anvil_device* device) {
  // Only the handle goes: a session holds the device too and keeps it open until it is
  // destroyed (anvil_rt.h). Device::close() would end the sessions' device as well.
  return guarded([&] { delete &need(device, "device"); });
}

void anvil_session_options_default(anvil_session_options* o) {
  if (!o) return;
  const anvil::rt::SessionOptions d;
  o->queue_depth = d.queue_depth;
  o->blocking_submit = d.blocking_submit;
  o->timeout_s = d.timeout_s;
  o->device_timeout_s = d.device_timeout_s;
}

anvil_status anvil_session_create(anvil_device* device, const char* path, const anvil_session_options* o,
                                  anvil_session** out) {
  return guarded([&] {
    need(out, "out");
    create_session(device, anvil::isa::Program::load(nonnull(path, "program_path")), o, out);
  });
}

anvil_status anvil_session_create_from_memory(anvil_device* device, const void* image, size_t bytes,
                                              const anvil_session_options* o, anvil_session** out) {
  return guarded([&] {
    need(out, "out");
    if (!image) anvil::fail(anvil::ErrorCode::kInvalidArgument, "image is NULL");
    const std::string data(static_cast<const char*>(image), bytes);
    create_session(device, anvil::isa::Program::parse(data, "program image in memory"), o, out);
  });
}

anvil_status anvil_session_destroy(anvil_session* session) {
  return guarded([&] { delete &need(session, "session"); });
}

anvil_status anvil_session_num_inputs(const anvil_session* s, size_t* out) {
  return guarded([&] { need(out, "out") = need(s, "session").inputs.size(); });
}

anvil_status anvil_session_num_outputs(const anvil_session* s, size_t* out) {
  return guarded([&] { need(out, "out") = need(s, "session").outputs.size(); });
}

anvil_status anvil_session_input_info(const anvil_session* s, size_t index, anvil_tensor_info* out) {
  return guarded([&] {
    const auto& v = need(s, "session").inputs;
    if (index >= v.size()) anvil::fail(anvil::ErrorCode::kInvalidArgument, "input index " + std::to_string(index) + " out of range");
    fill_info(v[index], out);
  });
}

anvil_status anvil_session_output_info(const anvil_session* s, size_t index, anvil_tensor_info* out) {
  return guarded([&] {
    const auto& v = need(s, "session").outputs;
    if (index >= v.size()) anvil::fail(anvil::ErrorCode::kInvalidArgument, "output index " + std::to_string(index) + " out of range");
    fill_info(v[index], out);
  });
}

anvil_status anvil_session_run(anvil_session* s, const anvil_tensor* inputs, size_t num_inputs, void* const* outputs,
                               const size_t* output_bytes, size_t num_outputs) {
  return guarded([&] {
    anvil_session& h = need(s, "session");
    if (num_outputs != h.outputs.size())
      anvil::fail(anvil::ErrorCode::kInvalidArgument, "num_outputs " + std::to_string(num_outputs) + ", the program has " +
                                                          std::to_string(h.outputs.size()));
    if (num_outputs) {
      nonnull(outputs, "outputs");
      nonnull(output_bytes, "output_bytes");
    }
    for (size_t i = 0; i < num_outputs; ++i) {
      if (!outputs[i]) anvil::fail(anvil::ErrorCode::kInvalidArgument, "output '" + h.outputs[i].name + "': NULL buffer");
      if (output_bytes[i] != h.outputs[i].bytes)
        anvil::fail(anvil::ErrorCode::kInvalidArgument, "output '" + h.outputs[i].name + "': " +
                                                            std::to_string(output_bytes[i]) + " bytes, expected " +
                                                            std::to_string(h.outputs[i].bytes));
    }
    const anvil::TensorMap out = h.session.run(to_map(h, inputs, num_inputs));
    for (size_t i = 0; i < num_outputs; ++i) std::memcpy(outputs[i], out.at(h.outputs[i].name).raw(), output_bytes[i]);
  });
}

anvil_status anvil_session_submit(anvil_session* s, const anvil_tensor* inputs, size_t num_inputs, void* context,
                                  anvil_request** out) {
  return guarded([&] {
    need(out, "out");
    anvil_session& h = need(s, "session");
    anvil::rt::Request r = h.session.submit(to_map(h, inputs, num_inputs), context);
    *out = new anvil_request{std::move(r)};
  });
}

anvil_status anvil_session_receive(anvil_session* s, double timeout_s, anvil_request** out) {
  return guarded([&] {
    need(out, "out");
    anvil::rt::Request r = need(s, "session").session.receive(timeout_s);
    *out = new anvil_request{std::move(r)};
  });
}

anvil_status anvil_request_wait(anvil_request* r, double timeout_s, anvil_request_state* state) {
  return guarded([&] {
    need(state, "state") = static_cast<anvil_request_state>(need(r, "request").request.wait(timeout_s));
  });
}

anvil_status anvil_request_context(const anvil_request* r, void** context) {
  return guarded([&] {
    const std::any& c = need(r, "request").request.context();
    need(context, "context") = c.has_value() ? std::any_cast<void*>(c) : nullptr;
  });
}

anvil_status anvil_request_output(const anvil_request* r, const char* name, void* dst, size_t bytes) {
  return guarded([&] {
    const anvil::TensorMap& out = need(r, "request").request.outputs();
    auto it = out.find(nonnull(name, "name"));
    if (it == out.end()) anvil::fail(anvil::ErrorCode::kNotFound, std::string("no output '") + name + "'");
    if (!dst || bytes != it->second.nbytes())
      anvil::fail(anvil::ErrorCode::kInvalidArgument, std::string("output '") + name + "': NULL buffer or " +
                                                          std::to_string(bytes) + " bytes, expected " +
                                                          std::to_string(it->second.nbytes()));
    std::memcpy(dst, it->second.raw(), bytes);
  });
}

anvil_status anvil_request_stats(const anvil_request* r, anvil_run_stats* out) {
  return guarded([&] {
    const anvil::rt::RunStats& s = need(r, "request").request.stats();
    anvil_run_stats& o = need(out, "out");
    o.cycles = s.cycles;
    o.request_cycles = s.request_cycles;
    o.submit_cycle = s.submit_cycle;
    o.start_cycle = s.start_cycle;
    o.end_cycle = s.end_cycle;
    o.pe_mask = s.pe_mask;
    o.latency_us = s.latency_us;
    o.queue_latency_us = s.queue_latency_us;
  });
}

anvil_status anvil_request_release(anvil_request* r) {
  return guarded([&] { delete &need(r, "request"); });
}

}  // extern "C"
