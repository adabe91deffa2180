#include "common/step/stop_rules.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "common/sampling_params.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

constexpr int32_t kEos = 2;
const std::vector<int32_t> kEosIds = {kEos};

SamplingParams Params(int32_t max_tokens, int32_t min_tokens = 0,
                      std::vector<int32_t> stop_token_ids = {}, bool ignore_eos = false) {
  SamplingParams params;
  params.max_tokens = max_tokens;
  params.min_tokens = min_tokens;
  params.stop_token_ids = std::move(stop_token_ids);
  params.ignore_eos = ignore_eos;
  return params;
}

TEST(StopRules, EosStopsUnlessIgnored) {
  const SamplingParams params = Params(16);
  EXPECT_EQ(StopRules(params, kEosIds).Check(kEos, 1, 5), TokenStop::kEos);
  EXPECT_EQ(StopRules(params, kEosIds).Check(7, 1, 5), TokenStop::kNone);
  const SamplingParams ignoring = Params(16, 0, {}, /*ignore_eos=*/true);
  EXPECT_EQ(StopRules(ignoring, kEosIds).Check(kEos, 1, 5), TokenStop::kNone);
}

TEST(StopRules, StopTokenIdsStopEvenWhenEosIsIgnored) {
  const SamplingParams params = Params(16, 0, {9, 11}, /*ignore_eos=*/true);
  EXPECT_EQ(StopRules(params, kEosIds).Check(11, 3, 7), TokenStop::kStopTokenId);
  EXPECT_EQ(StopRules(params, kEosIds).StopTokenKind(9), TokenStop::kStopTokenId);
}

TEST(StopRules, EosWinsWhenATokenIsBoth) {
  const SamplingParams params = Params(16, 0, {kEos});
  EXPECT_EQ(StopRules(params, kEosIds).StopTokenKind(kEos), TokenStop::kEos);
}

TEST(StopRules, MinTokensHoldsBackStopTokensButNotLength) {
  const SamplingParams params = Params(/*max_tokens=*/3, /*min_tokens=*/3, {9});
  const StopRules rules(params, kEosIds);
  EXPECT_EQ(rules.Check(kEos, 1, 5), TokenStop::kNone);
  EXPECT_EQ(rules.Check(9, 2, 6), TokenStop::kNone);
  EXPECT_EQ(rules.Check(9, 3, 7), TokenStop::kStopTokenId);  // the min_tokens-th output may stop
  EXPECT_EQ(rules.StopTokenKind(kEos), TokenStop::kEos);     // the count is the caller's here
  const SamplingParams longer = Params(/*max_tokens=*/2, /*min_tokens=*/2);
  EXPECT_EQ(StopRules(longer, kEosIds).Check(7, 2, 6), TokenStop::kLength);
}

TEST(StopRules, LengthEndsAtMaxTokensOrMaxModelLen) {
  const SamplingParams params = Params(4);
  EXPECT_EQ(StopRules(params, kEosIds).Check(7, 3, 10), TokenStop::kNone);
  EXPECT_EQ(StopRules(params, kEosIds).Check(7, 4, 10), TokenStop::kLength);
  EXPECT_EQ(StopRules(params, kEosIds, /*max_model_len=*/10).Check(7, 1, 10), TokenStop::kLength);
  EXPECT_EQ(StopRules(params, kEosIds, /*max_model_len=*/11).Check(7, 1, 10), TokenStop::kNone);
}

TEST(StopRules, AStopTokenWinsOverLength) {
  EXPECT_EQ(StopRules(Params(4), kEosIds, 10).Check(kEos, 4, 10), TokenStop::kEos);
}

TEST(StopRules, NumOutputsLeftIsTheTighterLimit) {
  const SamplingParams params = Params(8);
  EXPECT_EQ(StopRules(params, kEosIds).NumOutputsLeft(3, 1000), 5);
  EXPECT_EQ(StopRules(params, kEosIds, 100).NumOutputsLeft(3, 98), 2);
  EXPECT_EQ(StopRules(params, kEosIds, 100).NumOutputsLeft(8, 50), 0);
  EXPECT_LT(StopRules(params, kEosIds, 100).NumOutputsLeft(3, 101), 0);
}

TEST(StopRules, FieldByFieldMatchesTheParamsForm) {
  const std::vector<int32_t> stop_ids = {9};
  const StopRules fields(stop_ids, kEosIds, /*ignore_eos=*/false, /*min_tokens=*/1,
                         /*max_tokens=*/std::numeric_limits<int64_t>::max());
  EXPECT_EQ(fields.Check(9, 1, 5), TokenStop::kStopTokenId);
  EXPECT_EQ(fields.Check(kEos, 0, 5), TokenStop::kNone);
  EXPECT_EQ(fields.Check(7, 1'000'000, 5), TokenStop::kNone);
  EXPECT_TRUE(EndsOnToken(TokenStop::kEos));
  EXPECT_TRUE(EndsOnToken(TokenStop::kStopTokenId));
  EXPECT_FALSE(EndsOnToken(TokenStop::kLength));
  EXPECT_FALSE(EndsOnToken(TokenStop::kNone));
}

}  // namespace
}  // namespace pagoda
