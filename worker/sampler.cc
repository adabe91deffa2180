#include "worker/sampler.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "kernels/sampling.h"
#include "worker/internal/sampling_settings.h"

namespace pagoda {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Rows a task runs every sampling phase over (see Sample).
constexpr int64_t kRowsPerChunk = 2;

// On one row, in vLLM V1's order: allowed_token_ids (every other logit becomes -inf), bad_words
// (a sequence's last token becomes -inf when the outputs so far end with its other tokens: a
// one-token sequence always), then OpenAI's logit_bias (added). An id outside the row fails it
// (the router checked the ids against the tokenizer's vocabulary; a worker trusts no message it
// was sent).
absl::Status ApplyAllowListBadWordsAndBias(absl::Span<float> row, const SamplingParams& params,
                                           absl::Span<const int32_t> output_token_ids) {
  const int64_t vocab_size = static_cast<int64_t>(row.size());
  if (!params.allowed_token_ids.empty()) {
    RETURN_IF_ERROR(
        internal::CheckTokenIds(params.allowed_token_ids, vocab_size, "allowed_token_ids"));
    std::vector<float> kept(params.allowed_token_ids.size());
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = row[params.allowed_token_ids[i]];
    std::fill(row.begin(), row.end(), kNegInf);
    for (size_t i = 0; i < kept.size(); ++i) row[params.allowed_token_ids[i]] = kept[i];
  }
  for (const std::vector<int32_t>& word : params.bad_words_token_ids) {
    if (word.empty()) continue;
    const int32_t last = word.back();
    if (last < 0 || last >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad_words token id ", last, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
    const size_t prefix = word.size() - 1;
    if (prefix > output_token_ids.size()) continue;
    if (std::equal(word.begin(), word.end() - 1, output_token_ids.end() - prefix)) {
      row[last] = kNegInf;
    }
  }
  for (const auto& [id, bias] : params.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias token id ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
    row[id] += bias;
  }
  return absl::OkStatus();
}

}  // namespace

double Sampler::UniformDraw(uint64_t seed, int64_t step) {
  // The splitmix64 stream that starts at a state derived from the seed, read at position `step`.
  const uint64_t bits = SplitMix64(SplitMix64(seed) + static_cast<uint64_t>(step));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

void Sampler::ApplyPenalties(absl::Span<float> logits, const SamplingParams& params,
                             absl::Span<const int32_t> prompt_token_ids,
                             absl::Span<const int32_t> output_token_ids) {
  const int64_t prompt_offsets[] = {0, static_cast<int64_t>(prompt_token_ids.size())};
  const int64_t output_offsets[] = {0, static_cast<int64_t>(output_token_ids.size())};
  const absl::Status status =
      kernels::ApplyPenalties({.batch = {.num_seqs = 1,
                                         .vocab_size = static_cast<int64_t>(logits.size()),
                                         .num_rows = 1,
                                         .max_threads = 1},
                               .logits = logits.data(),
                               .repetition_penalty = &params.repetition_penalty,
                               .frequency_penalty = &params.frequency_penalty,
                               .presence_penalty = &params.presence_penalty,
                               .prompt_offsets = prompt_offsets,
                               .prompt_token_ids = prompt_token_ids.data(),
                               .output_offsets = output_offsets,
                               .output_token_ids = output_token_ids.data()});
  PAGODA_CHECK(status.ok()) << status;
}

absl::StatusOr<std::vector<SampleOutput>> Sampler::Sample(
    absl::Span<float> logits, int64_t num_seqs, int64_t vocab_size,
    absl::Span<const SamplingInput> inputs) const {
  if (num_seqs < 0 || vocab_size <= 0 || vocab_size > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Sampler: bad logits shape [", num_seqs, ", ", vocab_size, "]"));
  }
  if (static_cast<int64_t>(logits.size()) != num_seqs * vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("Sampler: logits hold ", logits.size(),
                                                   " floats, expected num_seqs ", num_seqs,
                                                   " x vocab_size ", vocab_size));
  }
  if (static_cast<int64_t>(inputs.size()) != num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("Sampler: ", inputs.size(), " sampling inputs for ", num_seqs, " sequences"));
  }
  for (int64_t i = 0; i < num_seqs; ++i) {
    if (inputs[i].params == nullptr || inputs[i].step < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Sampler: sequence ", i, " has no params or a negative step"));
    }
  }
  const auto params = [&](int64_t s) -> const SamplingParams& { return *inputs[s].params; };

  // Per-row settings for the whole batch, gathered once.
  internal::SamplingSettings settings(inputs, vocab_size);
  const internal::TokenLists& masked = settings.masked;
  const internal::TokenLists& prompts = settings.prompts;
  const internal::TokenLists& outputs_so_far = settings.outputs_so_far;
  const std::vector<absl::Status>& penalty_statuses = settings.penalty_statuses;
  const std::vector<char>& penalize = settings.penalize;
  const int64_t max_top_logprobs = settings.max_top_logprobs;

  // Each row's first error; a failed row takes no further part. (A kernel's own error, from
  // params that skipped SamplingParams::Validate, fails the whole call.)
  std::vector<absl::Status> statuses(num_seqs);
  std::vector<SampleOutput> outputs(num_seqs);
  std::vector<float> row_max(num_seqs);
  std::vector<int32_t> token_ids(num_seqs, 0);
  std::vector<int32_t> top_ids(num_seqs * max_top_logprobs);
  std::vector<float> top_values(num_seqs * max_top_logprobs);
  float* const x = logits.data();
  const kernels::SamplingRows all{
      .num_seqs = num_seqs, .vocab_size = vocab_size, .num_rows = num_seqs, .max_threads = 1};

  // Every phase, in vLLM V1's order, over the rows [begin, end) — while they sit in the cache.
  const auto sample_chunk = [&](int64_t begin, int64_t end) -> absl::Status {
    const auto live_rows = [&](auto wanted) {
      std::vector<int32_t> rows;
      for (int64_t s = begin; s < end; ++s) {
        if (statuses[s].ok() && wanted(s)) rows.push_back(static_cast<int32_t>(s));
      }
      return rows;
    };
    // NaN -> -inf, +inf -> the largest float.
    RETURN_IF_ERROR(kernels::SanitizeLogits(
        {.batch = internal::Rows(all, live_rows([](int64_t) { return true; })),
         .logits = x,
         .row_max = row_max.data()}));
    for (int64_t s = begin; s < end; ++s) {
      statuses[s] = row_max[s] == kNegInf ? internal::NoFiniteLogit("in the raw logits")
                                          : penalty_statuses[s];
    }

    // Raw logprobs (vLLM V1's default): before any penalty, mask or temperature.
    const std::vector<int32_t> logprob_rows =
        live_rows([&](int64_t s) { return params(s).logprobs >= 0; });
    std::vector<int64_t> logprob_row_of(end - begin, -1);  // position in logprob_rows
    for (size_t i = 0; i < logprob_rows.size(); ++i) logprob_row_of[logprob_rows[i] - begin] = i;
    std::unique_ptr<float[]> logprobs(new float[logprob_rows.size() * vocab_size]);
    RETURN_IF_ERROR(kernels::LogSoftmax({.batch = internal::Rows(all, logprob_rows),
                                         .logits = x,
                                         .row_max = row_max.data(),
                                         .logprobs = logprobs.get()}));
    const auto raw_logprob = [&](int64_t s, int32_t id) {
      return logprobs[logprob_row_of[s - begin] * vocab_size + id];
    };
    const std::vector<int32_t> top_rows =
        live_rows([&](int64_t s) { return params(s).logprobs > 0; });
    if (!top_rows.empty()) {
      RETURN_IF_ERROR(kernels::TopK({.batch = internal::Rows(all, top_rows),
                                     .values = x,
                                     .k = settings.top_logprobs_k.data(),
                                     .max_k = max_top_logprobs,
                                     .top_ids = top_ids.data(),
                                     .top_values = top_values.data()}));
    }
    for (int32_t s : top_rows) {
      const int64_t n = std::min<int64_t>(settings.top_logprobs_k[s], vocab_size);
      for (int64_t j = 0; j < n; ++j) {
        const int32_t id = top_ids[s * max_top_logprobs + j];
        outputs[s].top_logprobs.emplace_back(id, raw_logprob(s, id));
      }
    }

    RETURN_IF_ERROR(kernels::MaskTokens({.batch = internal::Rows(all, live_rows([&](int64_t s) {
                                                                   return inputs[s].step <
                                                                          params(s).min_tokens;
                                                                 })),
                                         .logits = x,
                                         .offsets = masked.offsets.data(),
                                         .token_ids = masked.ids.data()}));
    for (int64_t s = begin; s < end; ++s) {
      if (!statuses[s].ok() || inputs[s].token_bitmask.empty()) continue;
      const std::vector<int32_t> row = {static_cast<int32_t>(s)};
      RETURN_IF_ERROR(kernels::ApplyTokenBitmask(
          {.batch = internal::Rows(all, row),
           .logits = x,
           .bitmask = inputs[s].token_bitmask.data(),
           .bitmask_words = static_cast<int64_t>(inputs[s].token_bitmask.size())}));
    }
    for (int64_t s = begin; s < end; ++s) {
      if (!statuses[s].ok()) continue;
      statuses[s] = ApplyAllowListBadWordsAndBias(absl::MakeSpan(x + s * vocab_size, vocab_size),
                                                  params(s), inputs[s].output_token_ids);
    }
    RETURN_IF_ERROR(kernels::ApplyPenalties(
        {.batch = internal::Rows(all, live_rows([&](int64_t s) { return penalize[s] != 0; })),
         .logits = x,
         .repetition_penalty = settings.repetition.data(),
         .frequency_penalty = settings.frequency.data(),
         .presence_penalty = settings.presence.data(),
         .prompt_offsets = prompts.offsets.data(),
         .prompt_token_ids = prompts.ids.data(),
         .output_offsets = outputs_so_far.offsets.data(),
         .output_token_ids = outputs_so_far.ids.data(),
         .token_ids_checked = true}));

    // Greedy rows: argmax.
    const std::vector<int32_t> greedy_rows =
        live_rows([&](int64_t s) { return params(s).greedy(); });
    RETURN_IF_ERROR(kernels::Argmax(
        {.batch = internal::Rows(all, greedy_rows), .logits = x, .token_ids = token_ids.data()}));
    for (int32_t s : greedy_rows) {
      if (x[s * vocab_size + token_ids[s]] == kNegInf) {
        statuses[s] = internal::NoFiniteLogit(
            "after penalties and stop-token, grammar, allow-list or bad-word masking");
      }
    }

    // Random rows: temperature and min_p, then top_k, top_p and the draw.
    std::vector<int32_t> random_rows = live_rows([&](int64_t s) { return !params(s).greedy(); });
    RETURN_IF_ERROR(kernels::SoftmaxWeights({.batch = internal::Rows(all, random_rows),
                                             .logits = x,
                                             .temperature = settings.temperature.data(),
                                             .min_p = settings.min_p.data(),
                                             .row_max = row_max.data()}));
    for (int32_t s : random_rows) {
      if (row_max[s] == kNegInf) {
        statuses[s] = internal::NoFiniteLogit(
            "after penalties and stop-token, grammar, allow-list or bad-word masking");
      }
    }
    std::erase_if(random_rows, [&](int32_t s) { return !statuses[s].ok(); });
    RETURN_IF_ERROR(kernels::SampleFromWeights({.batch = internal::Rows(all, random_rows),
                                                .weights = x,
                                                .top_k = settings.top_k.data(),
                                                .top_p = settings.top_p.data(),
                                                .uniform = settings.uniform.data(),
                                                .token_ids = token_ids.data()}));
    for (int64_t s = begin; s < end; ++s) {
      if (!statuses[s].ok()) continue;
      outputs[s].token_id = token_ids[s];
      outputs[s].logprob = logprob_row_of[s - begin] >= 0 ? raw_logprob(s, token_ids[s]) : 0.0f;
    }
    return absl::OkStatus();
  };

  // One OpenMP region over chunks of rows: each chunk runs every phase while its rows (192 KB
  // each at a 49152-token vocabulary) are in L2, instead of every phase streaming the batch.
  const int64_t num_chunks = (num_seqs + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<absl::Status> chunk_statuses(num_chunks);
  const bool parallel = num_seqs > 1 && num_seqs >= options_.min_parallel_seqs;
  const int num_threads = options_.max_threads > 0 ? options_.max_threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) if (parallel)
  for (int64_t c = 0; c < num_chunks; ++c) {
    chunk_statuses[c] =
        sample_chunk(c * kRowsPerChunk, std::min(num_seqs, (c + 1) * kRowsPerChunk));
  }
  for (const absl::Status& status : chunk_statuses) RETURN_IF_ERROR(status);
  for (int64_t i = 0; i < num_seqs; ++i) {
    if (!statuses[i].ok()) {
      return absl::Status(statuses[i].code(),
                          absl::StrCat("Sampler: sequence ", i, ": ", statuses[i].message()));
    }
  }
  return outputs;
}

}  // namespace pagoda
