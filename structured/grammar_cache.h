// Compiled grammars by key (kind + text + vocabulary id), shared by every sequence that asks for
// the same grammar: thread-safe, bounded by the compiled grammars' bytes, least recently used
// out first. A grammar in use stays alive through its shared_ptr after eviction. Errors (an
// invalid schema) are returned, not cached. Two threads missing on one key at once both compile;
// the first to finish is kept.
//
//   GrammarCache cache(/*max_bytes=*/256 << 20);
//   ASSIGN_OR_RETURN(auto compiled, cache.GetOrCompile(GrammarKind::kJsonSchema, schema, vocab));
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/sampling_params.h"
#include "structured/compiled_grammar.h"
#include "structured/grammar.h"
#include "structured/token_vocabulary.h"

namespace pagoda::structured {

enum class GrammarKind : uint8_t {
  kJsonSchema,  // text: the schema (JSON)
  kJsonObject,  // text: ignored (any JSON object)
  kRegex,       // text: the pattern
  kChoice,      // text: a JSON array of strings
  kGbnf,        // text: the grammar, start rule `root`
};

/// The kind a request's SamplingParams constraint compiles as (kNone maps to kJsonSchema; callers
/// check `constrained()` first). The router and the workers both use it.
GrammarKind GrammarKindOf(SamplingParams::ConstraintKind kind);

/// The grammar of a request's constraint, uncompiled (InvalidArgument for a bad one).
absl::StatusOr<Grammar> BuildGrammar(GrammarKind kind, std::string_view text);

class GrammarCache {
 public:
  explicit GrammarCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> GetOrCompile(
      GrammarKind kind, std::string_view text, std::shared_ptr<const TokenVocabulary> vocabulary);

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t evictions = 0;
    size_t bytes = 0;
    size_t entries = 0;
  };
  Stats stats() const;

 private:
  using Key = std::string;  // kind, vocabulary id and text, length-prefixed
  struct Entry {
    std::shared_ptr<const CompiledGrammar> compiled;
    size_t bytes = 0;
    std::list<Key>::iterator lru;  // position in lru_ (front: most recent)
  };

  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<Key> lru_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda::structured
