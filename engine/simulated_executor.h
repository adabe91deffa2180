// SimulatedExecutor: an Executor with no model, for benchmarks and tests of the engine core. It
// keeps per-sequence state as a worker does (known tokens, computed count, block table size,
// sampling params) and applies plans by the worker's rules (worker/step_runner.cc): a sequence
// samples when a pass reaches the end of its known tokens (and verifies draft tokens as the
// worker does: it keeps the drafts equal to its draws and the draw after them); a multi-step
// plan feeds each sample to
// the next pass unless the sequence stopped (common/step/stop_rules.h: stop tokens after
// min_tokens, max_tokens) or has no block room left. KV contents, swaps and block copies are not
// simulated: only their bookkeeping.
//
// "Sampling" is a hash: a sampled sequence's output i depends only on (seed, i), like the real
// sampler's draws; a greedy sequence (beam search) draws from (i, its last token), so beams that
// differ get different candidates. Tokens avoid the EOS ids unless eos_probability > 0. With
// logprobs >= 0 the output carries made-up, strictly decreasing top candidates (the sampled token
// first), which is all beam search needs.
//
// Results come back synchronously through a ready future, after an optional simulated step cost
// (busy-wait of cost_per_token_us * tokens + cost_per_step_us).
//
//   SimulatedExecutor executor({.info = {.num_device_blocks = 4096, .block_size = 16,
//                                        .max_model_len = 2048, .vocab_size = 32000},
//                               .eos_token_ids = {2}});
//   Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
//   ASSIGN_OR_RETURN(StepResult result, executor.Submit(std::move(step->plan)).get());
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/step/executor.h"
#include "common/step/step.h"

namespace pagoda {

struct SimulatedExecutorOptions {
  ExecutorInfo info;
  std::vector<int32_t> eos_token_ids;
  /// Chance that a draw is an EOS id (the first one); 0: never.
  double eos_probability = 0;
  /// Simulated step cost, busy-waited: cost_per_token_us * tokens computed + cost_per_step_us
  /// per forward pass. Both 0 by default (no wait).
  double cost_per_token_us = 0;
  double cost_per_step_us = 0;
};

class SimulatedExecutor final : public Executor {
 public:
  explicit SimulatedExecutor(SimulatedExecutorOptions options);

  const ExecutorInfo& info() const override { return options_.info; }
  const std::vector<int32_t>& eos_token_ids() const { return options_.eos_token_ids; }

  /// Applies the plan at once; the future is ready. InvalidArgument for a plan naming unknown
  /// sequences or scheduling more tokens than a sequence holds (state then unknown).
  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override;

  /// The same, without the future.
  absl::StatusOr<StepResult> Apply(const StepPlan& plan);

  // The state the workers would hold, for benchmarks (e.g. KV slots holding a token).
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  /// Sum over live sequences of tokens whose KV is computed.
  int64_t num_computed_tokens() const { return num_computed_tokens_; }
  int64_t num_steps_run() const { return num_steps_run_; }  // forward passes

 private:
  struct Sequence {
    std::vector<int32_t> token_ids;
    int64_t num_prompt_tokens = 0;
    int64_t num_computed_tokens = 0;
    int64_t num_blocks = 0;
    SamplingParams params;
    uint64_t seed = 0;
    bool last_token_sampled = false;
    std::vector<int32_t> drafts;  // this plan's draft tokens (not in token_ids)

    int64_t num_output_tokens() const {
      return static_cast<int64_t>(token_ids.size()) - num_prompt_tokens;
    }
  };
  struct PassEntry {
    Sequence* seq = nullptr;              // stable: owned by a unique_ptr
    const std::string* seq_id = nullptr;  // the plan's (map keys move on rehash)
    int64_t num_tokens = 0;
    int64_t output_index = -1;
  };

  int32_t Draw(const Sequence& seq) const;
  void Sample(PassEntry& entry, StepResult& result);
  bool IsStop(const Sequence& seq, int32_t token) const;
  bool CanDecodeAgain(const Sequence& seq) const;
  void Spend(int64_t num_tokens) const;

  const SimulatedExecutorOptions options_;
  absl::flat_hash_map<std::string, std::unique_ptr<Sequence>> seqs_;
  int64_t num_computed_tokens_ = 0;
  int64_t num_steps_run_ = 0;
};

}  // namespace pagoda
