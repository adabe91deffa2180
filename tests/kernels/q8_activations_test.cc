#include "kernels/cpu/internal/q8_activations.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace pagoda::kernels::internal {
namespace {

constexpr int64_t kBlock = kQ8BlockElements;

// A block of SmolLM2's activations (a verification step's) where element 6's product with the
// block's multiplier, 27.4999..., rounds up to 27.5 as a float: its quant is 27, not 28.
constexpr float kNearTie[kQ8BlockElements] = {
    0x1.1d78a2p-7f,   -0x1.fd9b34p-2f,  -0x1.124b0ap-5f, -0x1.eb8ca2p-9f,  -0x1.46be82p-8f,
    -0x1.bf1fa4p-12f, 0x1.b96428p-4f,   0x1.7dc658p-6f,  -0x1.6c93e4p-13f, -0x1.a9a094p-9f,
    0x1.27ca1ap-8f,   -0x1.5b6172p-9f,  0x1.cce19ap-8f,  0x1.a5e6b8p-8f,   -0x1.57953cp-7f,
    0x1.d6e9b2p-6f,   -0x1.6f2842p-8f,  0x1.f87278p-9f,  -0x1.d39de6p-6f,  0x1.0cb44p-5f,
    -0x1.6c93e4p-9f,  -0x1.192c06p-10f, 0x1.13272ap-7f,  -0x1.bc41e8p-9f,  0x1.47e402p-8f,
    -0x1.63faacp-6f,  0x1.cc4edap-6f,   0x1.907ap-3f,    -0x1.5ed1fp-10f,  -0x0p+0f,
    -0x1.61f90ep-6f,  -0x1.5b987ap-10f};

// Blocks that reach every branch of the rounding: ordinary values of several magnitudes, exact
// ties after scaling, a product that rounds up to a half as a float, all zeros, signed zeros,
// subnormals (including one whose scale's inverse overflows), an Inf or a NaN among finite
// values, and the largest floats.
std::vector<float> EdgeBlocks() {
  std::mt19937 rng(11);
  std::vector<float> x;
  auto block = [&](auto fill) {
    for (int l = 0; l < kBlock; ++l) x.push_back(fill(l));
  };
  for (float scale : {1e-3f, 1.0f, 7.5f, 1e4f, 3e38f}) {
    std::uniform_real_distribution<float> uniform(-scale, scale);
    for (int i = 0; i < 8; ++i) block([&](int) { return uniform(rng); });
  }
  // max 127: quotients are the values themselves, halves included (ties to even).
  block([](int l) { return l == 0 ? 127.0f : -63.5f + 4.0f * static_cast<float>(l); });
  block([](int l) { return l % 2 == 0 ? 0.5f : (l == 1 ? 127.0f : -2.5f); });
  block([](int l) { return kNearTie[l]; });
  block([](int) { return 0.0f; });
  block([](int l) { return l % 2 == 0 ? -0.0f : 0.0f; });
  const float tiny = std::numeric_limits<float>::denorm_min();
  block([&](int l) { return l == 3 ? 300.0f * tiny : 0.0f; });  // d subnormal, 1 / d Inf
  block([&](int l) { return static_cast<float>(l) * tiny; });
  block([&](int l) { return l == 5 ? std::numeric_limits<float>::infinity() : 1.0f; });
  block([&](int l) { return l == 9 ? std::nanf("") : -2.0f; });
  block([&](int l) { return l % 3 == 0 ? -std::numeric_limits<float>::max() : 1.0f; });
  return x;
}

TEST(QuantizeRowQ8, TheNearTieRoundsTheExactProduct) {
  Q8Block q;
  QuantizeRowQ8(kNearTie, &q, 1);
  EXPECT_EQ(q.qs[6], 27);
  EXPECT_EQ(q.qs[1], -127);
}

TEST(QuantizeRowQ8, MatchesTheDefinition) {
  const std::vector<float> x = EdgeBlocks();
  const int64_t blocks = static_cast<int64_t>(x.size()) / kBlock;
  std::vector<Q8Block> q(blocks);
  std::vector<float> sums(blocks);
  QuantizeRowQ8(x.data(), q.data(), blocks, sums.data());
  for (int64_t b = 0; b < blocks; ++b) {
    SCOPED_TRACE(testing::Message() << "block " << b);
    float amax = 0.0f;
    bool finite = true;
    for (int l = 0; l < kBlock; ++l) {
      finite = finite && std::isfinite(x[b * kBlock + l]);
      amax = std::max(amax, std::abs(x[b * kBlock + l]));
    }
    if (!finite) {
      EXPECT_TRUE(std::isnan(q[b].d));
    } else {
      EXPECT_EQ(q[b].d, amax / 127.0f);
    }
    const float inverse = finite && amax / 127.0f != 0.0f ? 1.0f / (amax / 127.0f) : 0.0f;
    // The exact product (a double holds it) rounded to the nearest integer, ties to even.
    int32_t sum = 0;
    for (int l = 0; l < kBlock; ++l) {
      const double v = static_cast<double>(x[b * kBlock + l]) * inverse;
      const double r = std::isnan(v) ? 0.0 : std::clamp(std::nearbyint(v), -127.0, 127.0);
      EXPECT_EQ(q[b].qs[l], static_cast<int8_t>(r)) << "element " << l;
      sum += static_cast<int32_t>(r);
    }
    EXPECT_EQ(q[b].sum, sum);
    EXPECT_EQ(std::bit_cast<uint32_t>(sums[b]),
              std::bit_cast<uint32_t>(q[b].d * static_cast<float>(sum)));
  }
}

// Every ISA's code gives every field bit for bit (the integer GEMM's results do not depend on
// which ran).
TEST(QuantizeRowQ8, EveryIsaGivesTheSameBlocks) {
  std::vector<float> x = EdgeBlocks();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 4096 * kBlock; ++i) x.push_back(normal(rng));
  const int64_t blocks = static_cast<int64_t>(x.size()) / kBlock;
  std::vector<Q8Block> want(blocks);
  std::vector<float> want_sums(blocks);
  QuantizeRowQ8(x.data(), want.data(), blocks, want_sums.data(), CpuIsa::kScalar);
  for (CpuIsa isa : kAllCpuIsas) {
    if (!CpuSupports(isa)) continue;
    SCOPED_TRACE(CpuIsaName(isa));
    std::vector<Q8Block> got(blocks);
    std::vector<float> got_sums(blocks, std::nanf(""));
    QuantizeRowQ8(x.data(), got.data(), blocks, got_sums.data(), isa);
    for (int64_t b = 0; b < blocks; ++b) {
      ASSERT_EQ(std::memcmp(&got[b], &want[b], sizeof(Q8Block)), 0) << "block " << b;
      ASSERT_EQ(std::bit_cast<uint32_t>(got_sums[b]), std::bit_cast<uint32_t>(want_sums[b]))
          << "block " << b;
    }
    // Without the sums, and from any first block: the same blocks.
    std::vector<Q8Block> tail(blocks - 3);
    QuantizeRowQ8(x.data() + 3 * kBlock, tail.data(), blocks - 3, nullptr, isa);
    for (int64_t b = 0; b + 3 < blocks; ++b) {
      ASSERT_EQ(std::memcmp(&tail[b], &want[b + 3], sizeof(Q8Block)), 0) << "block " << b + 3;
    }
  }
}

}  // namespace
}  // namespace pagoda::kernels::internal
