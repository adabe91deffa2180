#include "common/check.h"

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

TEST(Check, PassingCheckDoesNotBuildItsMessage) {
  int evaluated = 0;
  auto count = [&evaluated]() { return ++evaluated; };
  PAGODA_CHECK(1 + 1 == 2) << "never built " << count();
  EXPECT_EQ(evaluated, 0);
}

TEST(Check, WorksAsOneStatementUnderIfElse) {
  bool took_else = false;
  if (false)
    PAGODA_CHECK(false) << "not reached";
  else
    took_else = true;
  EXPECT_TRUE(took_else);
}

TEST(CheckDeathTest, FailingCheckNamesFileLineConditionAndMessage) {
  const int block = 7;
  EXPECT_DEATH(PAGODA_CHECK(block < 4) << "block " << block << " is out of range",
               "check_test\\.cc:[0-9]+: check failed: block < 4: block 7 is out of range");
}

TEST(CheckDeathTest, FailingCheckWithoutMessageNamesTheCondition) {
  EXPECT_DEATH(PAGODA_CHECK(std::string("a").empty()),
               "check failed: std::string\\(\"a\"\\)\\.empty\\(\\)");
}

TEST(CheckDeathTest, StreamsAStatus) {
  const absl::Status status = absl::NotFoundError("no such sequence");
  EXPECT_DEATH(PAGODA_CHECK(status.ok()) << "fork failed: " << status,
               "check failed: status\\.ok\\(\\): fork failed: NOT_FOUND: no such sequence");
}

}  // namespace
}  // namespace pagoda
