// The C API test's program and expectations (C cannot build an ISA program): the conv layer of
// program_builder.h, its image, and the expected int8 output computed with common/requant.h.
#include <cstdlib>
#include <cstring>

#include "program_builder.h"

namespace {
const anvil::testing::ConvLayer& layer() {
  static const anvil::testing::ConvLayer g = anvil::testing::ConvLayer::random(41, anvil::testing::ConvLayer{});
  return g;
}
}  // namespace

extern "C" {

/// Copies the program image into a malloc'd buffer (*image, caller frees); returns its size.
size_t anvil_test_conv_program(void** image) {
  const std::string bytes = layer().program().serialize();
  *image = std::malloc(bytes.size());
  std::memcpy(*image, bytes.data(), bytes.size());
  return bytes.size();
}

/// The expected output "y" (1x4x8x8) for input "x" (1x3x8x8).
void anvil_test_conv_expected(const int8_t* x, int8_t* y) {
  const std::vector<int8_t> out = layer().expected(std::vector<int8_t>(x, x + 3 * 8 * 8));
  std::memcpy(y, out.data(), out.size());
}

}  // extern "C"
