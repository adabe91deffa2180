// The Scheduler against a fake executor written here: it applies plans to a simulated KV store
// (the token id held in each physical slot, swaps and copies applied in the order common/step.h
// gives) and samples deterministic pseudo-random tokens from a hash of (the sequence's seed, the
// tokens it reads back from ITS blocks), so any block corruption changes the outputs. It also
// checks that every read slot holds the token the sequence expects, and that no physical block is
// written by two sequences in one pass.
#include "engine/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/batching_policy.h"
#include "engine/beam_search.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kVocab = 64;
constexpr int32_t kEos = 1;

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 29);
}

// Speculative decoding tests: > 0 makes the fake model repeat its context with this period
// three times in four, so n-gram proposals are often, but not always, right.
int64_t g_copy_period = 0;

// The fake model: top candidates (best first) after `tokens`. Greedy sequences (beam search)
// ignore the seed.
std::vector<std::pair<int32_t, float>> Candidates(const std::vector<int32_t>& tokens, uint64_t seed,
                                                  bool greedy, int32_t count) {
  uint64_t h = greedy ? 7 : Mix(11, seed);
  for (int32_t t : tokens) h = Mix(h, static_cast<uint64_t>(t));
  std::vector<std::pair<int32_t, float>> out;
  int32_t base = static_cast<int32_t>(h % kVocab);
  const int64_t size = static_cast<int64_t>(tokens.size());
  if (g_copy_period > 0 && size >= g_copy_period && (h >> 40) % 4 != 0) {
    base = tokens[size - g_copy_period];
  }
  const float jitter = static_cast<float>((h >> 20) % 1000) / 1000.0f;
  for (int32_t i = 0; i < std::max(count, 1); ++i) {
    out.emplace_back((base + i * 13) % kVocab, -0.05f - 0.4f * i - 0.3f * jitter * (i + 1));
  }
  return out;
}

class FakeExecutor {
 public:
  FakeExecutor(int64_t num_blocks, int64_t num_host_blocks, int64_t block_size)
      : block_size_(block_size),
        device_(num_blocks, std::vector<int32_t>(block_size, -1)),
        host_(num_host_blocks, std::vector<int32_t>(block_size, -1)) {}

  StepResult Apply(const StepPlan& plan) {
    for (const std::string& id : plan.finished_seq_ids) {
      EXPECT_EQ(seqs_.erase(id), 1u) << "finished unknown " << id;
    }
    for (const auto& [d, h] : plan.swap_out) host_.at(h) = device_.at(d);
    for (const auto& [h, d] : plan.swap_in) device_.at(d) = host_.at(h);
    for (const auto& [s, d] : plan.block_copies) device_.at(d) = device_.at(s);
    std::vector<std::pair<Seq*, int64_t>> pass;
    for (const NewSequence& in : plan.new_sequences) {
      EXPECT_FALSE(seqs_.contains(in.seq_id)) << in.seq_id;
      Seq& seq = seqs_[in.seq_id];
      seq = {.id = in.seq_id,
             .tokens = in.token_ids,
             .num_prompt = in.num_prompt_tokens,
             .computed = in.num_computed_tokens,
             .blocks = in.block_ids,
             .params = in.sampling_params,
             .seed = in.seed};
      if (in.num_scheduled_tokens > 0) pass.emplace_back(&seq, in.num_scheduled_tokens);
    }
    for (const CachedSequence& delta : plan.cached_sequences) {
      auto it = seqs_.find(delta.seq_id);
      EXPECT_NE(it, seqs_.end()) << delta.seq_id;
      if (it == seqs_.end()) continue;
      Seq& seq = it->second;
      for (const auto& [index, block] : delta.replaced_block_ids) seq.blocks.at(index) = block;
      seq.blocks.insert(seq.blocks.end(), delta.new_block_ids.begin(), delta.new_block_ids.end());
      if (!delta.replace_last_token_ids.empty()) {
        if (seq.last_sampled && seq.computed < static_cast<int64_t>(seq.tokens.size())) {
          seq.tokens.pop_back();
        }
        seq.tokens.insert(seq.tokens.end(), delta.replace_last_token_ids.begin(),
                          delta.replace_last_token_ids.end());
        seq.last_sampled = false;
      }
      // Drafts join the tokens until their pass verifies them; guarded ones only after the
      // guessed sample, else the pending sample is decoded alone.
      int64_t num_scheduled = delta.num_scheduled_tokens;
      if (delta.draft_guard_token_id >= 0) {
        EXPECT_TRUE(seq.last_sampled && !delta.draft_token_ids.empty()) << seq.id;
        if (seq.tokens.back() != delta.draft_guard_token_id) {
          num_scheduled -= static_cast<int64_t>(delta.draft_token_ids.size());
          ++num_guards_missed_;
        } else {
          ++num_guards_held_;
        }
      }
      const bool drafts = num_scheduled == delta.num_scheduled_tokens;
      seq.num_drafts = drafts ? static_cast<int64_t>(delta.draft_token_ids.size()) : 0;
      if (drafts) {
        seq.tokens.insert(seq.tokens.end(), delta.draft_token_ids.begin(),
                          delta.draft_token_ids.end());
      }
      // A draft model on the workers: the fake model's own choice, made wrong in one context
      // length of three.
      if (delta.num_worker_draft_tokens > 0) {
        EXPECT_EQ(delta.num_scheduled_tokens, 1 + delta.num_worker_draft_tokens) << seq.id;
        EXPECT_TRUE(delta.draft_token_ids.empty()) << seq.id;
      }
      for (int32_t i = 0; i < delta.num_worker_draft_tokens; ++i) {
        int32_t draft = Candidates(seq.tokens, seq.seed, seq.params.greedy(), 1)[0].first;
        if (seq.tokens.size() % 3 == 0) draft = (draft + 1) % kVocab;
        seq.tokens.push_back(draft);
        ++seq.num_drafts;
      }
      if (num_scheduled > 0) pass.emplace_back(&seq, num_scheduled);
    }
    StepResult result{.step_id = plan.step_id};
    std::map<std::string, size_t> out_index;
    for (int32_t step = 0; step < plan.num_steps && !pass.empty(); ++step) {
      std::map<int32_t, std::string> writer;
      std::vector<std::pair<Seq*, int64_t>> next;
      for (auto& [seq, n] : pass) {
        EXPECT_LE(seq->computed + n, static_cast<int64_t>(seq->tokens.size())) << seq->id;
        for (int64_t p = seq->computed; p < seq->computed + n; ++p) {
          const int32_t block = seq->blocks.at(p / block_size_);
          auto [w, fresh] = writer.emplace(block, seq->id);
          EXPECT_TRUE(fresh || w->second == seq->id)
              << "block " << block << " written by " << w->second << " and " << seq->id;
          device_.at(block).at(p % block_size_) = seq->tokens.at(p);
        }
        seq->computed += n;
      }
      for (auto& [seq, n] : pass) {
        if (seq->computed != static_cast<int64_t>(seq->tokens.size())) continue;
        // Draft tokens: each position samples as if the drafts before it were outputs; the
        // drafts equal to the samples are kept, then the first sample that differs.
        const int64_t num_drafts = std::exchange(seq->num_drafts, 0);
        std::vector<int32_t> drafts(seq->tokens.end() - num_drafts, seq->tokens.end());
        seq->tokens.resize(seq->tokens.size() - num_drafts);
        for (int64_t i = 0; i <= num_drafts; ++i) {
          // Read the whole context back from the sequence's own blocks.
          const int64_t context = static_cast<int64_t>(seq->tokens.size());
          std::vector<int32_t> read;
          for (int64_t p = 0; p < context; ++p) {
            read.push_back(device_.at(seq->blocks.at(p / block_size_)).at(p % block_size_));
          }
          EXPECT_EQ(read, seq->tokens) << "KV of " << seq->id << " is corrupt";
          const bool greedy = seq->params.greedy();
          auto cands = Candidates(read, seq->seed, greedy, std::max(seq->params.logprobs, 1));
          const int32_t token = cands[0].first;
          seq->tokens.push_back(token);
          seq->last_sampled = true;
          auto [it, added] = out_index.emplace(seq->id, result.outputs.size());
          if (added) result.outputs.push_back({.seq_id = seq->id});
          SequenceOutput& out = result.outputs[it->second];
          out.token_ids.push_back(token);
          if (seq->params.logprobs >= 0) {
            out.logprobs.push_back(cands[0].second);
            out.top_logprobs.push_back(cands);
          }
          const int64_t outputs = static_cast<int64_t>(seq->tokens.size()) - seq->num_prompt;
          bool stop = outputs >= seq->params.max_tokens;
          if (outputs >= seq->params.min_tokens) {
            stop |= std::count(seq->params.stop_token_ids.begin(), seq->params.stop_token_ids.end(),
                               token) > 0 ||
                    (!seq->params.ignore_eos && token == kEos);
          }
          if (i < num_drafts && token == drafts[i] && !stop) continue;
          seq->computed = static_cast<int64_t>(seq->tokens.size()) - 1;
          const bool room = static_cast<int64_t>(seq->tokens.size()) <=
                            static_cast<int64_t>(seq->blocks.size()) * block_size_;
          if (!stop && room) next.emplace_back(seq, 1);
          break;
        }
      }
      pass = std::move(next);
    }
    return result;
  }

  size_t num_sequences() const { return seqs_.size(); }
  int64_t num_guards_held() const { return num_guards_held_; }
  int64_t num_guards_missed() const { return num_guards_missed_; }

 private:
  struct Seq {
    std::string id;
    std::vector<int32_t> tokens;
    int64_t num_prompt = 0;
    int64_t computed = 0;
    std::vector<int32_t> blocks;
    SamplingParams params;
    uint64_t seed = 0;
    bool last_sampled = false;
    int64_t num_drafts = 0;  // draft tokens at the end of `tokens`, until verified
  };

  const int64_t block_size_;
  std::vector<std::vector<int32_t>> device_;
  std::vector<std::vector<int32_t>> host_;
  std::map<std::string, Seq> seqs_;
  int64_t num_guards_held_ = 0;
  int64_t num_guards_missed_ = 0;
};

struct Outcome {
  std::map<std::string, std::map<int32_t, std::vector<int32_t>>> outputs;  // request -> index
  std::map<std::string, FinishReason> reasons;                             // request finished
  int64_t peak_blocks = 0;
  int64_t num_steps = 0;
  SchedulerStats stats;
  int64_t num_guards_held = 0;  // guarded drafts the fake workers verified
  int64_t num_guards_missed = 0;
};

struct Harness {
  Harness(const EngineConfig& config, const ExecutorInfo& info)
      : scheduler(config, info, {kEos}),
        executor(info.num_device_blocks, info.num_host_blocks, info.block_size),
        num_blocks(info.num_device_blocks) {}

  void Absorb(const std::vector<SequenceUpdate>& updates, Outcome& outcome) {
    for (const SequenceUpdate& u : updates) {
      auto& tokens = outcome.outputs[u.request_id][u.index];
      tokens.insert(tokens.end(), u.new_token_ids.begin(), u.new_token_ids.end());
      if (u.request_finished) outcome.reasons[u.request_id] = *u.finish_reason;
    }
  }

  // Runs one plan (if any); with `async`, the result is applied one plan later, as the
  // EngineLoop does. Returns false when nothing could be scheduled and nothing is in flight.
  bool Step(bool async, Outcome& outcome, std::optional<ScheduledStep>* out_step = nullptr) {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    EXPECT_TRUE(scheduler.kv_cache().CheckInvariants().ok())
        << scheduler.kv_cache().CheckInvariants();
    const int64_t used = num_blocks - scheduler.kv_cache().NumFreeBlocks();
    outcome.peak_blocks = std::max(outcome.peak_blocks, used);
    if (step) {
      ++outcome.num_steps;
      pending.push_back(executor.Apply(step->plan));
    }
    if (out_step) *out_step = step;
    if (!pending.empty() && (!async || pending.size() > 1 || !step)) {
      Absorb(scheduler.ApplyResult(pending.front()), outcome);
      pending.pop_front();
      return true;
    }
    return step.has_value();
  }

  Scheduler scheduler;
  FakeExecutor executor;
  int64_t num_blocks;
  std::deque<StepResult> pending;
};

EngineRequest Req(std::string id, std::vector<int32_t> prompt, int32_t max_tokens,
                  uint64_t seed = 1) {
  EngineRequest r{.request_id = std::move(id), .prompt_token_ids = std::move(prompt), .seed = seed};
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

std::vector<int32_t> Tokens(int64_t n, uint64_t salt) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i)
    t.push_back(2 + static_cast<int32_t>(Mix(salt, i) % (kVocab - 2)));
  return t;
}

Outcome RunAll(const EngineConfig& config, const ExecutorInfo& info,
               const std::vector<EngineRequest>& requests, bool async = false) {
  Harness h(config, info);
  Outcome outcome;
  for (const EngineRequest& r : requests)
    EXPECT_TRUE(h.scheduler.AddRequest(r).ok()) << r.request_id;
  for (int guard = 0; guard < 100000 && h.scheduler.HasUnfinishedRequests(); ++guard) {
    if (!h.Step(async, outcome)) break;
  }
  EXPECT_FALSE(h.scheduler.HasUnfinishedRequests());
  EXPECT_EQ(h.scheduler.kv_cache().NumFreeBlocks(), info.num_device_blocks) << "blocks leaked";
  EXPECT_EQ(h.scheduler.kv_cache().NumSequences(), 0u);
  EXPECT_EQ(h.executor.num_sequences(), 0u) << "workers still hold sequences";
  outcome.stats = h.scheduler.stats();
  outcome.num_guards_held = h.executor.num_guards_held();
  outcome.num_guards_missed = h.executor.num_guards_missed();
  return outcome;
}

ExecutorInfo Info(int64_t blocks, int64_t host = 0, int64_t block_size = 4) {
  return {.num_device_blocks = blocks,
          .num_host_blocks = host,
          .block_size = block_size,
          .max_model_len = 512,
          .vocab_size = kVocab};
}

TEST(Scheduler, RunsABatchToCompletionWithoutLeaks) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(Req(absl::StrCat("r", i), Tokens(5 + i * 3, i), 10, i));
  Outcome out = RunAll({}, Info(256), reqs);
  for (const EngineRequest& r : reqs) {
    EXPECT_EQ(out.outputs[r.request_id][0].size(), 10u) << r.request_id;
    EXPECT_EQ(out.reasons[r.request_id], FinishReason::kLength);
  }
  EXPECT_EQ(Outcome(RunAll({}, Info(256), reqs, /*async=*/true)).outputs, out.outputs);
}

// KV cache groups (a global group and a local one with a window of 8, blocks of 4): a long
// generation holds its whole length in the global group and about its window in the local one,
// which kv_cache_usage shows; the outputs are those of two full-attention groups, whose workers
// read every block. With prefix caching and parallel samples (forks) nothing leaks either.
TEST(Scheduler, KvCacheGroupsFreeOnlyTheLocalGroupsBlocks) {
  ExecutorInfo global_local = Info(256);
  global_local.kv_group_windows = {0, 8};
  ExecutorInfo two_global = Info(256);
  two_global.kv_group_windows = {0, 0};
  const std::vector<EngineRequest> reqs = {Req("long", Tokens(8, 3), 60, 7)};
  const EngineConfig config{.max_num_batched_tokens = 4};
  const Outcome windowed = RunAll(config, global_local, reqs);
  const Outcome full = RunAll(config, two_global, reqs);
  EXPECT_EQ(windowed.outputs, full.outputs);
  // 68 tokens: 17 blocks per full group; the local group holds the window, a chunk of 4 and a
  // block of alignment at most: (8 + 4 + 4) / 4 = 4 blocks.
  EXPECT_EQ(full.peak_blocks, 2 * 17);
  EXPECT_LE(windowed.peak_blocks, 17 + 4);
  EXPECT_GE(windowed.peak_blocks, 17 + 2);

  Harness h(config, global_local);
  Outcome outcome;
  ASSERT_TRUE(h.scheduler.AddRequest(reqs[0]).ok());
  for (int i = 0; i < 40 && h.scheduler.HasUnfinishedRequests(); ++i) h.Step(false, outcome);
  const int64_t held = 256 - h.scheduler.kv_cache().NumFreeBlocks();
  EXPECT_LT(held, 2 * ((8 + 40 + 3) / 4));
  EXPECT_DOUBLE_EQ(h.scheduler.stats().kv_cache_usage, static_cast<double>(held) / 256);

  EngineRequest samples = Req("n3", Tokens(13, 5), 30, 9);
  samples.params.n = 3;
  const std::vector<EngineRequest> more = {samples, Req("a", Tokens(13, 5), 20, 4),
                                           Req("b", Tokens(17, 5), 20, 5)};
  EngineConfig caching = config;
  caching.enable_prefix_caching = true;
  EXPECT_EQ(RunAll(caching, global_local, more).outputs, RunAll(caching, two_global, more).outputs);
}

TEST(Scheduler, PrefixCacheSchedulesOnlyTheSuffix) {
  const std::vector<int32_t> prefix = Tokens(12, 77);  // 3 full blocks of 4
  std::vector<int32_t> a = prefix, b = prefix;
  for (int32_t t : Tokens(3, 1)) a.push_back(t);
  for (int32_t t : Tokens(3, 2)) b.push_back(t);
  EngineConfig config{.enable_prefix_caching = true};
  Harness h(config, Info(64));
  Outcome outcome;
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", a, 4)).ok());
  while (h.scheduler.HasUnfinishedRequests()) h.Step(false, outcome);
  ASSERT_TRUE(h.scheduler.AddRequest(Req("b", b, 4)).ok());
  std::optional<ScheduledStep> step;
  h.Step(false, outcome, &step);
  ASSERT_TRUE(step.has_value());
  ASSERT_EQ(step->sequences.size(), 1u);
  EXPECT_EQ(step->sequences[0].num_scheduled_tokens, 3);
  EXPECT_EQ(step->num_scheduled_tokens(), 3);
  EXPECT_EQ(step->plan.new_sequences[0].num_computed_tokens, 12);
  EXPECT_EQ(h.scheduler.stats().prefix_cache_hits, 12);
  while (h.scheduler.HasUnfinishedRequests()) h.Step(false, outcome);

  Outcome off = RunAll({}, Info(64), {Req("a", a, 4), Req("b", b, 4)});
  EXPECT_EQ(outcome.outputs, off.outputs);
}

TEST(Scheduler, ChunkedPrefillBudgetsGiveIdenticalOutputs) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 5; ++i)
    reqs.push_back(Req(absl::StrCat("r", i), Tokens(20 + 9 * i, i), 12, i));
  std::optional<Outcome> first;
  for (int64_t budget : {1, 7, 64}) {
    Outcome out = RunAll({.max_num_batched_tokens = budget}, Info(256), reqs);
    if (!first) {
      first = out;
    } else {
      EXPECT_EQ(out.outputs, first->outputs) << "budget " << budget;
    }
  }
}

TEST(Scheduler, ParallelSamplesShareThePromptBlocks) {
  EngineRequest one = Req("r", Tokens(64, 5), 8, 42);
  one.params.temperature = 1.0f;
  EngineRequest four = one;
  four.params.n = 4;
  const Outcome a = RunAll({}, Info(256), {one});
  const Outcome b = RunAll({}, Info(256), {four});
  const Outcome again = RunAll({}, Info(256), {four}, /*async=*/true);
  EXPECT_EQ(b.outputs, again.outputs) << "each sample is reproducible";
  ASSERT_EQ(b.outputs.at("r").size(), 4u);
  EXPECT_EQ(b.outputs.at("r").at(0), a.outputs.at("r").at(0)) << "sample 0 draws as n = 1";
  std::set<std::vector<int32_t>> distinct;
  for (const auto& [i, tokens] : b.outputs.at("r")) distinct.insert(tokens);
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_LT(b.peak_blocks * 2, a.peak_blocks * 4) << b.peak_blocks << " vs " << a.peak_blocks;
}

TEST(Scheduler, RejectsRequestsThatCanNeverFitAndRunsTheOthers) {
  Harness h({}, Info(8));
  EngineRequest too_long = Req("long", Tokens(500, 1), 20);
  absl::Status s = h.scheduler.AddRequest(too_long);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_model_len 512"));
  s = h.scheduler.AddRequest(Req("big", Tokens(40, 1), 10));  // 13 blocks > 8
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("whole cache holds 8"));
  EXPECT_EQ(h.scheduler.AddRequest(Req("empty", {}, 4)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(h.scheduler.AddRequest(Req("ok", Tokens(10, 2), 6)).ok());
  EXPECT_EQ(h.scheduler.AddRequest(Req("ok", Tokens(10, 2), 6)).code(),
            absl::StatusCode::kAlreadyExists);
  Outcome out;
  while (h.scheduler.HasUnfinishedRequests()) ASSERT_TRUE(h.Step(false, out));
  EXPECT_EQ(out.outputs["ok"][0].size(), 6u);
}

TEST(Scheduler, RefusesRequestsBeyondTheWaitingBound) {
  Harness h({.max_waiting_requests = 2}, Info(64));
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(4, 1), 2)).ok());
  ASSERT_TRUE(h.scheduler.AddRequest(Req("b", Tokens(4, 2), 2)).ok());
  EXPECT_EQ(h.scheduler.AddRequest(Req("c", Tokens(4, 3), 2)).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(Scheduler, QueuedPrefillTokensAreThePromptTokensNotScheduledYet) {
  Harness h({.max_num_batched_tokens = 8}, Info(64));
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(20, 1), 3)).ok());
  ASSERT_TRUE(h.scheduler.AddRequest(Req("b", Tokens(10, 2), 3)).ok());
  EXPECT_EQ(h.scheduler.stats().num_queued_prefill_tokens, 30);
  Outcome outcome;
  ASSERT_TRUE(h.Step(/*async=*/false, outcome));  // a's first chunk of 8
  EXPECT_EQ(h.scheduler.stats().num_queued_prefill_tokens, 22);
  for (int guard = 0; guard < 100 && h.scheduler.HasUnfinishedRequests(); ++guard) {
    if (!h.Step(/*async=*/false, outcome)) break;
    // Decoding sequences have their last sample left to compute, which is no prefill.
    if (outcome.outputs["b"][0].size() == 1) {
      EXPECT_EQ(h.scheduler.stats().num_queued_prefill_tokens, 0);
    }
  }
  EXPECT_EQ(outcome.outputs["b"][0].size(), 3u);
  EXPECT_EQ(h.scheduler.stats().num_queued_prefill_tokens, 0);
}

// A scheduled step's tokens count as computed at once; until its result is applied they are the
// work in flight, which the router adds to the queued prefill.
TEST(Scheduler, InFlightTokensAreTheStepsScheduledAndNotApplied) {
  Harness h({.max_num_batched_tokens = 8}, Info(64));
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(20, 1), 3)).ok());
  EXPECT_EQ(h.scheduler.stats().num_in_flight_steps, 0);
  EXPECT_EQ(h.scheduler.stats().num_in_flight_tokens, 0);
  std::optional<ScheduledStep> first = h.scheduler.Schedule();
  ASSERT_TRUE(first.has_value());
  SchedulerStats stats = h.scheduler.stats();
  EXPECT_EQ(stats.num_queued_prefill_tokens, 12);
  EXPECT_EQ(stats.num_in_flight_steps, 1);
  EXPECT_EQ(stats.num_in_flight_tokens, 8);
  std::optional<ScheduledStep> second = h.scheduler.Schedule();  // async: the next chunk
  ASSERT_TRUE(second.has_value());
  stats = h.scheduler.stats();
  EXPECT_EQ(stats.num_queued_prefill_tokens, 4);
  EXPECT_EQ(stats.num_in_flight_steps, 2);
  EXPECT_EQ(stats.num_in_flight_tokens, 16);
  h.scheduler.ApplyResult(h.executor.Apply(first->plan));
  stats = h.scheduler.stats();
  EXPECT_EQ(stats.num_in_flight_steps, 1);
  EXPECT_EQ(stats.num_in_flight_tokens, 8);
  h.scheduler.ApplyResult(h.executor.Apply(second->plan));
  EXPECT_EQ(h.scheduler.stats().num_in_flight_tokens, 0);
}

TEST(Scheduler, NamesEachRequestOnceWhenItIsFirstScheduled) {
  Harness h({.max_num_seqs = 2}, Info(64));
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(4, 1), 3)).ok());
  ASSERT_TRUE(h.scheduler.AddRequest(Req("b", Tokens(4, 2), 3)).ok());
  ASSERT_TRUE(h.scheduler.AddRequest(Req("c", Tokens(4, 3), 3)).ok());
  Outcome outcome;
  std::vector<std::string> started;
  for (int guard = 0; guard < 100 && h.scheduler.HasUnfinishedRequests(); ++guard) {
    std::optional<ScheduledStep> step;
    if (!h.Step(/*async=*/false, outcome, &step)) break;
    if (step.has_value()) {
      started.insert(started.end(), step->started_request_ids.begin(),
                     step->started_request_ids.end());
    }
  }
  // c waits for a slot; nobody is named twice.
  EXPECT_EQ(started, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Scheduler, PriorityPolicyServesLowerValuesFirst) {
  Harness h({.max_num_seqs = 1, .policy = SchedulingPolicy::kPriority}, Info(64));
  const std::vector<std::pair<std::string, int32_t>> reqs = {{"p5", 5}, {"p1", 1}, {"p3", 3}};
  for (const auto& [id, priority] : reqs) {
    EngineRequest r = Req(id, Tokens(6, priority), 3);
    r.priority = priority;
    ASSERT_TRUE(h.scheduler.AddRequest(r).ok());
  }
  std::vector<std::string> order;
  Outcome out;
  std::optional<ScheduledStep> step;
  while (h.scheduler.HasUnfinishedRequests()) {
    h.Step(false, out, &step);
    if (step) {
      for (const ScheduledSequence& s : step->sequences) {
        if (order.empty() || order.back() != s.request_id) order.push_back(s.request_id);
      }
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "p3", "p5"}));
}

// A tiny cache forces preemption; the outputs must equal an undisturbed run.
void ExpectPreemptionKeepsOutputs(PreemptionMode mode, bool async, int32_t num_steps) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r = Req(absl::StrCat("r", i), Tokens(6 + i, i), 24, 100 + i);
    r.params.temperature = 1.0f;
    reqs.push_back(r);
  }
  const Outcome reference = RunAll({}, Info(512), reqs);
  const Outcome tight = RunAll({.num_scheduler_steps = num_steps, .preemption_mode = mode},
                               Info(20, mode == PreemptionMode::kSwap ? 64 : 0), reqs, async);
  EXPECT_GT(tight.stats.num_preemptions, 0);
  EXPECT_EQ(tight.outputs, reference.outputs);
}

TEST(Scheduler, RecomputePreemptionKeepsOutputs) {
  ExpectPreemptionKeepsOutputs(PreemptionMode::kRecompute, false, 1);
  ExpectPreemptionKeepsOutputs(PreemptionMode::kRecompute, true, 1);
}

TEST(Scheduler, SwapPreemptionKeepsOutputs) {
  ExpectPreemptionKeepsOutputs(PreemptionMode::kSwap, false, 1);
  ExpectPreemptionKeepsOutputs(PreemptionMode::kSwap, true, 1);
}

// Speculative decoding on a fake model that mostly repeats its context: the outputs equal the
// run without it (greedy and seeded sampling, n = 2), under recompute and swap preemption, sync
// and async, with prefix caching; the fake executor reads every context back from the blocks,
// so a draft's KV slot committed or reused wrongly shows as corruption.
void ExpectSpeculationKeepsOutputs(PreemptionMode mode, bool async, int32_t k,
                                   int32_t disable_by_batch_size = 0,
                                   SpeculativeMethod method = SpeculativeMethod::kNgram,
                                   int64_t history_tokens = 0) {
  g_copy_period = 5;
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 10; ++i) {
    EngineRequest r = Req(absl::StrCat("r", i), Tokens(3 + 2 * i, i), 20 + 3 * i, 300 + i);
    if (i % 3 == 1) r.params.temperature = 1.0f;
    if (i % 4 == 2) {
      r.params.n = 2;
      r.params.temperature = 1.0f;
    }
    if (i % 5 == 3) r.params.max_tokens = 1;
    reqs.push_back(r);
  }
  const Outcome reference = RunAll({}, Info(512), reqs);
  EngineConfig config{.enable_prefix_caching = true, .preemption_mode = mode};
  config.speculative = {.method = method,
                        .num_speculative_tokens = k,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 1,
                        .prompt_lookup_history_tokens = history_tokens,
                        .disable_by_batch_size = disable_by_batch_size};
  if (method == SpeculativeMethod::kDraftModel) config.speculative.model = "fake-draft";
  const Outcome roomy = RunAll(config, Info(512), reqs, async);
  EXPECT_EQ(roomy.outputs, reference.outputs);
  EXPECT_GT(roomy.stats.spec_num_accepted_tokens, 0);
  EXPECT_LT(roomy.stats.spec_num_accepted_tokens, roomy.stats.spec_num_draft_tokens);
  // (Async runs also count the plans that only drop finished sequences.)
  if (!async) {
    EXPECT_LT(roomy.num_steps, reference.num_steps);
  }
  const Outcome tight =
      RunAll(config, Info(24, mode == PreemptionMode::kSwap ? 64 : 0), reqs, async);
  EXPECT_GT(tight.stats.num_preemptions, 0);
  EXPECT_EQ(tight.outputs, reference.outputs);
  g_copy_period = 0;
}

TEST(Scheduler, SpeculativeDecodingKeepsOutputsUnderRecompute) {
  for (int32_t k : {1, 3, 7}) {
    ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, false, k);
    ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, true, k);
  }
}

TEST(Scheduler, SpeculativeDecodingKeepsOutputsUnderSwap) {
  ExpectSpeculationKeepsOutputs(PreemptionMode::kSwap, false, 4);
  ExpectSpeculationKeepsOutputs(PreemptionMode::kSwap, true, 4);
}

TEST(Scheduler, SpeculativeDecodingDisabledByBatchSizeKeepsOutputs) {
  // Only the last 3 running sequences speculate; the switch happens mid-run, with sequences
  // pipelined before it and drafts in flight around it.
  ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, false, 4, 3);
  ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, true, 4, 3);
  ExpectSpeculationKeepsOutputs(PreemptionMode::kSwap, true, 4, 3);
}

TEST(Scheduler, SpeculationWithALookupHistoryKeepsOutputs) {
  // 40 tokens: finished sequences come and go (drops, compactions) while others look them up.
  for (int32_t k : {1, 3, 7}) {
    ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, false, k, 0,
                                  SpeculativeMethod::kNgram, 40);
    ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, true, k, 0, SpeculativeMethod::kNgram,
                                  40);
  }
  ExpectSpeculationKeepsOutputs(PreemptionMode::kSwap, true, 4, 3, SpeculativeMethod::kNgram, 1000);
}

// Requests that answer alike (the same prompt, greedy), one after another on a model that does
// not repeat itself: their own tokens predict little, the finished ones' nearly everything.
TEST(Scheduler, ALookupHistoryProposesWhatFinishedRequestsSaid) {
  g_copy_period = 0;
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    reqs.push_back(Req(absl::StrCat("r", i), Tokens(8, 99), 40, i));
    reqs.back().params.temperature = 0.0f;
  }
  const Outcome reference = RunAll({}, Info(256), reqs);
  EngineConfig config{.max_num_seqs = 1};
  config.speculative = {.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 8,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 2};
  for (const bool async : {false, true}) {
    const Outcome alone = RunAll(config, Info(256), reqs, async);
    config.speculative.prompt_lookup_history_tokens = 1 << 16;
    const Outcome with_history = RunAll(config, Info(256), reqs, async);
    config.speculative.prompt_lookup_history_tokens = 0;
    EXPECT_EQ(alone.outputs, reference.outputs);
    EXPECT_EQ(with_history.outputs, reference.outputs);
    // Requests 2 to 4 (117 outputs after their first) are nearly all drafts accepted.
    EXPECT_LT(alone.stats.spec_num_accepted_tokens, 20) << "async " << async;
    EXPECT_GT(with_history.stats.spec_num_accepted_tokens, 100) << "async " << async;
  }
}

// A sequence running alone, its token in flight, looks up with that token known (it waits)
// while it is within kLookupWaitTokens outputs of its last accepted draft, and guesses the token
// (no wait) further on. Beside another running sequence it always guesses.
TEST(Scheduler, ASequenceAloneWaitsToLookUpShortlyAfterAnAcceptedDraft) {
  g_copy_period = 5;
  EngineConfig config;
  config.speculative = {.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 4,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 2};
  for (const bool alone : {true, false}) {
    SCOPED_TRACE(alone ? "alone" : "beside another");
    Harness h(config, Info(512));
    ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(6, 5), 300, 3)).ok());
    if (!alone) {
      ASSERT_TRUE(h.scheduler.AddRequest(Req("b", Tokens(6, 6), 300, 4)).ok());
    }
    Outcome outcome;
    int64_t accepted_at = -1;  // a's outputs known when its drafts were last accepted
    int64_t guesses_near = 0;  // a's guarded lookups within kLookupWaitTokens of that
    int64_t guesses_far = 0;
    for (int step = 0; step < 5000 && h.scheduler.HasUnfinishedRequests(); ++step) {
      const int64_t known = static_cast<int64_t>(outcome.outputs["a"][0].size());
      // The result about to be applied: a's drafts accepted there?
      if (!h.pending.empty()) {
        for (const SequenceOutput& out : h.pending.front().outputs) {
          if (out.seq_id.rfind("a", 0) == 0 && out.token_ids.size() > 1) accepted_at = known;
        }
      }
      std::optional<ScheduledStep> planned;
      if (!h.Step(/*async=*/true, outcome, &planned)) break;
      if (!planned) continue;
      for (const CachedSequence& c : planned->plan.cached_sequences) {
        if (c.seq_id.rfind("a", 0) != 0 || c.draft_guard_token_id < 0) continue;
        const bool near =
            accepted_at >= 0 && known - accepted_at <= BatchingPolicy::kLookupWaitTokens;
        ++(near ? guesses_near : guesses_far);
      }
    }
    EXPECT_FALSE(h.scheduler.HasUnfinishedRequests());
    EXPECT_GT(h.scheduler.stats().spec_num_accepted_tokens, 0);
    EXPECT_GT(guesses_far, 0);
    if (alone) {
      EXPECT_EQ(guesses_near, 0);
    } else {
      EXPECT_GT(guesses_near, 0);
    }
  }
  g_copy_period = 0;
}

// A draft model proposing on the workers (the fake executor's own choices, one in three wrong).
// max_num_seqs bounds the running sequences also while a speculating sequence waits for its
// in-flight tokens and so sits a plan out: at 1 (batch 1) no other request starts beside it.
TEST(Scheduler, ASpeculatingSequenceHoldsItsSeatWhileItWaits) {
  g_copy_period = 5;
  EngineConfig config{.max_num_seqs = 1};
  config.speculative = {.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 4,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 1};
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 4; ++i) reqs.push_back(Req(absl::StrCat("r", i), Tokens(6, i), 20, i));
  const Outcome reference = RunAll({}, Info(256), reqs);
  for (const bool async : {false, true}) {
    Harness h(config, Info(256));
    for (const EngineRequest& r : reqs) ASSERT_TRUE(h.scheduler.AddRequest(r).ok());
    Outcome outcome;
    int64_t most_running = 0;
    for (int guard = 0; guard < 10000 && h.scheduler.HasUnfinishedRequests(); ++guard) {
      if (!h.Step(async, outcome)) break;
      most_running = std::max(most_running, h.scheduler.stats().num_running_seqs);
    }
    EXPECT_FALSE(h.scheduler.HasUnfinishedRequests());
    EXPECT_EQ(most_running, 1) << "async " << async;
    EXPECT_GT(h.scheduler.stats().spec_num_drafts, 0);
    EXPECT_EQ(outcome.outputs, reference.outputs) << "async " << async;
  }
  g_copy_period = 0;
}

TEST(Scheduler, SpeculativeDraftModelKeepsOutputs) {
  for (int32_t k : {1, 3, 7}) {
    ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, false, k, 0,
                                  SpeculativeMethod::kDraftModel);
  }
  ExpectSpeculationKeepsOutputs(PreemptionMode::kRecompute, true, 4, 0,
                                SpeculativeMethod::kDraftModel);
  ExpectSpeculationKeepsOutputs(PreemptionMode::kSwap, true, 4, 3, SpeculativeMethod::kDraftModel);
}

// The proposal length follows what verifications accept: doubled (to k) after a proposal
// accepted whole, one past the accepted ones otherwise. A failure shortens it to one; a second
// in a row backs off to pipelined decoding for 1, 2, 4, 4 ... steps, until a draft is accepted.
TEST(Scheduler, SpeculationLengthAndBackOffFollowAcceptance) {
  Sequence seq;
  seq.speculative_tokens = 3;
  const auto verify = [&seq](int64_t drafts, int64_t accepted) {
    BatchingPolicy::AdaptSpeculation(&seq, drafts, accepted, /*max_tokens=*/8);
  };
  verify(3, 3);
  EXPECT_EQ(seq.speculative_tokens, 6);
  verify(6, 6);
  EXPECT_EQ(seq.speculative_tokens, 8);
  verify(8, 2);
  EXPECT_EQ(seq.speculative_tokens, 3);
  verify(3, 0);
  EXPECT_EQ(seq.speculative_tokens, 1);
  EXPECT_EQ(seq.speculation_pipelined_steps, 0);  // the first failure does not back off
  for (const int32_t steps : {1, 2, 4, 4}) {
    verify(1, 0);
    EXPECT_EQ(seq.speculative_tokens, 1);
    EXPECT_EQ(seq.speculation_pipelined_steps, steps);
    seq.speculation_pipelined_steps = 0;  // as the batching policy counts them down
  }
  verify(1, 1);
  EXPECT_EQ(seq.speculative_tokens, 2);
  EXPECT_EQ(seq.speculation_backoff, 1);
  verify(2, 0);
  EXPECT_EQ(seq.speculation_pipelined_steps, 0);
  verify(1, 0);
  EXPECT_EQ(seq.speculation_pipelined_steps, 1);
}

// A pipelined sequence (its first output in flight) looks up over its known tokens, guessing
// the pending one: the drafts go behind that guess as a guard. Once the pending token is known
// the guard resolves: a right guess keeps the sequence waiting for its verification (and, to
// keep the batch whole, the other speculating sequence with it); a wrong one makes the step in
// flight a plain decode on the workers and in the scheduler (its dropped drafts no longer count
// as tokens in flight, nor as the step's computed tokens), and both run on at once.
TEST(Scheduler, APipelinedLookupProposesBehindAGuessOfItsPendingToken) {
  g_copy_period = 3;  // the fake model mostly continues 11 12 13 11 12 with 13
  EngineConfig config;
  config.speculative = {.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 4,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 2};
  int held = 0;
  int missed = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    SCOPED_TRACE(seed);
    Harness h(config, Info(64));
    ASSERT_TRUE(h.scheduler.AddRequest(Req("a", {11, 12, 13, 11, 12}, 8, seed)).ok());
    ASSERT_TRUE(h.scheduler.AddRequest(Req("b", {20, 21, 22, 23, 24}, 8, seed)).ok());
    std::optional<ScheduledStep> prefill = h.scheduler.Schedule();
    ASSERT_TRUE(prefill.has_value());
    std::optional<ScheduledStep> guarded = h.scheduler.Schedule();  // no wait for the lookup
    ASSERT_TRUE(guarded.has_value());
    ASSERT_EQ(guarded->plan.cached_sequences.size(), 2u);
    const CachedSequence& a = guarded->plan.cached_sequences[0];
    EXPECT_EQ(a.draft_guard_token_id, 13);
    EXPECT_EQ(a.draft_token_ids, (std::vector<int32_t>{11, 12}));
    EXPECT_EQ(a.num_scheduled_tokens, 3);
    EXPECT_EQ(guarded->plan.cached_sequences[1].draft_guard_token_id, -1);  // b found nothing
    EXPECT_TRUE(guarded->plan.cached_sequences[1].draft_token_ids.empty());

    const StepResult first = h.executor.Apply(prefill->plan);
    const StepResult second = h.executor.Apply(guarded->plan);
    ASSERT_EQ(first.outputs.size(), 2u);
    h.scheduler.ApplyResult(first);
    const bool holds = first.outputs[0].token_ids.at(0) == 13;
    // In flight: the guarded step, a's token and drafts (1 + 2) and b's token, or a's alone.
    EXPECT_EQ(h.scheduler.stats().num_in_flight_tokens, holds ? 4 : 2);
    std::optional<ScheduledStep> next = h.scheduler.Schedule();
    if (holds) {
      ++held;
      EXPECT_FALSE(next.has_value()) << "a waits for its verification, b with it";
    } else {
      ++missed;
      ASSERT_TRUE(next.has_value()) << "a's step in flight decodes one token now";
      EXPECT_EQ(next->sequences.size(), 2u);
    }
    EXPECT_EQ(h.executor.num_guards_held(), holds ? 1 : 0);
    EXPECT_EQ(h.executor.num_guards_missed(), holds ? 0 : 1);
    h.scheduler.ApplyResult(second);
    EXPECT_EQ(h.scheduler.last_applied_dropped_draft_tokens(), holds ? 0 : 2);
    const SchedulerStats stats = h.scheduler.stats();
    EXPECT_EQ(stats.spec_num_drafts, holds ? 1 : 0) << "a wrong guess is no verification";
    EXPECT_TRUE(h.scheduler.kv_cache().CheckInvariants().ok());
  }
  EXPECT_GT(held, 0);
  EXPECT_GT(missed, 0);
  g_copy_period = 0;
}

// The same outputs with prompt_lookup_min 2 as without speculation, async and sync (async, the
// pipelined lookups guess tokens, some right and some wrong).
TEST(Scheduler, SpeculationWithALongerMinimumKeepsOutputs) {
  g_copy_period = 5;
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r = Req(absl::StrCat("r", i), Tokens(3 + 2 * i, i), 30, 400 + i);
    if (i % 3 == 1) r.params.temperature = 1.0f;
    reqs.push_back(r);
  }
  const Outcome reference = RunAll({}, Info(512), reqs);
  EngineConfig config;
  config.speculative = {.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 4,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 2};
  for (const bool async : {false, true}) {
    const Outcome out = RunAll(config, Info(512), reqs, async);
    EXPECT_EQ(out.outputs, reference.outputs) << "async " << async;
    EXPECT_GT(out.stats.spec_num_accepted_tokens, 0) << "async " << async;
    if (async) {
      EXPECT_GT(out.num_guards_held, 0);
      EXPECT_GT(out.num_guards_missed, 0);
    }
  }
  g_copy_period = 0;
}

class SpeculativeAborts : public ::testing::TestWithParam<SpeculativeMethod> {};

TEST_P(SpeculativeAborts, LeakNothing) {
  g_copy_period = 3;
  EngineConfig config{.enable_prefix_caching = true};
  config.speculative = {.method = GetParam(), .num_speculative_tokens = 5, .prompt_lookup_min = 1};
  if (GetParam() == SpeculativeMethod::kDraftModel) config.speculative.model = "fake-draft";
  Harness h(config, Info(24));
  Outcome outcome;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(h.scheduler.AddRequest(Req(absl::StrCat("a", i), Tokens(4 + i, i), 40, i)).ok());
  }
  for (int step = 0; step < 5000 && h.scheduler.HasUnfinishedRequests(); ++step) {
    if (step % 7 == 3) h.scheduler.AbortRequest(absl::StrCat("a", (step / 7) % 8));
    if (!h.Step(/*async=*/true, outcome)) break;
  }
  while (!h.pending.empty()) {
    h.Absorb(h.scheduler.ApplyResult(h.pending.front()), outcome);
    h.pending.pop_front();
  }
  for (int guard = 0; guard < 10 && h.scheduler.Schedule(); ++guard) {
  }
  EXPECT_FALSE(h.scheduler.HasUnfinishedRequests());
  EXPECT_EQ(h.scheduler.kv_cache().NumFreeBlocks(), 24) << "blocks leaked";
  EXPECT_EQ(h.scheduler.kv_cache().NumSequences(), 0u);
  EXPECT_GT(h.scheduler.stats().spec_num_drafts, 0);
  g_copy_period = 0;
}

INSTANTIATE_TEST_SUITE_P(Methods, SpeculativeAborts,
                         ::testing::Values(SpeculativeMethod::kNgram,
                                           SpeculativeMethod::kDraftModel),
                         [](const auto& info) {
                           return info.param == SpeculativeMethod::kNgram ? "ngram" : "draft_model";
                         });

TEST(Scheduler, MultiStepKeepsOutputs) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r = Req(absl::StrCat("r", i), Tokens(6 + i, i), 13 + i, i);
    r.params.ignore_eos = false;
    reqs.push_back(r);
  }
  const Outcome one = RunAll({}, Info(256), reqs);
  const Outcome four = RunAll({.num_scheduler_steps = 4}, Info(256), reqs);
  const Outcome four_async = RunAll({.num_scheduler_steps = 4}, Info(256), reqs, true);
  EXPECT_EQ(four.outputs, one.outputs);
  EXPECT_EQ(four_async.outputs, one.outputs);
  EXPECT_EQ(four.reasons, one.reasons);
  EXPECT_LT(four.num_steps, one.num_steps);
}

TEST(Scheduler, StaticBatchingGivesTheSameOutputs) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(Req(absl::StrCat("r", i), Tokens(6 + i, i), 5 + i, i));
  const Outcome continuous = RunAll({}, Info(256), reqs);
  const Outcome fixed =
      RunAll({.max_num_seqs = 4, .scheduler = SchedulerKind::kStatic}, Info(256), reqs);
  EXPECT_EQ(fixed.outputs, continuous.outputs);
}

TEST(Scheduler, AbortAndStopStringFinishFreeTheirBlocks) {
  Harness h({}, Info(64));
  ASSERT_TRUE(h.scheduler.AddRequest(Req("a", Tokens(9, 1), 30)).ok());
  ASSERT_TRUE(h.scheduler.AddRequest(Req("b", Tokens(9, 2), 30)).ok());
  Outcome out;
  for (int i = 0; i < 4; ++i) h.Step(true, out);
  h.scheduler.AbortRequest("a");
  h.scheduler.FinishSequence("b#0", FinishReason::kStop);
  for (int i = 0; i < 10 && h.scheduler.HasUnfinishedRequests(); ++i) h.Step(true, out);
  EXPECT_FALSE(h.scheduler.HasUnfinishedRequests());
  EXPECT_EQ(h.scheduler.kv_cache().NumFreeBlocks(), 64);
  EXPECT_EQ(h.executor.num_sequences(), 0u);
}

TEST(Scheduler, ResumedRequestContinuesWhereTheOriginalWas) {
  EngineRequest a = Req("a", Tokens(10, 3), 20, /*seed=*/9);
  a.params.temperature = 1.0f;
  const std::vector<int32_t> full = RunAll({}, Info(256), {a}).outputs.at("a").at(0);
  ASSERT_EQ(full.size(), 20u);
  for (size_t k : {1, 4, 9, 19}) {
    for (bool caching : {false, true}) {
      SCOPED_TRACE(absl::StrCat("k ", k, ", caching ", caching));
      EngineRequest resumed = a;
      resumed.resumed_output_token_ids.assign(full.begin(), full.begin() + k);
      const Outcome out = RunAll({.max_num_batched_tokens = 5, .enable_prefix_caching = caching},
                                 Info(256), {resumed});
      EXPECT_EQ(out.outputs.at("a").at(0), std::vector<int32_t>(full.begin() + k, full.end()));
      EXPECT_EQ(out.reasons.at("a"), FinishReason::kLength);
    }
  }
}

TEST(Scheduler, ResumedRequestIsPrefilledWithItsOutputsAndHitsTheirCachedBlocks) {
  Harness h({.enable_prefix_caching = true}, Info(64));
  EngineRequest a = Req("a", Tokens(10, 3), 20);
  a.params.logprobs = 0;
  Outcome first;
  ASSERT_TRUE(h.scheduler.AddRequest(a).ok());
  while (h.scheduler.HasUnfinishedRequests()) h.Step(false, first);
  const std::vector<int32_t>& full = first.outputs.at("a").at(0);

  EngineRequest b = a;
  b.request_id = "b";
  b.resumed_output_token_ids.assign(full.begin(), full.begin() + 16);
  b.resumed_cumulative_logprob = -3.5;
  ASSERT_TRUE(h.scheduler.AddRequest(b).ok());
  std::optional<ScheduledStep> step = h.scheduler.Schedule();
  ASSERT_TRUE(step.has_value());
  ASSERT_EQ(step->plan.new_sequences.size(), 1u);
  const NewSequence& seq = step->plan.new_sequences[0];
  EXPECT_EQ(seq.num_prompt_tokens, 10);
  EXPECT_EQ(seq.token_ids.size(), 26u);
  EXPECT_EQ(seq.num_computed_tokens, 24) << "6 cached blocks of 4; the last token is computed";
  EXPECT_EQ(seq.num_scheduled_tokens, 2);
  const std::vector<SequenceUpdate> updates = h.scheduler.ApplyResult(h.executor.Apply(step->plan));
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].new_token_ids, std::vector<int32_t>{full[16]});
  EXPECT_EQ(updates[0].num_output_tokens, 17) << "resumed outputs count";
  EXPECT_NEAR(updates[0].cumulative_logprob, -3.5 + updates[0].logprobs.at(0), 1e-9);
  Outcome rest;
  while (h.scheduler.HasUnfinishedRequests()) h.Step(false, rest);
  EXPECT_EQ(rest.outputs.at("b").at(0), std::vector<int32_t>(full.begin() + 17, full.end()));
}

TEST(Scheduler, RejectsResumedOutputsThatCannotContinue) {
  Harness h({}, Info(256));
  auto resumed = [](std::vector<int32_t> outputs, int32_t max_tokens = 8) {
    EngineRequest r = Req("r", Tokens(10, 1), max_tokens);
    r.resumed_output_token_ids = std::move(outputs);
    return r;
  };
  auto expect_invalid = [&h](const EngineRequest& r, const std::string& what) {
    const absl::Status s = h.scheduler.AddRequest(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(what));
  };
  EngineRequest n2 = resumed({5});
  n2.params.n = 2;
  expect_invalid(n2, "n == 1");
  EngineRequest beam = resumed({5});
  beam.params.beam_width = 2;
  beam.params.temperature = 0;
  expect_invalid(beam, "n == 1");
  expect_invalid(resumed(std::vector<int32_t>(8, 5)), "max_tokens 8");
  expect_invalid(resumed(std::vector<int32_t>(502, 5), 503), "max_model_len 512");
  expect_invalid(resumed({5, kVocab}), "outside the vocabulary");
  EngineRequest eos = resumed({5, kEos, 6});
  eos.params.ignore_eos = false;
  expect_invalid(eos, "is a stop token");
  EngineRequest stop_id = resumed({5, 7});
  stop_id.params.stop_token_ids = {7};
  expect_invalid(stop_id, "is a stop token");
  eos.params.min_tokens = 3;  // EOS at output 2 could not stop it
  EXPECT_TRUE(h.scheduler.AddRequest(eos).ok());
}

TEST(Scheduler, AFinishedRequestsIdIsFreeBeforeItsBlocksAreReleased) {
  for (bool async : {false, true}) {
    SCOPED_TRACE(async);
    Harness h({}, Info(64));
    Outcome first;
    ASSERT_TRUE(h.scheduler.AddRequest(Req("r", Tokens(9, 1), 3)).ok());
    while (first.reasons.empty()) ASSERT_TRUE(h.Step(async, first));
    EXPECT_LT(h.scheduler.kv_cache().NumFreeBlocks(), 64) << "released at the next plan";
    ASSERT_TRUE(h.scheduler.AddRequest(Req("r", Tokens(9, 2), 5)).ok());
    EXPECT_EQ(h.scheduler.AddRequest(Req("r", Tokens(9, 2), 5)).code(),
              absl::StatusCode::kAlreadyExists);
    // The old r#0 leaves the workers in the plan that brings the new one.
    Outcome second;
    while (h.scheduler.HasUnfinishedRequests()) h.Step(async, second);
    EXPECT_EQ(second.outputs.at("r").at(0),
              RunAll({}, Info(64), {Req("r", Tokens(9, 2), 5)}).outputs.at("r").at(0));
    EXPECT_EQ(h.scheduler.kv_cache().NumFreeBlocks(), 64);
    EXPECT_EQ(h.executor.num_sequences(), 0u);
  }
}

// A plain, unpaged beam search over the same fake model (vLLM V0 rules).
std::vector<std::vector<int32_t>> ReferenceBeamSearch(const std::vector<int32_t>& prompt,
                                                      const SamplingParams& p) {
  struct Beam {
    std::vector<int32_t> tokens;
    double cum = 0;
    int32_t order = 0;
  };
  std::vector<Beam> running = {{prompt, 0, 0}};
  std::vector<std::pair<double, std::vector<int32_t>>> finished;
  const size_t width = p.beam_width;
  int32_t next_order = 1;
  for (;;) {
    struct Cand {
      size_t beam;
      int32_t token;
      double cum;
    };
    std::vector<Cand> cands;
    for (size_t b = 0; b < running.size(); ++b) {
      for (auto [t, lp] : Candidates(running[b].tokens, 0, true, 2 * p.beam_width)) {
        cands.push_back({b, t, running[b].cum + lp});
      }
    }
    std::stable_sort(cands.begin(), cands.end(), [&](const Cand& a, const Cand& b) {
      if (a.cum != b.cum) return a.cum > b.cum;
      if (running[a.beam].order != running[b.beam].order) {
        return running[a.beam].order < running[b.beam].order;
      }
      return a.token < b.token;
    });
    if (cands.size() > 2 * width) cands.resize(2 * width);
    std::vector<Beam> next;
    size_t selected = 0;
    for (size_t rank = 0; rank < cands.size() && selected < width; ++rank) {
      Beam nb = running[cands[rank].beam];
      nb.tokens.push_back(cands[rank].token);
      nb.cum = cands[rank].cum;
      const int64_t len = static_cast<int64_t>(nb.tokens.size() - prompt.size());
      std::vector<int32_t> out(nb.tokens.begin() + prompt.size(), nb.tokens.end());
      if (cands[rank].token == kEos) {
        if (rank < width)
          finished.push_back({BeamSearch::Score(nb.cum, len - 1, p.length_penalty), out});
        continue;
      }
      ++selected;
      if (len >= p.max_tokens) {
        finished.push_back({BeamSearch::Score(nb.cum, len, p.length_penalty), out});
        continue;
      }
      next.push_back(nb);
    }
    // Continuing beams keep their parent's order; forks get new ones, as the scheduler does.
    std::set<int32_t> seen;
    for (Beam& b : next) {
      if (!seen.insert(b.order).second) b.order = next_order++;
    }
    bool done = next.empty();
    if (!done && finished.size() >= width) {
      std::vector<double> scores;
      for (auto& f : finished) scores.push_back(f.first);
      std::sort(scores.rbegin(), scores.rend());
      double best = -1e300;
      for (const Beam& b : next) {
        best = std::max(
            best, BeamSearch::Score(b.cum, b.tokens.size() - prompt.size(), p.length_penalty));
      }
      done = scores[width - 1] >= best;
    }
    if (done) break;
    std::stable_sort(next.begin(), next.end(),
                     [](const Beam& a, const Beam& b) { return a.order < b.order; });
    running = next;
  }
  std::stable_sort(finished.begin(), finished.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::vector<int32_t>> best;
  for (size_t i = 0; i < finished.size() && i < static_cast<size_t>(p.n); ++i) {
    best.push_back(finished[i].second);
  }
  return best;
}

TEST(Scheduler, BeamSearchEqualsAPlainBeamSearch) {
  for (int32_t width : {2, 4}) {
    EngineRequest r = Req("beam", Tokens(10, width), 12);
    r.params.ignore_eos = false;
    r.params.beam_width = width;
    r.params.n = 2;
    r.params.length_penalty = 0.8f;
    const Outcome out = RunAll({}, Info(256), {r});
    const auto expected = ReferenceBeamSearch(r.prompt_token_ids, r.params);
    ASSERT_EQ(out.outputs.at("beam").size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(out.outputs.at("beam").at(i), expected[i]) << "width " << width << " rank " << i;
    }
    // A tiny cache (preemption) and async scheduling do not change the result.
    const Outcome tight = RunAll({}, Info(12), {r}, /*async=*/true);
    EXPECT_EQ(tight.outputs, out.outputs) << "width " << width;
  }
}

// Random workloads: arrivals, lengths, aborts, n, beam search, shared prefixes, tiny caches.
void RandomWorkload(uint64_t seed, const EngineConfig& config, const ExecutorInfo& info,
                    bool async) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const std::vector<int32_t> shared = Tokens(16, seed);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 60; ++i) {
    std::vector<int32_t> prompt;
    if (uniform(0, 2) == 0) prompt.assign(shared.begin(), shared.begin() + uniform(4, 16));
    for (int32_t t : Tokens(uniform(1, 30), seed * 1000 + i)) prompt.push_back(t);
    EngineRequest r =
        Req(absl::StrCat("r", i), prompt, static_cast<int32_t>(uniform(1, 40)), seed + i);
    r.params.temperature = 1.0f;
    r.params.ignore_eos = uniform(0, 1) == 0;
    r.priority = static_cast<int32_t>(uniform(0, 3));
    const int64_t kind = uniform(0, 9);
    if (kind == 0 && config.scheduler != SchedulerKind::kStatic) {
      r.params.beam_width = static_cast<int32_t>(uniform(2, 3));
      r.params.n = static_cast<int32_t>(uniform(1, r.params.beam_width));
    } else if (kind <= 2) {
      r.params.n = static_cast<int32_t>(uniform(2, 4));
    }
    reqs.push_back(r);
  }
  Harness h(config, info);
  Outcome out;
  std::set<std::string> aborted;
  size_t next = 0;
  for (int guard = 0; guard < 20000; ++guard) {
    while (next < reqs.size() && uniform(0, 2) == 0) {
      ASSERT_TRUE(h.scheduler.AddRequest(reqs[next]).ok()) << reqs[next].request_id;
      ++next;
    }
    if (next > 0 && uniform(0, 40) == 0) {
      const std::string id = reqs[uniform(0, next - 1)].request_id;
      if (!out.reasons.contains(id)) aborted.insert(id);
      h.scheduler.AbortRequest(id);
    }
    if (next == reqs.size() && !h.scheduler.HasUnfinishedRequests()) break;
    h.Step(async, out);
    if (::testing::Test::HasFailure()) return;
  }
  ASSERT_FALSE(h.scheduler.HasUnfinishedRequests());
  EXPECT_EQ(h.scheduler.kv_cache().NumFreeBlocks(), info.num_device_blocks) << "blocks leaked";
  EXPECT_EQ(h.executor.num_sequences(), 0u);
  // Every request finished or was aborted; the finished ones match an undisturbed run.
  std::vector<EngineRequest> kept;
  for (const EngineRequest& r : reqs) {
    if (aborted.contains(r.request_id)) continue;
    EXPECT_TRUE(out.reasons.contains(r.request_id)) << r.request_id;
    kept.push_back(r);
  }
  const Outcome reference = RunAll({}, Info(4096, 0, info.block_size), kept);
  for (const EngineRequest& r : kept) {
    EXPECT_EQ(out.outputs[r.request_id], reference.outputs.at(r.request_id)) << r.request_id;
  }
}

TEST(Scheduler, RandomWorkloadsKeepInvariantsAndOutputs) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    RandomWorkload(seed, {.max_num_seqs = 16, .max_num_batched_tokens = 32}, Info(40), false);
    RandomWorkload(seed,
                   {.max_num_seqs = 8,
                    .max_num_batched_tokens = 16,
                    .num_scheduler_steps = 3,
                    .enable_prefix_caching = true},
                   Info(40), true);
    RandomWorkload(seed,
                   {.max_num_batched_tokens = 24,
                    .enable_prefix_caching = true,
                    .preemption_mode = PreemptionMode::kSwap,
                    .policy = SchedulingPolicy::kPriority},
                   Info(32, 48), true);
    RandomWorkload(seed, {.max_num_seqs = 6, .scheduler = SchedulerKind::kStatic}, Info(96), false);
  }
}

}  // namespace
}  // namespace pagoda
