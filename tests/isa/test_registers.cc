#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "anvil/common/tensor_io.h"
#include "anvil/isa/device.h"

using namespace anvil::isa;

TEST(Registers, OffsetsAreUniqueAlignedAndInsideTheBar) {
  std::set<uint32_t> seen;
  for (const auto& r : register_map()) {
    EXPECT_TRUE(seen.insert(r.offset).second) << r.name;
    EXPECT_EQ(r.offset % 4, 0u) << r.name;
    EXPECT_LT(r.offset, kBarBytes) << r.name;
  }
  EXPECT_EQ(find_register(reg::SQ_TAIL)->name, std::string("SQ_TAIL"));
  EXPECT_EQ(find_register(0x0FC), nullptr);
}

TEST(Registers, FieldsFitTheirRegister) {
  for (const auto& r : register_map())
    for (const auto& f : r.fields) EXPECT_LE(f.lsb + f.width, 32) << r.name << "." << f.name;
  EXPECT_EQ(field::STATUS_ERROR_CODE_MASK, 0xFF00u);
}

TEST(Registers, DocsAreInSyncWithTheTable) {
  const std::string doc = std::string(ANVIL_SOURCE_DIR) + "/docs/registers.md";
  ASSERT_TRUE(std::filesystem::exists(doc)) << "regenerate with: anvil registers --markdown > docs/registers.md";
  EXPECT_EQ(anvil::read_file(doc), registers_markdown())
      << "docs/registers.md is stale; regenerate with: anvil registers --markdown > docs/registers.md";
}
