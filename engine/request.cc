#include "engine/request.h"

#include "common/random.h"

namespace pagoda {

uint64_t SampleSeed(uint64_t request_seed, int32_t index) {
  if (index == 0) return request_seed;
  // Draw index + 1 of the splitmix64 stream of the request's seed: distinct, well-mixed seeds.
  return SplitMix64(request_seed, static_cast<uint64_t>(index) + 1);
}

}  // namespace pagoda
