// End-to-end checks of the engine core on the real stories260K model: the EngineLoop (Scheduler
// + OutputProcessor) over an InProcessExecutor must reproduce golden_greedy.jsonl with every
// prompt in one continuous batch, whatever the async output, multi-step, chunked prefill and
// prefix caching settings; abort mid-decode; seeded n = 4; and static batching (the Scheduler's
// kStatic policy) gives what continuous batching gives; a sliding window frees the blocks behind
// it without changing what the windowed model says.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::GoldenCase;
using testing::Stories260KDir;

class EngineGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    goldens_ = new std::vector<GoldenCase>(testing::LoadStories260KGoldens());
    ASSERT_FALSE(goldens_->empty()) << "no goldens in " << testing::Stories260KSourceDir();
  }
  static void TearDownTestSuite() { delete goldens_; }

  void SetUp() override {
    auto config = ModelConfig::FromDirectory(Stories260KDir());
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto tokenizer = Tokenizer::FromDirectory(Stories260KDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    eos_ids_ = EosTokenIds(config_.eos_token_ids, *tokenizer_);
  }

  std::unique_ptr<EngineLoop> MakeEngine(const EngineConfig& config, int64_t num_blocks = 256,
                                         int64_t block_size = 16,
                                         const WeightLoadOptions& load = {},
                                         DType kv_cache_dtype = DType::kF32,
                                         const DraftModelOptions& draft = {}) {
    auto weights = LoadModelWeights(config_, Stories260KDir(), {}, load);
    EXPECT_TRUE(weights.ok()) << weights.status();
    auto executor = InProcessExecutor::Create(
        config_, std::move(*weights),
        {.num_device_blocks = num_blocks,
         .block_size = block_size,
         .kv_cache_dtype = kv_cache_dtype,
         .extra_eos_token_ids = eos_ids_,
         .load_tokenizer = [] { return Tokenizer::FromDirectory(Stories260KDir()); },
         .draft = draft,
         .model_path = Stories260KDir()});
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return nullptr;
    auto engine = EngineLoop::Create(config, std::move(*executor), tokenizer_.get(), eos_ids_);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  std::vector<EngineRequest> GreedyRequests(int32_t max_tokens = 64) const {
    std::vector<EngineRequest> requests;
    for (size_t i = 0; i < goldens_->size(); ++i) {
      EngineRequest r{.request_id = "g" + std::to_string(i),
                      .prompt_token_ids = (*goldens_)[i].prompt_ids};
      r.params.temperature = 0;
      r.params.max_tokens = max_tokens;
      r.params.ignore_eos = true;
      requests.push_back(std::move(r));
    }
    return requests;
  }

  std::vector<RequestOutput> Run(EngineLoop& engine, std::vector<EngineRequest> requests) {
    auto results = engine.RunToCompletion(std::move(requests));
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? std::move(*results) : std::vector<RequestOutput>{};
  }

  void ExpectGolden(const std::vector<RequestOutput>& results, const std::string& what) {
    ASSERT_EQ(results.size(), goldens_->size()) << what;
    for (size_t i = 0; i < results.size(); ++i) {
      ASSERT_EQ(results[i].outputs.size(), 1u) << what;
      const CompletionOutput& out = results[i].outputs[0];
      EXPECT_EQ(out.token_ids, (*goldens_)[i].greedy_ids) << what << ", prompt " << i;
      EXPECT_EQ(out.text, (*goldens_)[i].greedy_text) << what << ", prompt " << i;
      EXPECT_EQ(out.finish_reason, FinishReason::kLength) << what;
      ASSERT_TRUE(results[i].usage.has_value());
      EXPECT_EQ(results[i].usage->completion_tokens, 64);
      EXPECT_EQ(results[i].usage->prompt_tokens,
                static_cast<int64_t>((*goldens_)[i].prompt_ids.size()));
    }
  }

  // Seeded sampling (n = 2, logprobs) with `speculative` equals the same requests without it,
  // token for token: the draw of output i depends only on (seed, i), whatever was proposed.
  // Returns the speculative run's stats.
  SchedulerStats CheckSeededSamplesExact(const SpeculativeConfig& speculative,
                                         const DraftModelOptions& draft) {
    SchedulerStats stats;
    std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/48);
    for (size_t i = 0; i < requests.size(); ++i) {
      requests[i].params.temperature = 0.7f;
      requests[i].params.top_k = 20;
      requests[i].params.n = 2;
      requests[i].params.seed = 11 + i;
      requests[i].params.logprobs = 1;
    }
    std::vector<RequestOutput> results[2];
    for (bool speculate : {false, true}) {
      EngineConfig config;
      if (speculate) config.speculative = speculative;
      std::unique_ptr<EngineLoop> engine =
          MakeEngine(config, 256, 16, {}, DType::kF32, speculate ? draft : DraftModelOptions{});
      if (engine == nullptr) return stats;
      results[speculate] = Run(*engine, requests);
      if (speculate) stats = engine->stats();
    }
    EXPECT_GT(stats.spec_num_drafts, 0);
    EXPECT_EQ(results[0].size(), results[1].size());
    if (results[0].size() != results[1].size()) return stats;
    for (size_t i = 0; i < results[0].size(); ++i) {
      EXPECT_EQ(results[0][i].outputs.size(), 2u);
      EXPECT_EQ(results[1][i].outputs.size(), 2u);
      for (size_t j = 0;
           j < 2 && j < results[0][i].outputs.size() && j < results[1][i].outputs.size(); ++j) {
        const CompletionOutput& plain = results[0][i].outputs[j];
        const CompletionOutput& spec = results[1][i].outputs[j];
        EXPECT_EQ(spec.token_ids, plain.token_ids) << "request " << i << " sample " << j;
        EXPECT_TRUE(spec.cumulative_logprob.has_value() && plain.cumulative_logprob.has_value());
        if (spec.cumulative_logprob.has_value() && plain.cumulative_logprob.has_value()) {
          EXPECT_NEAR(*spec.cumulative_logprob, *plain.cumulative_logprob, 1e-3);
        }
      }
    }
    return stats;
  }

  static std::vector<GoldenCase>* goldens_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> eos_ids_;  // what generation stops at
};

std::vector<GoldenCase>* EngineGoldenTest::goldens_ = nullptr;

TEST_F(EngineGoldenTest, OneContinuousBatchMatchesGoldenWithAndWithoutAsyncAndMultiStep) {
  for (bool async_output : {true, false}) {
    for (int32_t steps : {1, 8}) {
      const EngineConfig config{.num_scheduler_steps = steps, .async_output = async_output};
      std::unique_ptr<EngineLoop> engine = MakeEngine(config);
      ASSERT_NE(engine, nullptr);
      ExpectGolden(Run(*engine, GreedyRequests()),
                   "async " + std::to_string(async_output) + ", steps " + std::to_string(steps));
    }
  }
}

// --dtype and --kv-cache-dtype: the weights kept in float32, bfloat16 or float16 (the checkpoint
// is float32) and the KV cache in float32 or bfloat16 all give the golden greedy tokens.
TEST_F(EngineGoldenTest, GoldenAtEveryWeightAndKvCacheDType) {
  for (DType weights : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (DType kv : {DType::kF32, DType::kBF16}) {
      std::unique_ptr<EngineLoop> engine =
          MakeEngine(EngineConfig{}, 256, 16, {.dtype = weights}, kv);
      ASSERT_NE(engine, nullptr);
      ExpectGolden(Run(*engine, GreedyRequests()),
                   absl::StrCat("weights ", std::string(DTypeName(weights)), ", KV cache ",
                                std::string(DTypeName(kv))));
    }
  }
}

TEST_F(EngineGoldenTest, ChunkedPrefillBudgetsGiveIdenticalOutputs) {
  for (int64_t budget : {1, 7, 64}) {
    const EngineConfig config{.max_num_seqs = std::min<int64_t>(budget, 64),
                              .max_num_batched_tokens = budget};
    std::unique_ptr<EngineLoop> engine = MakeEngine(config);
    ASSERT_NE(engine, nullptr);
    ExpectGolden(Run(*engine, GreedyRequests()), "budget " + std::to_string(budget));
  }
}

TEST_F(EngineGoldenTest, PrefixCachingOnAndOffGiveIdenticalOutputs) {
  // Prompts sharing a 3-block prefix (block size 4) so the cache hits.
  std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/32);
  const std::vector<int32_t> shared = tokenizer_->Encode("Once upon a time, there was a little");
  for (EngineRequest& r : requests) {
    std::vector<int32_t> ids = shared;
    ids.insert(ids.end(), r.prompt_token_ids.begin() + 1, r.prompt_token_ids.end());
    r.prompt_token_ids = std::move(ids);
  }
  std::vector<std::vector<int32_t>> outputs[2];
  for (bool caching : {false, true}) {
    const EngineConfig config{.enable_prefix_caching = caching};
    std::unique_ptr<EngineLoop> engine = MakeEngine(config, /*num_blocks=*/256, /*block_size=*/4);
    ASSERT_NE(engine, nullptr);
    // Twice: the second round finds the first's blocks cached.
    for (int round = 0; round < 2; ++round) {
      std::vector<EngineRequest> batch = requests;
      for (EngineRequest& r : batch) r.request_id += "-" + std::to_string(round);
      for (const RequestOutput& r : Run(*engine, batch))
        outputs[caching].push_back(r.outputs[0].token_ids);
    }
    if (caching) {
      EXPECT_GT(engine->stats().prefix_cache_hits, 0);
    }
  }
  EXPECT_EQ(outputs[0], outputs[1]);
}

// Speculative decoding (n-gram prompt lookup) returns exactly the tokens decoding one at a time
// returns: greedy against the golden at k = 1, 3, 7, in one continuous batch whose small cache
// forces preemptions, with and without prefix caching, with and without a lookup history (small:
// it drops sequences); and seeded sampling with n = 2 equal to the same requests without
// speculation.
TEST_F(EngineGoldenTest, SpeculativeNgramDecodingGivesTheGoldenTokens) {
  for (int32_t k : {1, 3, 7}) {
    for (bool small_cache : {false, true}) {
      EngineConfig config{.max_model_len = 128, .enable_prefix_caching = small_cache};
      config.speculative = {.method = SpeculativeMethod::kNgram,
                            .num_speculative_tokens = k,
                            .prompt_lookup_max = 3,
                            .prompt_lookup_min = 1,
                            .prompt_lookup_history_tokens = small_cache ? 0 : 100};
      std::unique_ptr<EngineLoop> engine =
          MakeEngine(config, /*num_blocks=*/small_cache ? 40 : 256, /*block_size=*/4);
      ASSERT_NE(engine, nullptr);
      const std::string what = absl::StrCat("k ", k, ", small cache ", small_cache);
      ExpectGolden(Run(*engine, GreedyRequests()), what);
      const SchedulerStats stats = engine->stats();
      EXPECT_GT(stats.spec_num_drafts, 0) << what;
      EXPECT_GT(stats.spec_num_accepted_tokens, 0) << what;
      EXPECT_LE(stats.spec_num_accepted_tokens, stats.spec_num_draft_tokens) << what;
      EXPECT_LE(static_cast<int64_t>(stats.spec_num_accepted_tokens_per_pos.size()), k) << what;
      if (small_cache) {
        EXPECT_GT(stats.num_preemptions, 0) << what;
      }
    }
  }
}

// disable_speculative_decoding: a request that opts out is never proposed for; the others of
// its batch still are, and every output is the golden.
TEST_F(EngineGoldenTest, RequestsThatOptOutOfSpeculationAreNotProposedFor) {
  for (int64_t opted_out : {4, 2}) {
    EngineConfig config{.max_model_len = 128};
    config.speculative = {
        .method = SpeculativeMethod::kNgram, .num_speculative_tokens = 4, .prompt_lookup_min = 1};
    std::unique_ptr<EngineLoop> engine = MakeEngine(config);
    ASSERT_NE(engine, nullptr);
    std::vector<EngineRequest> requests = GreedyRequests();
    for (int64_t i = 0; i < opted_out; ++i) {
      requests[i].params.disable_speculative_decoding = true;
    }
    ExpectGolden(Run(*engine, requests), absl::StrCat(opted_out, " opted out"));
    if (opted_out == static_cast<int64_t>(requests.size())) {
      EXPECT_EQ(engine->stats().spec_num_drafts, 0);
    } else {
      EXPECT_GT(engine->stats().spec_num_drafts, 0);
    }
  }
}

TEST_F(EngineGoldenTest, SpeculativeNgramDecodingKeepsSeededSamplesExact) {
  const SchedulerStats stats = CheckSeededSamplesExact(
      {.method = SpeculativeMethod::kNgram, .num_speculative_tokens = 4, .prompt_lookup_min = 1},
      {});
  EXPECT_GT(stats.spec_num_accepted_tokens, 0);
}

// Speculative decoding with a draft model on the workers, four drafts: stories260K proposing for
// itself (every proposal right; also catching up 3 tokens per pass), in float16 (a
// lower-precision self-draft), and with random weights (nearly every proposal wrong). Each gives
// the golden tokens at k = 1, 3, 7 in one continuous batch, with preemptions forced by a small
// cache and prefix caching on.
TEST_F(EngineGoldenTest, SpeculativeDraftModelDecodingGivesTheGoldenTokens) {
  struct Draft {
    std::string name;
    DraftModelOptions options;
  };
  const std::vector<Draft> drafts = {
      {"self", {.path = Stories260KDir()}},
      {"self f16", {.path = Stories260KDir(), .dtype = DType::kF16}},
      // Prompts caught up 3 tokens per pass.
      {"self chunked", {.path = Stories260KDir(), .max_catch_up_chunk = 3}},
      {"random", {.path = Stories260KDir(), .load_format = "dummy", .dummy_seed = 5}}};
  for (const Draft& draft : drafts) {
    for (int32_t k : {1, 3, 7}) {
      for (bool small_cache : {false, true}) {
        EngineConfig config{.max_model_len = 128, .enable_prefix_caching = small_cache};
        config.speculative = {.method = SpeculativeMethod::kDraftModel,
                              .num_speculative_tokens = k,
                              .model = draft.options.path};
        std::unique_ptr<EngineLoop> engine =
            MakeEngine(config, /*num_blocks=*/small_cache ? 40 : 256, /*block_size=*/4, {},
                       DType::kF32, draft.options);
        ASSERT_NE(engine, nullptr);
        const std::string what =
            absl::StrCat(draft.name, " draft, k ", k, ", small cache ", small_cache);
        ExpectGolden(Run(*engine, GreedyRequests()), what);
        const SchedulerStats stats = engine->stats();
        EXPECT_GT(stats.spec_num_drafts, 0) << what;
        EXPECT_LE(stats.spec_num_accepted_tokens, stats.spec_num_draft_tokens) << what;
        const double rate = static_cast<double>(stats.spec_num_accepted_tokens) /
                            static_cast<double>(std::max<int64_t>(stats.spec_num_draft_tokens, 1));
        if (draft.name == "random") {
          EXPECT_LT(rate, 0.5) << what;
        } else {
          EXPECT_GT(rate, 0.9) << what;
        }
        if (small_cache) {
          EXPECT_GT(stats.num_preemptions, 0) << what;
        }
      }
    }
  }
}

TEST_F(EngineGoldenTest, SpeculativeDraftModelKeepsSeededSamplesExact) {
  // The self-draft proposes each step's most likely token, which the draws often take; a
  // random-weight draft's proposals are mostly rejected.
  const SchedulerStats self = CheckSeededSamplesExact({.method = SpeculativeMethod::kDraftModel,
                                                       .num_speculative_tokens = 4,
                                                       .model = Stories260KDir()},
                                                      {.path = Stories260KDir()});
  EXPECT_GT(self.spec_num_accepted_tokens, self.spec_num_draft_tokens / 4);
  CheckSeededSamplesExact({.method = SpeculativeMethod::kDraftModel,
                           .num_speculative_tokens = 4,
                           .model = Stories260KDir()},
                          {.path = Stories260KDir(), .load_format = "dummy", .dummy_seed = 9});
}

// A constrained request's draft-model proposals follow its grammar (DraftRequest::matcher): the
// self-draft proposes the target's masked greedy token, not its unmasked one, so nearly every
// draft is accepted; the outputs are those without speculation either way.
TEST_F(EngineGoldenTest, SpeculativeDraftModelProposesWithinTheGrammar) {
  std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/40);
  for (EngineRequest& r : requests) {
    r.params.ignore_eos = false;  // refused with a constraint
    r.params.constraint_kind = SamplingParams::ConstraintKind::kRegex;
    r.params.constraint = "(the|a|big|dog|cat|sun|ran|sat)( (the|a|big|dog|cat|sun|ran|sat)){4,7}";
  }
  std::unique_ptr<EngineLoop> plain = MakeEngine(EngineConfig{.max_model_len = 128});
  ASSERT_NE(plain, nullptr);
  const std::vector<RequestOutput> expected = Run(*plain, requests);
  ASSERT_EQ(expected.size(), requests.size());
  EngineConfig config{.max_model_len = 128};
  config.speculative = {.method = SpeculativeMethod::kDraftModel,
                        .num_speculative_tokens = 3,
                        .model = Stories260KDir()};
  std::unique_ptr<EngineLoop> engine =
      MakeEngine(config, 256, 16, {}, DType::kF32, {.path = Stories260KDir()});
  ASSERT_NE(engine, nullptr);
  const std::vector<RequestOutput> got = Run(*engine, requests);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].outputs[0].token_ids, expected[i].outputs[0].token_ids) << "prompt " << i;
    EXPECT_EQ(got[i].outputs[0].finish_reason, FinishReason::kStop) << "prompt " << i;
  }
  const SchedulerStats stats = engine->stats();
  ASSERT_GT(stats.spec_num_draft_tokens, 0);
  EXPECT_GT(static_cast<double>(stats.spec_num_accepted_tokens),
            0.9 * static_cast<double>(stats.spec_num_draft_tokens));
}

// stories260K with a sliding window of 10 in every layer (its outputs change, so the reference is
// the ModelRunner alone with whole block tables, one prompt at a time). Through the engine with
// blocks of 4, the blocks behind each window are given back: a cache of 36 blocks runs every prompt
// in one batch without a preemption, where full attention preempts; with prefix caching, n-gram
// speculation (rollbacks) and a cache so small that the windowed run preempts too, the tokens equal
// the reference's.
TEST_F(EngineGoldenTest, ASlidingWindowFreesTheBlocksBehindItAndKeepsTheOutputs) {
  constexpr int32_t kMaxTokens = 40;
  ModelConfig windowed = config_;
  windowed.sliding_window = 10;
  std::vector<std::vector<int32_t>> want;
  {
    auto weights = LoadModelWeights(windowed, Stories260KDir());
    ASSERT_TRUE(weights.ok()) << weights.status();
    auto runner =
        ModelRunner::Create(windowed, std::move(*weights), {.num_blocks = 16, .block_size = 16});
    ASSERT_TRUE(runner.ok()) << runner.status();
    std::vector<int32_t> table(16);
    for (int32_t b = 0; b < 16; ++b) table[b] = b;
    for (const GoldenCase& golden : *goldens_) {
      std::vector<int32_t> tokens = golden.prompt_ids;
      std::vector<int32_t> outputs;
      int64_t computed = 0;
      while (static_cast<int32_t>(outputs.size()) < kMaxTokens) {
        const SequenceInput seq{.token_ids = absl::MakeConstSpan(tokens).subspan(computed),
                                .num_computed_tokens = computed,
                                .block_table = table};
        absl::StatusOr<StepLogits*> logits = (*runner)->Execute({&seq, 1});
        ASSERT_TRUE(logits.ok()) << logits.status();
        const float* row = (*logits)->row(0);
        const int32_t next =
            static_cast<int32_t>(std::max_element(row, row + (*logits)->vocab_size) - row);
        computed = static_cast<int64_t>(tokens.size());
        tokens.push_back(next);
        outputs.push_back(next);
      }
      want.push_back(std::move(outputs));
    }
  }
  // The window changes the outputs (else this test would prove nothing about it).
  int differing = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::vector<int32_t>& golden = (*goldens_)[i].greedy_ids;
    differing += !std::equal(want[i].begin(), want[i].end(), golden.begin());
  }
  EXPECT_GT(differing, 0);

  struct Case {
    std::string name;
    int64_t window;
    int64_t num_blocks;
    bool prefix_caching;
    bool speculate;
  };
  for (const Case& c : std::vector<Case>{{"windowed, 36 blocks", 10, 36, false, false},
                                         {"full attention, 36 blocks", 0, 36, false, false},
                                         {"windowed, prefix caching", 10, 36, true, false},
                                         {"windowed, n-gram speculation", 10, 36, true, true},
                                         {"windowed, 8 blocks", 10, 8, true, true}}) {
    SCOPED_TRACE(c.name);
    config_.sliding_window = c.window;
    EngineConfig config{.max_model_len = 128, .enable_prefix_caching = c.prefix_caching};
    if (c.num_blocks == 8) {
      // A sequence then holds at most its window, one chunk of 8 and 3 drafts: 26 positions.
      config.max_num_seqs = 4;
      config.max_num_batched_tokens = 8;
    }
    if (c.speculate) {
      config.speculative = {.method = SpeculativeMethod::kNgram,
                            .num_speculative_tokens = 3,
                            .prompt_lookup_max = 3,
                            .prompt_lookup_min = 1};
    }
    std::unique_ptr<EngineLoop> engine = MakeEngine(config, c.num_blocks, /*block_size=*/4);
    ASSERT_NE(engine, nullptr);
    std::vector<RequestOutput> results = Run(*engine, GreedyRequests(kMaxTokens));
    ASSERT_EQ(results.size(), want.size());
    const SchedulerStats stats = engine->stats();
    if (c.window == 0) {
      // At full length the requests need more blocks than the cache holds. (Whether that takes
      // preemptions depends on when the loop admits each request: a request the loop starts
      // alone may finish before the others fill the cache.)
      int64_t needed = 0;
      for (const GoldenCase& golden : *goldens_) {
        needed += (static_cast<int64_t>(golden.prompt_ids.size()) + kMaxTokens + 3) / 4;
      }
      EXPECT_GT(needed, c.num_blocks) << "the cache should be too small for full attention";
      continue;
    }
    if (c.num_blocks == 36) {
      EXPECT_EQ(stats.num_preemptions, 0);
    } else {
      EXPECT_GT(stats.num_preemptions, 0);
    }
    for (size_t i = 0; i < results.size(); ++i) {
      ASSERT_EQ(results[i].outputs.size(), 1u);
      EXPECT_EQ(results[i].outputs[0].token_ids, want[i]) << "prompt " << i;
    }
  }
  config_.sliding_window = 0;
}

TEST_F(EngineGoldenTest, AbortMidDecodeEndsOneRequestAndLeavesTheOthers) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests = GreedyRequests();
  struct State {
    absl::Mutex mu;
    std::vector<RequestOutput> totals;
    size_t num_finished = 0;
    bool AllFinished() const { return num_finished == totals.size(); }
  } state;
  state.totals.resize(requests.size());
  EngineLoop* loop = engine.get();
  for (size_t i = 0; i < requests.size(); ++i) {
    auto callback = [&state, loop, i](const RequestOutput& delta) {
      bool abort = false;
      {
        absl::MutexLock lock(&state.mu);
        MergeRequestOutput(state.totals[i], delta);
        state.num_finished += delta.finished ? 1 : 0;
        abort = i == 0 && !delta.finished && state.totals[i].outputs[0].token_ids.size() >= 10;
      }
      if (abort) loop->Abort("g0");  // from the loop thread, as a frontend's callback may
    };
    ASSERT_TRUE(engine->AddRequest(requests[i], callback).ok());
  }
  absl::MutexLock lock(&state.mu, absl::Condition(&state, &State::AllFinished));
  const std::vector<RequestOutput>& totals = state.totals;
  const CompletionOutput& aborted = totals[0].outputs[0];
  EXPECT_EQ(aborted.finish_reason, FinishReason::kAbort);
  EXPECT_GE(aborted.token_ids.size(), 10u);
  EXPECT_LT(aborted.token_ids.size(), 64u);
  // What it produced before the abort is the golden prefix.
  EXPECT_EQ(aborted.token_ids,
            std::vector<int32_t>((*goldens_)[0].greedy_ids.begin(),
                                 (*goldens_)[0].greedy_ids.begin() + aborted.token_ids.size()));
  for (size_t i = 1; i < totals.size(); ++i) {
    EXPECT_EQ(totals[i].outputs[0].token_ids, (*goldens_)[i].greedy_ids) << i;
  }
  // The engine keeps serving.
  std::vector<EngineRequest> again = GreedyRequests();
  for (EngineRequest& r : again) r.request_id += "-again";
  ExpectGolden(Run(*engine, again), "after the abort");
}

TEST_F(EngineGoldenTest, SeededSamplesDifferAndAreReproducible) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  auto request = [&](const std::string& id, int32_t n) {
    EngineRequest r{.request_id = id, .prompt_token_ids = (*goldens_)[0].prompt_ids, .seed = 1234};
    r.params.n = n;
    r.params.temperature = 1.0f;
    r.params.max_tokens = 32;
    r.params.ignore_eos = true;
    return r;
  };
  std::vector<RequestOutput> first = Run(*engine, {request("a", 4)});
  std::vector<RequestOutput> second = Run(*engine, {request("b", 4)});
  std::vector<RequestOutput> single = Run(*engine, {request("c", 1)});
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].outputs.size(), 4u);
  ASSERT_EQ(second[0].outputs.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(first[0].outputs[i].index, i);
    EXPECT_EQ(first[0].outputs[i].token_ids, second[0].outputs[i].token_ids) << i;
    EXPECT_EQ(first[0].outputs[i].text, second[0].outputs[i].text) << i;
    for (int j = 0; j < i; ++j) {
      EXPECT_NE(first[0].outputs[i].token_ids, first[0].outputs[j].token_ids) << i << " " << j;
    }
  }
  // Sample 0 draws what a plain request with the same seed draws.
  EXPECT_EQ(single[0].outputs[0].token_ids, first[0].outputs[0].token_ids);
  EXPECT_EQ(first[0].usage->completion_tokens, 4 * 32);
}

TEST_F(EngineGoldenTest, StaticSchedulingMatchesContinuous) {
  std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/48);
  // A sampled request too: the seed fixes its draws under both policies.
  requests[1].params.temperature = 0.8f;
  requests[1].seed = 77;
  requests[2].params.ignore_eos = false;
  requests[2].params.max_tokens = 400;

  std::unique_ptr<EngineLoop> static_engine =
      MakeEngine(EngineConfig{.scheduler = SchedulerKind::kStatic});
  ASSERT_NE(static_engine, nullptr);
  std::vector<RequestOutput> expected = Run(*static_engine, requests);
  ASSERT_EQ(expected.size(), requests.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(expected[i].outputs.size(), 1u) << i;
    if (i == 1 || i == 2) continue;
    const std::vector<int32_t> golden((*goldens_)[i].greedy_ids.begin(),
                                      (*goldens_)[i].greedy_ids.begin() + 48);
    EXPECT_EQ(expected[i].outputs[0].token_ids, golden) << i;
  }

  std::unique_ptr<EngineLoop> engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  std::vector<RequestOutput> results = Run(*engine, requests);
  ASSERT_EQ(results.size(), expected.size());
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].outputs[0].token_ids, expected[i].outputs[0].token_ids) << i;
    EXPECT_EQ(results[i].outputs[0].text, expected[i].outputs[0].text) << i;
    EXPECT_EQ(results[i].outputs[0].finish_reason, expected[i].outputs[0].finish_reason) << i;
  }
}

TEST_F(EngineGoldenTest, RejectsARequestThatCanNeverFit) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests = GreedyRequests();
  requests[1].params.max_tokens = 600;
  auto results = engine->RunToCompletion(requests);
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(results.status().message()), ::testing::HasSubstr("request 1"));
  // The request added before it was aborted, and the engine goes on.
  std::vector<EngineRequest> again = GreedyRequests();
  for (EngineRequest& r : again) r.request_id += "-again";
  ExpectGolden(Run(*engine, again), "after a rejected batch");
}

}  // namespace
}  // namespace pagoda
