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

TEST(NgramProposer, MayProposeNeedsTheKnownTailEarlier) {
  // min 2, one token unknown: the last known token must occur before its own position.
  EXPECT_FALSE(Proposer(2, 4).MayPropose(std::vector<int32_t>{1, 2, 3, 4}, 1));
  EXPECT_TRUE(Proposer(2, 4).MayPropose(std::vector<int32_t>{4, 2, 3, 4}, 1));
  // min 3: the last two known tokens, together.
  EXPECT_FALSE(Proposer(3, 4).MayPropose(std::vector<int32_t>{4, 2, 3, 4}, 1));
  EXPECT_TRUE(Proposer(3, 4).MayPropose(std::vector<int32_t>{3, 4, 2, 3, 4}, 1));
  // As many unknown tokens as min_n: anything may match.
  EXPECT_TRUE(Proposer(2, 4).MayPropose(std::vector<int32_t>{1, 2, 3, 4}, 2));
  EXPECT_TRUE(Proposer(1, 4).MayPropose(std::vector<int32_t>{1, 2, 3, 4}, 1));
  // Nothing unknown: exactly whether Propose finds something.
  EXPECT_FALSE(Proposer(2, 4).MayPropose(std::vector<int32_t>{1, 2, 3, 4}, 0));
  EXPECT_TRUE(Proposer(2, 4).MayPropose(std::vector<int32_t>{3, 4, 1, 3, 4}, 0));
  EXPECT_FALSE(Proposer(2, 4).MayPropose(std::vector<int32_t>{}, 1));
}

// MayPropose is never wrong when it says no: over random short texts on a small vocabulary,
// every completion of the unknown tokens then proposes nothing. (And it is not vacuous: it says
// no often, and often yes where some completion does propose.)
TEST(NgramProposer, MayProposeFalseMeansNoCompletionProposes) {
  constexpr int32_t kVocab = 5;
  std::mt19937 rng(17);
  int64_t said_no = 0;
  int64_t said_yes_rightly = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int32_t min_n = 1 + static_cast<int32_t>(rng() % 3);
    const NgramProposer proposer = Proposer(min_n, 4);
    const int64_t size = rng() % 9;
    const int64_t unknown = 1 + static_cast<int64_t>(rng() % 2);
    std::vector<int32_t> known(size);
    for (int32_t& t : known) t = static_cast<int32_t>(rng() % kVocab);
    bool any = false;
    int64_t completions = 1;
    for (int64_t i = 0; i < unknown; ++i) completions *= kVocab;
    for (int64_t c = 0; c < completions; ++c) {
      std::vector<int32_t> full = known;
      for (int64_t i = 0, rest = c; i < unknown; ++i, rest /= kVocab) {
        full.push_back(static_cast<int32_t>(rest % kVocab));
      }
      any = any || !proposer.Propose(full, 4).empty();
    }
    const bool may = proposer.MayPropose(known, unknown);
    if (!may) {
      ++said_no;
      EXPECT_FALSE(any) << "trial " << trial;
    }
    if (may && any) ++said_yes_rightly;
  }
  EXPECT_GT(said_no, 300);
  EXPECT_GT(said_yes_rightly, 300);
}

}  // namespace
}  // namespace pagoda
