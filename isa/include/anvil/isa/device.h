#pragma once
/// The host/device interface: register map (from registers.def), queue entry formats and
/// device error codes. Shared by the hardware model, the firmware stub and the runtime driver.
///
/// Protocol (NVMe-like): the driver places 64-byte submission entries in a ring in host memory and
/// writes SQ_TAIL (the doorbell). The firmware fetches entries over PCIe, executes them, writes a
/// 32-byte completion entry into the completion ring in host memory, advances CQ_TAIL and raises
/// the COMPLETION interrupt (when enabled). All multi-byte fields are little endian.
#include <cstdint>
#include <string>
#include <vector>

namespace anvil::isa {

enum class RegAccess : uint8_t { kRO, kRW, kW1C };

namespace reg {
#define ANVIL_REG(NAME, OFF, ACC, RESET, DESC) constexpr uint32_t NAME = OFF;
#define ANVIL_FIELD(REG, FIELD, LSB, WIDTH, DESC)
#include "anvil/isa/registers.def"
#undef ANVIL_REG
#undef ANVIL_FIELD
}  // namespace reg

namespace field {
/// Field masks and shifts: field::STATUS_READY_SHIFT, field::STATUS_READY_MASK (already shifted).
#define ANVIL_REG(NAME, OFF, ACC, RESET, DESC)
#define ANVIL_FIELD(REG, FIELD, LSB, WIDTH, DESC)                    \
  constexpr uint32_t REG##_##FIELD##_SHIFT = LSB;                      \
  constexpr uint32_t REG##_##FIELD##_MASK = ((1u << WIDTH) - 1u) << LSB;
#include "anvil/isa/registers.def"
#undef ANVIL_REG
#undef ANVIL_FIELD
}  // namespace field

struct RegisterField {
  const char* name;
  uint8_t lsb, width;
  const char* description;
};
struct RegisterDesc {
  const char* name;
  uint32_t offset;
  RegAccess access;
  uint32_t reset;
  const char* description;
  std::vector<RegisterField> fields;
};
/// The whole register map in offset order.
const std::vector<RegisterDesc>& register_map();
/// The register at `offset`, or nullptr when there is none.
const RegisterDesc* find_register(uint32_t offset);
/// The register map as a Markdown document (docs/registers.md).
std::string registers_markdown();
constexpr uint32_t kBarBytes = 0x1000;

/// Device error codes, reported in STATUS.ERROR_CODE and in completion entries.
enum class DeviceError : uint32_t {
  kOk = 0,
  kBadCommand = 1,      ///< unknown opcode or malformed submission entry
  kBadProgram = 2,      ///< bad magic/version/checksum, or the program does not fit this device
  kDmaFault = 3,        ///< a DMA addressed memory outside its region or the device, or failed
  kTimeout = 4,         ///< a PE did not finish (watchdog)
  kPeMismatch = 5,      ///< the program needs more PEs than the command was given
  kInternal = 6,
};
const char* device_error_name(DeviceError e);

enum class CommandOp : uint32_t {
  kNop = 0,
  kRun = 1,  ///< run a program: copy inputs host->DRAM, execute, copy outputs DRAM->host
  kLoad = 2, ///< copy input_bytes from host_io_addr to device DRAM at io_addr (program images)
};

/// A 64-byte submission entry.
struct SubmissionEntry {
  uint32_t opcode;          ///< CommandOp
  uint32_t tag;             ///< echoed in the completion
  uint32_t pe_mask;         ///< PEs to run on (bit i = PE i); two bits = fused pair
  uint32_t reserved;
  uint64_t program_addr;    ///< device DRAM address of the program image (header first)
  uint64_t scratch_addr;    ///< device DRAM address of this request's activation memory
  uint64_t io_addr;         ///< device DRAM address of the request's IO region
  uint64_t host_io_addr;    ///< host address of the request's IO buffer (same layout as the IO region)
  uint32_t input_bytes;     ///< bytes to copy host->device before running (the inputs, from offset 0)
  uint32_t output_offset;   ///< outputs start here in the IO region ...
  uint32_t output_bytes;    ///< ... and are this long; copied device->host after running
  uint32_t reserved2;
};
static_assert(sizeof(SubmissionEntry) == 64, "submission entries are 64 bytes");

/// A 32-byte completion entry.
struct CompletionEntry {
  uint32_t tag;
  uint32_t status;          ///< DeviceError
  uint64_t start_cycle;     ///< device cycle when the command started executing
  uint64_t end_cycle;       ///< device cycle when its outputs were in host memory
  uint32_t error_info;      ///< as ERROR_INFO; for a successful kRun the PE run's cycles (saturated)
  uint32_t phase;           ///< 1 on the first pass through the ring, toggling on each wrap
};
static_assert(sizeof(CompletionEntry) == 32, "completion entries are 32 bytes");

constexpr uint32_t kFirmwareVersion = 0x00010000;  ///< 1.0.0

}  // namespace anvil::isa
