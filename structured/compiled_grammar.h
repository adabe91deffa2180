// A grammar compiled against a vocabulary: the immutable, shareable half of constrained decoding
// (TokenMatcher is the per-sequence half).
//
// In the spirit of xgrammar, compilation splits the vocabulary ahead of time for every byte
// position of the grammar (a place where the matcher scans a byte). From the position, the rules
// around it are known up to the first rule that is used from more than one place (a rule used
// from exactly one place always returns there); GrammarMatcher::InsideChain parses inside that
// known context. Walking the vocabulary's trie from there sorts every token into
// - accepted: all its bytes parse inside the known context, whatever the stack above it holds;
// - rejected: it fails inside the known context before that context could complete;
// - uncertain: the known context completes with bytes of the token left, so the stack above
//   decides; only these are checked against the full matcher at decode time.
// For JSON, strings and numbers are decided ahead; what is left are tokens such as `",` or `"}`.
//
// Small shared rules are first copied per use (internal/unshare_rules.h), so the known context
// reaches past `ws` or `string`; a context inside copies that many uses share (every string's
// inside) is walked once, each copy then re-checking only that walk's uncertain tokens in its own
// longer context.
//
// The walks themselves run on a lazily built automaton shared by the whole compile: a matcher
// state is interned by GrammarMatcher::Signature (its chart as far as the future can read it,
// history renumbered), so trie paths and contexts that reach equivalent charts share one state,
// and a (state, byte) step taken once is afterwards a table lookup; the Earley matcher only runs
// on a miss, replaying the path's bytes. A trie subtree whose bytes all loop back to the state
// (the inside of a string) is accepted whole without walking it, and a state whose scanning
// positions share one byte set (the start of every context) takes one step for all its bytes.
// So a bounded repetition (`maxLength` n: n contexts, one per remaining length) walks its states
// once, not n times the trie. The sets produced are exactly those of a direct walk.
//
//   ASSIGN_OR_RETURN(std::shared_ptr<const CompiledGrammar> compiled,
//                    CompiledGrammar::Compile(grammar, vocab));
//   TokenMatcher matcher(compiled);   // per sequence
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "structured/grammar.h"
#include "structured/token_vocabulary.h"

namespace pagoda::structured {

/// Bounds on one compile, so that a hostile grammar within the parsers' own limits cannot take
/// the process's memory or many seconds of CPU (the router and every worker compile each new
/// constraint; a worker does it inside the step that brings the sequence). The compile time
/// follows the states (SmolLM2's vocabulary, 2-core machine): the typical schema of
/// benchmarks/grammar_benchmark meets 4.6k states in ~35 ms, a string with maxLength 128 11.6k
/// in ~1.8 s, maxLength 256 32k and maxLength 1000 154k (15 s), so those two are refused. A
/// 1 MiB schema of long strings has up to a million byte positions, each a vocabulary bitmask:
/// max_bytes bounds that.
struct CompileLimits {
  size_t max_bytes = size_t{256} << 20;   // the precomputed sets (memory_bytes())
  int64_t max_states = int64_t{1} << 14;  // distinct matcher states the walks may meet
};

class CompiledGrammar {
 public:
  /// The tokens of one byte position: accepted ids as a bitmask (when many) or a list; the
  /// uncertain ids in byte order (so checking them shares prefixes).
  struct PositionTokens {
    std::vector<uint32_t> accepted_bitmask;  // [bitmask_words] or empty
    std::vector<int32_t> accepted_ids;       // when accepted_bitmask is empty
    std::vector<int32_t> uncertain_ids;
  };

  /// Walks the vocabulary's trie once per byte position (the cost the benchmark measures).
  /// InvalidArgument ("too large to compile", naming the limit) when a limit is crossed.
  static absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Compile(
      std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocabulary,
      const CompileLimits& limits = {});

  /// The grammar the matchers run: the input with small shared rules copied per use
  /// (internal/unshare_rules.h), the same language.
  const std::shared_ptr<const Grammar>& grammar() const { return grammar_; }
  const TokenVocabulary& vocabulary() const { return *vocabulary_; }
  /// For a byte position of grammar() (none for a position the root cannot reach).
  const PositionTokens& tokens_at(int32_t position) const {
    static const PositionTokens kNone;
    const int32_t index = position_index_[position];
    return index < 0 ? kNone : tokens_[index];
  }
  /// Heap bytes of the precomputed sets (the cache's size measure).
  size_t memory_bytes() const;
  /// Totals over byte positions, for the benchmark and tests.
  int64_t num_accepted() const;
  int64_t num_uncertain() const;
  /// Distinct matcher states the compile's walks met (against CompileLimits::max_states).
  int64_t num_states() const { return num_states_; }

 private:
  CompiledGrammar() = default;

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  std::vector<int32_t> position_index_;  // [position] -> into tokens_, -1 if not a byte position
  std::vector<PositionTokens> tokens_;
  int64_t num_states_ = 0;
};

}  // namespace pagoda::structured
