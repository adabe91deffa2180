// DeviceSampler: the Sampler's policy over logits that stay on the CUDA device. Only the token
// ids (4 bytes a row) and each row's maxima come back to the host, instead of the whole
// [rows, vocab] logits: at Llama 3's 128256 tokens and 256 rows that copy is 131 MB a step, and
// the host's passes over it would take longer than the forward pass.
//
// It takes the rows whose sampling needs only the vocabulary-sized kernel ops
// (kernels/sampling.h, whose CUDA twins it calls): greedy, or temperature, min_p, top_k and
// top_p with the counter-based draw; repetition, frequency and presence penalties; the
// min_tokens mask; a structured output's token bitmask. A step with any row asking for
// logprobs, allowed_token_ids, bad_words or logit_bias goes to the host Sampler whole
// (Handles()). The order of the phases and the errors are the host Sampler's (sampler.h).
//
// Greedy rows get the same tokens as on the host (Argmax is exact on both). A random row draws
// the same uniform from (seed, step), but the device walks the kept tokens in ascending id order
// where the host walks them heaviest first (kernels/cuda/sampling.h): the same seed gives the
// same distribution, not the same token, as on a CPU replica.
//
//   if (logits->device_values != nullptr && DeviceSampler::Handles(inputs)) {
//     ASSIGN_OR_RETURN(samples, device_sampler.Sample(logits->device_values, rows, vocab, inputs));
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/sampler.h"

namespace pagoda {

class DeviceSampler {
 public:
  /// True when every row can be sampled on the device (see above).
  static bool Handles(absl::Span<const SamplingInput> inputs);

  /// Samples one token per row of `logits` ([num_seqs, vocab_size] on the current CUDA device,
  /// overwritten). `inputs` as for Sampler::Sample, each row one Handles() accepts. Returns after
  /// the device work is done; a device error is this call's.
  absl::StatusOr<std::vector<SampleOutput>> Sample(float* logits, int64_t num_seqs,
                                                   int64_t vocab_size,
                                                   absl::Span<const SamplingInput> inputs);

 private:
  // Per-row device outputs, [4][capacity]: the raw maxima, the greedy rows' maxima after the
  // masks and penalties, the random rows' maxima (SoftmaxWeights), the token ids.
  std::shared_ptr<void> scratch_;
  int64_t capacity_ = 0;
  std::vector<float> host_scratch_;  // their copy on the host
};

}  // namespace pagoda
