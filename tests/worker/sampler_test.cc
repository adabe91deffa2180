#include "worker/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Samples one sequence; `logits` is copied, so a test can reuse it.
absl::StatusOr<SampleOutput> SampleOne(std::vector<float> logits, const SamplingParams& params,
                                       uint64_t seed = 0, int64_t step = 0,
                                       std::vector<int32_t> prompt = {},
                                       std::vector<int32_t> output = {},
                                       std::vector<int32_t> eos = {}) {
  SamplingInput input{.params = &params,
                      .seed = seed,
                      .step = step,
                      .prompt_token_ids = prompt,
                      .output_token_ids = output,
                      .eos_token_ids = eos};
  const int64_t vocab_size = static_cast<int64_t>(logits.size());
  absl::StatusOr<std::vector<SampleOutput>> out =
      Sampler().Sample(absl::MakeSpan(logits), 1, vocab_size, {input});
  if (!out.ok()) return out.status();
  return (*out)[0];
}

int32_t TokenAt(const std::vector<float>& logits, const SamplingParams& params, uint64_t seed,
                int64_t step) {
  absl::StatusOr<SampleOutput> out = SampleOne(logits, params, seed, step);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->token_id : -1;
}

// Token frequencies over `num_draws` steps of one seed.
std::vector<int> Histogram(const std::vector<float>& logits, const SamplingParams& params,
                           int num_draws, uint64_t seed = 42) {
  std::vector<int> counts(logits.size(), 0);
  for (int step = 0; step < num_draws; ++step) ++counts[TokenAt(logits, params, seed, step)];
  return counts;
}

std::vector<float> LogOf(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

std::vector<float> RandomLogits(int64_t vocab_size, uint32_t seed, float scale = 3.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> logits(vocab_size);
  for (float& x : logits) x = normal(gen);
  return logits;
}

// Logits 0.0, 0.1, ..., 0.1 * (n - 1), `rows` times over: each row's best id is n - 1, then n - 2.
std::vector<float> Ramp(int n, int rows = 1) {
  std::vector<float> logits;
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) logits.push_back(0.1f * static_cast<float>(i));
  }
  return logits;
}

SamplingParams Greedy() {
  SamplingParams params;
  params.temperature = 0.0f;
  return params;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  EXPECT_EQ(TokenAt({0.1f, 3.0f, -1.0f, 2.9f}, Greedy(), 0, 0), 1);
  EXPECT_EQ(TokenAt({1.0f, 5.0f, 2.0f, 5.0f, 5.0f}, Greedy(), 0, 0), 1);
  EXPECT_EQ(TokenAt({-kInf, -kInf, -3.0f}, Greedy(), 0, 0), 2);
}

TEST(Sampler, UniformDrawIsInUnitIntervalAndDependsOnSeedAndStep) {
  EXPECT_EQ(Sampler::UniformDraw(7, 3), Sampler::UniformDraw(7, 3));
  EXPECT_NE(Sampler::UniformDraw(7, 3), Sampler::UniformDraw(7, 4));
  EXPECT_NE(Sampler::UniformDraw(7, 3), Sampler::UniformDraw(8, 3));
  double sum = 0.0;
  for (int step = 0; step < 10000; ++step) {
    const double u = Sampler::UniformDraw(123, step);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.01);
}

TEST(Sampler, SameSeedGivesSameTokensWhateverTheBatch) {
  const int64_t vocab_size = 1000;
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_p = 0.95f;
  SamplingParams other;
  other.temperature = 1.3f;
  other.top_k = 50;
  const std::vector<float> logits = RandomLogits(vocab_size, 1, 1.0f);
  const std::vector<float> noise_a = RandomLogits(vocab_size, 2);
  const std::vector<float> noise_b = RandomLogits(vocab_size, 3);

  for (int64_t step = 0; step < 50; ++step) {
    const int32_t alone = TokenAt(logits, params, 99, step);
    // The same sequence third in a batch whose neighbours differ, sampled in parallel.
    std::vector<float> batch;
    for (const auto* row : {&noise_a, &noise_b, &logits, &noise_a}) {
      batch.insert(batch.end(), row->begin(), row->end());
    }
    const std::vector<SamplingInput> inputs = {{.params = &other, .seed = 5, .step = 17},
                                               {.params = &params, .seed = 6, .step = step},
                                               {.params = &params, .seed = 99, .step = step},
                                               {.params = &other, .seed = 99, .step = 2}};
    absl::StatusOr<std::vector<SampleOutput>> out =
        Sampler({.min_parallel_seqs = 1}).Sample(absl::MakeSpan(batch), 4, vocab_size, inputs);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[2].token_id, alone) << "step " << step;
  }
}

TEST(Sampler, ParallelBatchEqualsSerialBatch) {
  const int64_t num_seqs = 16, vocab_size = 5000;
  std::vector<SamplingParams> params(num_seqs);
  std::vector<float> logits;
  for (int64_t i = 0; i < num_seqs; ++i) {
    params[i].temperature = 0.5f + 0.1f * static_cast<float>(i);
    params[i].top_k = static_cast<int32_t>(i % 3) * 20;
    params[i].top_p = i % 2 == 0 ? 1.0f : 0.8f;
    params[i].logprobs = static_cast<int32_t>(i % 4);
    const std::vector<float> row = RandomLogits(vocab_size, static_cast<uint32_t>(i));
    logits.insert(logits.end(), row.begin(), row.end());
  }
  std::vector<SamplingInput> inputs;
  for (int64_t i = 0; i < num_seqs; ++i) {
    inputs.push_back({.params = &params[i], .seed = static_cast<uint64_t>(i), .step = i});
  }
  std::vector<float> copy = logits;
  auto parallel = Sampler({.min_parallel_seqs = 1})
                      .Sample(absl::MakeSpan(logits), num_seqs, vocab_size, inputs);
  auto serial = Sampler({.min_parallel_seqs = 1000})
                    .Sample(absl::MakeSpan(copy), num_seqs, vocab_size, inputs);
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  ASSERT_TRUE(serial.ok()) << serial.status();
  for (int64_t i = 0; i < num_seqs; ++i) {
    EXPECT_EQ((*parallel)[i].token_id, (*serial)[i].token_id);
    EXPECT_EQ((*parallel)[i].logprob, (*serial)[i].logprob);
    EXPECT_EQ((*parallel)[i].top_logprobs, (*serial)[i].top_logprobs);
  }
}

TEST(Sampler, DifferentSeedsGiveDifferentTokens) {
  const std::vector<float> flat(100, 0.0f);
  SamplingParams params;
  int differing = 0;
  for (int64_t step = 0; step < 200; ++step) {
    differing += TokenAt(flat, params, 1, step) != TokenAt(flat, params, 2, step);
  }
  EXPECT_GT(differing, 180);  // expect 198 of 200 under independence
}

// Pearson's chi-square statistic of `counts` against `probs`.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs) {
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    const double expected = total * probs[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> probs;
  double sum = 0.0;
  for (float x : logits) sum += std::exp(x / temperature);
  for (float x : logits) probs.push_back(std::exp(x / temperature) / sum);
  return probs;
}

TEST(Sampler, FrequenciesMatchSoftmaxOfTemperedLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f};
  for (float temperature : {0.7f, 1.0f, 2.0f}) {
    SamplingParams params;
    params.temperature = temperature;
    const std::vector<int> counts = Histogram(logits, params, 20000);
    // 4 degrees of freedom: P(chi2 > 25) is about 5e-5; the draws are seeded, so this is fixed.
    EXPECT_LT(ChiSquare(counts, Softmax(logits, temperature)), 25.0) << "T=" << temperature;
  }
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  const std::vector<float> logits = RandomLogits(1000, 7, 0.5f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  SamplingParams params;
  params.top_k = 5;
  const std::vector<int> counts = Histogram(logits, params, 5000);
  std::vector<double> expected(logits.size(), 0.0);
  double kept_mass = 0.0;
  for (int i = 0; i < 5; ++i) kept_mass += std::exp(logits[order[i]]);
  for (int i = 0; i < 5; ++i) expected[order[i]] = std::exp(logits[order[i]]) / kept_mass;
  EXPECT_LT(ChiSquare(counts, expected), 25.0);
  for (int i = 0; i < 5; ++i) EXPECT_GT(counts[order[i]], 0);
}

TEST(Sampler, TopKBeyondVocabKeepsEverything) {
  const std::vector<float> logits = {0.0f, 0.5f, 1.0f};
  SamplingParams params;
  params.top_k = 1000;
  EXPECT_LT(ChiSquare(Histogram(logits, params, 20000), Softmax(logits, 1.0)), 20.0);
}

TEST(Sampler, TopPKeepsTheMinimalNucleus) {
  const std::vector<float> logits = LogOf({0.5, 0.3, 0.15, 0.05});
  SamplingParams params;
  params.top_p = 0.75f;  // 0.5 < 0.75 <= 0.5 + 0.3
  EXPECT_LT(ChiSquare(Histogram(logits, params, 20000), {0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0}), 20.0);
  params.top_p = 0.85f;
  EXPECT_LT(ChiSquare(Histogram(logits, params, 20000), {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0}),
            20.0);
  params.top_p = 1e-6f;  // a tiny nucleus still holds the top token
  EXPECT_THAT(Histogram(logits, params, 200), ElementsAre(200, 0, 0, 0));
}

TEST(Sampler, TopPBreaksTiesByLowestId) {
  const std::vector<float> flat(100, 0.0f);
  SamplingParams params;
  params.top_p = 0.5f;  // exactly the 50 lowest ids
  const std::vector<int> counts = Histogram(flat, params, 5000);
  for (int id = 0; id < 100; ++id) {
    if (id < 50) {
      EXPECT_GT(counts[id], 0) << id;
    } else {
      EXPECT_EQ(counts[id], 0) << id;
    }
  }
}

TEST(Sampler, TopPOverALargeVocabStaysInsideTheNucleusAndReachesItsEdge) {
  const int64_t vocab_size = 128000;
  const std::vector<float> logits = RandomLogits(vocab_size, 11, 2.0f);
  SamplingParams params;
  params.top_p = 0.5f;
  // The reference nucleus: full sort, cumulative mass in double.
  std::vector<int32_t> order(vocab_size);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const float max_logit = logits[order[0]];
  double total = 0.0;
  for (float x : logits) total += std::exp(x - max_logit);
  std::vector<int64_t> rank(vocab_size);
  for (int64_t r = 0; r < vocab_size; ++r) rank[order[r]] = r;
  int64_t nucleus = 0;
  for (double mass = 0.0; mass < params.top_p * total; ++nucleus) {
    mass += std::exp(logits[order[nucleus]] - max_logit);
  }
  ASSERT_GT(nucleus, 300);  // several selection chunks deep

  int64_t deepest = 0;
  for (int64_t step = 0; step < 400; ++step) {
    const int32_t token = TokenAt(logits, params, 3, step);
    ASSERT_LT(rank[token], nucleus) << "token " << token;
    deepest = std::max(deepest, rank[token]);
  }
  EXPECT_GT(deepest, nucleus * 9 / 10);
}

TEST(Sampler, MinPThresholdAppliesAfterTemperature) {
  const std::vector<float> logits = LogOf({0.5, 0.3, 0.15, 0.05});
  SamplingParams params;
  params.min_p = 0.2f;  // keeps p >= 0.1
  EXPECT_LT(ChiSquare(Histogram(logits, params, 20000), {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}),
            20.0);
  // T = 0.5 squares the probabilities: relative to the top 1, 0.36, 0.09, 0.01.
  params.temperature = 0.5f;
  params.min_p = 0.35f;
  EXPECT_LT(ChiSquare(Histogram(logits, params, 20000), {0.25 / 0.34, 0.09 / 0.34, 0, 0}), 20.0);
  // T = 2 flattens them: relative 1, 0.77, 0.55, 0.32.
  params.temperature = 2.0f;
  const std::vector<int> counts = Histogram(logits, params, 2000);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(Sampler, ApplyPenaltiesFollowsTheFormulas) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  params.frequency_penalty = 0.5f;
  params.presence_penalty = 0.25f;
  const std::vector<int32_t> prompt = {0, 1, 0};
  const std::vector<int32_t> output = {1, 2, 2, 3};
  Sampler::ApplyPenalties(absl::MakeSpan(logits), params, prompt, output);
  // Repetition once per distinct token of prompt + output; frequency and presence on output only.
  EXPECT_THAT(logits, ElementsAre(2.0f / 2,                      // prompt only
                                  -2.0f * 2 - 0.5f * 1 - 0.25f,  // negative: multiplied
                                  1.0f / 2 - 0.5f * 2 - 0.25f,   // seen twice
                                  0.5f / 2 - 0.5f * 1 - 0.25f,   //
                                  3.0f));                        // untouched
}

TEST(Sampler, PenaltiesChangeTheGreedyChoice) {
  const std::vector<float> logits = {2.0f, 1.9f, 0.0f};
  SamplingParams params = Greedy();
  params.frequency_penalty = 0.05f;
  auto out = SampleOne(logits, params, 0, 0, {}, {0, 0, 0});  // 2 - 0.15 < 1.9
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->token_id, 1);
  params.frequency_penalty = 0.0f;
  params.presence_penalty = 0.2f;
  out = SampleOne(logits, params, 0, 0, {}, {0});
  EXPECT_EQ(out->token_id, 1);
  // Presence and frequency ignore the prompt; repetition does not.
  out = SampleOne(logits, params, 0, 0, {0}, {});
  EXPECT_EQ(out->token_id, 0);
  params.repetition_penalty = 1.1f;
  out = SampleOne(logits, params, 0, 0, {0}, {});
  EXPECT_EQ(out->token_id, 1);
}

TEST(Sampler, LogprobsAreLogSoftmaxOfTheRawLogits) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -2.0f, 0.5f, 2.5f};
  double sum = 0.0;
  for (float x : logits) sum += std::exp(x);
  const auto log_softmax = [&](int32_t id) { return logits[id] - std::log(sum); };

  SamplingParams params = Greedy();
  params.logprobs = 3;
  params.repetition_penalty = 1.5f;  // neither penalties nor temperature move the logprobs
  params.presence_penalty = 1.0f;
  auto out = SampleOne(logits, params, 0, 0, {1}, {2});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->token_id, 5);  // 3 / 1.5 = 2 and 3 / 1.5 - 1 = 1 fall below 2.5
  EXPECT_NEAR(out->logprob, log_softmax(5), 1e-5);
  ASSERT_EQ(out->top_logprobs.size(), 3u);
  EXPECT_EQ(out->top_logprobs[0].first, 1);  // tie at 3.0: lowest id first
  EXPECT_EQ(out->top_logprobs[1].first, 2);
  EXPECT_EQ(out->top_logprobs[2].first, 5);
  for (const auto& [id, logprob] : out->top_logprobs) EXPECT_NEAR(logprob, log_softmax(id), 1e-5);

  params = SamplingParams();
  params.temperature = 0.3f;
  params.logprobs = 0;  // the sampled token's logprob only
  out = SampleOne(logits, params, 9, 4);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NEAR(out->logprob, log_softmax(out->token_id), 1e-5);
  EXPECT_TRUE(out->top_logprobs.empty());

  params.logprobs = 20;  // more than the vocabulary: all of it, sorted
  out = SampleOne(logits, params, 9, 4);
  ASSERT_EQ(out->top_logprobs.size(), logits.size());
  for (size_t i = 1; i < out->top_logprobs.size(); ++i) {
    EXPECT_GE(out->top_logprobs[i - 1].second, out->top_logprobs[i].second);
  }
}

TEST(Sampler, OnlyFiniteTokenIsAlwaysChosen) {
  std::vector<float> logits(1000, -kInf);
  logits[617] = -50.0f;
  for (SamplingParams params : {Greedy(), SamplingParams()}) {
    params.top_k = 3;
    params.top_p = 0.1f;
    params.min_p = 0.5f;
    params.logprobs = 2;
    for (int64_t step = 0; step < 20; ++step) {
      auto out = SampleOne(logits, params, 1, step);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(out->token_id, 617);
      EXPECT_NEAR(out->logprob, 0.0f, 1e-6);
      EXPECT_EQ(out->top_logprobs[0].first, 617);
      EXPECT_EQ(out->top_logprobs[1].second, -kInf);
    }
  }
}

TEST(Sampler, NaNLogitsCountAsMinusInfinity) {
  const std::vector<float> logits = {kNaN, 1.0f, kNaN, 0.0f};
  SamplingParams params;
  params.logprobs = 0;
  const std::vector<int> counts = Histogram(logits, params, 20000);
  EXPECT_LT(ChiSquare(counts, Softmax({-kInf, 1.0f, -kInf, 0.0f}, 1.0)), 20.0);
  auto out = SampleOne(logits, params, 0, 0);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(std::isfinite(out->logprob));
}

TEST(Sampler, NoFiniteLogitIsInvalidArgument) {
  for (const SamplingParams& params : {Greedy(), SamplingParams()}) {
    auto out = SampleOne({kNaN, -kInf, kNaN}, params);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("no finite logit"));
  }
}

TEST(Sampler, PositiveInfinityTokensShareTheMass) {
  const std::vector<float> logits = {0.0f, kInf, 5.0f, kInf};
  SamplingParams params;
  params.logprobs = 1;
  EXPECT_LT(ChiSquare(Histogram(logits, params, 4000), {0, 0.5, 0, 0.5}), 20.0);
  auto out = SampleOne(logits, params, 0, 0);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->logprob, -std::log(2.0f), 1e-6);
}

TEST(Sampler, MinTokensMasksStopTokensUntilReached) {
  const std::vector<float> logits = {0.0f, 1.0f, 5.0f, 4.0f};
  SamplingParams params = Greedy();
  params.min_tokens = 2;
  params.stop_token_ids = {3};
  const std::vector<int32_t> eos = {2};
  EXPECT_EQ(SampleOne(logits, params, 0, /*step=*/1, {}, {}, eos)->token_id, 1);
  EXPECT_EQ(SampleOne(logits, params, 0, /*step=*/2, {}, {}, eos)->token_id, 2);
  params.ignore_eos = true;  // EOS is then an ordinary token; the stop ids stay masked
  EXPECT_EQ(SampleOne(logits, params, 0, /*step=*/1, {}, {}, eos)->token_id, 2);
  params.ignore_eos = false;
  params.logprobs = 0;  // logprobs stay those of the raw logits
  auto out = SampleOne(logits, params, 0, 0, {}, {}, eos);
  ASSERT_TRUE(out.ok());
  EXPECT_LT(out->logprob, -3.0f);
}

TEST(Sampler, TokenBitmaskRestrictsOnlyItsRowAndKeepsRawLogprobs) {
  // 40 tokens (two mask words); the best is 39, the constrained row allows only 5 and 33.
  const std::vector<float> logits = Ramp(40);
  std::vector<float> batch = logits;
  batch.insert(batch.end(), logits.begin(), logits.end());
  SamplingParams greedy = Greedy();
  greedy.logprobs = 0;
  SamplingParams random;
  random.temperature = 1.0f;
  const std::vector<uint32_t> mask = {1u << 5, 1u << 1};  // ids 5 and 33
  for (const SamplingParams* params : {&greedy, &random}) {
    for (int64_t step = 0; step < 20; ++step) {
      std::vector<float> x = batch;
      const std::vector<SamplingInput> inputs = {
          {.params = params, .seed = 3, .step = step, .token_bitmask = mask},
          {.params = params, .seed = 3, .step = step}};
      absl::StatusOr<std::vector<SampleOutput>> out =
          Sampler().Sample(absl::MakeSpan(x), 2, 40, inputs);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_TRUE((*out)[0].token_id == 5 || (*out)[0].token_id == 33) << (*out)[0].token_id;
      EXPECT_EQ((*out)[1].token_id, TokenAt(logits, *params, 3, step));
      if (params == &greedy) {
        EXPECT_EQ((*out)[0].token_id, 33);
        // The raw logprob, before the mask: as the unconstrained row's for the same token.
        auto raw = SampleOne(logits, greedy);
        ASSERT_TRUE(raw.ok());
        EXPECT_LT((*out)[0].logprob, raw->logprob);
        EXPECT_NEAR((*out)[0].logprob, raw->logprob - 0.6f, 1e-5f);
      }
    }
  }
  // A mask that allows nothing leaves the row no finite logit.
  std::vector<float> x = logits;
  const std::vector<uint32_t> none = {0u, 0u};
  const std::vector<SamplingInput> inputs = {{.params = &greedy, .token_bitmask = none}};
  EXPECT_EQ(Sampler().Sample(absl::MakeSpan(x), 1, 40, inputs).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Sampler, AllowedTokenIdsAndLogitBiasApplyAfterTheRawLogprobs) {
  // 40 tokens, the best is 39.
  const std::vector<float> logits = Ramp(40);
  SamplingParams greedy = Greedy();
  greedy.logprobs = 0;
  const absl::StatusOr<SampleOutput> plain = SampleOne(logits, greedy);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->token_id, 39);

  SamplingParams allowed = greedy;
  allowed.allowed_token_ids = {2, 7};
  absl::StatusOr<SampleOutput> out = SampleOne(logits, allowed);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->token_id, 7);
  EXPECT_NEAR(out->logprob, plain->logprob - 3.2f, 1e-5f);  // raw: before the mask
  // A random row stays inside the list too.
  SamplingParams random = allowed;
  random.temperature = 2.0f;
  for (int64_t step = 0; step < 50; ++step) {
    out = SampleOne(logits, random, /*seed=*/11, step);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(out->token_id == 2 || out->token_id == 7) << out->token_id;
  }

  // The bias is added to the logit: +0.35 lifts 36 over 39, -100 removes 39 from the race.
  SamplingParams biased = greedy;
  biased.logit_bias = {{36, 0.35f}};
  EXPECT_EQ(SampleOne(logits, biased)->token_id, 36);
  biased.logit_bias = {{36, 0.25f}};
  EXPECT_EQ(SampleOne(logits, biased)->token_id, 39);
  biased.logit_bias = {{39, -100.0f}};
  EXPECT_EQ(SampleOne(logits, biased)->token_id, 38);
  // With an allow list, the bias ranks the allowed ones.
  allowed.logit_bias = {{2, 1.0f}};
  EXPECT_EQ(SampleOne(logits, allowed)->token_id, 2);

  // Ids outside the row fail it (a worker trusts no message), and the others are untouched.
  SamplingParams outside = greedy;
  outside.allowed_token_ids = {3, 40};
  EXPECT_EQ(SampleOne(logits, outside).status().code(), absl::StatusCode::kInvalidArgument);
  outside.allowed_token_ids.clear();
  outside.logit_bias = {{40, 1.0f}};
  EXPECT_EQ(SampleOne(logits, outside).status().code(), absl::StatusCode::kInvalidArgument);
  // An allow list the grammar mask excludes entirely leaves no finite logit.
  std::vector<float> x = logits;
  const std::vector<uint32_t> mask = {1u << 5, 0u};
  const std::vector<SamplingInput> inputs = {{.params = &allowed, .token_bitmask = mask}};
  EXPECT_EQ(Sampler().Sample(absl::MakeSpan(x), 1, 40, inputs).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Sampler, BadWordsBanTheLastTokenWhereTheOutputsEndWithTheRest) {
  // 40 tokens, the best is 39, then 38, 37, ...
  const std::vector<float> logits = Ramp(40);
  SamplingParams params = Greedy();
  params.logprobs = 0;
  const absl::StatusOr<SampleOutput> plain = SampleOne(logits, params);
  ASSERT_TRUE(plain.ok());

  // A one-token word is banned at every step, and the logprobs stay the raw ones.
  params.bad_words_token_ids = {{39}};
  absl::StatusOr<SampleOutput> out = SampleOne(logits, params);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->token_id, 38);
  EXPECT_NEAR(out->logprob, plain->logprob - 0.1f, 1e-5f);

  // [5, 7, 39]: 39 is banned only right after the outputs 5, 7 — not after 7 alone, not after
  // 5, 7 earlier in the output, and not when 5, 7 end the prompt (vLLM V1 reads outputs only).
  params.bad_words_token_ids = {{5, 7, 39}};
  const auto sample = [&](std::vector<int32_t> prompt, std::vector<int32_t> output) {
    return SampleOne(logits, params, 0, static_cast<int64_t>(output.size()), prompt, output)
        ->token_id;
  };
  EXPECT_EQ(sample({}, {5, 7}), 38);
  EXPECT_EQ(sample({1}, {3, 5, 7}), 38);
  EXPECT_EQ(sample({}, {}), 39);
  EXPECT_EQ(sample({}, {7}), 39);
  EXPECT_EQ(sample({}, {6, 7}), 39);
  EXPECT_EQ(sample({}, {5, 7, 1}), 39);
  EXPECT_EQ(sample({5, 7}, {}), 39);
  // Several words: every one that matches bans its token; a random row stays off them too.
  params.bad_words_token_ids = {{39}, {7, 38}, {6, 37}};
  EXPECT_EQ(sample({}, {7}), 37);
  EXPECT_EQ(sample({}, {6}), 38);
  SamplingParams random = params;
  random.temperature = 0.05f;
  random.bad_words_token_ids = {{39}, {38}, {37}};
  for (int64_t step = 0; step < 30; ++step) {
    out = SampleOne(logits, random, /*seed=*/5, step);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_LT(out->token_id, 37);
  }

  // A banned token outside the row fails it; banning every allowed token leaves no logit.
  params.bad_words_token_ids = {{1, 40}};
  EXPECT_EQ(SampleOne(logits, params).status().code(), absl::StatusCode::kInvalidArgument);
  params.bad_words_token_ids = {{2}};
  params.allowed_token_ids = {2};
  EXPECT_EQ(SampleOne(logits, params).status().code(), absl::StatusCode::kInvalidArgument);
}

// Speculative verification: a sequence with drafts [d0, d1] has rows 0..2, row i sampling after
// the outputs and drafts [0, i) (worker/step_runner.cc gives each row those outputs). A two-token
// word [d0, 39] bans 39 on row 1 only.
TEST(Sampler, BadWordsFollowEachVerificationRowsPrecedingOutputs) {
  constexpr int64_t kVocab = 40;
  std::vector<float> logits = Ramp(kVocab, 3);
  SamplingParams params = Greedy();
  params.bad_words_token_ids = {{12, 39}, {12, 13, 38}};
  const std::vector<int32_t> tokens = {4, 12, 13};  // output 4, then drafts 12, 13
  std::vector<SamplingInput> rows;
  for (int64_t i = 0; i < 3; ++i) {
    rows.push_back({.params = &params,
                    .step = 1 + i,
                    .output_token_ids = absl::MakeConstSpan(tokens).first(1 + i)});
  }
  absl::StatusOr<std::vector<SampleOutput>> out =
      Sampler().Sample(absl::MakeSpan(logits), 3, kVocab, rows);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].token_id, 39);  // after [4]
  EXPECT_EQ((*out)[1].token_id, 38);  // after [4, 12]: 39 banned
  EXPECT_EQ((*out)[2].token_id, 39);  // after [4, 12, 13]: 38 banned, 39 free again
}

TEST(Sampler, RejectsMismatchedShapesAndBadInputs) {
  SamplingParams params;
  std::vector<float> logits(10, 0.0f);
  const std::vector<SamplingInput> one = {{.params = &params}};
  Sampler sampler;
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), 2, 5, one).status().code(),
            absl::StatusCode::kInvalidArgument);  // 1 input for 2 sequences
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), 1, 5, one).status().code(),
            absl::StatusCode::kInvalidArgument);  // 10 floats for [1, 5]
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), 1, 0, one).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<SamplingInput> no_params = {{}};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), 1, 10, no_params).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sampler.Sample({}, 0, 10, {}).ok());

  params.frequency_penalty = 1.0f;
  auto out = SampleOne(std::vector<float>(10, 0.0f), params, 0, 0, {}, {3, 10});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("token id 10"));
}

}  // namespace
}  // namespace pagoda
