#include "tools/bench/sharegpt_like.h"

#include <cmath>
#include <optional>
#include <random>

namespace pagoda {
namespace {

// The length draws and their rejection rule, shared by Sample and SampleLengths. Sample keeps
// drawing token ids from the same generator between draws, as it always has (so the engine
// benchmarks' workloads, and the figures documented for them, stay the same).
class LengthSampler {
 public:
  explicit LengthSampler(const ShareGptLikeWorkload::Options& options)
      : options_(options),
        // mean of a log-normal = exp(mu + sigma^2 / 2)
        prompt_len_(std::log(options.prompt_mean) - options.sigma * options.sigma / 2,
                    options.sigma),
        output_len_(std::log(options.output_mean) - options.sigma * options.sigma / 2,
                    options.sigma) {}

  /// One draw; nullopt when it is rejected.
  std::optional<SyntheticLengths> Draw(std::mt19937_64& rng) {
    const int64_t prompt = std::llround(prompt_len_(rng));
    const int64_t output = std::llround(output_len_(rng));
    if (prompt < 4 || prompt > options_.max_prompt_len || output < 1 ||
        prompt + output > options_.max_total_len) {
      return std::nullopt;
    }
    return SyntheticLengths{.prompt_len = prompt, .output_len = output};
  }

 private:
  const ShareGptLikeWorkload::Options& options_;
  std::lognormal_distribution<double> prompt_len_;
  std::lognormal_distribution<double> output_len_;
};

}  // namespace

std::vector<SyntheticRequest> ShareGptLikeWorkload::Sample(int64_t count) const {
  std::mt19937_64 rng(options_.seed);
  LengthSampler lengths(options_);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(options_.vocab_size - 1));
  std::vector<SyntheticRequest> requests;
  requests.reserve(count);
  while (static_cast<int64_t>(requests.size()) < count) {
    const std::optional<SyntheticLengths> drawn = lengths.Draw(rng);
    if (!drawn.has_value()) continue;
    SyntheticRequest r;
    r.output_len = static_cast<int32_t>(drawn->output_len);
    r.prompt_token_ids.reserve(drawn->prompt_len);
    for (int64_t i = 0; i < drawn->prompt_len; ++i) r.prompt_token_ids.push_back(token(rng));
    requests.push_back(std::move(r));
  }
  return requests;
}

std::vector<SyntheticLengths> ShareGptLikeWorkload::SampleLengths(int64_t count) const {
  std::mt19937_64 rng(options_.seed);
  LengthSampler lengths(options_);
  std::vector<SyntheticLengths> out;
  out.reserve(count);
  while (static_cast<int64_t>(out.size()) < count) {
    if (std::optional<SyntheticLengths> drawn = lengths.Draw(rng)) out.push_back(*drawn);
  }
  return out;
}

}  // namespace pagoda
