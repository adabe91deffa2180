// NgramProposer: the longest suffix (within [prompt_lookup_min, prompt_lookup_max]) found
// earlier, its latest occurrence, what followed it, capped at max_tokens; with agreement (the
// default) only as far as the latest places of that suffix agree on what followed. Given a
// LookupHistory, the same over finished sequences where the sequence's own tokens propose nothing.
#include "engine/ngram_proposer.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

NgramProposer Proposer(int32_t min_n, int32_t max_n, bool agreement = true) {
  return NgramProposer({.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 8,
                        .prompt_lookup_max = max_n,
                        .prompt_lookup_min = min_n,
                        .prompt_lookup_agreement = agreement});
}

// The latest place's continuation only (agreement off), as vLLM proposes.
NgramProposer LatestOnly(int32_t min_n, int32_t max_n) { return Proposer(min_n, max_n, false); }

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
  // Without the longer match, the latest of the equal ones wins; with agreement its two places
  // disagree on what followed (10 and 4), so nothing is proposed.
  EXPECT_THAT(LatestOnly(2, 2).Propose(with_long, 1), ElementsAre(10));
  EXPECT_THAT(Proposer(2, 2).Propose(with_long, 1), IsEmpty());
}

TEST(NgramProposer, ProposesAsFarAsThePlacesOfTheSuffixAgree) {
  // "1 2" occurred twice before: followed by "3 4 5 6" and (latest) "3 4 7 8".
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 10, 1, 2, 3, 4, 7, 8, 11, 1, 2};
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 8), ElementsAre(3, 4));
  EXPECT_THAT(LatestOnly(2, 4).Propose(tokens, 4), ElementsAre(3, 4, 7, 8));
  // A longer suffix found once stands alone: "10 1 2" only before the latest "3 4 7 8".
  std::vector<int32_t> longer = tokens;
  longer[13] = 10;
  EXPECT_THAT(Proposer(2, 4).Propose(longer, 8), ElementsAre(3, 4, 7, 8, 10, 1, 2));
}

TEST(NgramProposer, OnlyTheLatestPlacesVote) {
  // "1 2" followed by 3 at the oldest place, by 4 at the kMaxVoters later ones.
  std::vector<int32_t> tokens = {1, 2, 3, 0};
  for (int64_t i = 0; i < NgramProposer::kMaxVoters; ++i) {
    tokens.insert(tokens.end(), {1, 2, 4, 0});
  }
  tokens.insert(tokens.end(), {1, 2});
  EXPECT_THAT(Proposer(2, 2).Propose(tokens, 2), ElementsAre(4, 0));
  // One more place followed by 3, now among the latest: they disagree.
  tokens.insert(tokens.end() - 2, {1, 2, 3, 0});
  EXPECT_THAT(Proposer(2, 2).Propose(tokens, 2), IsEmpty());
}

TEST(NgramProposer, AGuessIsNotVotedOnButItsDisagreeingPlacesStopVoting) {
  // Known "... 0 1": "0 1" was followed by "2 3 4" and (latest) "5 3 6"; the next token is
  // unknown.
  const std::vector<int32_t> tokens = {0, 1, 2, 3, 4, 0, 1, 5, 3, 6, 0, 1};
  // The guess 5 is the latest place's; the place that followed with 2 no longer votes, so the
  // latest place's continuation stands alone.
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 4, 1), ElementsAre(5, 3, 6, 0));
  // Looked up as known tokens, the places disagree at once.
  EXPECT_THAT(Proposer(2, 4).Propose(tokens, 4), IsEmpty());
}

// The proposal against a plain rendering of the rule on random short texts over a small
// vocabulary (many repeated places, many disagreements), with the token after the text known and
// unknown: every place of the longest suffix found, the latest kMaxVoters of them voting.
TEST(NgramProposer, AgreementMatchesAPlainRenderingOfTheRule) {
  std::mt19937 rng(29);
  int64_t cut = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const int32_t vocab = 2 + static_cast<int32_t>(rng() % 4);
    const int32_t min_n = 1 + static_cast<int32_t>(rng() % 3);
    const int32_t max_n = min_n + static_cast<int32_t>(rng() % 3);
    const int64_t unknown = rng() % 2;
    std::vector<int32_t> tokens(rng() % 40);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % vocab);
    const int64_t max_tokens = 1 + rng() % 8;
    const auto size = static_cast<int64_t>(tokens.size());
    const int64_t lo = std::max<int64_t>(1, min_n - unknown);
    const int64_t hi = std::max<int64_t>(lo, max_n - unknown);
    std::vector<int64_t> places;  // latest first
    int64_t best = 0;
    for (int64_t p = size - 2; p >= 0 && size >= 2; --p) {
      int64_t len = 0;
      while (len < hi && p - len >= 0 && tokens[p - len] == tokens[size - 1 - len]) ++len;
      if (len < lo || len < best) continue;
      if (len > best) places.clear();
      best = len;
      places.push_back(p);
    }
    if (places.size() > NgramProposer::kMaxVoters) places.resize(NgramProposer::kMaxVoters);
    std::vector<int32_t> want;
    for (int64_t j = 0; !places.empty() && j < max_tokens && places[0] + 1 + j < size; ++j) {
      const int32_t token = tokens[places[0] + 1 + j];
      std::vector<int64_t> agree;
      for (int64_t p : places) {
        if (tokens[p + 1 + j] == token) agree.push_back(p);
      }
      if (agree.size() < places.size() && !(j == 0 && unknown == 1)) break;
      places = agree;
      want.push_back(token);
    }
    const std::vector<int32_t> got = Proposer(min_n, max_n).Propose(tokens, max_tokens, unknown);
    ASSERT_EQ(got, want) << "trial " << trial;
    const std::vector<int32_t> latest =
        LatestOnly(min_n, max_n).Propose(tokens, max_tokens, unknown);
    ASSERT_LE(got.size(), latest.size());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), latest.begin())) << "trial " << trial;
    cut += got.size() < latest.size();
  }
  EXPECT_GT(cut, 400) << "too few texts where the places disagreed";
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
  // The latest place's continuation (agreement off): with agreement a full lookup may find a
  // suffix whose places disagree and propose nothing.
  constexpr int32_t kVocab = 5;
  std::mt19937 rng(17);
  int64_t none = 0;
  int64_t some = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int32_t min_n = 2 + static_cast<int32_t>(rng() % 2);
    const NgramProposer proposer = LatestOnly(min_n, 4);
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

NgramProposer WithHistory(const LookupHistory& history, bool agreement = true) {
  return NgramProposer({.method = SpeculativeMethod::kNgram,
                        .num_speculative_tokens = 8,
                        .prompt_lookup_max = 4,
                        .prompt_lookup_min = 2,
                        .prompt_lookup_agreement = agreement},
                       &history);
}

TEST(NgramProposer, LooksUpTheHistoryWhereItsOwnTokensProposeNothing) {
  LookupHistory history(1000);
  history.Add({50, 1, 2, 3, 4, 5, 6});
  // Its own "1 2" (followed by 9) comes first; "7 8" is nowhere.
  EXPECT_THAT(WithHistory(history).Propose({1, 2, 9, 0, 1, 2}, 4), ElementsAre(9, 0, 1, 2));
  EXPECT_THAT(WithHistory(history).Propose({7, 8}, 4), IsEmpty());
  // Nothing of its own: the history's continuation, up to the end of that sequence.
  EXPECT_THAT(WithHistory(history).Propose({0, 1, 2}, 4), ElementsAre(3, 4, 5, 6));
  EXPECT_THAT(WithHistory(history).Propose({0, 1, 2}, 8), ElementsAre(3, 4, 5, 6));
  EXPECT_THAT(Proposer(2, 4).Propose({0, 1, 2}, 4), IsEmpty()) << "no history";
  // Its own places disagree at once (4 and 7 after "1 2"): the history is asked instead.
  EXPECT_THAT(WithHistory(history).Propose({1, 2, 4, 1, 2, 7, 1, 2}, 4), ElementsAre(3, 4, 5, 6));
}

TEST(NgramProposer, HistoryPlacesVoteAndAGuessNeedsTwoKnownTokens) {
  LookupHistory history(1000);
  history.Add({1, 2, 3, 4, 5});
  history.Add({1, 2, 3, 4, 6});
  EXPECT_THAT(WithHistory(history).Propose({9, 1, 2}, 8), ElementsAre(3, 4));
  EXPECT_THAT(WithHistory(history, false).Propose({9, 1, 2}, 8), ElementsAre(3, 4, 6));
  // The token after "1 2" in flight: guessed (3, not voted on), then what agrees.
  EXPECT_THAT(WithHistory(history).Propose({9, 1, 2}, 8, 1), ElementsAre(3, 4));
  // One known token is a suffix of its own (min_n - 1) but not of the history's pairs.
  EXPECT_THAT(WithHistory(history).Propose({9, 2}, 8, 1), IsEmpty());
}

}  // namespace
}  // namespace pagoda
