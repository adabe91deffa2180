#include "structured/compiled_grammar.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "structured/grammar_matcher.h"

namespace pagoda::structured {
namespace {

// The known context of a byte position: the position, preceded by the position that uses its
// rule while that rule is used from exactly one place (not counting its own left recursion).
constexpr size_t kMaxChain = 32;

std::vector<int32_t> ChainFor(const Grammar& g, int32_t position,
                              const std::vector<std::vector<int32_t>>& uses) {
  const std::vector<GrammarPosition>& positions = g.positions();
  std::vector<int32_t> chain = {position};
  std::vector<int32_t> rules = {positions[position].rule};
  while (chain.size() < kMaxChain) {
    const int32_t rule = rules.back();
    if (rule == g.root() || uses[rule].size() != 1) break;
    const int32_t use = uses[rule][0];
    const int32_t parent = positions[use].rule;
    if (std::find(rules.begin(), rules.end(), parent) != rules.end()) break;
    chain.insert(chain.begin(), use);
    rules.push_back(parent);
  }
  return chain;
}

class Classifier {
 public:
  Classifier(const TokenVocabulary& vocab, GrammarMatcher matcher)
      : vocab_(vocab), matcher_(std::move(matcher)) {}

  void Run(CompiledGrammar::PositionTokens* out) {
    Walk(0, /*exited=*/false);
    std::vector<int32_t> accepted = std::move(accepted_);
    if (static_cast<int64_t>(accepted.size()) > vocab_.bitmask_words()) {
      out->accepted_bitmask.assign(vocab_.bitmask_words(), 0);
      for (int32_t id : accepted) out->accepted_bitmask[id >> 5] |= uint32_t{1} << (id & 31);
    } else {
      out->accepted_ids = std::move(accepted);
    }
    out->uncertain_ids = std::move(uncertain_);
  }

 private:
  // `exited`: the known context completed at a shorter prefix of this path, so bytes past it
  // may belong to the rules above.
  void Walk(int32_t node, bool exited) {
    const ByteSet next = matcher_.NextBytes();
    for (int32_t child = node + 1; child < vocab_.trie_end(node); child = vocab_.trie_end(child)) {
      const uint8_t byte = vocab_.trie_byte(child);
      if (!next.Contains(byte) || !matcher_.AcceptByte(byte)) {
        if (exited) {
          for (int32_t n = child; n < vocab_.trie_end(child); ++n) {
            for (int32_t id : vocab_.trie_tokens(n)) uncertain_.push_back(id);
          }
        }
        continue;
      }
      for (int32_t id : vocab_.trie_tokens(child)) accepted_.push_back(id);
      if (vocab_.trie_end(child) > child + 1) Walk(child, exited || matcher_.IsAccepting());
      matcher_.Rollback(1);
    }
  }

  const TokenVocabulary& vocab_;
  GrammarMatcher matcher_;
  std::vector<int32_t> accepted_;
  std::vector<int32_t> uncertain_;
};

}  // namespace

std::shared_ptr<const CompiledGrammar> CompiledGrammar::Compile(
    std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocabulary) {
  auto compiled = std::shared_ptr<CompiledGrammar>(new CompiledGrammar());
  const std::vector<GrammarPosition>& positions = grammar->positions();
  std::vector<std::vector<int32_t>> uses(grammar->num_rules());
  for (int32_t p = 0; p < static_cast<int32_t>(positions.size()); ++p) {
    const GrammarPosition& pos = positions[p];
    if (pos.kind != GrammarPosition::Kind::kRule) continue;
    const bool left_recursion =
        pos.index == pos.rule && (p == 0 || positions[p - 1].kind == GrammarPosition::Kind::kEnd);
    if (!left_recursion) uses[pos.index].push_back(p);
  }
  compiled->position_index_.assign(positions.size(), -1);
  for (int32_t p = 0; p < static_cast<int32_t>(positions.size()); ++p) {
    if (positions[p].kind != GrammarPosition::Kind::kBytes) continue;
    compiled->position_index_[p] = static_cast<int32_t>(compiled->tokens_.size());
    Classifier classifier(*vocabulary,
                          GrammarMatcher::InsideChain(grammar, ChainFor(*grammar, p, uses)));
    classifier.Run(&compiled->tokens_.emplace_back());
  }
  compiled->grammar_ = std::move(grammar);
  compiled->vocabulary_ = std::move(vocabulary);
  return std::shared_ptr<const CompiledGrammar>(std::move(compiled));
}

size_t CompiledGrammar::memory_bytes() const {
  size_t bytes = position_index_.size() * sizeof(int32_t);
  for (const PositionTokens& t : tokens_) {
    bytes += sizeof(t) + (t.accepted_bitmask.size() + t.accepted_ids.size() +
                          t.uncertain_ids.size()) * sizeof(int32_t);
  }
  return bytes;
}

int64_t CompiledGrammar::num_accepted() const {
  int64_t n = 0;
  for (const PositionTokens& t : tokens_) {
    n += static_cast<int64_t>(t.accepted_ids.size());
    for (uint32_t w : t.accepted_bitmask) n += __builtin_popcount(w);
  }
  return n;
}

int64_t CompiledGrammar::num_uncertain() const {
  int64_t n = 0;
  for (const PositionTokens& t : tokens_) n += static_cast<int64_t>(t.uncertain_ids.size());
  return n;
}

}  // namespace pagoda::structured
