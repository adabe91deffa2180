#include "tools/offline_generator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda {

struct OfflineGenerator::Active {
  const GenerationRequest* request;
  GenerationResult* result;
  std::vector<int32_t> blocks;
  std::vector<int32_t> all_tokens;  // prompt then output: the next inputs come from here
  int64_t num_computed = 0;         // tokens whose K/V are in the cache
  bool finished = false;
};

bool OfflineGenerator::IsStopToken(const SamplingParams& params, int32_t token) const {
  if (std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), token) !=
      params.stop_token_ids.end()) {
    return true;
  }
  return !params.ignore_eos &&
         std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token) != eos_token_ids_.end();
}

OfflineGenerator::OfflineGenerator(ModelRunner* runner, const Tokenizer* tokenizer,
                                   const OfflineGeneratorOptions& options)
    : runner_(runner), tokenizer_(tokenizer), options_(options) {
  for (int64_t id : runner_->config().eos_token_ids) {
    eos_token_ids_.push_back(static_cast<int32_t>(id));
  }
  if (auto eos = tokenizer_->eos_token_id();
      eos.has_value() &&
      std::find(eos_token_ids_.begin(), eos_token_ids_.end(), *eos) == eos_token_ids_.end()) {
    eos_token_ids_.push_back(*eos);
  }
}

absl::StatusOr<std::vector<GenerationResult>> OfflineGenerator::Generate(
    std::vector<GenerationRequest> requests) {
  const int64_t block_size = runner_->block_size();
  std::vector<GenerationResult> results(requests.size());
  std::vector<int64_t> blocks_needed(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationRequest& request = requests[i];
    if (auto s = request.params.Validate(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("request ", i, ": ", s.message()));
    }
    if (request.prompt_token_ids.empty()) {
      request.prompt_token_ids = tokenizer_->Encode(request.prompt);
    }
    if (request.prompt_token_ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("request ", i, ": the prompt is empty"));
    }
    for (int32_t id : request.prompt_token_ids) {
      if (id < 0 || id >= runner_->config().vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("request ", i, ": prompt token id ", id,
                                                       " is outside the vocabulary [0, ",
                                                       runner_->config().vocab_size, ")"));
      }
    }
    const int64_t total =
        static_cast<int64_t>(request.prompt_token_ids.size()) + request.params.max_tokens;
    if (total > runner_->max_positions()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", i, ": prompt (", request.prompt_token_ids.size(),
                       " tokens) + max_tokens (", request.params.max_tokens,
                       ") exceeds the model's ", runner_->max_positions(), " positions"));
    }
    blocks_needed[i] = (total + block_size - 1) / block_size;
    if (blocks_needed[i] > runner_->num_blocks()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", i, ": needs ", blocks_needed[i], " KV blocks but the cache has ",
                       runner_->num_blocks(), "; lower max_tokens or raise --kv-cache-blocks"));
    }
    results[i].prompt = request.prompt;
    results[i].prompt_token_ids = request.prompt_token_ids;
  }

  size_t next = 0;
  while (next < requests.size()) {
    std::vector<Active> wave;
    int32_t next_block = 0;
    while (next < requests.size() && static_cast<int64_t>(wave.size()) < options_.max_num_seqs &&
           next_block + blocks_needed[next] <= runner_->num_blocks()) {
      Active active{
          .request = &requests[next], .result = &results[next], .blocks = {}, .all_tokens = {}};
      for (int64_t b = 0; b < blocks_needed[next]; ++b) active.blocks.push_back(next_block++);
      active.all_tokens = requests[next].prompt_token_ids;
      wave.push_back(std::move(active));
      ++next;
    }
    RETURN_IF_ERROR(RunWave(wave));
  }

  for (GenerationResult& result : results) {
    // Decode prompt + output and keep the part after the prompt, so that a leading space of the
    // first generated token survives decoders that strip it at the start of a text.
    std::vector<int32_t> all = result.prompt_token_ids;
    all.insert(all.end(), result.token_ids.begin(), result.token_ids.end());
    const std::string prefix = tokenizer_->Decode(result.prompt_token_ids, true);
    std::string full = tokenizer_->Decode(all, true);
    result.text = full.rfind(prefix, 0) == 0 ? full.substr(prefix.size())
                                             : tokenizer_->Decode(result.token_ids, true);
  }
  return results;
}

absl::Status OfflineGenerator::RunWave(std::vector<Active>& wave) {
  std::vector<SequenceInput> batch;
  std::vector<Active*> batch_owner;
  std::vector<SamplingInput> sampling;
  while (true) {
    batch.clear();
    batch_owner.clear();
    int64_t budget = options_.max_num_batched_tokens;
    // Decodes first (one token each), then prompt chunks within the remaining budget.
    for (int pass = 0; pass < 2; ++pass) {
      for (Active& a : wave) {
        const int64_t pending = static_cast<int64_t>(a.all_tokens.size()) - a.num_computed;
        const bool decoding =
            pending == 1 &&
            a.num_computed >= static_cast<int64_t>(a.request->prompt_token_ids.size());
        if (a.finished || pending <= 0 || decoding != (pass == 0) || budget <= 0) continue;
        const int64_t n = std::min(pending, budget);
        budget -= n;
        batch.push_back({.token_ids = absl::MakeConstSpan(a.all_tokens).subspan(a.num_computed, n),
                         .num_computed_tokens = a.num_computed,
                         .block_table = a.blocks,
                         .sample = n == pending});
        batch_owner.push_back(&a);
      }
    }
    if (batch.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(StepLogits * logits, runner_->Execute(batch));
    for (size_t i = 0; i < batch.size(); ++i) {
      batch_owner[i]->num_computed += static_cast<int64_t>(batch[i].token_ids.size());
    }
    sampling.clear();
    for (int64_t r = 0; r < logits->num_rows; ++r) {
      const Active& a = *batch_owner[logits->seq_index[r]];
      const auto& prompt = a.request->prompt_token_ids;
      sampling.push_back({.params = &a.request->params,
                          .seed = a.request->seed,
                          .step = static_cast<int64_t>(a.result->token_ids.size()),
                          .prompt_token_ids = prompt,
                          .output_token_ids = a.result->token_ids,
                          .eos_token_ids = eos_token_ids_});
    }
    ASSIGN_OR_RETURN(std::vector<SampleOutput> samples,
                     sampler_.Sample(absl::MakeSpan(logits->values.data(),
                                                    logits->num_rows * logits->vocab_size),
                                     logits->num_rows, logits->vocab_size, sampling));
    for (int64_t r = 0; r < logits->num_rows; ++r) {
      Active& a = *batch_owner[logits->seq_index[r]];
      const SampleOutput& sample = samples[r];
      const SamplingParams& params = a.request->params;
      GenerationResult& result = *a.result;
      result.token_ids.push_back(sample.token_id);
      if (params.logprobs >= 0) {
        result.logprobs.push_back(sample.logprob);
        result.top_logprobs.push_back(sample.top_logprobs);
      }
      a.all_tokens.push_back(sample.token_id);
      const int64_t generated = static_cast<int64_t>(result.token_ids.size());
      if (generated >= params.min_tokens && IsStopToken(params, sample.token_id)) {
        result.finish_reason = FinishReason::kStop;
        a.finished = true;
      } else if (generated >= params.max_tokens) {
        result.finish_reason = FinishReason::kLength;
        a.finished = true;
      }
    }
  }
}

}  // namespace pagoda
