#include "structured/compiled_grammar.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "structured/grammar_matcher.h"
#include "structured/internal/unshare_rules.h"

namespace pagoda::structured {
namespace {

// The known context of a byte position: the position, preceded by the position that uses its
// rule while that rule is used from exactly one place (not counting its own left recursion).
constexpr size_t kMaxChain = 64;
// Up to this many uncertain tokens of the shared context are re-checked one by one in a
// position's full context; more, and the trie is walked again in the full context.
constexpr size_t kMaxRefined = 8192;

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

// The matcher states met while walking, as a lazily built automaton shared by every walk of
// one compile: a state is a GrammarMatcher::Signature, so two trie paths (or two contexts) that
// reach equivalent charts share it, and a step already taken from a state is a table lookup
// instead of an Earley step. Inside a string, nearly every node of the trie is such a lookup.
class StateCache {
 public:
  explicit StateCache(int64_t max_states) : max_states_(max_states) {}

  static constexpr int32_t kAccepted = -3;
  static constexpr int32_t kUnknown = -2;
  static constexpr int32_t kRejected = -1;

  struct State {
    ByteSet next;
    bool accepting = false;
    // Every position that scans next holds the same byte set (as at the start of a context,
    // which scans one position): every byte of `next` leads to one state, uniform_to.
    bool uniform = false;
    int32_t uniform_to = kUnknown;
    ByteSet self_loops;  // bytes known to lead back to this state
    int32_t lookups = 0;
    std::vector<int32_t> table;  // [byte] -> Transition, once looked up kTableAfterLookups times
  };

  // Over max_states, no new state is made: the step that needed one is rejected (kRejected), so
  // the walks wind down, and the compile reports exhausted().
  int32_t Intern(const GrammarMatcher& matcher) {
    matcher.Signature(&signature_);
    if (static_cast<int64_t>(states_.size()) >= max_states_ && !ids_.contains(signature_)) {
      exhausted_ = true;
      return kRejected;
    }
    auto [it, inserted] = ids_.try_emplace(signature_, static_cast<int32_t>(states_.size()));
    if (inserted) {
      State& state = states_.emplace_back(
          State{.next = matcher.NextBytes(), .accepting = matcher.IsAccepting()});
      scan_positions_.clear();
      matcher.ScanPositions(&scan_positions_);
      const Grammar& grammar = matcher.grammar();
      state.uniform = !scan_positions_.empty();
      for (int32_t pos : scan_positions_) {
        if (!(grammar.byte_set(grammar.positions()[pos].index) == state.next))
          state.uniform = false;
      }
    }
    return it->second;
  }
  const State& state(int32_t id) const { return states_[id]; }
  bool exhausted() const { return exhausted_; }
  int64_t num_states() const { return static_cast<int64_t>(states_.size()); }
  // The state after `byte` from `from`: kUnknown when not computed yet, kRejected, or
  // kAccepted when only known to be accepted (the step's end had no use for its state).
  int32_t Transition(int32_t from, uint8_t byte) {
    State& state = states_[from];
    if (state.uniform) return state.uniform_to;
    if (!state.table.empty()) return state.table[byte];
    auto it = transitions_.find(TransitionKey(from, byte));
    const int32_t to = it == transitions_.end() ? kUnknown : it->second;
    if (++state.lookups == kTableAfterLookups) {  // a hot state: a table for all 256 bytes
      state.table.assign(256, kUnknown);
      for (int b = 0; b < 256; ++b) {
        auto t = transitions_.find(TransitionKey(from, static_cast<uint8_t>(b)));
        if (t != transitions_.end()) state.table[b] = t->second;
      }
    }
    return to;
  }
  void SetTransition(int32_t from, uint8_t byte, int32_t to) {
    State& state = states_[from];
    if (state.uniform) {
      state.uniform_to = to;
      if (to == from) state.self_loops = state.next;
      return;
    }
    if (to == from) state.self_loops.Add(byte);
    if (!state.table.empty()) {
      state.table[byte] = to;
    } else {
      transitions_[TransitionKey(from, byte)] = to;
    }
  }

 private:
  static constexpr int32_t kTableAfterLookups = 64;

  static uint64_t TransitionKey(int32_t from, uint8_t byte) {
    return (static_cast<uint64_t>(from) << 8) | byte;
  }

  const int64_t max_states_;
  bool exhausted_ = false;
  std::vector<int32_t> signature_;
  std::vector<int32_t> scan_positions_;
  absl::flat_hash_map<std::vector<int32_t>, int32_t> ids_;
  std::vector<State> states_;
  absl::flat_hash_map<uint64_t, int32_t> transitions_;
};

// A walk of one known context over byte strings given depth by depth (a trie path, or a sorted
// token list): Step looks the transition up in the StateCache and only on a miss brings the
// matcher to the path (rolling back and replaying bytes) to take the Earley step.
class ContextCursor {
 public:
  ContextCursor(StateCache* cache, GrammarMatcher matcher)
      : cache_(cache), matcher_(std::move(matcher)), start_(cache_->Intern(matcher_)) {}

  int32_t start() const { return start_; }
  const StateCache::State& state(int32_t id) const { return cache_->state(id); }

  // The state after path[0, depth) (in `from`) and `byte`, or kRejected; with !need_state (the
  // path ends there) possibly kAccepted instead of the state. The path's byte at `depth` becomes
  // `byte`.
  int32_t Step(int32_t from, int32_t depth, uint8_t byte, bool need_state) {
    if (!cache_->state(from).next.Contains(byte)) return StateCache::kRejected;
    if (path_.size() <= static_cast<size_t>(depth)) path_.resize(depth + 1);
    if (synced_ > depth && path_[depth] != byte) {  // the matcher holds another branch
      matcher_.Rollback(synced_ - depth);
      synced_ = depth;
    }
    path_[depth] = byte;
    int32_t to = cache_->Transition(from, byte);
    if (to != StateCache::kUnknown && (to != StateCache::kAccepted || !need_state)) return to;
    if (synced_ > depth) {  // holds path[0, depth] already: step from path[0, depth)
      matcher_.Rollback(synced_ - depth);
      synced_ = depth;
    }
    while (synced_ < depth) {
      const bool ok = matcher_.AcceptByte(path_[synced_]);
      PAGODA_CHECK(ok);
      ++synced_;
    }
    if (matcher_.AcceptByte(byte)) {
      ++synced_;
      to = need_state ? cache_->Intern(matcher_) : StateCache::kAccepted;
    } else {
      to = StateCache::kRejected;
    }
    cache_->SetTransition(from, byte, to);
    return to;
  }

 private:
  StateCache* cache_;
  GrammarMatcher matcher_;
  int32_t start_;
  std::vector<uint8_t> path_;  // the bytes of the path being walked
  int32_t synced_ = 0;         // matcher_ has accepted path_[0, synced_)
};

// Sorts the vocabulary for one known context by walking the trie (see the header).
class TrieClassifier {
 public:
  TrieClassifier(const TokenVocabulary& vocab, StateCache* cache, GrammarMatcher matcher)
      : vocab_(vocab), cursor_(cache, std::move(matcher)) {}

  void Run(std::vector<int32_t>* accepted, std::vector<int32_t>* uncertain) {
    accepted_ = accepted;
    uncertain_ = uncertain;
    if (cursor_.start() < 0) return;  // the state cache is exhausted: the compile fails
    Walk(0, cursor_.start(), 0, /*exited=*/false);
  }

 private:
  // `exited`: the known context completed at a shorter prefix of this path, so bytes past it
  // may belong to the rules above.
  void Walk(int32_t node, int32_t state, int32_t depth, bool exited) {
    // A subtree whose every byte loops back to this state (the inside of a string, mostly): all
    // its tokens are accepted without walking it.
    if (cursor_.state(state).self_loops.ContainsAll(vocab_.trie_bytes_below(node))) {
      const absl::Span<const int32_t> below = vocab_.trie_tokens_below(node);
      accepted_->insert(accepted_->end(), below.begin(), below.end());
      return;
    }
    for (int32_t child = node + 1; child < vocab_.trie_end(node); child = vocab_.trie_end(child)) {
      const bool leaf = vocab_.trie_end(child) == child + 1;
      const int32_t next = cursor_.Step(state, depth, vocab_.trie_byte(child), !leaf);
      if (next == StateCache::kRejected) {
        if (exited) {
          const absl::Span<const int32_t> at = vocab_.trie_tokens(child);
          const absl::Span<const int32_t> below = vocab_.trie_tokens_below(child);
          uncertain_->insert(uncertain_->end(), at.begin(), at.end());
          uncertain_->insert(uncertain_->end(), below.begin(), below.end());
        }
        continue;
      }
      for (int32_t id : vocab_.trie_tokens(child)) accepted_->push_back(id);
      if (!leaf) {
        Walk(child, next, depth + 1, exited || cursor_.state(next).accepting);
      }
    }
  }

  const TokenVocabulary& vocab_;
  ContextCursor cursor_;
  std::vector<int32_t>* accepted_ = nullptr;
  std::vector<int32_t>* uncertain_ = nullptr;
};

// The same for a list of tokens in byte order (the uncertain ones of a smaller context): shares
// common prefixes and skips every token under a prefix the matcher rejected.
void ClassifySorted(const TokenVocabulary& vocab, StateCache* cache, GrammarMatcher matcher,
                    const std::vector<int32_t>& sorted_ids, std::vector<int32_t>* accepted,
                    std::vector<int32_t>* uncertain) {
  ContextCursor cursor(cache, std::move(matcher));
  if (cursor.start() < 0) return;  // the state cache is exhausted: the compile fails
  std::string path;                // the bytes walked
  std::vector<int32_t> states = {cursor.start()};  // [depth] -> the state after path[0, depth)
  std::vector<bool> exited = {false};  // [depth] -> the context completed at a depth in [1, depth]
  std::string blocked;                 // a rejected prefix
  bool blocked_exited = false;
  for (int32_t id : sorted_ids) {
    const std::string& bytes = vocab.token_bytes(id);
    if (!blocked.empty() && bytes.compare(0, blocked.size(), blocked) == 0) {
      if (blocked_exited) uncertain->push_back(id);
      continue;
    }
    size_t common = 0;
    while (common < path.size() && common < bytes.size() && path[common] == bytes[common]) {
      ++common;
    }
    path.resize(common);
    states.resize(common + 1);
    exited.resize(common + 1);
    bool ok = true;
    for (size_t j = common; j < bytes.size(); ++j) {
      const int32_t next = cursor.Step(states[j], static_cast<int32_t>(j),
                                       static_cast<uint8_t>(bytes[j]), /*need_state=*/true);
      if (next == StateCache::kRejected) {
        blocked = bytes.substr(0, j + 1);
        blocked_exited = exited[j];
        ok = false;
        break;
      }
      path += bytes[j];
      states.push_back(next);
      exited.push_back(exited[j] || cursor.state(next).accepting);
    }
    if (ok) {
      accepted->push_back(id);
    } else if (blocked_exited) {
      uncertain->push_back(id);
    }
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::Compile(
    std::shared_ptr<const Grammar> input, std::shared_ptr<const TokenVocabulary> vocabulary,
    const CompileLimits& limits) {
  auto compiled = std::shared_ptr<CompiledGrammar>(new CompiledGrammar());
  internal::UnsharedGrammar unshared = internal::UnshareSmallRules(*input);
  auto grammar = std::make_shared<const Grammar>(std::move(unshared.grammar));
  const std::vector<GrammarPosition>& positions = grammar->positions();
  const int32_t num_positions = static_cast<int32_t>(positions.size());

  std::vector<bool> reachable(grammar->num_rules(), false);
  std::vector<int32_t> stack = {grammar->root()};
  reachable[grammar->root()] = true;
  while (!stack.empty()) {
    const int32_t r = stack.back();
    stack.pop_back();
    for (const auto& alt : grammar->rule(r).alternatives) {
      for (const GrammarElement& e : alt) {
        if (e.kind == GrammarElement::Kind::kRule && !reachable[e.index]) {
          reachable[e.index] = true;
          stack.push_back(e.index);
        }
      }
    }
  }
  std::vector<std::vector<int32_t>> uses(grammar->num_rules());
  for (int32_t p = 0; p < num_positions; ++p) {
    const GrammarPosition& pos = positions[p];
    if (pos.kind != GrammarPosition::Kind::kRule || !reachable[pos.rule]) continue;
    const bool left_recursion =
        pos.index == pos.rule && (p == 0 || positions[p - 1].kind == GrammarPosition::Kind::kEnd);
    if (!left_recursion) uses[pos.index].push_back(p);
  }
  std::vector<int32_t> input_uses(input->num_rules(), 0);
  for (const GrammarPosition& pos : input->positions()) {
    if (pos.kind == GrammarPosition::Kind::kRule) ++input_uses[pos.index];
  }
  // A position's place in the input grammar: copies lay their positions out as the original.
  const auto original_position = [&](int32_t p) {
    const int32_t rule = positions[p].rule;
    const int32_t origin = unshared.origin_rule[rule];
    return p - grammar->alternative_starts(rule)[0] + input->alternative_starts(origin)[0];
  };

  // Tokens of a context up to (and with) the top of a copy are the same for every copy: keyed
  // by the context's positions in the input grammar. A position's accepted tokens are its
  // base's plus its own; the base's bitmask is built once for all its positions.
  struct Base {
    PositionTokens tokens;
    std::vector<uint32_t> bitmask;
  };
  std::map<std::vector<int32_t>, Base> by_context;
  std::vector<Base*> base_of;  // [index into tokens_] -> whose accepted tokens it adds, or null
  StateCache cache(limits.max_states);
  const int32_t words = vocabulary->bitmask_words();
  // What memory_bytes() will count, at most (a position's accepted set as a bitmask or a list).
  size_t bytes = static_cast<size_t>(num_positions) * sizeof(int32_t);
  compiled->position_index_.assign(num_positions, -1);
  for (int32_t p = 0; p < num_positions; ++p) {
    if (positions[p].kind != GrammarPosition::Kind::kBytes || !reachable[positions[p].rule]) {
      continue;
    }
    const std::vector<int32_t> chain = ChainFor(*grammar, p, uses);
    // The shared context: up to the copy top, among the copied rules around p, whose rule the
    // input uses most (a string's `char` is a copy inside the string's copy, itself inside an
    // object's copied tail: the string is what most uses share).
    size_t local_begin = 0;
    int32_t best_uses = 0;
    for (size_t k = chain.size(); k-- > 0;) {
      const int32_t rule = positions[chain[k]].rule;
      const int32_t origin = unshared.origin_rule[rule];
      if (origin == rule) break;
      if (unshared.copy_root[rule] && input_uses[origin] >= best_uses) {
        local_begin = k;
        best_uses = input_uses[origin];
      }
    }
    const std::vector<int32_t> local(chain.begin() + local_begin, chain.end());
    std::vector<int32_t> key;
    for (int32_t c : local) key.push_back(original_position(c));
    auto [it, inserted] = by_context.try_emplace(key);
    PositionTokens& base = it->second.tokens;
    if (inserted) {
      TrieClassifier(*vocabulary, &cache, GrammarMatcher::InsideChain(grammar, local))
          .Run(&base.accepted_ids, &base.uncertain_ids);
    }
    compiled->position_index_[p] = static_cast<int32_t>(compiled->tokens_.size());
    PositionTokens& tokens = compiled->tokens_.emplace_back();
    base_of.push_back(&it->second);
    if (local_begin == 0) {
      tokens.uncertain_ids = base.uncertain_ids;
    } else if (base.uncertain_ids.size() <= kMaxRefined) {
      ClassifySorted(*vocabulary, &cache, GrammarMatcher::InsideChain(grammar, chain),
                     base.uncertain_ids, &tokens.accepted_ids, &tokens.uncertain_ids);
    } else {  // e.g. whitespace, where the next rule decides most tokens: cheap to walk again
      base_of.back() = nullptr;
      TrieClassifier(*vocabulary, &cache, GrammarMatcher::InsideChain(grammar, chain))
          .Run(&tokens.accepted_ids, &tokens.uncertain_ids);
    }
    if (cache.exhausted()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the grammar is too large to compile: its walks meet more than ", limits.max_states,
          " distinct matcher states (long bounded repetitions such as a large "
          "maxLength, maxItems or {m,n} cost the most)"));
    }
    const size_t accepted = base_of.back() == nullptr ? tokens.accepted_ids.size()
                                                      : base_of.back()->tokens.accepted_ids.size() +
                                                            tokens.accepted_ids.size();
    bytes += sizeof(PositionTokens) +
             (std::min(accepted, static_cast<size_t>(words)) + tokens.uncertain_ids.size()) *
                 sizeof(int32_t);
    if (bytes > limits.max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the grammar is too large to compile: its token sets would take more than ",
                       limits.max_bytes, " bytes (", num_positions, " grammar positions)"));
    }
  }
  const auto set_bits = [](const std::vector<int32_t>& ids, std::vector<uint32_t>* bitmask) {
    for (int32_t id : ids) (*bitmask)[id >> 5] |= uint32_t{1} << (id & 31);
  };
  for (size_t i = 0; i < compiled->tokens_.size(); ++i) {
    PositionTokens& tokens = compiled->tokens_[i];
    Base* base = base_of[i];
    const size_t from_base = base == nullptr ? 0 : base->tokens.accepted_ids.size();
    if (static_cast<int64_t>(from_base + tokens.accepted_ids.size()) > words) {
      if (base == nullptr) {
        tokens.accepted_bitmask.assign(words, 0);
      } else {
        if (base->bitmask.empty()) {
          base->bitmask.assign(words, 0);
          set_bits(base->tokens.accepted_ids, &base->bitmask);
        }
        tokens.accepted_bitmask = base->bitmask;
      }
      set_bits(tokens.accepted_ids, &tokens.accepted_bitmask);
      tokens.accepted_ids = {};
    } else if (from_base > 0) {
      tokens.accepted_ids.insert(tokens.accepted_ids.begin(), base->tokens.accepted_ids.begin(),
                                 base->tokens.accepted_ids.end());
    }
  }
  compiled->num_states_ = cache.num_states();
  compiled->grammar_ = std::move(grammar);
  compiled->vocabulary_ = std::move(vocabulary);
  return std::shared_ptr<const CompiledGrammar>(std::move(compiled));
}

size_t CompiledGrammar::memory_bytes() const {
  size_t bytes = position_index_.size() * sizeof(int32_t);
  for (const PositionTokens& t : tokens_) {
    bytes +=
        sizeof(t) + (t.accepted_bitmask.size() + t.accepted_ids.size() + t.uncertain_ids.size()) *
                        sizeof(int32_t);
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
