#pragma once
/// The device firmware: the command loop of the command processor.
///
///   boot: FW_VERSION = isa::kFirmwareVersion, STATUS.READY = 1.
///   loop: while SQ_HEAD != SQ_TAIL: fetch the 64-byte SubmissionEntry over PCIe, execute it,
///         post a CompletionEntry, advance CQ_TAIL, raise INT_STATUS.COMPLETION (MSI when enabled).
///   kLoad: copy input_bytes host -> DRAM (program images and other driver data).
///   kRun:  validate the program image in DRAM (isa::Program::parse: magic, versions, sizes, CRC;
///          cached per image until a kLoad overwrites it), check pe_mask against the program's
///          num_pes, copy inputs host -> IO region, load the instructions into the sequencer's
///          instruction memory, run, copy outputs IO region -> host.
/// A successful kRun reports the PE run's cycles in its completion's error_info (saturated at
/// 2^32 - 1), so the host gets per-request PE cycles even with several requests in flight.
/// A failing command latches STATUS.ERROR / ERROR_CODE / ERROR_INFO, raises INT_STATUS.ERROR and
/// posts a completion with the error; later commands still run (the latch stays until reset).
#include <cstdint>
#include <map>
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
  void execute(const isa::SubmissionEntry& e, isa::CompletionEntry& c);
  /// Returns the PE run's cycles.
  uint64_t run_program(const isa::SubmissionEntry& e);
  const ProgramInfo& validate(uint64_t program_addr);
  void post_completion(const isa::CompletionEntry& c);
  void latch_error(isa::DeviceError code, uint32_t info);
  void raise(uint32_t int_bits);
  uint64_t reg64(uint32_t lo_offset);

  Hal& hal_;
  std::map<uint64_t, ProgramInfo> programs_;  ///< validated images by DRAM address
  uint32_t cq_phase_ = 1;
};

}  // namespace anvil::fw
