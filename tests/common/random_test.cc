#include "common/random.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace pagoda {
namespace {

TEST(SplitMix64, MatchesTheReferenceGenerator) {
  // Vigna's splitmix64.c seeded with 1234567: its first five next() results.
  const uint64_t expected[] = {6457827717110365317ull, 3203168211198807973ull,
                               9817491932198370423ull, 4593380528125082431ull,
                               16408922859458223821ull};
  uint64_t state = 1234567;
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(SplitMix64(1234567, i + 1), expected[i]) << "draw " << i + 1;
    state += kSplitMix64Gamma;
    EXPECT_EQ(SplitMix64Mix(state), expected[i]) << "stepped draw " << i + 1;
  }
  EXPECT_EQ(SplitMix64(1234567), expected[0]);
}

TEST(SplitMix64, IsUsableAtCompileTime) {
  static_assert(SplitMix64Mix(0) == 0, "the mix fixes zero");
  static_assert(SplitMix64(0, 0) == 0);
  static_assert(SplitMix64(7, 2) == SplitMix64(7 + kSplitMix64Gamma, 1));
}

}  // namespace
}  // namespace pagoda
