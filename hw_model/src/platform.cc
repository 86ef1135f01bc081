#include "anvil/hw/platform.h"

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>

#include "anvil/common/status.h"
#include "warboy_chip.h"

namespace anvil::hw {

const char* bar_response_name(BarResponse r) {
  switch (r) {
    case BarResponse::kOk: return "ok";
    case BarResponse::kAddressError: return "address error";
    case BarResponse::kBurstError: return "burst error";
    case BarResponse::kByteEnableError: return "byte enable error";
    case BarResponse::kCommandError: return "command error";
    case BarResponse::kGenericError: return "generic error";
  }
  return "?";
}

namespace {
/// Simulated time per sc_start step: host requests are served between steps.
const sc_core::sc_time kStep(10, sc_core::SC_US);

BarResponse to_bar_response(tlm::tlm_response_status s) {
  switch (s) {
    case tlm::TLM_OK_RESPONSE: return BarResponse::kOk;
    case tlm::TLM_ADDRESS_ERROR_RESPONSE: return BarResponse::kAddressError;
    case tlm::TLM_BURST_ERROR_RESPONSE: return BarResponse::kBurstError;
    case tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE: return BarResponse::kByteEnableError;
    case tlm::TLM_COMMAND_ERROR_RESPONSE: return BarResponse::kCommandError;
    default: return BarResponse::kGenericError;
  }
}

/// The host's port on the PCIe endpoint's BAR.
struct HostBridge : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<HostBridge> socket;
  explicit HostBridge(sc_core::sc_module_name n) : sc_module(n), socket("socket") {}
};
}  // namespace

struct Platform::Impl {
  std::mutex mutex;
  std::condition_variable work_cv, idle_cv;
  std::deque<std::function<void()>> tasks;
  bool idle = false;
  bool exiting = false, parked = false;  ///< process exit: the simulation thread stops for good
  std::string broken;  ///< set when SystemC failed; every later call throws it
  std::mutex irq_mutex;
  std::function<void(uint32_t)> irq;
  // Owned by the simulation thread.
  WarboyChip* chip = nullptr;
  HostBridge* bridge = nullptr;
  HwConfig config;  ///< guarded by mutex
  uint64_t generation = 0;
  std::thread thread;

  void loop(std::promise<void>& elaborated) {
    try {
      setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
      sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
      sc_core::sc_report_handler::set_actions(sc_core::SC_ID_NO_SC_START_ACTIVITY_, sc_core::SC_DO_NOTHING);
      chip = new WarboyChip("warboy");
      bridge = new HostBridge("host_bridge");
      bridge->socket.bind(chip->pcie.bar);
      chip->pcie.msi = [this](uint32_t bits) {
        std::lock_guard<std::mutex> lock(irq_mutex);
        if (irq) irq(bits);
      };
      sc_core::sc_start(sc_core::SC_ZERO_TIME);  // end of elaboration (sockets bound), processes initialised
      chip->power_on(config);
    } catch (const std::exception& e) {
      broken = std::string("SystemC elaboration failed: ") + e.what();
    }
    elaborated.set_value();
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
          if (exiting) {
            // exit() is running: never touch SystemC again while its statics are destroyed.
            parked = true;
            idle_cv.notify_all();
            for (;;) work_cv.wait(lock);
          }
          if (!tasks.empty()) {
            task = std::move(tasks.front());
            tasks.pop_front();
            break;
          }
          if (broken.empty() && sc_core::sc_pending_activity()) break;
          idle = true;
          idle_cv.notify_all();
          work_cv.wait(lock);
        }
      }
      if (task) {
        task();
        continue;
      }
      try {
        // Up to the next event (processing it), at most one step, so host requests are served.
        const sc_core::sc_time next = sc_core::sc_pending_activity_at_current_time()
                                          ? sc_core::SC_ZERO_TIME
                                          : std::min(sc_core::sc_time_to_pending_activity(), kStep);
        sc_core::sc_start(next, sc_core::SC_RUN_TO_TIME);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        broken = std::string("simulation failed: ") + e.what();
      }
    }
  }

  /// Runs f on the simulation thread between steps and returns its result (or rethrows).
  template <typename F>
  auto call(F f) -> decltype(f()) {
    using R = decltype(f());
    auto promise = std::make_shared<std::promise<R>>();
    std::future<R> result = promise->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!broken.empty()) fail(ErrorCode::kInternal, "anvil platform: " + broken);
      tasks.push_back([promise, f]() mutable {
        try {
          if constexpr (std::is_void_v<R>) {
            f();
            promise->set_value();
          } else {
            promise->set_value(f());
          }
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
      });
      idle = false;
    }
    work_cv.notify_one();
    return result.get();
  }
};

Platform& Platform::instance() {
  static Platform* platform = new Platform();  // never destroyed: SystemC has no orderly teardown
  return *platform;
}

Platform::Platform() : impl_(new Impl) {
  std::promise<void> elaborated;
  impl_->thread = std::thread([this, &elaborated] { impl_->loop(elaborated); });
  impl_->thread.detach();
  // At exit, park the simulation thread between steps before static destructors run (SystemC's
  // kernel among them), so a device still simulating cannot crash the exiting process.
  static Impl* exiting_impl = impl_;
  std::atexit([] {
    std::unique_lock<std::mutex> lock(exiting_impl->mutex);
    exiting_impl->exiting = true;
    exiting_impl->work_cv.notify_all();
    exiting_impl->idle_cv.wait(lock, [] { return exiting_impl->parked; });
  });
  elaborated.get_future().wait();
  wait_idle();
}

Platform::~Platform() = default;

void Platform::reset(const HwConfig& config) {
  config.validate();
  impl_->call([this, config] {
    impl_->chip->power_on(config);
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->config = config;
    impl_->generation++;
  });
  wait_idle();
}

uint64_t Platform::generation() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->generation;
}

HwConfig Platform::config() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->config;
}

BarResponse Platform::bar_access(bool write, uint64_t offset, void* data, unsigned length) {
  return impl_->call([this, write, offset, data, length] {
    tlm::tlm_generic_payload gp;
    gp.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    gp.set_address(offset);
    gp.set_data_ptr(static_cast<unsigned char*>(data));
    gp.set_data_length(length);
    gp.set_streaming_width(length);
    gp.set_byte_enable_ptr(nullptr);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    impl_->bridge->socket->b_transport(gp, delay);
    return to_bar_response(gp.get_response_status());
  });
}

namespace {
std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%03X", v);
  return b;
}
}  // namespace

uint32_t Platform::read32(uint32_t offset) {
  uint32_t v = 0;
  const BarResponse r = bar_access(false, offset, &v, 4);
  if (r != BarResponse::kOk)
    fail(ErrorCode::kDeviceError, "register read at BAR0+" + hex(offset) + ": " + bar_response_name(r));
  return v;
}

void Platform::write32(uint32_t offset, uint32_t value) {
  const BarResponse r = bar_access(true, offset, &value, 4);
  if (r != BarResponse::kOk)
    fail(ErrorCode::kDeviceError, "register write at BAR0+" + hex(offset) + ": " + bar_response_name(r));
}

HostBuffer Platform::host_alloc(uint64_t bytes) {
  if (bytes == 0) fail(ErrorCode::kInvalidArgument, "host_alloc: 0 bytes");
  // HostMemory is thread-safe; allocation needs no simulation step.
  const HostMemory::Buffer b = impl_->chip->host_memory.allocate(bytes);
  return HostBuffer{b.bus_addr, b.data, b.bytes};
}

HostBuffer Platform::host_attach(void* data, uint64_t bytes) {
  if (bytes == 0 || data == nullptr) fail(ErrorCode::kInvalidArgument, "host_attach: no memory (0 bytes or null)");
  const HostMemory::Buffer b = impl_->chip->host_memory.attach(static_cast<uint8_t*>(data), bytes);
  return HostBuffer{b.bus_addr, b.data, b.bytes};
}

void Platform::host_free(uint64_t bus_addr) { impl_->chip->host_memory.release(bus_addr); }

void Platform::set_interrupt_handler(std::function<void(uint32_t)> handler) {
  std::lock_guard<std::mutex> lock(impl_->irq_mutex);
  impl_->irq = std::move(handler);
}

bool Platform::idle() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->idle;
}

void Platform::wait_idle() {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->idle_cv.wait(lock, [this] { return impl_->idle; });
}

nlohmann::json Platform::counters() {
  return impl_->call([this] { return impl_->chip->counters(); });
}

void Platform::set_trace(bool enabled) {
  impl_->call([this, enabled] { impl_->chip->ctx.trace.set_enabled(enabled); });
}

nlohmann::json Platform::trace_json() {
  return impl_->call([this] {
    const ChipContext& ctx = impl_->chip->ctx;
    return ctx.trace.to_json(ctx.epoch, static_cast<int>(ctx.config.num_pes));
  });
}

void Platform::clear_trace() {
  impl_->call([this] { impl_->chip->ctx.trace.clear(); });
}

void Platform::debug_dram_write(uint64_t addr, const void* src, uint64_t n) {
  impl_->call([this, addr, src, n] {
    if (!impl_->chip->dram.write(addr, src, n))
      fail(ErrorCode::kInvalidArgument, "debug_dram_write: [" + std::to_string(addr) + ", +" + std::to_string(n) +
                                            ") is outside device DRAM");
  });
}

void Platform::debug_dram_read(uint64_t addr, void* dst, uint64_t n) {
  impl_->call([this, addr, dst, n] {
    if (!impl_->chip->dram.read(addr, dst, n))
      fail(ErrorCode::kInvalidArgument, "debug_dram_read: [" + std::to_string(addr) + ", +" + std::to_string(n) +
                                            ") is outside device DRAM");
  });
}

}  // namespace anvil::hw
