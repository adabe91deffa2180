// NgramProposer: the longest suffix (within [prompt_lookup_min, prompt_lookup_max]) found
// earlier, its latest occurrence, what followed it, capped at max_tokens.
#include "engine/ngram_proposer.h"

#include <random>
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

TEST(NgramProposer, WithTheNextTokenUnknownItGuessesIt) {
  // "1 2 ... 1 2 ?": the known "1 2" matched (min 2 counts the unknown token), guessing 3.
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 9, 1, 2};
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 3, 1), ElementsAre(3, 4, 5));
  EXPECT_THAT(Proposer(3, 4).Propose(tokens, 3, 1), ElementsAre(3, 4, 5));
  // min 3 needs two known tokens: only "2" repeats here.
  const std::vector<int32_t> one = {7, 2, 5, 6, 2};
  EXPECT_THAT(Proposer(2, 4).Propose(one, 3, 1), ElementsAre(5, 6, 2));
  EXPECT_THAT(Proposer(3, 4).Propose(one, 3, 1), IsEmpty());
  // The longest known match wins: "8 2" over the later "2".
  const std::vector<int32_t> longer = {8, 2, 4, 2, 10, 8, 2};
  EXPECT_THAT(Proposer(2, 4).Propose(longer, 1, 1), ElementsAre(4));
}

// A guessed lookup proposes exactly where a lookup after the unknown token could (min_n >= 2; a
// minimum of 1 would let the unknown token match alone): over random short texts on a small
// vocabulary, it finds something iff some value of that token lets the full lookup find
// something, and when its guess is that value the full lookup finds something too.
TEST(NgramProposer, AGuessedLookupMatchesWhereTheFullLookupCould) {
  constexpr int32_t kVocab = 5;
  std::mt19937 rng(17);
  int64_t none = 0;
  int64_t some = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int32_t min_n = 2 + static_cast<int32_t>(rng() % 2);
    const NgramProposer proposer = Proposer(min_n, 4);
    const int64_t size = rng() % 9;
    std::vector<int32_t> known(size);
    for (int32_t& t : known) t = static_cast<int32_t>(rng() % kVocab);
    const std::vector<int32_t> guessed = proposer.Propose(known, 4, 1);
    bool any = false;
    for (int32_t x = 0; x < kVocab; ++x) {
      std::vector<int32_t> full = known;
      full.push_back(x);
      const bool found = !proposer.Propose(full, 4).empty();
      any = any || found;
      if (!guessed.empty() && guessed[0] == x) {
        EXPECT_TRUE(found) << "trial " << trial;
      }
    }
    EXPECT_EQ(!guessed.empty(), any) << "trial " << trial;
    ++(guessed.empty() ? none : some);
  }
  EXPECT_GT(none, 300);
  EXPECT_GT(some, 300);
}

}  // namespace
}  // namespace pagoda
