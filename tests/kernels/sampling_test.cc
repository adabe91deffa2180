#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kSeqs = 5;
constexpr int64_t kVocab = 1003;  // odd, and not a multiple of any vector width

// Logits ~ N(0, 3) with a few repeated values, so ties occur.
std::vector<float> RandomLogits(uint32_t seed, int64_t num_seqs = kSeqs, int64_t vocab = kVocab) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(num_seqs * vocab);
  for (float& v : x) v = normal(rng);
  for (int64_t s = 0; s < num_seqs; ++s) x[s * vocab + 17] = x[s * vocab + 400];
  return x;
}

// Rows 0, 2 and 3 of the batch: the others must stay untouched.
const std::vector<int32_t> kSomeRows = {0, 2, 3};

SamplingRows All(int max_threads = 0) {
  return {.num_seqs = kSeqs, .vocab_size = kVocab, .num_rows = kSeqs, .max_threads = max_threads};
}
SamplingRows Some() {
  return {.num_seqs = kSeqs,
          .vocab_size = kVocab,
          .rows = kSomeRows.data(),
          .num_rows = static_cast<int64_t>(kSomeRows.size())};
}
bool Selected(int64_t s) { return std::count(kSomeRows.begin(), kSomeRows.end(), s) > 0; }

// Descending by value, lowest id first on ties.
std::vector<std::pair<int32_t, float>> SortedRow(const float* row, int64_t vocab) {
  std::vector<std::pair<int32_t, float>> all;
  for (int64_t i = 0; i < vocab; ++i) all.emplace_back(static_cast<int32_t>(i), row[i]);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  return all;
}

TEST(Sampling, SanitizeLogitsReplacesNanAndInfinityAndReturnsRowMax) {
  std::vector<float> x = RandomLogits(1);
  x[3] = std::nanf("");
  x[kVocab + 5] = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < kVocab; ++i) x[4 * kVocab + i] = std::nanf("");
  const std::vector<float> before = x;
  std::vector<float> row_max(kSeqs, 123.0f);
  ASSERT_TRUE(SanitizeLogits({.batch = All(), .logits = x.data(), .row_max = row_max.data()}).ok());
  for (int64_t s = 0; s < kSeqs; ++s) {
    float expected_max = kNegInf;
    for (int64_t i = 0; i < kVocab; ++i) {
      const float b = before[s * kVocab + i];
      const float want = std::isnan(b) ? kNegInf : std::min(b, std::numeric_limits<float>::max());
      ASSERT_EQ(x[s * kVocab + i], want) << s << " " << i;
      expected_max = std::max(expected_max, want);
    }
    EXPECT_EQ(row_max[s], expected_max);
  }
  EXPECT_EQ(row_max[1], std::numeric_limits<float>::max());
  EXPECT_EQ(row_max[4], kNegInf);
}

TEST(Sampling, LogSoftmaxMatchesAFloat64Reference) {
  std::vector<float> x = RandomLogits(2);
  x[2 * kVocab + 9] = kNegInf;  // a masked token has logprob -inf
  std::vector<float> row_max(kSeqs);
  ASSERT_TRUE(SanitizeLogits({.batch = All(), .logits = x.data(), .row_max = row_max.data()}).ok());
  std::vector<float> logprobs(kSomeRows.size() * kVocab);
  ASSERT_TRUE(LogSoftmax({.batch = Some(),
                          .logits = x.data(),
                          .row_max = row_max.data(),
                          .logprobs = logprobs.data()})
                  .ok());
  for (size_t i = 0; i < kSomeRows.size(); ++i) {
    const float* row = x.data() + kSomeRows[i] * kVocab;
    double sum = 0.0;
    for (int64_t j = 0; j < kVocab; ++j) sum += std::exp(static_cast<double>(row[j]));
    for (int64_t j = 0; j < kVocab; ++j) {
      const double want = static_cast<double>(row[j]) - std::log(sum);
      const float got = logprobs[i * kVocab + j];
      if (std::isinf(want)) {
        EXPECT_EQ(got, kNegInf);
      } else {
        ASSERT_NEAR(got, want, 1e-5 * std::max(1.0, std::abs(want))) << i << " " << j;
      }
    }
  }
}

TEST(Sampling, TopKMatchesASortedReference) {
  const std::vector<float> x = RandomLogits(3);
  const std::vector<int32_t> k = {7, 99, 1, 0, 5};  // row 3's k of 0 keeps nothing
  constexpr int64_t kMaxK = 10;
  std::vector<int32_t> ids(kSeqs * kMaxK, -1);
  std::vector<float> values(kSeqs * kMaxK, 0.0f);
  std::vector<int32_t> small_k = k;
  small_k[1] = 10;
  ASSERT_TRUE(TopK({.batch = All(1),
                    .values = x.data(),
                    .k = small_k.data(),
                    .max_k = kMaxK,
                    .top_ids = ids.data(),
                    .top_values = values.data()})
                  .ok());
  for (int64_t s = 0; s < kSeqs; ++s) {
    const auto sorted = SortedRow(x.data() + s * kVocab, kVocab);
    for (int64_t j = 0; j < kMaxK; ++j) {
      if (j < small_k[s]) {
        EXPECT_EQ(ids[s * kMaxK + j], sorted[j].first) << s << " " << j;
        EXPECT_EQ(values[s * kMaxK + j], sorted[j].second);
      } else {
        EXPECT_EQ(ids[s * kMaxK + j], -1);  // nothing written past k
      }
    }
  }
  // k beyond max_k is refused.
  const absl::Status bad = TopK({.batch = All(),
                                 .values = x.data(),
                                 .k = k.data(),
                                 .max_k = kMaxK,
                                 .top_ids = ids.data(),
                                 .top_values = values.data()});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("top_k: row 1 has k=99 outside [0, max_k=10]"));
}

TEST(Sampling, TopKKeepsTheWholeVocabularyWhenKExceedsIt) {
  const std::vector<float> x = {0.5f, 2.0f, 0.5f};
  const int32_t k = 5;
  std::vector<int32_t> ids(5, -1);
  std::vector<float> values(5);
  ASSERT_TRUE(TopK({.batch = {.num_seqs = 1, .vocab_size = 3, .num_rows = 1},
                    .values = x.data(),
                    .k = &k,
                    .max_k = 5,
                    .top_ids = ids.data(),
                    .top_values = values.data()})
                  .ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0, 2, -1, -1}));
}

TEST(Sampling, MaskTokensSetsListedIdsToMinusInfinityAndIgnoresOutOfRangeOnes) {
  std::vector<float> x = RandomLogits(4);
  const std::vector<float> before = x;
  // Row 0: {3, 1002, 5000}; row 1: {7} (not selected); row 2: {}; row 3: {0, -1}.
  const std::vector<int64_t> offsets = {0, 3, 4, 4, 6, 6};
  const std::vector<int32_t> ids = {3, 1002, 5000, 7, 0, -1};
  ASSERT_TRUE(
      MaskTokens(
          {.batch = Some(), .logits = x.data(), .offsets = offsets.data(), .token_ids = ids.data()})
          .ok());
  std::vector<float> expected = before;
  expected[3] = expected[1002] = kNegInf;
  expected[3 * kVocab + 0] = kNegInf;
  EXPECT_EQ(x, expected);
}

TEST(Sampling, ApplyTokenBitmaskClearsDisallowedIdsOfTheSelectedRowsOnly) {
  std::vector<float> x = RandomLogits(5);
  const std::vector<float> before = x;
  // One mask row per selected row (0, 2, 3), in selection order. kVocab = 1003 needs 32 words;
  // a short mask (words: 10 -> ids 0..319) disallows every id past it.
  for (int64_t words : {int64_t{32}, int64_t{10}}) {
    x = before;
    std::mt19937 rng(static_cast<uint32_t>(words));
    std::vector<uint32_t> mask(kSomeRows.size() * words);
    for (uint32_t& w : mask) w = rng() & rng();  // about a quarter of the bits set
    mask[1] = 0;                                 // an all-clear word
    mask[2] = ~0u;                               // an all-set word
    ASSERT_TRUE(
        ApplyTokenBitmask(
            {.batch = Some(), .logits = x.data(), .bitmask = mask.data(), .bitmask_words = words})
            .ok());
    std::vector<float> expected = before;
    for (size_t i = 0; i < kSomeRows.size(); ++i) {
      const int64_t s = kSomeRows[i];
      for (int64_t id = 0; id < kVocab; ++id) {
        const bool allowed =
            id < words * 32 && ((mask[i * words + id / 32] >> (id % 32)) & 1u) != 0;
        if (!allowed) expected[s * kVocab + id] = kNegInf;
      }
    }
    EXPECT_EQ(x, expected) << words << " words";
  }
  EXPECT_THAT(
      ApplyTokenBitmask({.batch = All(), .logits = x.data(), .bitmask_words = 32}).message(),
      HasSubstr("token_bitmask: logits or bitmask is null"));
  const std::vector<uint32_t> mask(kSeqs, ~0u);
  EXPECT_THAT(
      ApplyTokenBitmask({.batch = All(), .logits = x.data(), .bitmask = mask.data()}).message(),
      HasSubstr("bitmask_words must be >= 1"));
}

// vLLM's definitions, written plainly.
void ReferencePenalties(float* row, float repetition, float frequency, float presence,
                        const std::vector<int32_t>& prompt, const std::vector<int32_t>& output) {
  std::set<int32_t> seen(prompt.begin(), prompt.end());
  seen.insert(output.begin(), output.end());
  if (repetition != 1.0f) {
    for (int32_t id : seen) row[id] = row[id] > 0.0f ? row[id] / repetition : row[id] * repetition;
  }
  if (frequency != 0.0f || presence != 0.0f) {
    std::map<int32_t, int> counts;
    for (int32_t id : output) ++counts[id];
    for (const auto& [id, count] : counts) {
      row[id] -= frequency * static_cast<float>(count);
      row[id] -= presence;
    }
  }
}

TEST(Sampling, ApplyPenaltiesMatchesAReference) {
  std::vector<float> x = RandomLogits(5);
  std::mt19937 rng(6);
  std::vector<std::vector<int32_t>> prompts(kSeqs), outputs(kSeqs);
  std::vector<int64_t> prompt_offsets = {0}, output_offsets = {0};
  std::vector<int32_t> prompt_ids, output_ids;
  for (int64_t s = 0; s < kSeqs; ++s) {
    for (int i = 0; i < 40 + 13 * s; ++i)
      prompts[s].push_back(static_cast<int32_t>(rng() % 60));  // repeats
    for (int i = 0; i < 25 + 7 * s; ++i) outputs[s].push_back(static_cast<int32_t>(rng() % kVocab));
    outputs[s].push_back(outputs[s][0]);
    prompt_ids.insert(prompt_ids.end(), prompts[s].begin(), prompts[s].end());
    output_ids.insert(output_ids.end(), outputs[s].begin(), outputs[s].end());
    prompt_offsets.push_back(static_cast<int64_t>(prompt_ids.size()));
    output_offsets.push_back(static_cast<int64_t>(output_ids.size()));
  }
  const std::vector<float> repetition = {1.3f, 1.0f, 0.7f, 1.0f, 2.0f};
  const std::vector<float> frequency = {0.0f, 0.5f, 0.25f, -0.3f, 0.0f};
  const std::vector<float> presence = {0.0f, 0.1f, 0.0f, 1.5f, 0.0f};
  std::vector<float> expected = x;
  for (int64_t s = 0; s < kSeqs; ++s) {
    if (!Selected(s)) continue;
    ReferencePenalties(expected.data() + s * kVocab, repetition[s], frequency[s], presence[s],
                       prompts[s], outputs[s]);
  }
  PenaltiesParams p{.batch = Some(),
                    .logits = x.data(),
                    .repetition_penalty = repetition.data(),
                    .frequency_penalty = frequency.data(),
                    .presence_penalty = presence.data(),
                    .prompt_offsets = prompt_offsets.data(),
                    .prompt_token_ids = prompt_ids.data(),
                    .output_offsets = output_offsets.data(),
                    .output_token_ids = output_ids.data()};
  ASSERT_TRUE(ApplyPenalties(p).ok());
  EXPECT_EQ(x, expected);

  // A token id outside the vocabulary in a selected row, unless the caller checked them.
  output_ids[output_offsets[2] + 3] = static_cast<int32_t>(kVocab);
  const absl::Status bad = ApplyPenalties(p);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()),
              HasSubstr("penalties: row 2: output token id 1003 is outside the vocabulary"));
  std::vector<float> repetition_bad = repetition;
  repetition_bad[3] = 0.0f;
  p.repetition_penalty = repetition_bad.data();
  EXPECT_THAT(std::string(ApplyPenalties(p).message()), HasSubstr("penalties: row 3 needs"));
}

TEST(Sampling, ArgmaxIsTheFirstMaximum) {
  std::vector<float> x = RandomLogits(7);
  x[2 * kVocab + 900] = 50.0f;
  x[2 * kVocab + 901] = 50.0f;
  x[2 * kVocab + 30] = 50.0f;  // the lowest id of the tie wins
  for (int64_t i = 0; i < kVocab; ++i) x[3 * kVocab + i] = kNegInf;
  std::vector<int32_t> ids(kSeqs, -1);
  ASSERT_TRUE(Argmax({.batch = All(), .logits = x.data(), .token_ids = ids.data()}).ok());
  for (int64_t s = 0; s < kSeqs; ++s) {
    const float* row = x.data() + s * kVocab;
    EXPECT_EQ(ids[s], std::max_element(row, row + kVocab) - row) << s;
  }
  EXPECT_EQ(ids[2], 30);
  EXPECT_EQ(ids[3], 0);  // all -inf: id 0, the caller sees the -inf
}

TEST(Sampling, SoftmaxWeightsMatchAReferenceAndApplyMinP) {
  std::vector<float> x = RandomLogits(8);
  for (int64_t i = 0; i < kVocab; ++i) x[4 * kVocab + i] = kNegInf;
  x[kVocab + 11] = kNegInf;
  const std::vector<float> before = x;
  const std::vector<float> temperature = {1.0f, 0.5f, 2.0f, 1e-5f, 0.9f};
  const std::vector<float> min_p = {0.0f, 0.05f, 0.0f, 0.0f, 0.3f};
  std::vector<float> row_max(kSeqs);
  ASSERT_TRUE(SoftmaxWeights({.batch = All(),
                              .logits = x.data(),
                              .temperature = temperature.data(),
                              .min_p = min_p.data(),
                              .row_max = row_max.data()})
                  .ok());
  for (int64_t s = 0; s < kSeqs; ++s) {
    const float* in = before.data() + s * kVocab;
    const float max_value = *std::max_element(in, in + kVocab);
    EXPECT_EQ(row_max[s], max_value);
    for (int64_t i = 0; i < kVocab; ++i) {
      const float got = x[s * kVocab + i];
      if (max_value == kNegInf) {
        ASSERT_EQ(got, 0.0f);  // no finite logit: nothing weighs anything
        continue;
      }
      const double want = std::exp((static_cast<double>(in[i]) - max_value) / temperature[s]);
      if (std::abs(want - min_p[s]) < 1e-5) continue;  // too close to the cut to say
      if (want < min_p[s]) {
        ASSERT_EQ(got, 0.0f) << s << " " << i;
      } else if (want < 1e-30) {
        ASSERT_LT(got, 1e-29f) << s << " " << i;  // below exp(-87) the kernel gives 0
      } else {
        // The argument (x - max) / temperature is rounded to float: a relative error of its
        // magnitude times 2^-23 or so.
        const double arg = std::abs(std::log(want));
        ASSERT_NEAR(got, want, want * (1e-6 + 4e-7 * arg)) << s << " " << i;
      }
    }
  }
}

// The inverse CDF over a uniform grid gives each kept token about its share of the grid, in any
// order of the candidates; a dropped token is never drawn.
void ExpectDrawsFollowTheKeptWeights(const std::vector<float>& weights,
                                     const std::vector<int32_t>& kept, int32_t top_k, float top_p) {
  const int64_t vocab = static_cast<int64_t>(weights.size());
  constexpr int64_t kGrid = 4001;
  std::vector<double> uniform(kGrid);
  for (int64_t i = 0; i < kGrid; ++i) uniform[i] = (static_cast<double>(i) + 0.5) / kGrid;
  // Every grid point is a row of the same weights.
  std::vector<float> batch(kGrid * vocab);
  for (int64_t i = 0; i < kGrid; ++i) std::copy(weights.begin(), weights.end(), &batch[i * vocab]);
  const std::vector<int32_t> top_ks(kGrid, top_k);
  const std::vector<float> top_ps(kGrid, top_p);
  std::vector<int32_t> ids(kGrid, -1);
  ASSERT_TRUE(
      SampleFromWeights({.batch = {.num_seqs = kGrid, .vocab_size = vocab, .num_rows = kGrid},
                         .weights = batch.data(),
                         .top_k = top_ks.data(),
                         .top_p = top_ps.data(),
                         .uniform = uniform.data(),
                         .token_ids = ids.data()})
          .ok());
  double kept_total = 0.0;
  for (int32_t id : kept) kept_total += weights[id];
  std::map<int32_t, int64_t> counts;
  for (int32_t id : ids) ++counts[id];
  for (const auto& [id, count] : counts) {
    ASSERT_TRUE(std::count(kept.begin(), kept.end(), id) > 0) << "dropped token " << id;
  }
  for (int32_t id : kept) {
    EXPECT_NEAR(static_cast<double>(counts[id]), kGrid * weights[id] / kept_total, 1.5) << id;
  }
}

TEST(Sampling, SampleFromWeightsMatchesAReferenceFilter) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  constexpr int64_t kSmallVocab = 37;
  std::vector<float> weights(kSmallVocab);
  for (float& w : weights) w = uniform(rng) < 0.2f ? 0.0f : uniform(rng);
  weights[5] = weights[6];  // a tie
  weights[20] = 1.0f;
  const auto sorted = SortedRow(weights.data(), kSmallVocab);
  const auto best = [&](size_t n) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < n && sorted[i].second > 0.0f; ++i) ids.push_back(sorted[i].first);
    return ids;
  };
  // The smallest best-first prefix of the k best holding top_p of their weight.
  const auto nucleus = [&](size_t k, float top_p) {
    double total = 0.0;
    for (int32_t id : best(k)) total += weights[id];
    std::vector<int32_t> ids;
    double mass = 0.0;
    for (int32_t id : best(k)) {
      if (mass >= static_cast<double>(top_p) * total) break;
      ids.push_back(id);
      mass += weights[id];
    }
    return ids;
  };
  ExpectDrawsFollowTheKeptWeights(weights, best(kSmallVocab), 0, 1.0f);
  ExpectDrawsFollowTheKeptWeights(weights, best(kSmallVocab), kSmallVocab, 1.0f);
  ExpectDrawsFollowTheKeptWeights(weights, best(6), 6, 1.0f);
  ExpectDrawsFollowTheKeptWeights(weights, nucleus(kSmallVocab, 0.6f), 0, 0.6f);
  ExpectDrawsFollowTheKeptWeights(weights, nucleus(9, 0.7f), 9, 0.7f);
  ExpectDrawsFollowTheKeptWeights(weights, nucleus(kSmallVocab, 1e-6f), -1, 1e-6f);
}

TEST(Sampling, SampleFromWeightsWithALargeTopKUsesTheSameFilter) {
  // top_k above the heap's limit (256) takes the other path.
  std::mt19937 rng(10);
  std::exponential_distribution<float> exponential(1.0f);
  std::vector<float> weights(kVocab);
  for (float& w : weights) w = exponential(rng);
  const auto sorted = SortedRow(weights.data(), kVocab);
  std::vector<int32_t> kept;
  for (size_t i = 0; i < 300; ++i) kept.push_back(sorted[i].first);
  ExpectDrawsFollowTheKeptWeights(weights, kept, 300, 1.0f);
}

TEST(Sampling, SampleFromWeightsWithoutFiltersIsTheInverseCdfInIdOrder) {
  const std::vector<float> weights = {0.0f, 1.0f, 0.0f, 3.0f, 4.0f};
  const std::vector<double> uniform = {0.0, 0.124, 0.126, 0.49, 0.51, 0.999};
  const std::vector<int32_t> expected = {1, 1, 3, 3, 4, 4};
  const int64_t n = static_cast<int64_t>(uniform.size());
  std::vector<float> batch;
  for (int64_t i = 0; i < n; ++i) batch.insert(batch.end(), weights.begin(), weights.end());
  const std::vector<int32_t> top_k(n, 0);
  const std::vector<float> top_p(n, 1.0f);
  std::vector<int32_t> ids(n);
  ASSERT_TRUE(SampleFromWeights({.batch = {.num_seqs = n, .vocab_size = 5, .num_rows = n},
                                 .weights = batch.data(),
                                 .top_k = top_k.data(),
                                 .top_p = top_p.data(),
                                 .uniform = uniform.data(),
                                 .token_ids = ids.data()})
                  .ok());
  EXPECT_EQ(ids, expected);
}

TEST(Sampling, BadParamsAreInvalidArgument) {
  std::vector<float> x = RandomLogits(11);
  std::vector<float> row_max(kSeqs);
  std::vector<int32_t> ids(kSeqs);
  const auto message = [](const absl::Status& s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  SamplingRows b = All();
  b.vocab_size = 0;
  EXPECT_THAT(message(Argmax({.batch = b, .logits = x.data(), .token_ids = ids.data()})),
              HasSubstr("argmax: bad batch num_seqs=5 vocab_size=0"));
  b = All();
  b.num_rows = 3;  // rows null: must be every row
  EXPECT_THAT(message(SanitizeLogits({.batch = b, .logits = x.data(), .row_max = row_max.data()})),
              HasSubstr("sanitize_logits: bad batch"));
  const std::vector<int32_t> unordered = {2, 1};
  b = {.num_seqs = kSeqs, .vocab_size = kVocab, .rows = unordered.data(), .num_rows = 2};
  EXPECT_THAT(message(Argmax({.batch = b, .logits = x.data(), .token_ids = ids.data()})),
              HasSubstr("argmax: rows[1]=1 is not ascending"));
  const std::vector<int32_t> outside = {4, 5};
  b.rows = outside.data();
  EXPECT_THAT(message(Argmax({.batch = b, .logits = x.data(), .token_ids = ids.data()})),
              HasSubstr("rows[1]=5 is not ascending inside [0, num_seqs=5)"));
  EXPECT_THAT(message(Argmax({.batch = All(), .logits = x.data()})),
              HasSubstr("argmax: logits or token_ids is null"));
  EXPECT_THAT(message(LogSoftmax({.batch = All(), .logits = x.data(), .row_max = row_max.data()})),
              HasSubstr("log_softmax: logits, row_max or logprobs is null"));

  std::vector<float> temperature(kSeqs, 1.0f), min_p(kSeqs, 0.0f);
  temperature[2] = 0.0f;
  EXPECT_THAT(message(SoftmaxWeights({.batch = All(),
                                      .logits = x.data(),
                                      .temperature = temperature.data(),
                                      .min_p = min_p.data(),
                                      .row_max = row_max.data()})),
              HasSubstr("softmax_weights: row 2 needs a finite temperature > 0"));
  temperature[2] = 1.0f;
  min_p[4] = 1.5f;
  EXPECT_THAT(message(SoftmaxWeights({.batch = All(),
                                      .logits = x.data(),
                                      .temperature = temperature.data(),
                                      .min_p = min_p.data(),
                                      .row_max = row_max.data()})),
              HasSubstr("row 4 needs"));

  std::vector<int32_t> top_k(kSeqs, 0);
  std::vector<float> top_p(kSeqs, 1.0f);
  std::vector<double> uniform(kSeqs, 0.5);
  uniform[1] = 1.0;
  SampleFromWeightsParams draw{.batch = All(),
                               .weights = x.data(),
                               .top_k = top_k.data(),
                               .top_p = top_p.data(),
                               .uniform = uniform.data(),
                               .token_ids = ids.data()};
  EXPECT_THAT(message(SampleFromWeights(draw)),
              HasSubstr("sample_from_weights: row 1 needs top_p in (0, 1] and uniform in [0, 1)"));
  uniform[1] = 0.5;
  top_p[0] = 0.0f;
  EXPECT_THAT(message(SampleFromWeights(draw)), HasSubstr("row 0 needs"));

  const std::vector<int64_t> decreasing = {0, 2, 1, 1, 1, 1};
  const std::vector<int32_t> mask_ids = {1, 2};
  EXPECT_THAT(message(MaskTokens({.batch = All(),
                                  .logits = x.data(),
                                  .offsets = decreasing.data(),
                                  .token_ids = mask_ids.data()})),
              HasSubstr("mask_tokens: mask offsets decrease at row 1"));
  const std::vector<int64_t> offsets = {0, 1, 1, 1, 1, 1};
  EXPECT_THAT(message(MaskTokens({.batch = All(), .logits = x.data(), .offsets = offsets.data()})),
              HasSubstr("mask_tokens: mask token_ids is null"));

  // An empty selection touches nothing and needs no operands.
  const std::vector<float> before = x;
  b = {.num_seqs = kSeqs, .vocab_size = kVocab, .rows = kSomeRows.data(), .num_rows = 0};
  EXPECT_TRUE(Argmax({.batch = b}).ok());
  EXPECT_TRUE(SanitizeLogits({.batch = b}).ok());
  EXPECT_EQ(x, before);
}

TEST(Sampling, RowsRunTheSameOnOneThreadAndMany) {
  const std::vector<float> x = RandomLogits(12, 16, kVocab);
  std::vector<float> a = x, b = x;
  std::vector<float> max_a(16), max_b(16);
  const SamplingRows many{.num_seqs = 16, .vocab_size = kVocab, .num_rows = 16};
  SamplingRows one = many;
  one.max_threads = 1;
  ASSERT_TRUE(SanitizeLogits({.batch = many, .logits = a.data(), .row_max = max_a.data()}).ok());
  ASSERT_TRUE(SanitizeLogits({.batch = one, .logits = b.data(), .row_max = max_b.data()}).ok());
  const std::vector<float> temperature(16, 0.7f), min_p(16, 0.01f);
  ASSERT_TRUE(SoftmaxWeights({.batch = many,
                              .logits = a.data(),
                              .temperature = temperature.data(),
                              .min_p = min_p.data(),
                              .row_max = max_a.data()})
                  .ok());
  ASSERT_TRUE(SoftmaxWeights({.batch = one,
                              .logits = b.data(),
                              .temperature = temperature.data(),
                              .min_p = min_p.data(),
                              .row_max = max_b.data()})
                  .ok());
  EXPECT_EQ(a, b);
  const std::vector<int32_t> top_k(16, 40);
  const std::vector<float> top_p(16, 0.8f);
  std::vector<double> uniform(16);
  for (int i = 0; i < 16; ++i) uniform[i] = (i + 0.25) / 16;
  std::vector<int32_t> ids_a(16), ids_b(16);
  for (auto [batch, ids] : {std::pair(many, &ids_a), std::pair(one, &ids_b)}) {
    ASSERT_TRUE(SampleFromWeights({.batch = batch,
                                   .weights = a.data(),
                                   .top_k = top_k.data(),
                                   .top_p = top_p.data(),
                                   .uniform = uniform.data(),
                                   .token_ids = ids->data()})
                    .ok());
  }
  EXPECT_EQ(ids_a, ids_b);
}

}  // namespace
}  // namespace pagoda::kernels
