// ShareGptLikeWorkload: a seeded synthetic stand-in for the ShareGPT conversation trace that
// vLLM's paper benchmarks on, for benchmarks that need realistic length distributions but no
// data set (`pagoda bench --dataset-name sharegpt-like` and the engine benchmarks).
//
// Distribution (documented in docs/performance.md): prompt and output lengths are independent
// log-normals, log(len) ~ N(mu, sigma = 1.0), long-tailed like ShareGPT; a draw is rejected and
// drawn again until 4 <= prompt <= max_prompt_len (1024), output >= 1 and prompt + output <=
// max_total_len (2048). mu is set so the realised means come out near 200 prompt and 180 output
// tokens (the truncation pulls the raw log-normal means of 233 and 185 down). Prompt token ids
// are pseudo-random in [3, vocab_size).
//
//   ShareGptLikeWorkload workload({.seed = 1});
//   for (const SyntheticRequest& r : workload.Sample(1000)) { ... r.prompt_len, r.output_len ... }
//   for (const SyntheticLengths& l : workload.SampleLengths(1000)) { ... lengths only ... }
#pragma once

#include <cstdint>
#include <vector>

namespace pagoda {

struct SyntheticRequest {
  std::vector<int32_t> prompt_token_ids;
  int32_t output_len = 0;  // use as max_tokens with ignore_eos
};

struct SyntheticLengths {
  int64_t prompt_len = 0;  // tokens
  int64_t output_len = 0;  // tokens
};

class ShareGptLikeWorkload {
 public:
  struct Options {
    uint64_t seed = 1;
    int64_t vocab_size = 32000;
    int64_t max_prompt_len = 1024;
    int64_t max_total_len = 2048;
    double prompt_mean = 233;  // of the untruncated log-normal
    double output_mean = 185;
    double sigma = 1.0;  // of log(length)
  };

  explicit ShareGptLikeWorkload(const Options& options) : options_(options) {}

  /// `count` requests with pseudo-random token ids, the same for the same options.
  std::vector<SyntheticRequest> Sample(int64_t count) const;
  /// `count` (prompt, output) length pairs, the same for the same options. Requires
  /// max_prompt_len >= 4 and max_total_len >= 5 (else no draw is ever accepted).
  std::vector<SyntheticLengths> SampleLengths(int64_t count) const;

 private:
  const Options options_;
};

}  // namespace pagoda
