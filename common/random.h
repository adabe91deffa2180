// Seed mixing for Pagoda's reproducible randomness: splitmix64 (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", OOPSLA 2014), the one generator every seeded draw
// derives from — per-sample seeds, the sampler's uniform draws, dummy weights, request ids.
// Golden tests pin its outputs: changing a constant here changes every seeded result.
//
//   uint64_t sample_seed = SplitMix64(request_seed, index + 1);  // a stream per (seed, index)
//   uint64_t next = SplitMix64(state);                           // state's first draw
//   uint64_t hashed = SplitMix64Mix(a ^ b);                      // a 64-bit avalanche mix
#pragma once

#include <cstdint>

namespace pagoda {

/// The golden-ratio increment between consecutive splitmix64 states.
inline constexpr uint64_t kSplitMix64Gamma = 0x9E3779B97F4A7C15ull;

/// splitmix64's output function: a bijection of 64-bit words in which every input bit affects
/// every output bit.
constexpr uint64_t SplitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Draw `i` (1-based) of the splitmix64 generator seeded with `state`: SplitMix64Mix(state +
/// i * gamma). Any draw is computed alone, in O(1); SplitMix64(s) is the first draw, the one a
/// generator seeded with s returns on its first call.
constexpr uint64_t SplitMix64(uint64_t state, uint64_t i = 1) {
  return SplitMix64Mix(state + i * kSplitMix64Gamma);
}

}  // namespace pagoda
