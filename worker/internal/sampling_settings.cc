#include "worker/internal/sampling_settings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagoda::internal {

absl::Status NoFiniteLogit(const char* when) {
  return absl::InvalidArgumentError(absl::StrCat("no finite logit left ", when));
}

absl::Status CheckTokenIds(absl::Span<const int32_t> ids, int64_t vocab_size, const char* what) {
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " token id ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

void TokenLists::Set(int64_t s, absl::Span<const int32_t> a, absl::Span<const int32_t> b) {
  PAGODA_CHECK(static_cast<int64_t>(offsets.size()) == s + 1);
  ids.insert(ids.end(), a.begin(), a.end());
  ids.insert(ids.end(), b.begin(), b.end());
  offsets.push_back(static_cast<int64_t>(ids.size()));
}

kernels::SamplingRows Rows(const kernels::SamplingRows& all, const std::vector<int32_t>& rows) {
  static constexpr int32_t kNoRows[1] = {0};
  kernels::SamplingRows r = all;
  r.rows = rows.empty() ? kNoRows : rows.data();
  r.num_rows = static_cast<int64_t>(rows.size());
  return r;
}

SamplingSettings::SamplingSettings(absl::Span<const SamplingInput> inputs, int64_t vocab_size)
    : masked(static_cast<int64_t>(inputs.size())),
      penalty_statuses(inputs.size()),
      penalize(inputs.size(), 0),
      prompts(static_cast<int64_t>(inputs.size())),
      outputs_so_far(static_cast<int64_t>(inputs.size())),
      repetition(inputs.size(), 1.0f),
      frequency(inputs.size(), 0.0f),
      presence(inputs.size(), 0.0f),
      temperature(inputs.size(), 1.0f),
      min_p(inputs.size(), 0.0f),
      top_p(inputs.size(), 1.0f),
      top_k(inputs.size(), 0),
      uniform(inputs.size(), 0.0),
      top_logprobs_k(inputs.size(), 0) {
  const int64_t num_seqs = static_cast<int64_t>(inputs.size());
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SamplingInput& in = inputs[s];
    const SamplingParams& p = *in.params;
    if (in.step < p.min_tokens) {
      masked.Set(s, p.stop_token_ids,
                 p.ignore_eos ? absl::Span<const int32_t>() : in.eos_token_ids);
    } else {
      masked.Set(s);
    }

    penalize[s] =
        p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    if (penalize[s] && p.repetition_penalty != 1.0f) {
      penalty_statuses[s] = CheckTokenIds(in.prompt_token_ids, vocab_size, "prompt");
    }
    if (penalize[s] && penalty_statuses[s].ok()) {
      penalty_statuses[s] = CheckTokenIds(in.output_token_ids, vocab_size, "output");
    }
    if (!penalize[s] || !penalty_statuses[s].ok()) {
      penalize[s] = 0;
      prompts.Set(s);
      outputs_so_far.Set(s);
    } else {
      // The prompt counts for the repetition penalty only.
      prompts.Set(s,
                  p.repetition_penalty != 1.0f ? in.prompt_token_ids : absl::Span<const int32_t>());
      outputs_so_far.Set(s, in.output_token_ids);
      repetition[s] = p.repetition_penalty;
      frequency[s] = p.frequency_penalty;
      presence[s] = p.presence_penalty;
    }

    top_logprobs_k[s] = std::max(p.logprobs, 0);
    max_top_logprobs = std::max<int64_t>(max_top_logprobs, top_logprobs_k[s]);
    if (p.greedy()) continue;
    temperature[s] = p.temperature;
    min_p[s] = p.min_p;
    top_k[s] = p.top_k;
    top_p[s] = p.top_p;
    uniform[s] = Sampler::UniformDraw(in.seed, in.step);
  }
}

}  // namespace pagoda::internal
