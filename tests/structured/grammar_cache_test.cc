#include "structured/grammar_cache.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/structured/toy_vocabulary.h"

namespace pagoda::structured {
namespace {

using testing::ToyVocabulary;

TEST(GrammarCache, HitsByKindTextAndVocabulary) {
  GrammarCache cache(64 << 20);
  auto vocab = ToyVocabulary();
  auto a = cache.GetOrCompile(GrammarKind::kRegex, "[a-z]+", vocab);
  ASSERT_TRUE(a.ok()) << a.status();
  auto again = cache.GetOrCompile(GrammarKind::kRegex, "[a-z]+", vocab);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(a->get(), again->get());
  // The same text as another kind, or for another vocabulary, is another entry.
  auto as_gbnf = cache.GetOrCompile(GrammarKind::kGbnf, "root ::= [a-z]+", vocab);
  ASSERT_TRUE(as_gbnf.ok()) << as_gbnf.status();
  auto other_vocab = TokenVocabulary::Create({"", "a", "b"}, {0}, "other");
  ASSERT_TRUE(other_vocab.ok());
  auto b = cache.GetOrCompile(GrammarKind::kRegex, "[a-z]+", *other_vocab);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->get(), b->get());
  const GrammarCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 3);
  EXPECT_EQ(stats.entries, 3u);
}

TEST(GrammarCache, ErrorsAreReturnedNotCached) {
  GrammarCache cache(64 << 20);
  auto vocab = ToyVocabulary();
  for (int i = 0; i < 2; ++i) {
    auto bad =
        cache.GetOrCompile(GrammarKind::kJsonSchema, R"({"type": "object", "not": {}})", vocab);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("'not'"));
  }
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_FALSE(cache.GetOrCompile(GrammarKind::kChoice, R"(["a", 1])", vocab).ok());
  EXPECT_TRUE(cache.GetOrCompile(GrammarKind::kChoice, R"(["a", "b"])", vocab).ok());
  EXPECT_TRUE(cache.GetOrCompile(GrammarKind::kJsonObject, "", vocab).ok());
}

TEST(GrammarCache, AGrammarLargerThanTheWholeCacheIsRefused) {
  auto vocab = ToyVocabulary();
  GrammarCache cache(2048);  // smaller than the sets of a 40-byte string's positions
  auto big =
      cache.GetOrCompile(GrammarKind::kJsonSchema, R"({"type": "string", "maxLength": 40})", vocab);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), ::testing::HasSubstr("too large to compile"));
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "a", vocab).ok());
}

TEST(GrammarCache, EvictsLeastRecentlyUsedBeyondItsBytes) {
  auto vocab = ToyVocabulary();
  GrammarCache probe(64 << 20);
  ASSERT_TRUE(probe.GetOrCompile(GrammarKind::kRegex, "a", vocab).ok());
  const size_t entry_bytes = probe.stats().bytes;         // "b" and "c" make entries no bigger
  GrammarCache cache(entry_bytes * 2 + entry_bytes / 2);  // room for two
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "a", vocab).ok());
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "b", vocab).ok());
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "a", vocab).ok());  // "a" now recent
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "c", vocab).ok());  // evicts "b"
  EXPECT_EQ(cache.stats().evictions, 1);
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_LE(cache.stats().bytes, entry_bytes * 2 + entry_bytes / 2);
  const int64_t hits = cache.stats().hits;
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "a", vocab).ok());
  EXPECT_EQ(cache.stats().hits, hits + 1);
  ASSERT_TRUE(cache.GetOrCompile(GrammarKind::kRegex, "b", vocab).ok());
  EXPECT_EQ(cache.stats().hits, hits + 1);  // "b" was evicted: compiled again
}

TEST(GrammarCache, ConcurrentCallersShareOneEntry) {
  GrammarCache cache(64 << 20);
  auto vocab = ToyVocabulary();
  std::vector<std::thread> threads;
  std::vector<const CompiledGrammar*> got(8, nullptr);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        auto compiled =
            cache.GetOrCompile(GrammarKind::kJsonSchema, R"({"type": "integer"})", vocab);
        ASSERT_TRUE(compiled.ok());
        if (i == 19) got[t] = compiled->get();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.stats().hits + cache.stats().misses, 160);
  for (const CompiledGrammar* g : got) EXPECT_EQ(g, got[0]);
}

}  // namespace
}  // namespace pagoda::structured
