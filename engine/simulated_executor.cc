#include "engine/simulated_executor.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "common/step/stop_rules.h"

namespace pagoda {
namespace {

// Combines v into h (boost's hash_combine step), then mixes.
uint64_t Mix(uint64_t h, uint64_t v) {
  return SplitMix64Mix(h ^ (v + kSplitMix64Gamma + (h << 6) + (h >> 2)));
}

}  // namespace

SimulatedExecutor::SimulatedExecutor(SimulatedExecutorOptions options)
    : options_(std::move(options)) {}

std::future<absl::StatusOr<StepResult>> SimulatedExecutor::Submit(StepPlan plan) {
  std::promise<absl::StatusOr<StepResult>> promise;
  promise.set_value(Apply(plan));
  return promise.get_future();
}

int32_t SimulatedExecutor::Draw(const Sequence& seq) const {
  const uint64_t step = static_cast<uint64_t>(seq.num_output_tokens());
  const uint64_t h = seq.params.greedy()
                         ? Mix(Mix(0x5EED, step), static_cast<uint64_t>(seq.token_ids.back()))
                         : Mix(seq.seed, step);
  const std::vector<int32_t>& eos = options_.eos_token_ids;
  if (!eos.empty() && options_.eos_probability > 0 &&
      static_cast<double>(h >> 11) * 0x1.0p-53 < options_.eos_probability) {
    return eos.front();
  }
  const int64_t vocab = std::max<int64_t>(options_.info.vocab_size, 1);
  int32_t token = static_cast<int32_t>(Mix(h, 1) % static_cast<uint64_t>(vocab));
  while (std::find(eos.begin(), eos.end(), token) != eos.end()) {
    token = static_cast<int32_t>((token + 1) % vocab);
  }
  return token;
}

void SimulatedExecutor::Sample(PassEntry& entry, StepResult& result) {
  Sequence& seq = *entry.seq;
  const int32_t token = Draw(seq);
  if (entry.output_index < 0) {
    entry.output_index = static_cast<int64_t>(result.outputs.size());
    result.outputs.push_back({.seq_id = *entry.seq_id});
  }
  SequenceOutput& out = result.outputs[entry.output_index];
  out.token_ids.push_back(token);
  if (seq.params.logprobs >= 0) {
    // Made-up candidates, best first: the drawn token, then others at falling logprobs.
    const uint64_t h = Mix(static_cast<uint64_t>(token), seq.token_ids.size());
    const float jitter = static_cast<float>(h % 1000) / 1000.0f;
    const int64_t vocab = std::max<int64_t>(options_.info.vocab_size, 1);
    std::vector<std::pair<int32_t, float>> top;
    for (int32_t i = 0; i < std::max(seq.params.logprobs, 1); ++i) {
      const int32_t id = static_cast<int32_t>((token + 7919LL * i) % vocab);
      top.emplace_back(id, -0.05f - 0.4f * i - 0.3f * jitter * (i + 1));
    }
    out.logprobs.push_back(top.front().second);
    out.top_logprobs.push_back(std::move(top));
  }
  seq.token_ids.push_back(token);
  seq.last_token_sampled = true;
}

bool SimulatedExecutor::IsStop(const Sequence& seq, int32_t token) const {
  return StopRules(seq.params, options_.eos_token_ids)
             .Check(token, seq.num_output_tokens(), static_cast<int64_t>(seq.token_ids.size())) !=
         TokenStop::kNone;
}

bool SimulatedExecutor::CanDecodeAgain(const Sequence& seq) const {
  const int64_t num_tokens = static_cast<int64_t>(seq.token_ids.size());
  return num_tokens <= seq.num_blocks * options_.info.block_size &&
         num_tokens <= options_.info.max_model_len;
}

void SimulatedExecutor::Spend(int64_t num_tokens) const {
  const double us =
      options_.cost_per_token_us * static_cast<double>(num_tokens) + options_.cost_per_step_us;
  if (us <= 0) return;
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(static_cast<int64_t>(us * 1000));
  while (std::chrono::steady_clock::now() < until) {
  }
}

absl::StatusOr<StepResult> SimulatedExecutor::Apply(const StepPlan& plan) {
  if (plan.num_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", plan.step_id, ": num_steps ", plan.num_steps, " must be >= 1"));
  }
  for (const std::string& id : plan.finished_seq_ids) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("finished sequence ", id, " is unknown"));
    }
    num_computed_tokens_ -= it->second->num_computed_tokens;
    seqs_.erase(it);
  }
  std::vector<PassEntry> pass;
  for (const NewSequence& in : plan.new_sequences) {
    auto seq = std::make_unique<Sequence>();
    seq->token_ids = in.token_ids;
    seq->num_prompt_tokens = in.num_prompt_tokens;
    seq->num_computed_tokens = in.num_computed_tokens;
    seq->num_blocks = static_cast<int64_t>(in.block_ids.size());
    seq->params = in.sampling_params;
    seq->seed = in.seed;
    num_computed_tokens_ += seq->num_computed_tokens;
    auto [it, added] = seqs_.try_emplace(in.seq_id, std::move(seq));
    if (!added) {
      return absl::InvalidArgumentError(absl::StrCat("new sequence ", in.seq_id, " is live"));
    }
    if (in.num_scheduled_tokens > 0) {
      pass.push_back({it->second.get(), &in.seq_id, in.num_scheduled_tokens});
    }
  }
  for (const CachedSequence& delta : plan.cached_sequences) {
    auto it = seqs_.find(delta.seq_id);
    if (it == seqs_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cached sequence ", delta.seq_id, " is unknown"));
    }
    Sequence& seq = *it->second;
    seq.num_blocks += static_cast<int64_t>(delta.new_block_ids.size());
    if (!delta.replace_last_token_ids.empty()) {
      if (seq.last_token_sampled &&
          seq.num_computed_tokens < static_cast<int64_t>(seq.token_ids.size())) {
        seq.token_ids.pop_back();
      }
      seq.token_ids.insert(seq.token_ids.end(), delta.replace_last_token_ids.begin(),
                           delta.replace_last_token_ids.end());
      seq.last_token_sampled = false;
    }
    // Guarded drafts follow the sample the engine guessed; after another they are dropped.
    // (No token yet: -1, which no guard equals.)
    const bool guard_holds =
        DraftGuardHolds(delta, seq.token_ids.empty() ? -1 : seq.token_ids.back());
    seq.drafts = guard_holds ? delta.draft_token_ids : std::vector<int32_t>();
    // It has no draft model: a sequence asking the workers for proposals gets none.
    const int64_t num_tokens =
        delta.num_scheduled_tokens - delta.num_worker_draft_tokens -
        (guard_holds ? 0 : static_cast<int64_t>(delta.draft_token_ids.size()));
    if (num_tokens > 0) pass.push_back({&seq, &delta.seq_id, num_tokens});
  }
  for (const PassEntry& e : pass) {
    const int64_t uncomputed = static_cast<int64_t>(e.seq->token_ids.size()) -
                               e.seq->num_computed_tokens +
                               static_cast<int64_t>(e.seq->drafts.size());
    if (e.num_tokens > uncomputed) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", *e.seq_id, ": ", e.num_tokens,
                                                     " tokens scheduled but it holds ", uncomputed,
                                                     " uncomputed tokens"));
    }
  }

  StepResult result{.step_id = plan.step_id};
  for (int32_t step = 0; step < plan.num_steps && !pass.empty(); ++step) {
    int64_t num_tokens = 0;
    std::vector<PassEntry> next;
    for (PassEntry& e : pass) {
      Sequence& seq = *e.seq;
      const std::vector<int32_t> drafts = std::exchange(seq.drafts, {});
      seq.num_computed_tokens += e.num_tokens - static_cast<int64_t>(drafts.size());
      num_computed_tokens_ += e.num_tokens - static_cast<int64_t>(drafts.size());
      num_tokens += e.num_tokens;
      if (seq.num_computed_tokens != static_cast<int64_t>(seq.token_ids.size())) continue;
      Sample(e, result);
      for (size_t i = 0; i < drafts.size() && seq.token_ids.back() == drafts[i] &&
                         !IsStop(seq, seq.token_ids.back());
           ++i) {
        ++seq.num_computed_tokens;  // the accepted draft's KV
        ++num_computed_tokens_;
        Sample(e, result);
      }
      if (!IsStop(seq, seq.token_ids.back()) && CanDecodeAgain(seq)) {
        next.push_back({e.seq, e.seq_id, 1, e.output_index});
      }
    }
    Spend(num_tokens);
    ++num_steps_run_;
    pass = std::move(next);
  }
  return result;
}

}  // namespace pagoda
