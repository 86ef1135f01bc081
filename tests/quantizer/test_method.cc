#include <gtest/gtest.h>

#include "anvil/quantizer/quantizer.h"

using namespace anvil;
using namespace anvil::quant;

TEST(Method, NamesRoundTrip) {
  const Method all[] = {Method::kMinMaxAsym, Method::kMinMaxSym, Method::kEntropyAsym, Method::kEntropySym,
                        Method::kPercentileAsym, Method::kPercentileSym, Method::kSqnrAsym, Method::kSqnrSym,
                        Method::kMseAsym, Method::kMseSym};
  for (Method m : all) EXPECT_EQ(method_from_name(method_name(m)), m);
  EXPECT_STREQ(method_name(Method::kMinMaxAsym), "MIN_MAX_ASYM");
  EXPECT_STREQ(method_name(Method::kMseSym), "MSE_SYM");
}

TEST(Method, BadNameListsValidNames) {
  try {
    method_from_name("min_max_asym");
    FAIL() << "lower-case name accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("min_max_asym"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("MIN_MAX_ASYM, MIN_MAX_SYM"), std::string::npos);
  }
}
