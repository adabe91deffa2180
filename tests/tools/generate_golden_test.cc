// End-to-end checks of the model path on the real stories260K model: convert the llama2.c
// checkpoint, tokenize, run the paged CPU forward pass, sample — against golden_greedy.jsonl.
#include <memory>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "tools/offline_generator.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::GoldenCase;
using testing::Stories260KDir;

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
  }

  std::unique_ptr<ModelRunner> MakeRunner(int64_t block_size, int64_t num_blocks) {
    auto weights = LoadModelWeights(config_, Stories260KDir());
    EXPECT_TRUE(weights.ok()) << weights.status();
    auto runner = ModelRunner::Create(config_, std::move(*weights),
                                      {.num_blocks = num_blocks, .block_size = block_size});
    EXPECT_TRUE(runner.ok()) << runner.status();
    return std::move(*runner);
  }

  std::vector<GenerationRequest> GreedyRequests(int64_t max_tokens = 64) {
    std::vector<GenerationRequest> requests;
    for (const GoldenCase& g : *goldens_) {
      GenerationRequest r{.prompt = g.prompt};
      r.params.temperature = 0;
      r.params.max_tokens = static_cast<int32_t>(max_tokens);
      r.params.ignore_eos = true;
      requests.push_back(std::move(r));
    }
    return requests;
  }

  std::vector<GenerationResult> Run(ModelRunner* runner, std::vector<GenerationRequest> requests,
                                    int64_t max_num_batched_tokens = 4096) {
    OfflineGenerator generator(runner, tokenizer_.get(),
                               {.max_num_batched_tokens = max_num_batched_tokens});
    auto results = generator.Generate(std::move(requests));
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? std::move(*results) : std::vector<GenerationResult>{};
  }

  static std::vector<GoldenCase>* goldens_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

std::vector<GoldenCase>* StoriesTest::goldens_ = nullptr;

TEST_F(StoriesTest, ConvertedTokenizerEncodesGoldenPrompts) {
  for (const GoldenCase& g : *goldens_) {
    EXPECT_EQ(tokenizer_->Encode(g.prompt), g.prompt_ids) << g.prompt;
  }
}

TEST_F(StoriesTest, GreedyDecodingMatchesGoldenForEachPromptAlone) {
  auto runner = MakeRunner(/*block_size=*/16, /*num_blocks=*/64);
  std::vector<GenerationRequest> all = GreedyRequests();
  for (size_t i = 0; i < all.size(); ++i) {
    std::vector<GenerationResult> results = Run(runner.get(), {all[i]});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].prompt_token_ids, (*goldens_)[i].prompt_ids);
    EXPECT_EQ(results[0].token_ids, (*goldens_)[i].greedy_ids) << (*goldens_)[i].prompt;
    EXPECT_EQ(results[0].text, (*goldens_)[i].greedy_text);
    EXPECT_EQ(FinishReasonName(results[0].finish_reason), "length");
  }
}

TEST_F(StoriesTest, OneBatchGivesTheSameTokensAsEachAlone) {
  for (int64_t block_size : {1, 16, 32}) {
    auto runner = MakeRunner(block_size, /*num_blocks=*/4 * (512 / block_size + 1));
    // Chunked prefill too: a 7-token budget splits every prompt across steps.
    for (int64_t budget : {4096, 7}) {
      std::vector<GenerationResult> results = Run(runner.get(), GreedyRequests(), budget);
      ASSERT_EQ(results.size(), goldens_->size());
      for (size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].token_ids, (*goldens_)[i].greedy_ids)
            << "block size " << block_size << ", budget " << budget << ", prompt " << i;
      }
    }
  }
}

TEST_F(StoriesTest, SeededSamplingDoesNotDependOnTheBatch) {
  auto runner = MakeRunner(16, 64);
  std::vector<GenerationRequest> requests = GreedyRequests(/*max_tokens=*/40);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].params.temperature = 0.9f;
    requests[i].params.top_p = 0.95f;
    requests[i].seed = 1000 + i;
  }
  std::vector<GenerationResult> together = Run(runner.get(), requests);
  ASSERT_EQ(together.size(), requests.size());
  bool any_differs_from_greedy = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<GenerationResult> alone = Run(runner.get(), {requests[i]});
    EXPECT_EQ(alone[0].token_ids, together[i].token_ids) << "prompt " << i;
    std::vector<int32_t> greedy((*goldens_)[i].greedy_ids.begin(),
                                (*goldens_)[i].greedy_ids.begin() + 40);
    any_differs_from_greedy |= together[i].token_ids != greedy;
  }
  EXPECT_TRUE(any_differs_from_greedy) << "sampling at T=0.9 should not reproduce greedy";
}

TEST_F(StoriesTest, StopsAtEosUnlessIgnored) {
  auto runner = MakeRunner(16, 64);
  std::vector<GenerationRequest> requests = GreedyRequests(/*max_tokens=*/400);
  for (auto& r : requests) r.params.ignore_eos = false;
  std::vector<GenerationResult> results = Run(runner.get(), requests);
  for (const GenerationResult& r : results) {
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
  auto runner = MakeRunner(16, 64);
  std::vector<GenerationRequest> requests = GreedyRequests(/*max_tokens=*/600);
  OfflineGenerator generator(runner.get(), tokenizer_.get(), {});
  auto results = generator.Generate(std::move(requests));
  ASSERT_FALSE(results.ok());
  EXPECT_THAT(std::string(results.status().message()),
              ::testing::HasSubstr("exceeds the model's 512 positions"));
}

}  // namespace
}  // namespace pagoda
