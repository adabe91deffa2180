#include "benchmarks/sharegpt_like.h"

#include <cmath>
#include <random>

namespace pagoda {

std::vector<SyntheticRequest> ShareGptLikeWorkload::Sample(int64_t count) const {
  std::mt19937_64 rng(options_.seed);
  const double s = options_.sigma;
  // mean of a log-normal = exp(mu + sigma^2 / 2)
  std::lognormal_distribution<double> prompt_len(std::log(options_.prompt_mean) - s * s / 2, s);
  std::lognormal_distribution<double> output_len(std::log(options_.output_mean) - s * s / 2, s);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(options_.vocab_size - 1));
  std::vector<SyntheticRequest> requests;
  requests.reserve(count);
  while (static_cast<int64_t>(requests.size()) < count) {
    const int64_t prompt = std::llround(prompt_len(rng));
    const int64_t output = std::llround(output_len(rng));
    if (prompt < 4 || prompt > options_.max_prompt_len || output < 1 ||
        prompt + output > options_.max_total_len) {
      continue;
    }
    SyntheticRequest r;
    r.output_len = static_cast<int32_t>(output);
    r.prompt_token_ids.reserve(prompt);
    for (int64_t i = 0; i < prompt; ++i) r.prompt_token_ids.push_back(token(rng));
    requests.push_back(std::move(r));
  }
  return requests;
}

}  // namespace pagoda
