// End-to-end checks of the model path on the real stories260K model under static batching (the
// Scheduler's kStatic policy: fixed waves that reserve prompt + max_tokens): convert the llama2.c
// checkpoint, tokenize, run the paged CPU forward pass through the EngineLoop and an
// InProcessExecutor, sample — against golden_greedy.jsonl. Chunked prefill, which static batching
// does not do, runs under the continuous policy with a small token budget.
#include <memory>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::GoldenCase;
using testing::Stories260KDir;

constexpr EngineConfig kStaticBatching{.scheduler = SchedulerKind::kStatic};

class StoriesTest : public ::testing::Test {
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

  std::unique_ptr<EngineLoop> MakeEngine(const EngineConfig& config, int64_t block_size,
                                         int64_t num_blocks) {
    auto weights = LoadModelWeights(config_, Stories260KDir());
    EXPECT_TRUE(weights.ok()) << weights.status();
    if (!weights.ok()) return nullptr;
    auto executor = InProcessExecutor::Create(config_, std::move(*weights),
                                              {.num_device_blocks = num_blocks,
                                               .block_size = block_size,
                                               .extra_eos_token_ids = eos_ids_});
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return nullptr;
    auto engine = EngineLoop::Create(config, std::move(*executor), tokenizer_.get(), eos_ids_);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // The golden prompts as the tokenizer encodes them.
  std::vector<EngineRequest> GreedyRequests(int32_t max_tokens = 64) {
    std::vector<EngineRequest> requests;
    for (size_t i = 0; i < goldens_->size(); ++i) {
      EngineRequest r{.request_id = "g" + std::to_string(i),
                      .prompt_token_ids = tokenizer_->Encode((*goldens_)[i].prompt)};
      r.params.temperature = 0;
      r.params.max_tokens = max_tokens;
      r.params.ignore_eos = true;
      requests.push_back(std::move(r));
    }
    return requests;
  }

  std::vector<RequestOutput> Run(EngineLoop& engine, std::vector<EngineRequest> requests) {
    for (EngineRequest& r : requests) r.request_id += "-" + std::to_string(next_run_++);
    auto results = engine.RunToCompletion(std::move(requests));
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? std::move(*results) : std::vector<RequestOutput>{};
  }

  static std::vector<GoldenCase>* goldens_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> eos_ids_;
  int next_run_ = 0;  // keeps request ids unique across runs on one engine
};

std::vector<GoldenCase>* StoriesTest::goldens_ = nullptr;

TEST_F(StoriesTest, ConvertedTokenizerEncodesGoldenPrompts) {
  for (const GoldenCase& g : *goldens_) {
    EXPECT_EQ(tokenizer_->Encode(g.prompt), g.prompt_ids) << g.prompt;
  }
}

TEST_F(StoriesTest, GreedyDecodingMatchesGoldenForEachPromptAlone) {
  std::unique_ptr<EngineLoop> engine =
      MakeEngine(kStaticBatching, /*block_size=*/16, /*num_blocks=*/64);
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> all = GreedyRequests();
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].prompt_token_ids, (*goldens_)[i].prompt_ids);
    std::vector<RequestOutput> results = Run(*engine, {all[i]});
    ASSERT_EQ(results.size(), 1u);
    ASSERT_EQ(results[0].outputs.size(), 1u);
    const CompletionOutput& out = results[0].outputs[0];
    EXPECT_EQ(out.token_ids, (*goldens_)[i].greedy_ids) << (*goldens_)[i].prompt;
    EXPECT_EQ(out.text, (*goldens_)[i].greedy_text);
    ASSERT_TRUE(out.finish_reason.has_value());
    EXPECT_EQ(FinishReasonName(*out.finish_reason), "length");
  }
}

TEST_F(StoriesTest, OneBatchGivesTheSameTokensAsEachAlone) {
  for (int64_t block_size : {1, 16, 32}) {
    // One static wave of whole prompts; then chunked prefill: a 7-token budget (continuous
    // batching) splits every prompt across steps beside the decodes.
    const EngineConfig chunked{.max_num_seqs = 7, .max_num_batched_tokens = 7};
    for (const EngineConfig& config : {kStaticBatching, chunked}) {
      std::unique_ptr<EngineLoop> engine =
          MakeEngine(config, block_size, /*num_blocks=*/4 * (512 / block_size + 1));
      ASSERT_NE(engine, nullptr);
      std::vector<RequestOutput> results = Run(*engine, GreedyRequests());
      ASSERT_EQ(results.size(), goldens_->size());
      for (size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].outputs[0].token_ids, (*goldens_)[i].greedy_ids)
            << "block size " << block_size << ", budget " << config.max_num_batched_tokens
            << ", prompt " << i;
      }
    }
  }
}

TEST_F(StoriesTest, SeededSamplingDoesNotDependOnTheBatch) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(kStaticBatching, 16, 64);
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/40);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].params.temperature = 0.9f;
    requests[i].params.top_p = 0.95f;
    requests[i].seed = 1000 + i;
  }
  std::vector<RequestOutput> together = Run(*engine, requests);
  ASSERT_EQ(together.size(), requests.size());
  bool any_differs_from_greedy = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<RequestOutput> alone = Run(*engine, {requests[i]});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].outputs[0].token_ids, together[i].outputs[0].token_ids) << "prompt " << i;
    std::vector<int32_t> greedy((*goldens_)[i].greedy_ids.begin(),
                                (*goldens_)[i].greedy_ids.begin() + 40);
    any_differs_from_greedy |= together[i].outputs[0].token_ids != greedy;
  }
  EXPECT_TRUE(any_differs_from_greedy) << "sampling at T=0.9 should not reproduce greedy";
}

TEST_F(StoriesTest, StopsAtEosUnlessIgnored) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(kStaticBatching, 16, 64);
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests = GreedyRequests(/*max_tokens=*/400);
  for (auto& r : requests) r.params.ignore_eos = false;
  for (const RequestOutput& result : Run(*engine, requests)) {
    const CompletionOutput& r = result.outputs[0];
    // stories260K's EOS is </s> = 2: it may only appear as the last token of a stopped request.
    const std::vector<int32_t> body(r.token_ids.begin(), r.token_ids.end() - 1);
    EXPECT_THAT(body, ::testing::Not(::testing::Contains(2)));
    if (r.finish_reason == FinishReason::kStop) {
      EXPECT_EQ(r.token_ids.back(), 2);
    } else {
      EXPECT_EQ(r.token_ids.size(), 400u);
      EXPECT_NE(r.token_ids.back(), 2);
    }
  }
}

TEST_F(StoriesTest, RejectsRequestsBeyondTheModelsPositions) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(kStaticBatching, 16, 64);
  ASSERT_NE(engine, nullptr);
  auto results = engine->RunToCompletion(GreedyRequests(/*max_tokens=*/600));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(results.status().message()),
              ::testing::HasSubstr("exceed max_model_len 512"));
}

}  // namespace
}  // namespace pagoda
