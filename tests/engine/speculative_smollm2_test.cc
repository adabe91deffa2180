// Speculative decoding on SmolLM2-135M-Instruct (Q4_1, the quick start's file; skipped when
// scripts/install-deps.sh has not fetched it): the four golden chat prompts in one continuous
// batch whose small cache forces preemptions, greedy, without speculation, with the n-gram
// proposer (alone and with a lookup history) and with the file as its own draft model. Without
// speculation the tokens are the float64 goldens up to near-ties
// (tests/testing/smollm2_near_tie.h); with every proposer they are exactly the tokens without it.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_source.h"
#include "engine/engine_loop.h"
#include "gtest/gtest.h"
#include "tests/testing/smollm2.h"
#include "tests/testing/smollm2_near_tie.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::LoadSmolLm2Goldens;
using testing::SmolLm2Golden;
using testing::SmolLm2Path;

constexpr int32_t kMaxTokens = 32;

// The outputs of every golden prompt, greedy, through one engine.
std::vector<std::vector<int32_t>> Generate(const ModelSource& model,
                                           const std::vector<SmolLm2Golden>& goldens,
                                           const SpeculativeConfig& speculative,
                                           SchedulerStats* stats) {
  const ModelConfig& config = model.config();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = model.LoadTokenizer();
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<ModelWeights> weights = LoadModelWeights(model);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (!tokenizer.ok() || !weights.ok()) return {};
  const std::vector<int32_t> eos = EosTokenIds(config.eos_token_ids, **tokenizer);
  // 12 blocks of 16 tokens: the four sequences (38-60 prompt tokens + 32 outputs) cannot all
  // hold theirs at once.
  auto executor = InProcessExecutor::Create(config, std::move(*weights),
                                            {.num_device_blocks = 12,
                                             .block_size = 16,
                                             .extra_eos_token_ids = eos,
                                             .draft = {.path = speculative.model},
                                             .model_path = model.path()});
  EXPECT_TRUE(executor.ok()) << executor.status();
  if (!executor.ok()) return {};
  EngineConfig engine_config{.max_model_len = 160};
  engine_config.speculative = speculative;
  auto engine = EngineLoop::Create(engine_config, std::move(*executor), tokenizer->get(), eos);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return {};
  std::vector<EngineRequest> requests;
  for (size_t i = 0; i < goldens.size(); ++i) {
    EngineRequest r{.request_id = absl::StrCat("s", i), .prompt_token_ids = goldens[i].prompt_ids};
    r.params.temperature = 0;
    r.params.max_tokens = kMaxTokens;
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  absl::StatusOr<std::vector<RequestOutput>> outputs =
      (*engine)->RunToCompletion(std::move(requests));
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  if (!outputs.ok()) return {};
  *stats = (*engine)->stats();
  std::vector<std::vector<int32_t>> tokens;
  for (const RequestOutput& out : *outputs) tokens.push_back(out.outputs.at(0).token_ids);
  return tokens;
}

TEST(SpeculativeSmolLm2, BothProposersGiveTheTokensOfDecodingOneAtATime) {
  if (!std::filesystem::exists(SmolLm2Path())) {
    GTEST_SKIP() << SmolLm2Path() << " is absent (scripts/install-deps.sh fetches it)";
  }
  const std::vector<SmolLm2Golden> goldens = LoadSmolLm2Goldens();
  ASSERT_FALSE(goldens.empty());
  absl::StatusOr<ModelSource> model = ModelSource::Open(SmolLm2Path());
  ASSERT_TRUE(model.ok()) << model.status();

  SchedulerStats stats;
  const std::vector<std::vector<int32_t>> plain = Generate(*model, goldens, {}, &stats);
  ASSERT_EQ(plain.size(), goldens.size());
  EXPECT_GT(stats.num_preemptions, 0);
  for (size_t s = 0; s < goldens.size(); ++s) {
    ASSERT_EQ(plain[s].size(), static_cast<size_t>(kMaxTokens));
    for (size_t t = 0; t < plain[s].size() && t < goldens[s].greedy_ids.size(); ++t) {
      if (plain[s][t] != goldens[s].greedy_ids[t] &&
          goldens[s].top2_margin[t] < testing::SmolLm2NearTie()) {
        break;  // a near-tie: another continuation from here
      }
      ASSERT_EQ(plain[s][t], goldens[s].greedy_ids[t]) << "prompt " << s << " token " << t;
    }
  }

  const SpeculativeConfig proposers[] = {
      {.method = SpeculativeMethod::kNgram, .num_speculative_tokens = 3, .prompt_lookup_min = 1},
      {.method = SpeculativeMethod::kNgram,
       .num_speculative_tokens = 7,
       .prompt_lookup_history_tokens = 4096},
      {.method = SpeculativeMethod::kDraftModel,
       .num_speculative_tokens = 3,
       .model = SmolLm2Path()}};
  for (const SpeculativeConfig& speculative : proposers) {
    const std::string what = speculative.ToJson();
    SchedulerStats spec_stats;
    EXPECT_EQ(Generate(*model, goldens, speculative, &spec_stats), plain) << what;
    EXPECT_GT(spec_stats.spec_num_accepted_tokens, 0) << what;
    EXPECT_GT(spec_stats.num_preemptions, 0) << what;
    if (speculative.method == SpeculativeMethod::kDraftModel) {
      // The model proposing for itself: every draft is the token it then samples.
      EXPECT_GT(spec_stats.spec_num_accepted_tokens, spec_stats.spec_num_draft_tokens * 9 / 10)
          << what;
    }
  }
}

}  // namespace
}  // namespace pagoda
