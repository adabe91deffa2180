#include "engine/request.h"

namespace pagoda {

uint64_t SampleSeed(uint64_t request_seed, int32_t index) {
  if (index == 0) return request_seed;
  // splitmix64 over (seed, index): distinct, well-mixed streams per sample.
  uint64_t z = request_seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(index) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace pagoda
