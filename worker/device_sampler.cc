#include "worker/device_sampler.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/sampling.h"
#include "worker/internal/sampling_settings.h"

namespace pagoda {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr char kAfterMasks[] =
    "after penalties and stop-token, grammar, allow-list or bad-word masking";

}  // namespace

bool DeviceSampler::Handles(absl::Span<const SamplingInput> inputs) {
  return std::all_of(inputs.begin(), inputs.end(), [](const SamplingInput& in) {
    if (in.params == nullptr) return false;
    const SamplingParams& p = *in.params;
    return p.logprobs < 0 && p.allowed_token_ids.empty() && p.bad_words_token_ids.empty() &&
           p.logit_bias.empty();
  });
}

absl::StatusOr<std::vector<SampleOutput>> DeviceSampler::Sample(
    float* logits, int64_t num_seqs, int64_t vocab_size, absl::Span<const SamplingInput> inputs) {
  if (num_seqs < 0 || vocab_size <= 0 || vocab_size > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DeviceSampler: bad logits shape [", num_seqs, ", ", vocab_size, "]"));
  }
  if (static_cast<int64_t>(inputs.size()) != num_seqs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DeviceSampler: ", inputs.size(), " sampling inputs for ", num_seqs, " sequences"));
  }
  for (int64_t i = 0; i < num_seqs; ++i) {
    if (inputs[i].params == nullptr || inputs[i].step < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("DeviceSampler: sequence ", i, " has no params or a negative step"));
    }
  }
  if (!Handles(inputs)) {
    return absl::InvalidArgumentError(
        "DeviceSampler: a sequence asks for logprobs, allowed_token_ids, bad_words or logit_bias, "
        "which only the host Sampler applies");
  }
  if (num_seqs == 0) return std::vector<SampleOutput>();
  const auto params = [&](int64_t s) -> const SamplingParams& { return *inputs[s].params; };

  if (capacity_ < num_seqs) {
    scratch_.reset();  // freed before the larger one is allocated
    capacity_ = 0;
    ASSIGN_OR_RETURN(scratch_, kernels::cuda::AllocateZeroed(4 * num_seqs * sizeof(float)));
    capacity_ = num_seqs;
  }
  float* const raw_max = static_cast<float*>(scratch_.get());
  float* const greedy_max = raw_max + capacity_;
  float* const random_max = greedy_max + capacity_;
  int32_t* const token_ids = reinterpret_cast<int32_t*>(random_max + capacity_);

  const internal::SamplingSettings settings(inputs, vocab_size);
  const kernels::SamplingRows all{.num_seqs = num_seqs,
                                  .vocab_size = vocab_size,
                                  .num_rows = num_seqs,
                                  .max_threads = 1,
                                  .device = Device::kCuda};
  const auto rows_where = [&](auto wanted) {
    std::vector<int32_t> rows;
    for (int64_t s = 0; s < num_seqs; ++s) {
      if (wanted(s)) rows.push_back(static_cast<int32_t>(s));
    }
    return rows;
  };
  const auto masked = [&](int64_t s) {
    return inputs[s].step < params(s).min_tokens || !inputs[s].token_bitmask.empty() ||
           settings.penalize[s] != 0;
  };

  // The host Sampler's phases, in its order (sampler.h), without the raw logprobs.
  RETURN_IF_ERROR(kernels::SanitizeLogits(
      {.batch = internal::Rows(all, rows_where([](int64_t) { return true; })),
       .logits = logits,
       .row_max = raw_max}));
  RETURN_IF_ERROR(kernels::MaskTokens({.batch = internal::Rows(all, rows_where([&](int64_t s) {
                                                                 return inputs[s].step <
                                                                        params(s).min_tokens;
                                                               })),
                                       .logits = logits,
                                       .offsets = settings.masked.offsets.data(),
                                       .token_ids = settings.masked.ids.data()}));
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (inputs[s].token_bitmask.empty()) continue;
    const std::vector<int32_t> row = {static_cast<int32_t>(s)};
    RETURN_IF_ERROR(kernels::ApplyTokenBitmask(
        {.batch = internal::Rows(all, row),
         .logits = logits,
         .bitmask = inputs[s].token_bitmask.data(),
         .bitmask_words = static_cast<int64_t>(inputs[s].token_bitmask.size())}));
  }
  RETURN_IF_ERROR(kernels::ApplyPenalties(
      {.batch = internal::Rows(all, rows_where([&](int64_t s) { return settings.penalize[s]; })),
       .logits = logits,
       .repetition_penalty = settings.repetition.data(),
       .frequency_penalty = settings.frequency.data(),
       .presence_penalty = settings.presence.data(),
       .prompt_offsets = settings.prompts.offsets.data(),
       .prompt_token_ids = settings.prompts.ids.data(),
       .output_offsets = settings.outputs_so_far.offsets.data(),
       .output_token_ids = settings.outputs_so_far.ids.data(),
       .token_ids_checked = true}));

  // Greedy rows: argmax; where masks or penalties applied, the maximum left (all -inf: the row
  // has no token to give). SanitizeLogits changes nothing of a sanitized row.
  const std::vector<int32_t> greedy_rows =
      rows_where([&](int64_t s) { return params(s).greedy(); });
  RETURN_IF_ERROR(kernels::Argmax(
      {.batch = internal::Rows(all, greedy_rows), .logits = logits, .token_ids = token_ids}));
  std::vector<int32_t> checked_greedy_rows;
  std::copy_if(greedy_rows.begin(), greedy_rows.end(), std::back_inserter(checked_greedy_rows),
               masked);
  RETURN_IF_ERROR(kernels::SanitizeLogits({.batch = internal::Rows(all, checked_greedy_rows),
                                           .logits = logits,
                                           .row_max = greedy_max}));

  // Random rows: the weights; a row left without any is not drawn from (its maximum comes back
  // first: SampleFromWeights needs a positive weight in every row it draws from).
  std::vector<int32_t> random_rows = rows_where([&](int64_t s) { return !params(s).greedy(); });
  host_scratch_.resize(static_cast<size_t>(4 * capacity_));
  float* const host_raw_max = host_scratch_.data();
  float* const host_greedy_max = host_raw_max + capacity_;
  float* const host_random_max = host_greedy_max + capacity_;
  if (!random_rows.empty()) {
    RETURN_IF_ERROR(kernels::SoftmaxWeights({.batch = internal::Rows(all, random_rows),
                                             .logits = logits,
                                             .temperature = settings.temperature.data(),
                                             .min_p = settings.min_p.data(),
                                             .row_max = random_max}));
    RETURN_IF_ERROR(
        kernels::cuda::CopyBytes(host_random_max, random_max, num_seqs * sizeof(float)));
    std::erase_if(random_rows, [&](int32_t s) { return host_random_max[s] == kNegInf; });
    RETURN_IF_ERROR(kernels::SampleFromWeights({.batch = internal::Rows(all, random_rows),
                                                .weights = logits,
                                                .top_k = settings.top_k.data(),
                                                .top_p = settings.top_p.data(),
                                                .uniform = settings.uniform.data(),
                                                .token_ids = token_ids}));
  }
  // One copy back: the maxima and the tokens (after all the work queued before it).
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(host_raw_max, raw_max, 4 * capacity_ * sizeof(float)));
  const auto* host_token_ids = reinterpret_cast<const int32_t*>(host_random_max + capacity_);

  std::vector<SampleOutput> outputs(static_cast<size_t>(num_seqs));
  for (int64_t s = 0; s < num_seqs; ++s) {
    absl::Status status = settings.penalty_statuses[s];
    if (status.ok() && host_raw_max[s] == kNegInf) {
      status = internal::NoFiniteLogit("in the raw logits");
    } else if (status.ok() && params(s).greedy() && masked(s) && host_greedy_max[s] == kNegInf) {
      status = internal::NoFiniteLogit(kAfterMasks);
    } else if (status.ok() && !params(s).greedy() && host_random_max[s] == kNegInf) {
      status = internal::NoFiniteLogit(kAfterMasks);
    }
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("Sampler: sequence ", s, ": ", status.message()));
    }
    outputs[s].token_id = host_token_ids[s];
  }
  return outputs;
}

}  // namespace pagoda
