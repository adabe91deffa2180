// The InProcessExecutor on the real stories260K model, driven by hand-written StepPlans (a tiny
// engine in the test allocates blocks from a counter): one continuous batch, chunked prefill,
// multi-step, recompute and swap preemption, forks with block copies, engine-chosen tokens,
// pipelined submission, and invalid plans — all against golden_greedy.jsonl.
#include "worker/in_process_executor.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/stories260k.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

using testing::GoldenCase;
using testing::Stories260KDir;

constexpr int64_t kBlockSize = 4;  // small, so sequences cross many block boundaries
constexpr int64_t kNumDeviceBlocks = 1024;
constexpr int64_t kNumHostBlocks = 64;
constexpr int64_t kMaxTokens = 64;

SamplingParams Greedy(int32_t max_tokens = kMaxTokens) {
  SamplingParams params;
  params.temperature = 0;
  params.ignore_eos = true;
  params.max_tokens = max_tokens;
  return params;
}

// The engine's view of one sequence.
struct TrackedSeq {
  std::string id;
  std::vector<int32_t> tokens;  // prompt + outputs received
  int64_t num_prompt = 0;
  int64_t computed = 0;  // tokens whose K/V the worker holds
  std::vector<int32_t> blocks;
  SamplingParams params = Greedy();
  bool on_worker = false;
  int64_t scheduled_now = 0;      // tokens scheduled in the plan in flight
  int64_t drafts_now = 0;         // of which draft tokens (speculative decoding)
  bool guard_missed_now = false;  // its guarded drafts follow another token: one sample back

  std::vector<int32_t> outputs() const {
    return std::vector<int32_t>(tokens.begin() + num_prompt, tokens.end());
  }
  int32_t eos = -1;  // without ignore_eos: a sampled EOS finishes the sequence
  bool done() const {
    return static_cast<int64_t>(outputs().size()) >= params.max_tokens ||
           (!params.ignore_eos && static_cast<int64_t>(tokens.size()) > num_prompt &&
            tokens.back() == eos);
  }
  bool decoding() const {
    return computed >= num_prompt && static_cast<int64_t>(tokens.size()) - computed == 1;
  }
};

// Draft tokens for a decoding sequence.
using Proposer = std::function<std::vector<int32_t>(const TrackedSeq&)>;
// The guard the drafts go behind (CachedSequence::draft_guard_token_id); -1 for none.
using Guesser = std::function<int32_t(const TrackedSeq&)>;

TrackedSeq FromGolden(const std::string& id, const GoldenCase& g) {
  return {
      .id = id, .tokens = g.prompt_ids, .num_prompt = static_cast<int64_t>(g.prompt_ids.size())};
}

class InProcessExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    goldens_ = new std::vector<GoldenCase>(testing::LoadStories260KGoldens());
    ASSERT_EQ(goldens_->size(), 4u) << "goldens in " << testing::Stories260KSourceDir();
  }
  static void TearDownTestSuite() { delete goldens_; }

  void SetUp() override {
    auto config = ModelConfig::FromDirectory(Stories260KDir());
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto weights = LoadModelWeights(config_, Stories260KDir());
    ASSERT_TRUE(weights.ok()) << weights.status();
    auto executor = InProcessExecutor::Create(config_, std::move(*weights),
                                              {.num_device_blocks = kNumDeviceBlocks,
                                               .num_host_blocks = kNumHostBlocks,
                                               .block_size = kBlockSize});
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
  }

  const GoldenCase& golden(size_t i) const { return (*goldens_)[i]; }

  std::vector<int32_t> Alloc(int64_t n) {
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < n; ++i) ids.push_back(next_block_++);
    EXPECT_LE(next_block_, kNumDeviceBlocks) << "the test ran out of blocks";
    return ids;
  }

  // Grows seq's block table to hold `num_tokens` positions; returns the new blocks.
  std::vector<int32_t> Reserve(TrackedSeq& seq, int64_t num_tokens) {
    const int64_t needed = (num_tokens + kBlockSize - 1) / kBlockSize;
    const int64_t have = static_cast<int64_t>(seq.blocks.size());
    std::vector<int32_t> fresh = Alloc(std::max<int64_t>(0, needed - have));
    seq.blocks.insert(seq.blocks.end(), fresh.begin(), fresh.end());
    return fresh;
  }

  // Adds seq's work for this step to the plan: a prefill chunk of at most `chunk` tokens, or
  // one decode token with blocks reserved for `num_steps` passes.
  void Schedule(TrackedSeq& seq, int64_t chunk, int32_t num_steps, StepPlan& plan) {
    const int64_t uncomputed = static_cast<int64_t>(seq.tokens.size()) - seq.computed;
    const int64_t n = std::min(uncomputed, chunk);
    const int64_t remaining = seq.params.max_tokens - static_cast<int64_t>(seq.outputs().size());
    const int64_t span = num_steps > 1 ? std::min<int64_t>(num_steps, remaining) : n;
    std::vector<int32_t> fresh = Reserve(seq, seq.computed + span);
    seq.scheduled_now = n;
    if (!seq.on_worker) {
      plan.new_sequences.push_back({.seq_id = seq.id,
                                    .token_ids = seq.tokens,
                                    .num_prompt_tokens = seq.num_prompt,
                                    .num_computed_tokens = seq.computed,
                                    .num_scheduled_tokens = n,
                                    .block_ids = seq.blocks,
                                    .sampling_params = seq.params});
      seq.on_worker = true;
    } else {
      plan.cached_sequences.push_back(
          {.seq_id = seq.id, .new_block_ids = fresh, .num_scheduled_tokens = n});
    }
  }

  // Folds a step's result into the tracked sequences of its plan.
  void Absorb(const StepResult& result, const std::vector<TrackedSeq*>& seqs) {
    std::map<std::string, const SequenceOutput*> by_id;
    for (const SequenceOutput& out : result.outputs) by_id[out.seq_id] = &out;
    for (TrackedSeq* seq : seqs) {
      if (seq->scheduled_now == 0) continue;
      // Drafts count as computed only when accepted (returned among the samples).
      seq->computed += seq->scheduled_now - seq->drafts_now;
      const int64_t drafts = std::exchange(seq->drafts_now, 0);
      seq->scheduled_now = 0;
      const bool reaches_end = seq->computed == static_cast<int64_t>(seq->tokens.size());
      auto it = by_id.find(seq->id);
      ASSERT_EQ(it != by_id.end(), reaches_end)
          << seq->id << " samples exactly when its prompt is computed";
      if (it == by_id.end()) continue;
      const std::vector<int32_t>& sampled = it->second->token_ids;
      ASSERT_FALSE(sampled.empty());
      if (drafts > 0) {
        ASSERT_LE(static_cast<int64_t>(sampled.size()), drafts + 1) << seq->id;
      }
      if (std::exchange(seq->guard_missed_now, false)) {
        ASSERT_EQ(sampled.size(), 1u) << seq->id << ": its drafts were dropped";
      }
      // Passes after the first computed the samples before the last.
      seq->computed += static_cast<int64_t>(sampled.size()) - 1;
      seq->tokens.insert(seq->tokens.end(), sampled.begin(), sampled.end());
    }
  }

  StepResult RunPlan(StepPlan plan, const std::vector<TrackedSeq*>& seqs) {
    plan.step_id = step_id_++;
    auto result = executor_->Submit(std::move(plan)).get();
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    Absorb(*result, seqs);
    return *result;
  }

  // One step for every unfinished sequence; finished ones are dropped from the worker.
  void Step(const std::vector<TrackedSeq*>& seqs, int64_t chunk, int32_t num_steps) {
    StepPlan plan;
    bool all_decoding = true;
    for (TrackedSeq* seq : seqs) {
      if (!seq->done()) all_decoding &= seq->on_worker && seq->decoding();
    }
    for (TrackedSeq* seq : seqs) {
      if (seq->done()) {
        if (seq->on_worker) plan.finished_seq_ids.push_back(seq->id);
        seq->on_worker = false;
        continue;
      }
      Schedule(*seq, chunk, all_decoding ? num_steps : 1, plan);
    }
    plan.num_steps = all_decoding ? num_steps : 1;
    RunPlan(std::move(plan), seqs);
  }

  // One step in which every decoding sequence carries the drafts `propose` gives it, behind the
  // guard `guess` gives (if any).
  StepResult StepWithDrafts(const std::vector<TrackedSeq*>& seqs, const Proposer& propose,
                            const Guesser& guess = nullptr) {
    StepPlan plan;
    for (TrackedSeq* seq : seqs) {
      if (seq->done()) {
        if (seq->on_worker) plan.finished_seq_ids.push_back(seq->id);
        seq->on_worker = false;
        continue;
      }
      if (!seq->on_worker || !seq->decoding()) {
        Schedule(*seq, 1 << 20, 1, plan);
        continue;
      }
      std::vector<int32_t> drafts = propose(*seq);
      const int64_t k = static_cast<int64_t>(drafts.size());
      std::vector<int32_t> fresh = Reserve(*seq, seq->computed + 1 + k);
      const int32_t guard = guess != nullptr && k > 0 ? guess(*seq) : -1;
      // The worker's pending sample is the last token: a wrong guess drops the drafts.
      seq->guard_missed_now = guard >= 0 && guard != seq->tokens.back();
      seq->scheduled_now = seq->guard_missed_now ? 1 : 1 + k;
      seq->drafts_now = seq->guard_missed_now ? 0 : k;
      plan.cached_sequences.push_back({.seq_id = seq->id,
                                       .new_block_ids = fresh,
                                       .num_scheduled_tokens = 1 + k,
                                       .draft_token_ids = std::move(drafts),
                                       .draft_guard_token_id = guard});
    }
    return RunPlan(std::move(plan), seqs);
  }

  void RunToEndWithDrafts(const std::vector<TrackedSeq*>& seqs, const Proposer& propose,
                          const Guesser& guess = nullptr) {
    for (int guard = 0; guard < 1000; ++guard) {
      if (std::all_of(seqs.begin(), seqs.end(), [](TrackedSeq* s) { return s->done(); })) break;
      StepWithDrafts(seqs, propose, guess);
      if (::testing::Test::HasFatalFailure()) return;
    }
    StepWithDrafts(seqs, propose, guess);  // sends the last finished ids
  }

  void RunToEnd(const std::vector<TrackedSeq*>& seqs, int64_t chunk = 1 << 20,
                int32_t num_steps = 1) {
    for (int guard = 0; guard < 1000; ++guard) {
      const bool all_done =
          std::all_of(seqs.begin(), seqs.end(), [](TrackedSeq* s) { return s->done(); });
      if (all_done) break;
      Step(seqs, chunk, num_steps);
      if (::testing::Test::HasFatalFailure()) return;
    }
    Step(seqs, chunk, num_steps);  // sends the last finished ids
  }

  std::vector<TrackedSeq> AllGoldens() {
    std::vector<TrackedSeq> seqs;
    for (size_t i = 0; i < goldens_->size(); ++i) {
      seqs.push_back(FromGolden(absl::StrCat("seq", i), golden(i)));
    }
    return seqs;
  }

  static std::vector<TrackedSeq*> Ptrs(std::vector<TrackedSeq>& seqs) {
    std::vector<TrackedSeq*> out;
    for (TrackedSeq& s : seqs) out.push_back(&s);
    return out;
  }

  void ExpectGolden(const std::vector<TrackedSeq>& seqs) {
    for (size_t i = 0; i < seqs.size(); ++i) {
      EXPECT_THAT(seqs[i].outputs(), ElementsAreArray(golden(i).greedy_ids)) << seqs[i].id;
    }
  }

  static std::vector<GoldenCase>* goldens_;
  ModelConfig config_;
  std::unique_ptr<InProcessExecutor> executor_;
  int32_t next_block_ = 0;
  int64_t step_id_ = 0;
};

std::vector<GoldenCase>* InProcessExecutorTest::goldens_ = nullptr;

TEST_F(InProcessExecutorTest, ReportsCapacityAndModelFacts) {
  const ExecutorInfo& info = executor_->info();
  EXPECT_EQ(info.num_device_blocks, kNumDeviceBlocks);
  EXPECT_EQ(info.num_host_blocks, kNumHostBlocks);
  EXPECT_EQ(info.block_size, kBlockSize);
  EXPECT_EQ(info.max_model_len, config_.max_position_embeddings);
  EXPECT_EQ(info.vocab_size, config_.vocab_size);
}

TEST_F(InProcessExecutorTest, NumBlocksForBudgetDividesByBytesPerBlock) {
  const int64_t bytes_per_block = 2 * config_.num_hidden_layers * kBlockSize *
                                  config_.num_key_value_heads * config_.head_dim * 4;
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config_, kBlockSize, 10 * bytes_per_block + 1),
            10);
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config_, kBlockSize, bytes_per_block - 1), 0);
}

TEST_F(InProcessExecutorTest, RejectsBadOptions) {
  auto weights = LoadModelWeights(config_, Stories260KDir());
  ASSERT_TRUE(weights.ok());
  auto executor = InProcessExecutor::Create(config_, std::move(*weights),
                                            {.num_device_blocks = 0, .block_size = 16});
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(InProcessExecutorTest, OneContinuousBatchMatchesGolden) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  RunToEnd(Ptrs(seqs));
  ExpectGolden(seqs);
}

TEST_F(InProcessExecutorTest, ChunkedPrefillMatchesGolden) {
  for (int64_t chunk : {1, 7}) {
    std::vector<TrackedSeq> seqs = AllGoldens();
    for (TrackedSeq& s : seqs) s.id += absl::StrCat("_chunk", chunk);
    RunToEnd(Ptrs(seqs), chunk);  // Absorb checks: sampled only when the prompt completes
    ExpectGolden(seqs);
  }
}

TEST_F(InProcessExecutorTest, MultiStepMatchesGolden) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  RunToEnd(Ptrs(seqs), /*chunk=*/1 << 20, /*num_steps=*/8);
  ExpectGolden(seqs);
  EXPECT_LT(step_id_, 15) << "multi-step plans return several tokens each";
}

TEST_F(InProcessExecutorTest, MultiStepStopsAtStopTokenMaxTokensAndBlockCapacity) {
  const GoldenCase& g = golden(0);
  // A stop token whose first occurrence in the golden output is at index 3.
  ASSERT_EQ(
      std::find(g.greedy_ids.begin(), g.greedy_ids.end(), g.greedy_ids[3]) - g.greedy_ids.begin(),
      3);
  TrackedSeq stop = FromGolden("stop", g);
  stop.params.stop_token_ids = {g.greedy_ids[3]};
  TrackedSeq length = FromGolden("length", g);
  length.params.max_tokens = 6;
  TrackedSeq capacity = FromGolden("capacity", g);
  std::vector<TrackedSeq*> seqs = {&stop, &length, &capacity};
  Step(seqs, 1 << 20, 1);  // prefill: one token each

  StepPlan plan{.num_steps = 8};
  for (TrackedSeq* seq : {&stop, &length}) Schedule(*seq, 1, 8, plan);
  // Room for only 3 more positions: the pending token and two samples.
  plan.cached_sequences.push_back({.seq_id = "capacity",
                                   .new_block_ids = Reserve(capacity, capacity.computed + 3),
                                   .num_scheduled_tokens = 1});
  capacity.scheduled_now = 1;
  RunPlan(std::move(plan), seqs);

  const std::vector<int32_t> expected(g.greedy_ids.begin(), g.greedy_ids.begin() + 4);
  EXPECT_THAT(stop.outputs(), ElementsAreArray(expected));
  EXPECT_EQ(length.outputs().size(), 6u);
  EXPECT_EQ(static_cast<int64_t>(capacity.tokens.size()), capacity.computed + 1);
  EXPECT_EQ(static_cast<int64_t>(capacity.tokens.size()),
            static_cast<int64_t>(capacity.blocks.size()) * kBlockSize + 1);
  // The stopped sequence's state is intact: it can keep decoding if the engine wants.
  RunToEnd({&capacity});
  EXPECT_THAT(capacity.outputs(), ElementsAreArray(g.greedy_ids));
}

TEST_F(InProcessExecutorTest, MinTokensSuppressesStopTokens) {
  const GoldenCase& g = golden(0);
  TrackedSeq seq = FromGolden("min", g);
  seq.params.stop_token_ids = {g.greedy_ids[3]};
  seq.params.min_tokens = 10;
  seq.params.max_tokens = 10;
  RunToEnd({&seq}, 1 << 20, /*num_steps=*/8);
  ASSERT_EQ(seq.outputs().size(), 10u);
  EXPECT_NE(seq.outputs()[3], g.greedy_ids[3]);
}

TEST_F(InProcessExecutorTest, RecomputePreemptionMatchesGolden) {
  for (int64_t chunk : {int64_t{1} << 20, int64_t{7}}) {
    std::vector<TrackedSeq> seqs = AllGoldens();
    for (TrackedSeq& s : seqs) s.id += absl::StrCat("_chunk", chunk);
    std::vector<TrackedSeq*> all = Ptrs(seqs);
    for (int i = 0; i < 20; ++i) Step(all, chunk, 1);
    // Preempt seq1: drop its worker state now, re-add it from prompt + outputs two steps later
    // on fresh blocks (the engine would have freed the old ones).
    TrackedSeq& victim = seqs[1];
    StepPlan drop{.finished_seq_ids = {victim.id}};
    victim.on_worker = false;
    victim.computed = 0;
    victim.blocks.clear();
    std::vector<TrackedSeq*> others = {&seqs[0], &seqs[2], &seqs[3]};
    for (TrackedSeq* s : others) Schedule(*s, chunk, 1, drop);
    RunPlan(std::move(drop), others);
    Step(others, chunk, 1);
    RunToEnd(all, chunk);
    ExpectGolden(seqs);
  }
}

TEST_F(InProcessExecutorTest, SwapOutAndInToOtherBlocksMatchesGolden) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  std::vector<TrackedSeq*> all = Ptrs(seqs);
  for (int i = 0; i < 17; ++i) Step(all, 1 << 20, 1);
  TrackedSeq& victim = seqs[2];
  std::vector<TrackedSeq*> others = {&seqs[0], &seqs[1], &seqs[3]};

  // Swap out: the worker drops the sequence's state and copies its blocks to host blocks; the
  // old device blocks are then overwritten (zeroed from a never-written block).
  const int32_t zero_block = Alloc(1)[0];
  StepPlan out{.finished_seq_ids = {victim.id}};
  for (size_t i = 0; i < victim.blocks.size(); ++i) {
    out.swap_out.push_back({victim.blocks[i], static_cast<int32_t>(i)});
    out.block_copies.push_back({zero_block, victim.blocks[i]});
  }
  for (TrackedSeq* s : others) Schedule(*s, 1 << 20, 1, out);
  RunPlan(std::move(out), others);
  Step(others, 1 << 20, 1);

  // Swap in to different device blocks and resume with the computed count it had.
  const std::vector<int32_t> fresh = Alloc(static_cast<int64_t>(victim.blocks.size()));
  StepPlan in;
  for (size_t i = 0; i < fresh.size(); ++i) {
    in.swap_in.push_back({static_cast<int32_t>(i), fresh[i]});
  }
  victim.blocks = fresh;
  victim.on_worker = false;
  for (TrackedSeq* s : all) Schedule(*s, 1 << 20, 1, in);
  ASSERT_EQ(in.new_sequences.size(), 1u);
  EXPECT_EQ(in.new_sequences[0].num_scheduled_tokens, 1);
  RunPlan(std::move(in), all);
  RunToEnd(all);
  ExpectGolden(seqs);
}

TEST_F(InProcessExecutorTest, ForkWithCopiedLastBlockContinuesIdentically) {
  TrackedSeq parent = FromGolden("parent", golden(1));
  for (int i = 0; i < 10; ++i) Step({&parent}, 1 << 20, 1);
  ASSERT_NE(parent.computed % kBlockSize, 0) << "the last block should be partly filled";

  // The child shares every full block and gets a copy of the partly filled last one.
  TrackedSeq child = parent;
  child.id = "child";
  child.on_worker = false;
  child.blocks.back() = Alloc(1)[0];
  StepPlan fork{.block_copies = {{parent.blocks.back(), child.blocks.back()}}};
  Schedule(parent, 1 << 20, 1, fork);
  Schedule(child, 1 << 20, 1, fork);
  ASSERT_EQ(fork.new_sequences.size(), 1u);
  EXPECT_EQ(fork.new_sequences[0].num_computed_tokens, parent.computed);
  RunPlan(std::move(fork), {&parent, &child});
  RunToEnd({&parent, &child});
  EXPECT_THAT(parent.outputs(), ElementsAreArray(golden(1).greedy_ids));
  EXPECT_THAT(child.outputs(), ElementsAreArray(golden(1).greedy_ids));
}

TEST_F(InProcessExecutorTest, ReplacedBlockIdsMoveAHeldSequenceOffASharedBlock) {
  TrackedSeq parent = FromGolden("parent", golden(1));
  for (int i = 0; i < 10; ++i) Step({&parent}, 1 << 20, 1);
  ASSERT_NE(parent.computed % kBlockSize, 0) << "the last block should be partly filled";

  // The child takes the parent's table as it is; the parent (already on the worker) moves to a
  // copy of its partly filled last block, announced by replaced_block_ids.
  TrackedSeq child = parent;
  child.id = "child";
  child.on_worker = false;
  const int32_t shared = parent.blocks.back();
  const int32_t fresh = Alloc(1)[0];
  const int32_t index = static_cast<int32_t>(parent.blocks.size()) - 1;
  parent.blocks.back() = fresh;
  StepPlan fork{.block_copies = {{shared, fresh}}};
  Schedule(parent, 1 << 20, 1, fork);
  Schedule(child, 1 << 20, 1, fork);
  ASSERT_EQ(fork.cached_sequences.size(), 1u);
  fork.cached_sequences[0].replaced_block_ids = {{index, fresh}};

  // An entry outside the table is rejected, naming it.
  StepPlan bad = fork;
  bad.cached_sequences[0].replaced_block_ids = {{index + 5, fresh}};
  auto rejected = executor_->Submit(std::move(bad)).get();
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rejected.status().message()), HasSubstr("replaces block table entry"));

  RunPlan(std::move(fork), {&parent, &child});
  RunToEnd({&parent, &child});
  EXPECT_THAT(parent.outputs(), ElementsAreArray(golden(1).greedy_ids));
  EXPECT_THAT(child.outputs(), ElementsAreArray(golden(1).greedy_ids));
}

TEST_F(InProcessExecutorTest, ReplaceLastTokenChangesTheContinuation) {
  const GoldenCase& g = golden(0);
  TrackedSeq seq = FromGolden("beam", g);
  Step({&seq}, 1 << 20, 1);
  ASSERT_EQ(seq.outputs(), std::vector<int32_t>{g.greedy_ids[0]});

  // The engine picks two other tokens in place of the worker's sample.
  const std::vector<int32_t> chosen = {g.greedy_ids[0] + 1, 300};
  StepPlan plan;
  plan.cached_sequences.push_back({.seq_id = seq.id,
                                   .new_block_ids = Reserve(seq, seq.computed + 2),
                                   .num_scheduled_tokens = 2,
                                   .replace_last_token_ids = chosen});
  seq.tokens.pop_back();
  seq.tokens.insert(seq.tokens.end(), chosen.begin(), chosen.end());
  seq.scheduled_now = 2;
  RunPlan(std::move(plan), {&seq});
  RunToEnd({&seq});

  // Reference: a fresh sequence whose prompt already holds the chosen tokens.
  TrackedSeq ref = FromGolden("reference", g);
  ref.tokens.insert(ref.tokens.end(), chosen.begin(), chosen.end());
  ref.num_prompt = static_cast<int64_t>(ref.tokens.size());
  ref.params.max_tokens = kMaxTokens - 2;
  RunToEnd({&ref});
  const std::vector<int32_t> out = seq.outputs();
  ASSERT_EQ(out.size(), static_cast<size_t>(kMaxTokens));
  EXPECT_THAT(std::vector<int32_t>(out.begin() + 2, out.end()), ElementsAreArray(ref.outputs()));
  EXPECT_NE(out, g.greedy_ids);
}

TEST_F(InProcessExecutorTest, PipelinedSubmitsMatchGolden) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  std::vector<TrackedSeq*> all = Ptrs(seqs);
  Step(all, 1 << 20, 1);
  // Plan step n + 1 before reading step n: the worker holds the sampled tokens, so a decode
  // delta needs only its blocks.
  std::vector<std::future<absl::StatusOr<StepResult>>> pending;
  auto read_oldest = [&] {
    auto result = pending.front().get();
    pending.erase(pending.begin());
    ASSERT_TRUE(result.ok()) << result.status();
    for (const SequenceOutput& out : result->outputs) {
      for (TrackedSeq& s : seqs) {
        if (s.id == out.seq_id)
          s.tokens.insert(s.tokens.end(), out.token_ids.begin(), out.token_ids.end());
      }
    }
  };
  for (int64_t i = 0; i + 1 < kMaxTokens; ++i) {
    StepPlan plan{.step_id = step_id_++};
    for (TrackedSeq& s : seqs) {
      const int64_t position = s.num_prompt + i;  // the pending token's position
      plan.cached_sequences.push_back(
          {.seq_id = s.id, .new_block_ids = Reserve(s, position + 1), .num_scheduled_tokens = 1});
    }
    pending.push_back(executor_->Submit(std::move(plan)));
    if (pending.size() == 3) read_oldest();
  }
  while (!pending.empty()) read_oldest();
  ExpectGolden(seqs);
}

// Drafts the reference continuation `expected` with one token in every few made wrong, so
// proposals are accepted whole, cut at every position, or rejected at once.
Proposer DraftsFrom(const std::vector<std::vector<int32_t>>* expected, int64_t vocab_size,
                    int* counter) {
  return [=](const TrackedSeq& seq) {
    const int64_t index = std::stoi(seq.id.substr(seq.id.find_last_not_of("0123456789") + 1));
    const std::vector<int32_t>& want = (*expected)[index];
    const int64_t next = static_cast<int64_t>(seq.outputs().size());
    const int call = (*counter)++;
    const int64_t k = std::vector<int64_t>{1, 3, 7, 5}[call % 4];
    std::vector<int32_t> drafts;
    for (int64_t i = 0; i < k && next + i < static_cast<int64_t>(want.size()); ++i) {
      drafts.push_back(want[next + i]);
    }
    // Every third call one draft is wrong, at a position that moves.
    if (call % 3 == 2 && !drafts.empty()) {
      int32_t& bad = drafts[(call / 3) % drafts.size()];
      bad = static_cast<int32_t>((bad + 1) % vocab_size);
    }
    return drafts;
  };
}

TEST_F(InProcessExecutorTest, DraftTokensKeepGreedyOutputsEqualToTheGolden) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  std::vector<std::vector<int32_t>> expected;
  for (size_t i = 0; i < goldens_->size(); ++i) expected.push_back(golden(i).greedy_ids);
  int calls = 0;
  RunToEndWithDrafts(Ptrs(seqs), DraftsFrom(&expected, config_.vocab_size, &calls));
  ExpectGolden(seqs);
  // 4 sequences x 64 tokens one step at a time would take 65 steps; most drafts are right.
  EXPECT_LT(step_id_, 40);
  EXPECT_GT(calls, 0);
}

// Guarded drafts (proposed before the engine knew the pending sample): verified behind the
// right guess, dropped behind a wrong one (the sequence then decodes its pending sample alone);
// the outputs stay the golden's either way.
TEST_F(InProcessExecutorTest, GuardedDraftsRunOnlyBehindTheRightToken) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  std::vector<std::vector<int32_t>> expected;
  for (size_t i = 0; i < goldens_->size(); ++i) expected.push_back(golden(i).greedy_ids);
  int calls = 0;
  int guesses = 0;
  int wrong = 0;
  const Guesser guess = [&](const TrackedSeq& seq) {
    // Every third guess is wrong.
    if (guesses++ % 3 != 1) return seq.tokens.back();
    ++wrong;
    return static_cast<int32_t>((seq.tokens.back() + 1) % config_.vocab_size);
  };
  RunToEndWithDrafts(Ptrs(seqs), DraftsFrom(&expected, config_.vocab_size, &calls), guess);
  ExpectGolden(seqs);
  EXPECT_GT(wrong, 0);
  EXPECT_LT(step_id_, 50) << "the drafts behind right guesses were accepted";
}

TEST_F(InProcessExecutorTest, DraftTokensKeepSampledOutputsAndLogprobsExact) {
  // The samples of row i use output i's draw, so with drafts a seeded sequence samples exactly
  // the tokens (and logprobs) it samples one step at a time: the target distribution, whatever
  // the proposals.
  auto sampled = [&](const std::string& suffix) {
    std::vector<TrackedSeq> seqs = AllGoldens();
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i].id = absl::StrCat(suffix, "_", i);
      seqs[i].params.temperature = 0.8f;
      seqs[i].params.top_p = 0.95f;
      seqs[i].params.repetition_penalty = 1.1f;
      seqs[i].params.logprobs = 1;
      seqs[i].params.seed = 100 + i;
    }
    return seqs;
  };
  // Runs `seqs` to the end, one step at a time or with drafts; returns their logprobs.
  auto run = [&](std::vector<TrackedSeq>& seqs,
                 const Proposer* propose) -> std::vector<std::vector<float>> {
    std::vector<std::vector<float>> logprobs(seqs.size());
    std::vector<TrackedSeq*> ptrs = Ptrs(seqs);
    for (int guard = 0; guard < 200; ++guard) {
      if (std::all_of(seqs.begin(), seqs.end(), [](const TrackedSeq& s) { return s.done(); })) {
        break;
      }
      StepResult result;
      if (propose != nullptr) {
        result = StepWithDrafts(ptrs, *propose);
      } else {
        StepPlan plan;
        for (TrackedSeq* seq : ptrs) {
          if (!seq->done()) Schedule(*seq, 1 << 20, 1, plan);
        }
        result = RunPlan(std::move(plan), ptrs);
      }
      for (const SequenceOutput& out : result.outputs) {
        EXPECT_EQ(out.logprobs.size(), out.token_ids.size());
        std::vector<float>& dst = logprobs[std::stoi(out.seq_id.substr(out.seq_id.find('_') + 1))];
        dst.insert(dst.end(), out.logprobs.begin(), out.logprobs.end());
      }
    }
    return logprobs;
  };
  std::vector<TrackedSeq> plain = sampled("plain");
  const std::vector<std::vector<float>> plain_logprobs = run(plain, nullptr);
  const int64_t plain_steps = step_id_;
  std::vector<std::vector<int32_t>> expected;
  for (const TrackedSeq& s : plain) expected.push_back(s.outputs());

  std::vector<TrackedSeq> spec = sampled("spec");
  int calls = 0;
  const Proposer propose = DraftsFrom(&expected, config_.vocab_size, &calls);
  const std::vector<std::vector<float>> spec_logprobs = run(spec, &propose);
  for (size_t i = 0; i < spec.size(); ++i) {
    EXPECT_THAT(spec[i].outputs(), ElementsAreArray(expected[i])) << spec[i].id;
    ASSERT_EQ(spec_logprobs[i].size(), plain_logprobs[i].size());
    for (size_t j = 0; j < spec_logprobs[i].size(); ++j) {
      EXPECT_NEAR(spec_logprobs[i][j], plain_logprobs[i][j], 1e-4) << spec[i].id << " " << j;
    }
  }
  EXPECT_LT(step_id_ - plain_steps, plain_steps * 2 / 3) << "drafts were accepted";
}

TEST_F(InProcessExecutorTest, ReturnsLogprobsWhenAsked) {
  TrackedSeq seq = FromGolden("logprobs", golden(0));
  seq.params.logprobs = 2;
  seq.params.max_tokens = 1;
  StepPlan plan;
  Schedule(seq, 1 << 20, 1, plan);
  StepResult result = RunPlan(std::move(plan), {&seq});
  ASSERT_EQ(result.outputs.size(), 1u);
  const SequenceOutput& out = result.outputs[0];
  ASSERT_EQ(out.logprobs.size(), 1u);
  ASSERT_EQ(out.top_logprobs.size(), 1u);
  ASSERT_EQ(out.top_logprobs[0].size(), 2u);
  EXPECT_EQ(out.top_logprobs[0][0].first, golden(0).greedy_ids[0]);
  EXPECT_FLOAT_EQ(out.top_logprobs[0][0].second, out.logprobs[0]);
  EXPECT_LE(out.logprobs[0], 0.0f);
}

TEST_F(InProcessExecutorTest, InvalidPlansAreRejectedAndLeaveStateUsable) {
  std::vector<TrackedSeq> seqs = AllGoldens();
  std::vector<TrackedSeq*> all = Ptrs(seqs);
  for (int i = 0; i < 3; ++i) Step(all, 1 << 20, 1);

  auto expect_invalid = [&](StepPlan plan, const std::string& message) {
    auto result = executor_->Submit(std::move(plan)).get();
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(message));
  };
  // Each plan also carries valid parts that must not be applied: dropping seq0, growing seq1.
  auto with_valid_parts = [&](StepPlan plan) {
    plan.finished_seq_ids.push_back(seqs[0].id);
    plan.cached_sequences.push_back(
        {.seq_id = seqs[1].id, .new_block_ids = {1000}, .num_scheduled_tokens = 1});
    return plan;
  };
  expect_invalid(
      with_valid_parts({.cached_sequences = {{.seq_id = "nobody", .num_scheduled_tokens = 1}}}),
      "nobody");
  expect_invalid(with_valid_parts({.finished_seq_ids = {"ghost"}}), "ghost");
  expect_invalid(
      with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id, .num_scheduled_tokens = 2}}}),
      "2 tokens scheduled but it holds 1 uncomputed");
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {kNumDeviceBlocks},
                                                         .num_scheduled_tokens = 1}}}),
                 "outside [0, 1024)");
  expect_invalid(with_valid_parts({.new_sequences = {{.seq_id = "new",
                                                      .token_ids = {1, 2, 3},
                                                      .num_prompt_tokens = 3,
                                                      .num_scheduled_tokens = 3,
                                                      .block_ids = {-1}}}}),
                 "names block -1");
  expect_invalid(with_valid_parts({.new_sequences = {{.seq_id = "new",
                                                      .token_ids = {1, 2, 3, 4, 5},
                                                      .num_prompt_tokens = 5,
                                                      .num_scheduled_tokens = 5,
                                                      .block_ids = {900}}}}),
                 "would hold 5 tokens");
  expect_invalid(with_valid_parts({.new_sequences = {{.seq_id = seqs[3].id,
                                                      .token_ids = {1},
                                                      .num_prompt_tokens = 1,
                                                      .num_scheduled_tokens = 1,
                                                      .block_ids = {900}}}}),
                 "already live");
  expect_invalid(with_valid_parts({.swap_out = {{0, kNumHostBlocks}}}), "swap_out");
  expect_invalid(with_valid_parts({.block_copies = {{0, 5}, {1, 5}}}), "more than once");
  expect_invalid(with_valid_parts({.num_steps = 0}), "num_steps");
  // Draft tokens: in the vocabulary, after the pending sample, all scheduled, one step.
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {1001},
                                                         .num_scheduled_tokens = 3,
                                                         .draft_token_ids = {1, 512}}}}),
                 "holds token 512");
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {1001},
                                                         .num_scheduled_tokens = 2,
                                                         .draft_token_ids = {1, 2}}}}),
                 "2 draft tokens must follow its pending sample, all 3 scheduled");
  expect_invalid({.cached_sequences = {{.seq_id = seqs[2].id,
                                        .new_block_ids = {1001},
                                        .num_scheduled_tokens = 3,
                                        .draft_token_ids = {1, 2}}},
                  .num_steps = 2},
                 "draft tokens in a plan of 2 steps");
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .num_scheduled_tokens = 3,
                                                         .draft_token_ids = {1, 2}}}}),
                 "would hold");
  // A draft guard: a token of the vocabulary, with drafts.
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {1001},
                                                         .num_scheduled_tokens = 1,
                                                         .draft_guard_token_id = 5}}}),
                 "has a draft guard but no draft_token_ids");
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {1001},
                                                         .num_scheduled_tokens = 3,
                                                         .draft_token_ids = {1, 2},
                                                         .draft_guard_token_id = 512}}}),
                 "draft guard holds token 512");
  // Draft-model proposals: only where a draft model is loaded (none here), never with drafts.
  expect_invalid(with_valid_parts({.cached_sequences = {{.seq_id = seqs[2].id,
                                                         .new_block_ids = {1001},
                                                         .num_scheduled_tokens = 3,
                                                         .num_worker_draft_tokens = 2}}}),
                 "has no draft model");
  // The same ids twice in one list.
  expect_invalid({.cached_sequences = {{.seq_id = seqs[0].id, .num_scheduled_tokens = 1},
                                       {.seq_id = seqs[0].id, .num_scheduled_tokens = 1}}},
                 "appears twice");

  RunToEnd(all);
  ExpectGolden(seqs);
}

TEST_F(InProcessExecutorTest, DestructionWithQueuedPlansJoinsCleanly) {
  std::vector<std::future<absl::StatusOr<StepResult>>> pending;
  TrackedSeq seq = FromGolden("queued", golden(0));
  StepPlan first;
  Schedule(seq, 1 << 20, 1, first);
  pending.push_back(executor_->Submit(std::move(first)));
  for (int i = 0; i < 5; ++i) {
    pending.push_back(
        executor_->Submit({.cached_sequences = {{.seq_id = seq.id, .num_scheduled_tokens = 1}}}));
  }
  executor_.reset();
  for (auto& future : pending) {
    auto result = future.get();
    // Each step either ran (and may have run out of blocks) or was cancelled.
    if (!result.ok()) {
      EXPECT_THAT(result.status().code(), ::testing::AnyOf(absl::StatusCode::kCancelled,
                                                           absl::StatusCode::kInvalidArgument));
    }
  }
}

// Structured output on the worker: every sampled token follows the constraint, EOS comes only
// where the grammar accepts, and a sequence re-sent with its outputs (recompute, failover)
// resumes exactly where it was.
TEST_F(InProcessExecutorTest, ConstrainedSequencesFollowTheirGrammarAndResume) {
  using Kind = SamplingParams::ConstraintKind;
  auto weights = LoadModelWeights(config_, Stories260KDir());
  ASSERT_TRUE(weights.ok());
  auto executor = InProcessExecutor::Create(
      config_, std::move(*weights),
      {.num_device_blocks = kNumDeviceBlocks, .block_size = kBlockSize, .load_tokenizer = [] {
         return Tokenizer::FromDirectory(Stories260KDir());
       }});
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);
  auto tokenizer = Tokenizer::FromDirectory(Stories260KDir());
  ASSERT_TRUE(tokenizer.ok());
  ASSERT_FALSE(config_.eos_token_ids.empty());
  const int32_t eos = static_cast<int32_t>(config_.eos_token_ids[0]);

  struct Case {
    Kind kind;
    std::string constraint;
    std::string pattern;  // what the text must match (a JSON case is parsed instead)
  };
  const Case cases[] = {
      {Kind::kRegex, "(the|a) (cat|dog|girl) (ran|sat)\\.", "(the|a) (cat|dog|girl) (ran|sat)\\."},
      {Kind::kChoice, R"(["Lily", "Tom", "a big red ball"])", "Lily|Tom|a big red ball"},
      {Kind::kGrammar, "root ::= [a-z]{1,6} (\" \" [a-z]{1,6}){2}", "[a-z]{1,6}( [a-z]{1,6}){2}"},
      {Kind::kJsonSchema,
       R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
           "age": {"type": "integer", "minimum": 1, "maximum": 99}}, "required": ["name", "age"]})",
       ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    for (float temperature : {0.0f, 0.8f}) {
      TrackedSeq seq = FromGolden(absl::StrCat("constrained", n++), golden(0));
      seq.eos = eos;
      seq.params.temperature = temperature;
      seq.params.seed = 11;
      seq.params.ignore_eos = false;
      seq.params.max_tokens = 200;
      seq.params.constraint_kind = c.kind;
      seq.params.constraint = c.constraint;
      RunToEnd({&seq});
      if (HasFatalFailure()) return;
      std::vector<int32_t> out = seq.outputs();
      ASSERT_FALSE(out.empty());
      EXPECT_EQ(out.back(), eos) << seq.id << ": finished by its grammar, not max_tokens";
      out.pop_back();
      const std::string text = (*tokenizer)->Decode(out, /*skip_special_tokens=*/true);
      if (c.kind == Kind::kJsonSchema) {
        const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
        ASSERT_TRUE(value.is_object()) << text;
        ASSERT_TRUE(value.contains("name") && value["name"].is_string()) << text;
        EXPECT_LE(value["name"].get<std::string>().size(), 6u) << text;
        ASSERT_TRUE(value.contains("age") && value["age"].is_number_integer()) << text;
        EXPECT_GE(value["age"].get<int>(), 1) << text;
        EXPECT_LE(value["age"].get<int>(), 99) << text;
        EXPECT_EQ(value.size(), 2u) << text;
      } else {
        EXPECT_TRUE(std::regex_match(text, std::regex(c.pattern))) << seq.id << ": " << text;
      }

      // Re-sent with its first outputs, as after a recompute preemption or a failover.
      const std::vector<int32_t> all = seq.outputs();
      if (all.size() < 4) continue;
      TrackedSeq resumed = FromGolden(seq.id + "_resumed", golden(0));
      resumed.eos = eos;
      resumed.params = seq.params;
      resumed.tokens.insert(resumed.tokens.end(), all.begin(), all.begin() + 3);
      RunToEnd({&resumed});
      EXPECT_THAT(resumed.outputs(), ElementsAreArray(all)) << resumed.id;

      // With draft tokens (right ones, and every third proposal with a wrong token, which the
      // grammar usually refuses): each row's mask follows the drafts before it and the matcher
      // rolls back, so the outputs are the same.
      TrackedSeq speculated = FromGolden(seq.id + "_spec_0", golden(0));
      speculated.eos = eos;
      speculated.params = seq.params;
      const std::vector<std::vector<int32_t>> expected = {all};
      int calls = 0;
      RunToEndWithDrafts({&speculated}, DraftsFrom(&expected, config_.vocab_size, &calls));
      EXPECT_THAT(speculated.outputs(), ElementsAreArray(all)) << speculated.id;
      EXPECT_GT(calls, 0);
    }
  }

  // The engine pipelines steps: it may ask for one more token after an EOS before it sees it
  // (and drops it). A terminated grammar then offers EOS again instead of failing the batch.
  TrackedSeq late = FromGolden("late", golden(0));
  late.eos = eos;
  late.params.ignore_eos = false;
  late.params.max_tokens = 200;
  late.params.constraint_kind = Kind::kChoice;
  late.params.constraint = R"(["Lily", "Tom"])";
  for (int guard = 0; guard < 100 && !late.done(); ++guard) Step({&late}, 1 << 20, 1);
  ASSERT_TRUE(late.done());
  ASSERT_EQ(late.tokens.back(), eos);
  StepPlan past_eos;
  past_eos.cached_sequences.push_back({.seq_id = "late",
                                       .new_block_ids = Reserve(late, late.computed + 2),
                                       .num_scheduled_tokens = 1});
  late.scheduled_now = 1;
  RunPlan(std::move(past_eos), {&late});
  EXPECT_EQ(late.tokens.back(), eos);
  EXPECT_EQ(late.tokens[late.tokens.size() - 2], eos);

  // A bad constraint, or outputs its grammar refuses, fail the plan and change nothing.
  auto submit_one = [&](const std::string& id, SamplingParams params, std::vector<int32_t> tokens) {
    StepPlan plan{.step_id = step_id_++};
    const int64_t num_prompt = static_cast<int64_t>(golden(0).prompt_ids.size());
    plan.new_sequences.push_back({.seq_id = id,
                                  .token_ids = std::move(tokens),
                                  .num_prompt_tokens = num_prompt,
                                  .num_scheduled_tokens = 1,
                                  .block_ids = Alloc(64),
                                  .sampling_params = std::move(params)});
    return executor_->Submit(std::move(plan)).get().status();
  };
  SamplingParams bad;
  bad.constraint_kind = Kind::kRegex;
  bad.constraint = "(ab";
  absl::Status status = submit_one("bad_regex", bad, golden(0).prompt_ids);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("new sequence bad_regex"));
  SamplingParams choice;
  choice.constraint_kind = Kind::kChoice;
  choice.constraint = R"(["Lily"])";
  std::vector<int32_t> refused = golden(0).prompt_ids;
  refused.push_back(eos);  // EOS before any of "Lily"
  status = submit_one("refused_output", choice, refused);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("does not match its constraint"));
  std::vector<TrackedSeq> seqs = AllGoldens();
  RunToEnd(Ptrs(seqs));
  ExpectGolden(seqs);
}

TEST_F(InProcessExecutorTest, RefusesConstraintsWithoutATokenizer) {
  SamplingParams params;
  params.constraint_kind = SamplingParams::ConstraintKind::kJsonObject;
  StepPlan plan{.step_id = step_id_++};
  plan.new_sequences.push_back(
      {.seq_id = "json",
       .token_ids = golden(0).prompt_ids,
       .num_prompt_tokens = static_cast<int64_t>(golden(0).prompt_ids.size()),
       .num_scheduled_tokens = 1,
       .block_ids = Alloc(64),
       .sampling_params = params});
  const absl::Status status = executor_->Submit(std::move(plan)).get().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("no tokenizer"));
}

}  // namespace
}  // namespace pagoda
