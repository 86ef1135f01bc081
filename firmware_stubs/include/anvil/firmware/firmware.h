#pragma once
/// The device firmware: the command loop of the command processor.
///
///   boot: FW_VERSION = isa::kFirmwareVersion, STATUS.READY = 1.
///   loop: finish every PE run that ended (outputs to the host, completion); then, while
///         SQ_HEAD != SQ_TAIL and the next entry's PEs are free: fetch the 64-byte SubmissionEntry
///         over PCIe and execute it; a completion is a CompletionEntry posted to the ring, CQ_TAIL
///         advanced and INT_STATUS.COMPLETION raised (MSI when enabled). Then sleep until a
///         doorbell or the end of a PE run.
///   kLoad: copy input_bytes host -> DRAM (program images and other driver data); completes at once.
///   kRun:  validate the program image in DRAM (isa::Program::parse: magic, versions, sizes, CRC;
///          cached per image until a kLoad overwrites it), check pe_mask against the program's
///          num_pes, copy inputs host -> IO region, load the instructions into the sequencer's
///          instruction memory and start the PE(s). Runs on different PEs proceed concurrently;
///          an entry whose PEs are busy waits at the head of the queue (entries are started in
///          order). When the run ends: outputs IO region -> host, completion.
/// A successful kRun reports the PE run's cycles in its completion's error_info (saturated at
/// 2^32 - 1), so the host gets per-request PE cycles even with several requests in flight.
/// A failing command latches STATUS.ERROR / ERROR_CODE / ERROR_INFO, raises INT_STATUS.ERROR and
/// posts a completion with the error; later commands still run (the latch stays until reset).
/// A completion ring the host made invalid (CQ_SIZE not a power of two in [2, 4096], or CQ_TAIL
/// outside it), even while runs are in flight, latches kBadCommand with ERROR_INFO = CQ_SIZE and
/// the completion is dropped: there is nowhere to post it.
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "anvil/firmware/hal.h"

namespace anvil::fw {

class Firmware {
 public:
  explicit Firmware(Hal& hal) : hal_(hal) {}
  /// Boots and serves the queue forever; leaves only by an exception from the HAL (a reset).
  [[noreturn]] void run();
  void boot();
  /// Executes every submission entry the host has posted.
  void serve_pending();

 private:
  /// The parts of a validated program image the firmware needs per request.
  struct ProgramInfo {
    uint64_t image_bytes = 0;
    uint32_t num_pes = 1;
    uint64_t instructions_offset = 0;
    uint32_t num_instructions = 0;
    uint64_t constants_offset = 0, constants_bytes = 0;
    uint64_t scratch_bytes = 0, io_bytes = 0, sram_bytes = 0;
  };
  /// A run started on the PEs of its entry's pe_mask, waiting for them to finish.
  struct ActiveRun {
    isa::SubmissionEntry entry;
    isa::CompletionEntry completion;
  };
  /// Executes a fetched entry; true when it completed (c filled in), false when a run started.
  bool execute(const isa::SubmissionEntry& e);
  /// Validates the entry and its program, copies the inputs and starts the PEs.
  void start_program(const isa::SubmissionEntry& e);
  /// Finishes every run that ended; true when there was one.
  bool finish_runs();
  /// Latches an error completion's code, stamps the end cycle and posts it.
  void complete(isa::CompletionEntry c);
  uint32_t busy_pes() const;
  const ProgramInfo& validate(uint64_t program_addr);
  /// Writes c at ring slot tail (< cq_size, both checked by the caller) and advances CQ_TAIL.
  void post_completion(const isa::CompletionEntry& c, uint32_t cq_size, uint32_t tail);
  void latch_error(isa::DeviceError code, uint32_t info);
  void raise(uint32_t int_bits);
  uint64_t reg64(uint32_t lo_offset);

  Hal& hal_;
  std::map<uint64_t, ProgramInfo> programs_;  ///< validated images by DRAM address
  std::map<uint32_t, ActiveRun> active_;       ///< runs in progress by pe_mask
  /// The entry at SQ_HEAD, fetched but not started (its PEs were busy): not fetched again.
  std::optional<std::pair<uint32_t, isa::SubmissionEntry>> fetched_;
  uint32_t cq_phase_ = 1;
};

}  // namespace anvil::fw
