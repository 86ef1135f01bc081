#pragma once
/// Activity trace of the chip in simulated time (Chrome / Perfetto "traceEvents" JSON): one
/// complete event per instruction, per DMA descriptor, per PE run, per PCIe transfer and per host
/// command. Internal to the hardware model; Platform::set_trace / trace_json expose it.
/// Recording is off by default and costs one branch per event when off.
#include <cstdint>
#include <string>
#include <systemc>
#include <vector>

#include <nlohmann/json.hpp>

namespace anvil::hw {

/// Trace process ids: the chip-level blocks, then one per PE.
constexpr int kTracePidChip = 0;
inline int trace_pid_pe(int pe) { return 1 + pe; }
/// Thread ids inside a PE (the sequencer, then isa::Unit + 1) and inside the chip.
enum TraceTid : int { kTidSequencer = 0, kTidDma = 1, kTidMac = 2, kTidVector = 3 };
enum TraceChipTid : int { kTidCommandProcessor = 0, kTidPcie = 1 };

struct TraceEvent {
  std::string name;
  int pid = 0, tid = 0;
  sc_core::sc_time start, duration;
  nlohmann::json args;
};

class TraceBuffer {
 public:
  bool enabled() const { return enabled_; }
  void set_enabled(bool on) { enabled_ = on; }
  void clear() { events_.clear(); }
  /// Records an event (callers check enabled() first so that args are only built when tracing).
  void add(TraceEvent e) { events_.push_back(std::move(e)); }
  const std::vector<TraceEvent>& events() const { return events_; }

  /// {"traceEvents": [...], "displayTimeUnit": "ns"}: complete events ("ph": "X") with ts/dur in
  /// microseconds of simulated time since `epoch` (the last power cycle), plus name metadata for
  /// every process and thread. `cycle_ps` converts durations to the "cycles" arg.
  nlohmann::json to_json(const sc_core::sc_time& epoch, int num_pes) const {
    nlohmann::json ev = nlohmann::json::array();
    auto meta = [&](const char* what, int pid, int tid, const std::string& name) {
      ev.push_back({{"ph", "M"}, {"name", what}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}});
    };
    meta("process_name", kTracePidChip, 0, "chip");
    meta("thread_name", kTracePidChip, kTidCommandProcessor, "command processor");
    meta("thread_name", kTracePidChip, kTidPcie, "pcie");
    for (int pe = 0; pe < num_pes; ++pe) {
      const int pid = trace_pid_pe(pe);
      meta("process_name", pid, 0, "pe" + std::to_string(pe));
      meta("thread_name", pid, kTidSequencer, "sequencer");
      meta("thread_name", pid, kTidDma, "dma");
      meta("thread_name", pid, kTidMac, "mac");
      meta("thread_name", pid, kTidVector, "vector");
    }
    for (const TraceEvent& e : events_) {
      const double ts = (e.start - epoch).to_seconds() * 1e6, dur = e.duration.to_seconds() * 1e6;
      nlohmann::json j = {{"name", e.name}, {"ph", "X"}, {"pid", e.pid}, {"tid", e.tid}, {"ts", ts}, {"dur", dur}};
      if (!e.args.is_null()) j["args"] = e.args;
      ev.push_back(std::move(j));
    }
    return {{"traceEvents", std::move(ev)}, {"displayTimeUnit", "ns"}};
  }

 private:
  bool enabled_ = false;
  std::vector<TraceEvent> events_;
};

}  // namespace anvil::hw
