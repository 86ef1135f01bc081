#include "anvil/firmware/firmware.h"

#include <algorithm>
#include <bitset>
#include <cstring>
#include <string>

#include "anvil/common/status.h"
#include "anvil/isa/program.h"

namespace anvil::fw {

using isa::DeviceError;
namespace reg = isa::reg;
namespace field = isa::field;

namespace {
/// Program header fields the firmware reads before it knows the image size (program.h layout).
struct ImageHeader {
  uint32_t magic;
  uint16_t format_version, isa_version;
  uint8_t num_pes, reserved0[3];
  uint32_t batch;
  uint64_t scratch_bytes, io_bytes, sram_bytes;
  uint32_t num_instructions, tensors_bytes, constants_bytes, metadata_bytes, crc, reserved1;
};
static_assert(sizeof(ImageHeader) == isa::kProgramHeaderBytes, "program header layout");

bool queue_size_valid(uint32_t n) { return n >= 2 && n <= 4096 && (n & (n - 1)) == 0; }
bool in_range(uint64_t addr, uint64_t n, uint64_t limit) { return addr <= limit && n <= limit - addr; }
}  // namespace

void Firmware::run() {
  boot();
  for (;;) {
    serve_pending();
    hal_.wait_event();
  }
}

void Firmware::boot() {
  programs_.clear();
  active_.clear();
  fetched_.reset();
  cq_phase_ = 1;
  hal_.reg_write(reg::NUM_PES, hal_.num_pes());
  hal_.reg_write(reg::FW_VERSION, isa::kFirmwareVersion);
  hal_.reg_write(reg::STATUS, field::STATUS_READY_MASK);
}

uint64_t Firmware::reg64(uint32_t lo) {
  return static_cast<uint64_t>(hal_.reg_read(lo)) | static_cast<uint64_t>(hal_.reg_read(lo + 4)) << 32;
}

void Firmware::raise(uint32_t bits) {
  hal_.reg_write(reg::INT_STATUS, hal_.reg_read(reg::INT_STATUS) | bits);
  const uint32_t enabled = bits & hal_.reg_read(reg::INT_ENABLE);
  if (enabled) hal_.send_msi(enabled);
}

void Firmware::latch_error(DeviceError code, uint32_t info) {
  uint32_t status = hal_.reg_read(reg::STATUS);
  status = (status & ~field::STATUS_ERROR_CODE_MASK) | field::STATUS_ERROR_MASK |
           ((static_cast<uint32_t>(code) << field::STATUS_ERROR_CODE_SHIFT) & field::STATUS_ERROR_CODE_MASK);
  hal_.reg_write(reg::STATUS, status);
  hal_.reg_write(reg::ERROR_INFO, info);
  raise(field::INT_STATUS_ERROR_MASK);
}

uint32_t Firmware::busy_pes() const {
  uint32_t mask = 0;
  for (const auto& [pes, run] : active_) mask |= pes;
  return mask;
}

void Firmware::complete(isa::CompletionEntry c) {
  if (c.status != static_cast<uint32_t>(DeviceError::kOk)) latch_error(static_cast<DeviceError>(c.status), c.error_info);
  // Wait for room in the completion ring (the host consumes entries and writes CQ_HEAD). The host
  // may rewrite CQ_SIZE / CQ_TAIL at any time, a run in flight or not: the ring is checked on every
  // pass, and without a valid one the completion is dropped with the error latched (as in serve_pending).
  for (;;) {
    const uint32_t cq_size = hal_.reg_read(reg::CQ_SIZE), tail = hal_.reg_read(reg::CQ_TAIL);
    if (!queue_size_valid(cq_size) || tail >= cq_size) {
      latch_error(DeviceError::kBadCommand, cq_size);
      return;
    }
    if ((tail + 1) % cq_size != hal_.reg_read(reg::CQ_HEAD) % cq_size) {
      c.end_cycle = hal_.cycle();
      post_completion(c, cq_size, tail);
      return;
    }
    hal_.wait_event();
  }
}

bool Firmware::finish_runs() {
  bool any = false;
  for (auto it = active_.begin(); it != active_.end();) {
    PeResult r;
    if (!hal_.pes_finished(it->first, &r)) {
      ++it;
      continue;
    }
    const isa::SubmissionEntry e = it->second.entry;
    isa::CompletionEntry c = it->second.completion;
    it = active_.erase(it);
    any = true;
    try {
      if (r.error != DeviceError::kOk) throw HalFault{r.error, r.info};
      hal_.dram_to_host(e.io_addr + e.output_offset, e.host_io_addr + e.output_offset, e.output_bytes);
      c.error_info = static_cast<uint32_t>(std::min<uint64_t>(r.cycles, UINT32_MAX));
    } catch (const HalFault& f) {
      c.status = static_cast<uint32_t>(f.code);
      c.error_info = f.info;
    }
    complete(c);
  }
  return any;
}

void Firmware::serve_pending() {
  for (;;) {
    hal_.reg_write(reg::STATUS, hal_.reg_read(reg::STATUS) | field::STATUS_BUSY_MASK);
    bool progress = finish_runs();
    const uint32_t sq_size = hal_.reg_read(reg::SQ_SIZE), cq_size = hal_.reg_read(reg::CQ_SIZE);
    const uint32_t head = hal_.reg_read(reg::SQ_HEAD), tail = hal_.reg_read(reg::SQ_TAIL);
    if (head != tail && (!queue_size_valid(sq_size) || !queue_size_valid(cq_size) || tail >= sq_size)) {
      // Without a valid ring there is nowhere to post a completion: latch the error and drop the doorbell.
      latch_error(DeviceError::kBadCommand, tail);
      hal_.reg_write(reg::SQ_HEAD, tail);
    } else if (head != tail) {
      const uint32_t next = (head + 1) % sq_size;
      isa::CompletionEntry c{};
      if (!fetched_ || fetched_->first != head) {
        isa::SubmissionEntry e{};
        try {
          hal_.host_read(reg64(reg::SQ_BASE_LO) + static_cast<uint64_t>(head) * sizeof e, &e, sizeof e);
        } catch (const HalFault& f) {
          hal_.reg_write(reg::SQ_HEAD, next);
          c.status = static_cast<uint32_t>(f.code);
          c.error_info = f.info;
          complete(c);
          continue;
        }
        fetched_ = std::make_pair(head, e);
      }
      const isa::SubmissionEntry e = fetched_->second;
      // A run waits at the head of the queue until its PEs are free (entries start in order).
      if (static_cast<isa::CommandOp>(e.opcode) == isa::CommandOp::kRun && (e.pe_mask & busy_pes()) != 0) {
        if (!progress) break;
        continue;
      }
      fetched_.reset();
      hal_.reg_write(reg::SQ_HEAD, next);
      c.tag = e.tag;
      c.start_cycle = hal_.cycle();
      try {
        if (execute(e)) complete(c);
        else active_[e.pe_mask] = ActiveRun{e, c};
      } catch (const HalFault& f) {
        c.status = static_cast<uint32_t>(f.code);
        c.error_info = f.info;
        complete(c);
      }
      progress = true;
    }
    if (!progress) break;
  }
  if (active_.empty()) hal_.reg_write(reg::STATUS, hal_.reg_read(reg::STATUS) & ~field::STATUS_BUSY_MASK);
}

void Firmware::post_completion(const isa::CompletionEntry& entry, uint32_t cq_size, uint32_t tail) {
  isa::CompletionEntry c = entry;
  c.phase = cq_phase_;
  try {
    hal_.host_write(reg64(reg::CQ_BASE_LO) + static_cast<uint64_t>(tail) * sizeof c, &c, sizeof c);
  } catch (const HalFault& f) {
    latch_error(f.code, f.info);  // the host unmapped its completion ring: nothing else to tell it
    return;
  }
  const uint32_t next = (tail + 1) % cq_size;
  if (next == 0) cq_phase_ ^= 1;
  hal_.reg_write(reg::CQ_TAIL, next);
  raise(field::INT_STATUS_COMPLETION_MASK);
}

bool Firmware::execute(const isa::SubmissionEntry& e) {
  switch (static_cast<isa::CommandOp>(e.opcode)) {
    case isa::CommandOp::kNop: return true;
    case isa::CommandOp::kLoad:
      if (!in_range(e.io_addr, e.input_bytes, hal_.dram_bytes()))
        throw HalFault{DeviceError::kBadCommand, static_cast<uint32_t>(e.io_addr)};
      // Images overwritten by this load must be validated again.
      for (auto it = programs_.begin(); it != programs_.end();)
        it = (it->first < e.io_addr + e.input_bytes && e.io_addr < it->first + it->second.image_bytes)
                 ? programs_.erase(it) : std::next(it);
      hal_.host_to_dram(e.host_io_addr, e.io_addr, e.input_bytes);
      return true;
    case isa::CommandOp::kRun: start_program(e); return false;
  }
  throw HalFault{DeviceError::kBadCommand, e.opcode};
}

const Firmware::ProgramInfo& Firmware::validate(uint64_t addr) {
  auto it = programs_.find(addr);
  if (it != programs_.end()) return it->second;
  const HalFault bad{DeviceError::kBadProgram, static_cast<uint32_t>(addr)};
  if (!in_range(addr, sizeof(ImageHeader), hal_.dram_bytes())) throw bad;
  ImageHeader h;
  hal_.dram_read(addr, &h, sizeof h);
  if (h.magic != isa::kProgramMagic) throw bad;
  const uint64_t total = sizeof h + static_cast<uint64_t>(h.num_instructions) * sizeof(isa::Instruction) +
                         h.tensors_bytes + h.constants_bytes + h.metadata_bytes;
  if (!in_range(addr, total, hal_.dram_bytes())) throw bad;
  std::string image(total, '\0');
  hal_.dram_read(addr, image.data(), total);
  isa::Program p;
  try {
    p = isa::Program::parse(image, "program at DRAM " + std::to_string(addr));
  } catch (const Error&) {
    throw bad;
  }
  ProgramInfo info;
  info.image_bytes = total;
  info.num_pes = p.num_pes;
  info.instructions_offset = sizeof h;
  info.num_instructions = h.num_instructions;
  info.constants_offset = sizeof h + static_cast<uint64_t>(h.num_instructions) * sizeof(isa::Instruction) + h.tensors_bytes;
  info.constants_bytes = h.constants_bytes;
  info.scratch_bytes = p.scratch_bytes;
  info.io_bytes = p.io_bytes;
  info.sram_bytes = p.sram_bytes;
  return programs_[addr] = info;
}

void Firmware::start_program(const isa::SubmissionEntry& e) {
  const ProgramInfo& p = validate(e.program_addr);
  const uint32_t bad_addr = static_cast<uint32_t>(e.program_addr);
  // PEs: one bit, or both bits for a fused pair; the program's num_pes must match.
  const uint32_t pes = static_cast<uint32_t>(std::bitset<32>(e.pe_mask).count());
  if (e.pe_mask == 0 || (e.pe_mask >> hal_.num_pes()) != 0 || pes != p.num_pes)
    throw HalFault{DeviceError::kPeMismatch, e.pe_mask};
  if (p.sram_bytes > hal_.sram_bytes_per_pe() * pes) throw HalFault{DeviceError::kBadProgram, bad_addr};
  if (static_cast<uint64_t>(p.num_instructions) * sizeof(isa::Instruction) > hal_.instr_mem_bytes())
    throw HalFault{DeviceError::kBadProgram, bad_addr};
  const uint64_t dram = hal_.dram_bytes();
  if (!in_range(e.scratch_addr, p.scratch_bytes, dram) || !in_range(e.io_addr, p.io_bytes, dram) ||
      e.input_bytes > p.io_bytes || !in_range(e.output_offset, e.output_bytes, p.io_bytes))
    throw HalFault{DeviceError::kBadCommand, e.tag};

  hal_.host_to_dram(e.host_io_addr, e.io_addr, e.input_bytes);
  std::vector<isa::Instruction> code(p.num_instructions);
  hal_.dram_read(e.program_addr + p.instructions_offset, code.data(), code.size() * sizeof(isa::Instruction));
  PeRun run;
  run.pe_mask = e.pe_mask;
  run.instructions = code.data();
  run.count = code.size();
  run.regions[static_cast<int>(isa::Region::kConst)] = {e.program_addr + p.constants_offset, p.constants_bytes};
  run.regions[static_cast<int>(isa::Region::kScratch)] = {e.scratch_addr, p.scratch_bytes};
  run.regions[static_cast<int>(isa::Region::kIo)] = {e.io_addr, p.io_bytes};
  run.fault_mode = hal_.reg_read(reg::FAULT_INJECT);
  run.fault_arg = hal_.reg_read(reg::FAULT_ARG);
  const PeResult r = hal_.start_pes(run);
  if (r.error != DeviceError::kOk) throw HalFault{r.error, r.info};
}

}  // namespace anvil::fw
