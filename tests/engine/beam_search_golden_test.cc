// Beam search through the EngineLoop on the real stories260K model must equal a plain, unpaged
// beam search written here: each beam keeps its full token list and every step re-runs the model
// on the whole sequence from scratch (a fresh prefill into its own blocks, no sharing, no cache
// reuse), so any mistake of the paged machinery (fork, copy-on-write, block sharing, preemption)
// shows up as a different beam.
//
// The reference replicates router/beam_search.cc (vLLM V0 semantics, early_stopping = False):
//  - a request starts with one beam (index 0, cumulative logprob 0); forks get the next index;
//  - each live beam proposes its top 2 * width tokens by raw logprob (log_softmax of the logits,
//    ties to the lower token id, like the sampler's TopK);
//  - candidates are ranked by cumulative logprob, ties by beam index then token id, and cut to
//    2 * width;
//  - walking the ranking until `width` candidates are selected: a stop candidate (EOS unless
//    ignore_eos) is kept as a finished beam only if its rank < width, scored over its length
//    without the EOS, and does not count as selected; any other candidate counts; it finishes
//    (kLength) when it reaches max_tokens, else it becomes a running beam;
//  - the request is done when no running beam is left, or when the width-th best finished score
//    is >= the best running candidate's score;
//  - score = cumulative_logprob / max(length, 1)^length_penalty; the n best finished beams are
//    returned, best first (stable on ties).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::Stories260KDir;

constexpr int32_t kMaxTokens = 12;
constexpr int64_t kRefBlockSize = 16;

struct RefBeam {
  int32_t index = 0;
  std::vector<int32_t> tokens;  // prompt + outputs
  double cumulative_logprob = 0;
};

struct RefFinished {
  std::vector<int32_t> output_ids;
  double cumulative_logprob = 0;
  double score = 0;
};

double Score(double cumulative_logprob, int64_t length, float length_penalty) {
  return cumulative_logprob / std::pow(static_cast<double>(std::max<int64_t>(length, 1)),
                                       static_cast<double>(length_penalty));
}

class BeamSearchGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    prompts_ = new std::vector<std::vector<int32_t>>();
    for (const testing::GoldenCase& golden : testing::LoadStories260KGoldens()) {
      prompts_->push_back(golden.prompt_ids);
    }
    ASSERT_FALSE(prompts_->empty()) << "no goldens in " << testing::Stories260KSourceDir();
  }
  static void TearDownTestSuite() { delete prompts_; }

  void SetUp() override {
    auto config = ModelConfig::FromDirectory(Stories260KDir());
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto tokenizer = Tokenizer::FromDirectory(Stories260KDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    eos_ids_ = EosTokenIds(config_.eos_token_ids, *tokenizer_);
    auto weights = LoadModelWeights(config_, Stories260KDir());
    ASSERT_TRUE(weights.ok()) << weights.status();
    auto runner = ModelRunner::Create(config_, std::move(*weights),
                                      {.num_blocks = 64, .block_size = kRefBlockSize});
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(*runner);
  }

  // Log-softmax of the last position's logits after prefilling `tokens` from scratch.
  std::vector<double> LastLogprobs(const std::vector<int32_t>& tokens) {
    const int64_t num_blocks =
        (static_cast<int64_t>(tokens.size()) + kRefBlockSize - 1) / kRefBlockSize;
    std::vector<int32_t> block_table(num_blocks);
    for (int64_t b = 0; b < num_blocks; ++b) block_table[b] = static_cast<int32_t>(b);
    const SequenceInput input{
        .token_ids = tokens, .num_computed_tokens = 0, .block_table = block_table, .sample = true};
    auto logits = runner_->Execute(absl::MakeConstSpan(&input, 1));
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    const float* row = (*logits)->row(0);
    const int64_t vocab = (*logits)->vocab_size;
    const float max = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i] - max));
    const double log_sum = std::log(sum);
    std::vector<double> out(vocab);
    for (int64_t i = 0; i < vocab; ++i) {
      // Rounded to float like the sampler's reported logprobs.
      out[i] = static_cast<float>(static_cast<double>(row[i] - max) - log_sum);
    }
    return out;
  }

  std::vector<RefFinished> ReferenceBeamSearch(const std::vector<int32_t>& prompt, int32_t width,
                                               int32_t n, float length_penalty, bool ignore_eos) {
    const std::vector<int32_t>& eos = eos_ids_;
    const size_t w = static_cast<size_t>(width);
    std::vector<RefBeam> live = {{.index = 0, .tokens = prompt, .cumulative_logprob = 0}};
    int32_t next_index = 1;
    std::vector<RefFinished> finished;
    const int64_t num_prompt = static_cast<int64_t>(prompt.size());
    while (true) {
      struct Candidate {
        size_t beam;  // into live
        int32_t token;
        double cumulative_logprob;
      };
      std::vector<Candidate> candidates;
      for (size_t b = 0; b < live.size(); ++b) {
        const std::vector<double> logprobs = LastLogprobs(live[b].tokens);
        if (logprobs.empty()) return {};
        std::vector<int32_t> ids(logprobs.size());
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
        const size_t k = std::min<size_t>(2 * w, ids.size());
        std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t c) {
          return logprobs[a] != logprobs[c] ? logprobs[a] > logprobs[c] : a < c;
        });
        for (size_t i = 0; i < k; ++i) {
          candidates.push_back({b, ids[i], live[b].cumulative_logprob + logprobs[ids[i]]});
        }
      }
      std::stable_sort(candidates.begin(), candidates.end(),
                       [&](const Candidate& a, const Candidate& c) {
                         if (a.cumulative_logprob != c.cumulative_logprob) {
                           return a.cumulative_logprob > c.cumulative_logprob;
                         }
                         if (live[a.beam].index != live[c.beam].index) {
                           return live[a.beam].index < live[c.beam].index;
                         }
                         return a.token < c.token;
                       });
      if (candidates.size() > 2 * w) candidates.resize(2 * w);

      std::vector<Candidate> next;
      size_t num_selected = 0;
      for (size_t rank = 0; rank < candidates.size() && num_selected < w; ++rank) {
        const Candidate& c = candidates[rank];
        const RefBeam& beam = live[c.beam];
        std::vector<int32_t> outputs(beam.tokens.begin() + num_prompt, beam.tokens.end());
        outputs.push_back(c.token);
        const int64_t out_len = static_cast<int64_t>(outputs.size());
        if (!ignore_eos && std::ranges::find(eos, c.token) != eos.end()) {
          if (rank < w) {
            finished.push_back({outputs, c.cumulative_logprob,
                                Score(c.cumulative_logprob, out_len - 1, length_penalty)});
          }
          continue;
        }
        ++num_selected;
        if (out_len >= kMaxTokens) {
          finished.push_back({outputs, c.cumulative_logprob,
                              Score(c.cumulative_logprob, out_len, length_penalty)});
          continue;
        }
        next.push_back(c);
      }

      bool done = next.empty();
      if (!done && finished.size() >= w) {
        std::vector<double> scores;
        for (const RefFinished& f : finished) scores.push_back(f.score);
        std::sort(scores.begin(), scores.end(), std::greater<double>());
        double best_running = -INFINITY;
        for (const Candidate& c : next) {
          const int64_t len = static_cast<int64_t>(live[c.beam].tokens.size()) - num_prompt + 1;
          best_running = std::max(best_running, Score(c.cumulative_logprob, len, length_penalty));
        }
        done = scores[w - 1] >= best_running;
      }
      if (done) break;

      // A parent keeps its index for its best candidate; its other candidates become new beams,
      // created in (parent, rank) order after every existing beam.
      std::vector<RefBeam> parents;
      std::vector<RefBeam> children;
      for (size_t b = 0; b < live.size(); ++b) {
        bool first = true;
        for (const Candidate& c : next) {
          if (c.beam != b) continue;
          RefBeam beam{.index = live[b].index,
                       .tokens = live[b].tokens,
                       .cumulative_logprob = c.cumulative_logprob};
          beam.tokens.push_back(c.token);
          if (first) {
            parents.push_back(std::move(beam));
            first = false;
          } else {
            beam.index = next_index++;
            children.push_back(std::move(beam));
          }
        }
      }
      live = std::move(parents);
      for (RefBeam& child : children) live.push_back(std::move(child));
    }
    std::stable_sort(finished.begin(), finished.end(),
                     [](const RefFinished& a, const RefFinished& b) { return a.score > b.score; });
    if (finished.size() > static_cast<size_t>(n)) finished.resize(n);
    return finished;
  }

  std::unique_ptr<EngineLoop> MakeEngine(const EngineConfig& config) {
    auto weights = LoadModelWeights(config_, Stories260KDir());
    EXPECT_TRUE(weights.ok()) << weights.status();
    if (!weights.ok()) return nullptr;
    auto executor = InProcessExecutor::Create(
        config_, std::move(*weights),
        {.num_device_blocks = 256, .block_size = 16, .extra_eos_token_ids = eos_ids_});
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return nullptr;
    auto engine = EngineLoop::Create(config, std::move(*executor), tokenizer_.get(), eos_ids_);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  void ExpectEngineMatchesReference(int32_t width, bool ignore_eos, bool async_output) {
    const std::string what = "width " + std::to_string(width) + ", ignore_eos " +
                             std::to_string(ignore_eos) + ", async " + std::to_string(async_output);
    std::unique_ptr<EngineLoop> engine = MakeEngine({.async_output = async_output});
    ASSERT_NE(engine, nullptr);
    std::vector<EngineRequest> requests;
    for (size_t i = 0; i < prompts_->size(); ++i) {
      EngineRequest r{.request_id = "b" + std::to_string(i), .prompt_token_ids = (*prompts_)[i]};
      r.params.n = width;
      r.params.beam_width = width;
      r.params.length_penalty = 1.0f;
      r.params.max_tokens = kMaxTokens;
      r.params.ignore_eos = ignore_eos;
      requests.push_back(std::move(r));
    }
    // Every prompt in one continuous batch, so beams of different requests share steps.
    auto results = engine->RunToCompletion(std::move(requests));
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_EQ(results->size(), prompts_->size());
    for (size_t i = 0; i < prompts_->size(); ++i) {
      const std::vector<RefFinished> expected =
          ReferenceBeamSearch((*prompts_)[i], width, width, 1.0f, ignore_eos);
      const std::vector<CompletionOutput>& outputs = (*results)[i].outputs;
      ASSERT_EQ(outputs.size(), expected.size()) << what << ", prompt " << i;
      for (size_t rank = 0; rank < expected.size(); ++rank) {
        EXPECT_EQ(outputs[rank].index, static_cast<int32_t>(rank));
        EXPECT_EQ(outputs[rank].token_ids, expected[rank].output_ids)
            << what << ", prompt " << i << ", rank " << rank;
        ASSERT_TRUE(outputs[rank].cumulative_logprob.has_value());
        EXPECT_NEAR(*outputs[rank].cumulative_logprob, expected[rank].cumulative_logprob, 1e-3)
            << what << ", prompt " << i << ", rank " << rank;
      }
    }
  }

  static std::vector<std::vector<int32_t>>* prompts_;  // golden_greedy.jsonl's prompt ids
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> eos_ids_;  // what generation stops at
  std::unique_ptr<ModelRunner> runner_;
};

std::vector<std::vector<int32_t>>* BeamSearchGoldenTest::prompts_ = nullptr;

TEST_F(BeamSearchGoldenTest, WidthTwoMatchesUnpagedReference) {
  ExpectEngineMatchesReference(/*width=*/2, /*ignore_eos=*/true, /*async_output=*/true);
}

TEST_F(BeamSearchGoldenTest, WidthFourMatchesUnpagedReference) {
  ExpectEngineMatchesReference(/*width=*/4, /*ignore_eos=*/true, /*async_output=*/true);
}

TEST_F(BeamSearchGoldenTest, WidthFourWithEosRulesAndSyncOutputMatchesUnpagedReference) {
  ExpectEngineMatchesReference(/*width=*/4, /*ignore_eos=*/false, /*async_output=*/false);
}

TEST_F(BeamSearchGoldenTest, WidthTwoWithEosRulesMatchesUnpagedReference) {
  ExpectEngineMatchesReference(/*width=*/2, /*ignore_eos=*/false, /*async_output=*/true);
}

}  // namespace
}  // namespace pagoda
