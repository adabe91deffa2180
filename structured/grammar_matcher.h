// A byte-level matcher for a Grammar: an Earley parser (with Aycock-Horspool's nullable
// prediction) whose chart is kept whole, so it accepts or rejects each byte of a generation and
// rolls back any number of steps.
//
// Why Earley rather than llama.cpp's stacks of rule positions: stacks multiply on ambiguous or
// left-recursive grammars (a JSON Schema's optional properties are both), while an Earley set
// holds each (position, origin) item once, so one byte costs at most O(items^2) and the usual
// grammars (repetition desugared left-recursively) cost a few dozen items per byte. The chart
// is bounded: a set that would exceed kMaxItemsPerSet rejects the byte.
//
//   GrammarMatcher m(grammar);
//   if (!m.AcceptString(token_bytes)) { ... rejected; state unchanged }
//   if (m.IsAccepting()) { ... EOS allowed }
//   m.Rollback(1);                       // undo the last AcceptByte / AcceptString
//
// Not thread-safe; one per sequence. The Grammar is shared read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "structured/grammar.h"

namespace pagoda::structured {

class GrammarMatcher {
 public:
  static constexpr size_t kMaxItemsPerSet = 1 << 14;

  /// At the start of the grammar's root rule.
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  /// Inside a chain of nested rule positions, for CompiledGrammar's context-independent
  /// analysis: chain[0] is a position in the outermost rule R0 whose element is a reference to
  /// the rule of chain[1], and so on; chain.back() is a byte position. The matcher knows nothing
  /// above R0: IsAccepting() then means "R0 is complete" (the parent would take over).
  static GrammarMatcher InsideChain(std::shared_ptr<const Grammar> grammar,
                                    const std::vector<int32_t>& chain);

  /// One step of one byte; false (and no change) when the grammar cannot take it.
  bool AcceptByte(uint8_t byte);
  /// One step of all of `bytes`, or false and no change.
  bool AcceptString(std::string_view bytes);
  /// Undoes the last `num_steps` accepted steps (at most num_steps()).
  void Rollback(int num_steps);
  int num_steps() const { return static_cast<int>(steps_.size()); }

  /// The input so far is a complete string of the grammar (EOS may follow).
  bool IsAccepting() const;
  /// Some byte can follow.
  bool CanAcceptMore() const;
  /// The bytes that can follow.
  ByteSet NextBytes() const;
  /// Appends the distinct byte positions of the current Earley set (what the next byte scans).
  void ScanPositions(std::vector<int32_t>* positions) const;

  /// Writes a canonical description of everything the matcher's future depends on (the goal
  /// rule, the current set's items, and the rule items of the earlier sets those items can
  /// complete into, with sets renumbered by rank), replacing *signature. Two matchers of one
  /// grammar with equal signatures accept, reject and report the same for every continuation;
  /// CompiledGrammar memoizes its trie walks on it. Costs O(items) of the sets involved.
  void Signature(std::vector<int32_t>* signature) const;

  const Grammar& grammar() const { return *grammar_; }

 private:
  struct Item {
    int32_t pos;
    int32_t origin;  // the Earley set where the item's rule started
  };

  GrammarMatcher(std::shared_ptr<const Grammar> grammar, int32_t goal_rule);
  // Starts set k (pushes its begin) and empties the duplicate filter.
  void BeginSet(uint32_t begin);
  // Enters the item into the current set's duplicate filter: false when it was there.
  bool Insert(Item item);
  void GrowFilter();
  // The rule items of a finished set as (rule waited on, item index), sorted: a completion into
  // a large set looks its waiting items up instead of scanning the set.
  const std::vector<std::pair<int32_t, uint32_t>>& WaitingIndex(int32_t set) const;
  bool ScanByte(uint8_t byte);
  void Add(Item item);
  void Close(uint32_t begin);
  void Truncate(uint32_t num_sets);

  std::shared_ptr<const Grammar> grammar_;
  const GrammarPosition* positions_;
  int32_t goal_rule_;
  std::vector<Item> items_;
  std::vector<uint32_t> set_begin_;  // set k: items [set_begin_[k], set_begin_[k + 1])
  std::vector<uint32_t> steps_;      // [step] -> the number of sets before it
  // [set] -> a number no other set of this matcher had, so WaitingIndex knows a set rebuilt
  // after a rollback.
  std::vector<uint64_t> set_serial_;
  uint64_t next_serial_ = 0;
  struct WaitIndex {
    uint64_t serial = 0;
    std::vector<std::pair<int32_t, uint32_t>> entries;
  };
  mutable std::vector<WaitIndex> wait_index_;
  static constexpr uint32_t kIndexedSetSize = 24;
  // The current set's items as an open-addressing hash set, so Add is O(1) rather than a scan of
  // the set: a slot belongs to the current set when its stamp is filter_stamp_.
  std::vector<uint64_t> filter_keys_;
  std::vector<uint32_t> filter_stamps_;
  uint32_t filter_stamp_ = 0;
  uint32_t filter_size_ = 0;
  // Signature's scratch.
  mutable std::vector<std::vector<int32_t>> live_rules_;   // [set] -> rules started there
  mutable std::vector<std::pair<int32_t, Item>> waiting_;  // (set, rule item waiting there)
  mutable std::vector<int32_t> referenced_sets_;
  mutable std::vector<int32_t> set_rank_;  // [referenced set] -> its rank
  mutable std::vector<uint64_t> sorted_keys_;
  bool overflow_ = false;
};

}  // namespace pagoda::structured
