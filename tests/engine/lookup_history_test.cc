// LookupHistory: finished sequences' tokens, found by their longest matching suffix (at least a
// token pair) at the latest places that have a continuation, never across sequences; the oldest
// sequences dropped past max_tokens, and lookups the same after the text is compacted.
#include "engine/lookup_history.h"

#include <algorithm>
#include <deque>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;

// The tokens after a place, up to the end of its sequence.
std::vector<int32_t> After(const LookupHistory& history, int64_t end) {
  std::vector<int32_t> out;
  for (int64_t p = end + 1; history.text()[p] != LookupHistory::kSeparator; ++p) {
    out.push_back(history.text()[p]);
  }
  return out;
}

TEST(LookupHistory, FindsTheLongestSuffixAtItsLatestPlaces) {
  LookupHistory history(1000);
  history.Add({1, 2, 3, 4, 5});
  history.Add({9, 2, 3, 6, 7});
  history.Add({8, 1, 2, 3, 10});
  // "2 3" is at three places; "1 2 3" at two (the latest first), followed by 10 and 4.
  LookupHistory::Places places = history.Find({7, 1, 2, 3}, 2, 4);
  EXPECT_EQ(places.length, 3);
  ASSERT_EQ(places.num_ends, 2);
  EXPECT_THAT(After(history, places.ends[0]), ElementsAre(10));
  EXPECT_THAT(After(history, places.ends[1]), ElementsAre(4, 5));
  // Capped at max_n = 2: every place of "2 3", latest first.
  places = history.Find({7, 1, 2, 3}, 2, 2);
  EXPECT_EQ(places.length, 2);
  ASSERT_EQ(places.num_ends, 3);
  EXPECT_THAT(After(history, places.ends[1]), ElementsAre(6, 7));
  // Nothing shorter than min_n, and never a single token.
  EXPECT_EQ(history.Find({7, 7, 2, 3}, 3, 4).num_ends, 0);
  EXPECT_EQ(history.Find({3}, 1, 4).num_ends, 0);
  EXPECT_EQ(history.Find({5, 3}, 1, 4).num_ends, 0);
  EXPECT_EQ(history.num_tokens(), 15);
  EXPECT_EQ(history.num_sequences(), 3);
}

TEST(LookupHistory, NeverMatchesOrContinuesAcrossSequences) {
  LookupHistory history(1000);
  history.Add({1, 2});
  history.Add({3, 4, 5});
  // "2 3" spans the two sequences; "1 2" ends the first (nothing follows it there).
  EXPECT_EQ(history.Find({2, 3}, 2, 4).num_ends, 0);
  EXPECT_EQ(history.Find({1, 2}, 2, 4).num_ends, 0);
  const LookupHistory::Places places = history.Find({3, 4}, 2, 4);
  ASSERT_EQ(places.num_ends, 1);
  EXPECT_THAT(After(history, places.ends[0]), ElementsAre(5));
}

TEST(LookupHistory, DropsTheOldestSequencesPastItsSize) {
  LookupHistory history(10);
  history.Add({1, 2, 3, 4});
  history.Add({5, 6, 7, 8});
  history.Add({9, 10, 11});  // 11 tokens: the first sequence goes
  EXPECT_EQ(history.num_tokens(), 7);
  EXPECT_EQ(history.num_sequences(), 2);
  EXPECT_EQ(history.Find({1, 2}, 2, 4).num_ends, 0);
  EXPECT_EQ(history.Find({5, 6}, 2, 4).num_ends, 1);
  // A sequence longer than the whole history keeps its last 10 tokens, alone.
  history.Add({20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31});
  EXPECT_EQ(history.num_tokens(), 10);
  EXPECT_EQ(history.num_sequences(), 1);
  EXPECT_EQ(history.Find({20, 21}, 2, 4).num_ends, 0);
  EXPECT_EQ(history.Find({5, 6}, 2, 4).num_ends, 0);
  EXPECT_EQ(history.Find({22, 23}, 2, 4).num_ends, 1);
  // Ids that are not tokens are not kept; nothing is added for none.
  history.Add({-5, -1});
  EXPECT_EQ(history.num_sequences(), 1);
}

TEST(LookupHistory, ScansOnlyTheLatestPlacesOfAPair) {
  LookupHistory history(100000);
  // "1 2" then 3, once, before kMaxScan later places of "1 2" that end their sequences.
  history.Add({1, 2, 3});
  for (int64_t i = 0; i < LookupHistory::kMaxScan; ++i) history.Add({1, 2});
  EXPECT_EQ(history.Find({1, 2}, 2, 4).num_ends, 0);
  history.Add({1, 2, 4});
  const LookupHistory::Places places = history.Find({1, 2}, 2, 4);
  ASSERT_EQ(places.num_ends, 1);
  EXPECT_THAT(After(history, places.ends[0]), ElementsAre(4));
}

// The plain rendering: every kept sequence, scanned from the latest place back.
struct Reference {
  int64_t max_tokens;
  std::deque<std::vector<int32_t>> seqs;

  void Add(std::vector<int32_t> tokens) {
    if (static_cast<int64_t>(tokens.size()) > max_tokens) {
      tokens.erase(tokens.begin(), tokens.end() - max_tokens);
    }
    int64_t total = static_cast<int64_t>(tokens.size());
    for (const auto& s : seqs) total += static_cast<int64_t>(s.size());
    while (!seqs.empty() && total > max_tokens) {
      total -= static_cast<int64_t>(seqs.front().size());
      seqs.pop_front();
    }
    seqs.push_back(std::move(tokens));
  }

  // {length, the continuations of the latest kMaxPlaces places}.
  std::pair<int64_t, std::vector<std::vector<int32_t>>> Find(const std::vector<int32_t>& tokens,
                                                             int64_t min_n, int64_t max_n) const {
    const int64_t size = static_cast<int64_t>(tokens.size());
    int64_t best = 0;
    std::vector<std::vector<int32_t>> found;
    for (auto s = seqs.rbegin(); s != seqs.rend(); ++s) {
      const int64_t n = static_cast<int64_t>(s->size());
      for (int64_t q = n - 2; q >= 1; --q) {
        int64_t len = 0;
        while (len < max_n && len < size && q - len >= 0 &&
               (*s)[q - len] == tokens[size - 1 - len]) {
          ++len;
        }
        if (len < std::max<int64_t>(min_n, 2) || len < best) continue;
        if (len > best) {
          best = len;
          found.clear();
        }
        if (static_cast<int64_t>(found.size()) < LookupHistory::kMaxPlaces) {
          found.emplace_back(s->begin() + q + 1, s->end());
        }
      }
    }
    return {best, found};
  }
};

TEST(LookupHistory, AgreesWithAPlainRenderingThroughDropsAndCompactions) {
  std::mt19937 rng(7);
  int64_t num_found = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t max_tokens = 8 + static_cast<int64_t>(rng() % 120);
    LookupHistory history(max_tokens);
    Reference reference{.max_tokens = max_tokens};
    for (int add = 0; add < 60; ++add) {
      std::vector<int32_t> tokens(1 + rng() % 30);
      for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 5);
      history.Add(tokens);
      reference.Add(tokens);
      ASSERT_LE(history.num_tokens(), max_tokens);
      ASSERT_EQ(history.num_sequences(), static_cast<int64_t>(reference.seqs.size()));
      for (int query = 0; query < 5; ++query) {
        std::vector<int32_t> suffix(2 + rng() % 5);
        for (int32_t& t : suffix) t = static_cast<int32_t>(rng() % 5);
        const int64_t min_n = 1 + static_cast<int64_t>(rng() % 3);
        const int64_t max_n = min_n + static_cast<int64_t>(rng() % 4);
        const LookupHistory::Places places = history.Find(suffix, min_n, max_n);
        const auto [length, continuations] = reference.Find(suffix, min_n, max_n);
        ASSERT_EQ(places.num_ends, static_cast<int64_t>(continuations.size()))
            << "trial " << trial << " add " << add;
        if (places.num_ends == 0) continue;
        ++num_found;
        EXPECT_EQ(places.length, length);
        for (int64_t v = 0; v < places.num_ends; ++v) {
          EXPECT_EQ(After(history, places.ends[v]), continuations[v]) << "place " << v;
        }
      }
    }
  }
  EXPECT_GT(num_found, 1000);
}

}  // namespace
}  // namespace pagoda
