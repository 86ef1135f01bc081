#include "anvil/isa/device.h"

#include <algorithm>
#include <sstream>

namespace anvil::isa {

const std::vector<RegisterDesc>& register_map() {
  static const std::vector<RegisterDesc> map = [] {
    std::vector<RegisterDesc> m;
#define RO RegAccess::kRO
#define RW RegAccess::kRW
#define W1C RegAccess::kW1C
#define ANVIL_REG(NAME, OFF, ACC, RESET, DESC) m.push_back({#NAME, OFF, ACC, RESET, DESC, {}});
#define ANVIL_FIELD(REG, FIELD, LSB, WIDTH, DESC) \
  for (auto& r : m)                                \
    if (std::string(r.name) == #REG) r.fields.push_back({#FIELD, LSB, WIDTH, DESC});
#include "anvil/isa/registers.def"
#undef ANVIL_REG
#undef ANVIL_FIELD
#undef RO
#undef RW
#undef W1C
    std::sort(m.begin(), m.end(), [](const RegisterDesc& a, const RegisterDesc& b) { return a.offset < b.offset; });
    return m;
  }();
  return map;
}

const RegisterDesc* find_register(uint32_t offset) {
  for (const auto& r : register_map())
    if (r.offset == offset) return &r;
  return nullptr;
}

std::string registers_markdown() {
  std::ostringstream os;
  os << "# Register map (BAR0)\n\n"
     << "Generated from `isa/include/anvil/isa/registers.def` by `anvil registers --markdown`; "
     << "a test checks this file is in sync. All registers are 32 bits wide; accesses must be 4-byte "
     << "aligned 32-bit reads or writes inside the BAR (" << kBarBytes << " bytes), anything else gets a TLM "
     << "error response.\n\n| offset | name | access | reset | description |\n|---|---|---|---|---|\n";
  for (const auto& r : register_map()) {
    const char* acc = r.access == RegAccess::kRO ? "RO" : r.access == RegAccess::kRW ? "RW" : "W1C";
    char off[16], reset[16];
    std::snprintf(off, sizeof off, "0x%03X", r.offset);
    std::snprintf(reset, sizeof reset, "0x%08X", r.reset);
    os << "| " << off << " | " << r.name << " | " << acc << " | " << reset << " | " << r.description << " |\n";
    for (const auto& f : r.fields)
      os << "| | `" << r.name << "." << f.name << "` [" << int(f.lsb + f.width - 1) << ":" << int(f.lsb) << "] | | | "
         << f.description << " |\n";
  }
  return os.str();
}

const char* device_error_name(DeviceError e) {
  switch (e) {
    case DeviceError::kOk: return "ok";
    case DeviceError::kBadCommand: return "bad command";
    case DeviceError::kBadProgram: return "bad program";
    case DeviceError::kDmaFault: return "DMA fault";
    case DeviceError::kTimeout: return "PE timeout";
    case DeviceError::kPeMismatch: return "program/PE mismatch";
    case DeviceError::kInternal: return "internal device error";
  }
  return "unknown device error";
}

}  // namespace anvil::isa
