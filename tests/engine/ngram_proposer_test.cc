// NgramProposer: the longest suffix (within [prompt_lookup_min, prompt_lookup_max]) found
// earlier, its latest occurrence, what followed it, capped at max_tokens.
#include "engine/ngram_proposer.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

NgramProposer Proposer(int32_t min_n, int32_t max_n) {
  return NgramProposer({.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 8,
                        .prompt_lookup_max = max_n,
                        .prompt_lookup_min = min_n});
}

TEST(NgramProposer, ProposesWhatFollowedTheSuffixBefore) {
  // "1 2 3 4 5 ... 1 2 3" -> "4 5 6".
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 9, 1, 2, 3};
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 3), ElementsAre(4, 5, 6));
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 1), ElementsAre(4));
  // Capped by what exists after the match.
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 100), ElementsAre(4, 5, 6, 7, 9, 1, 2, 3));
}

TEST(NgramProposer, PrefersTheLongestMatchThenTheLatest) {
  // Suffix "8 2 3": "2 3" occurs twice, followed by 10 (latest) and 4; "8 2 3" once, by 4.
  const std::vector<int32_t> with_long = {8, 2, 3, 4, 2, 3, 10, 8, 2, 3};
  EXPECT_THAT(Proposer(2, 3).Propose(with_long, 1), ElementsAre(4));
  // Without the longer match, the latest of the equal ones wins.
  EXPECT_THAT(Proposer(2, 2).Propose(with_long, 1), ElementsAre(10));
}

TEST(NgramProposer, NothingBelowTheMinimumOrWithoutRoom) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 3};  // only "3" repeats
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 4), IsEmpty());
  EXPECT_THAT(Proposer(1, 4).Propose(tokens, 4), ElementsAre(4, 5, 3));
  EXPECT_THAT(Proposer(1, 4).Propose(tokens, 0), IsEmpty());
  EXPECT_THAT(Proposer(1, 4).Propose(std::vector<int32_t>{7}, 4), IsEmpty());
  EXPECT_THAT(Proposer(1, 4).Propose(std::vector<int32_t>{}, 4), IsEmpty());
}

TEST(NgramProposer, RepeatedTokenProposesItsRun) {
  const std::vector<int32_t> tokens = {5, 5, 5, 5};
  // The latest full-length match ends one before the last token: one token follows it.
  EXPECT_THAT(Proposer(1, 3).Propose(tokens, 4), ElementsAre(5));
}

}  // namespace
}  // namespace pagoda
