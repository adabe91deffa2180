#include "structured/grammar_matcher.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "common/check.h"

namespace pagoda::structured {

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, int32_t goal_rule)
    : grammar_(std::move(grammar)),
      positions_(grammar_->positions().data()),
      goal_rule_(goal_rule) {}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar)
    : GrammarMatcher(grammar, grammar->root()) {
  BeginSet(0);
  for (int32_t start : grammar_->alternative_starts(goal_rule_)) Add({start, 0});
  Close(0);
}

GrammarMatcher GrammarMatcher::InsideChain(std::shared_ptr<const Grammar> grammar,
                                           const std::vector<int32_t>& chain) {
  PAGODA_CHECK(!chain.empty());
  const std::vector<GrammarPosition>& positions = grammar->positions();
  GrammarMatcher m(grammar, positions[chain[0]].rule);
  // What a real chart holds under chain.back(): set k + 1 has chain[k] (started in set k) and
  // the left-recursive alternatives of chain[k + 1]'s rule, which wait on that rule where it
  // starts (set k + 1) as a real prediction would put them; set 0 has those of chain[0]'s rule.
  const auto add_left_recursive = [&](int32_t rule, int32_t set) {
    for (int32_t start : grammar->alternative_starts(rule)) {
      if (positions[start].kind == GrammarPosition::Kind::kRule && positions[start].index == rule) {
        m.items_.push_back({start, set});
      }
    }
  };
  m.set_begin_.push_back(0);
  m.set_serial_.push_back(++m.next_serial_);
  add_left_recursive(positions[chain[0]].rule, 0);
  for (size_t k = 0; k < chain.size(); ++k) {
    m.set_begin_.push_back(static_cast<uint32_t>(m.items_.size()));
    m.set_serial_.push_back(++m.next_serial_);
    m.items_.push_back({chain[k], static_cast<int32_t>(k)});
    if (k + 1 < chain.size()) add_left_recursive(positions[chain[k + 1]].rule, k + 1);
  }
  return m;
}

namespace {

uint64_t ItemKey(int32_t pos, int32_t origin) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32) | static_cast<uint32_t>(origin);
}

size_t FilterSlot(uint64_t key, size_t mask) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

}  // namespace

void GrammarMatcher::BeginSet(uint32_t begin) {
  set_begin_.push_back(begin);
  set_serial_.push_back(++next_serial_);
  filter_size_ = 0;
  if (++filter_stamp_ == 0) {  // wrapped: forget every old stamp
    std::fill(filter_stamps_.begin(), filter_stamps_.end(), 0);
    filter_stamp_ = 1;
  }
  if (filter_keys_.empty()) {
    filter_keys_.assign(64, 0);
    filter_stamps_.assign(64, 0);
  }
}

void GrammarMatcher::GrowFilter() {
  const size_t capacity = filter_keys_.size() * 2;
  filter_keys_.assign(capacity, 0);
  filter_stamps_.assign(capacity, 0);
  filter_stamp_ = 1;
  filter_size_ = 0;
  for (size_t i = set_begin_.back(); i < items_.size(); ++i) Insert(items_[i]);
}

bool GrammarMatcher::Insert(Item item) {
  const uint64_t key = ItemKey(item.pos, item.origin);
  const size_t mask = filter_keys_.size() - 1;
  for (size_t slot = FilterSlot(key, mask);; slot = (slot + 1) & mask) {
    if (filter_stamps_[slot] != filter_stamp_) {
      filter_stamps_[slot] = filter_stamp_;
      filter_keys_[slot] = key;
      ++filter_size_;
      return true;
    }
    if (filter_keys_[slot] == key) return false;
  }
}

void GrammarMatcher::Add(Item item) {
  if (2 * (filter_size_ + 1) > filter_keys_.size()) GrowFilter();
  if (!Insert(item)) return;
  if (items_.size() - set_begin_.back() >= kMaxItemsPerSet) {
    overflow_ = true;
    return;
  }
  items_.push_back(item);
}

void GrammarMatcher::Close(uint32_t begin) {
  const int32_t current = static_cast<int32_t>(set_begin_.size()) - 1;
  for (uint32_t i = begin; i < items_.size(); ++i) {
    const Item item = items_[i];
    const GrammarPosition& p = positions_[item.pos];
    if (p.kind == GrammarPosition::Kind::kEnd) {
      // Completion: advance what waited on this rule where it started. An empty completion
      // (origin == current) adds nothing: its rule is nullable, and every item of this set that
      // waits on it is advanced by the nullable case below.
      if (item.origin == current) continue;
      const uint32_t from = set_begin_[item.origin];
      const uint32_t to = set_begin_[item.origin + 1];
      if (to - from > kIndexedSetSize) {
        const std::vector<std::pair<int32_t, uint32_t>>& waiting = WaitingIndex(item.origin);
        for (auto it = std::lower_bound(waiting.begin(), waiting.end(),
                                        std::pair<int32_t, uint32_t>(p.rule, 0));
             it != waiting.end() && it->first == p.rule; ++it) {
          const Item w = items_[it->second];
          Add({w.pos + 1, w.origin});
        }
        continue;
      }
      for (uint32_t j = from; j < to; ++j) {
        const Item waiting = items_[j];
        const GrammarPosition& w = positions_[waiting.pos];
        if (w.kind == GrammarPosition::Kind::kRule && w.index == p.rule) {
          Add({waiting.pos + 1, waiting.origin});
        }
      }
    } else if (p.kind == GrammarPosition::Kind::kRule) {
      for (int32_t start : grammar_->alternative_starts(p.index)) Add({start, current});
      if (grammar_->nullable(p.index)) Add({item.pos + 1, item.origin});
    }
  }
}

const std::vector<std::pair<int32_t, uint32_t>>& GrammarMatcher::WaitingIndex(int32_t set) const {
  if (wait_index_.size() <= static_cast<size_t>(set)) wait_index_.resize(set + 1);
  WaitIndex& index = wait_index_[set];
  if (index.serial != set_serial_[set]) {
    index.serial = set_serial_[set];
    index.entries.clear();
    for (uint32_t i = set_begin_[set]; i < set_begin_[set + 1]; ++i) {
      const GrammarPosition& w = positions_[items_[i].pos];
      if (w.kind == GrammarPosition::Kind::kRule) index.entries.push_back({w.index, i});
    }
    std::sort(index.entries.begin(), index.entries.end());
  }
  return index.entries;
}

bool GrammarMatcher::ScanByte(uint8_t byte) {
  const uint32_t begin = set_begin_.back();
  const uint32_t end = static_cast<uint32_t>(items_.size());
  BeginSet(end);
  for (uint32_t i = begin; i < end; ++i) {
    const Item item = items_[i];
    const GrammarPosition& p = positions_[item.pos];
    if (p.kind == GrammarPosition::Kind::kBytes && grammar_->byte_set(p.index).Contains(byte)) {
      Add({item.pos + 1, item.origin});
    }
  }
  if (items_.size() > end) {
    overflow_ = false;
    Close(end);
    if (!overflow_) return true;
  }
  items_.resize(end);
  set_begin_.pop_back();
  set_serial_.pop_back();
  return false;
}

void GrammarMatcher::Truncate(uint32_t num_sets) {
  items_.resize(set_begin_[num_sets]);
  set_begin_.resize(num_sets);
  set_serial_.resize(num_sets);
}

bool GrammarMatcher::AcceptByte(uint8_t byte) {
  const uint32_t num_sets = static_cast<uint32_t>(set_begin_.size());
  if (!ScanByte(byte)) return false;
  steps_.push_back(num_sets);
  return true;
}

bool GrammarMatcher::AcceptString(std::string_view bytes) {
  const uint32_t num_sets = static_cast<uint32_t>(set_begin_.size());
  for (char c : bytes) {
    if (!ScanByte(static_cast<uint8_t>(c))) {
      Truncate(num_sets);
      return false;
    }
  }
  steps_.push_back(num_sets);
  return true;
}

void GrammarMatcher::Rollback(int num_steps) {
  PAGODA_CHECK(num_steps >= 0 && num_steps <= static_cast<int>(steps_.size()));
  if (num_steps == 0) return;
  const uint32_t num_sets = steps_[steps_.size() - num_steps];
  steps_.resize(steps_.size() - num_steps);
  Truncate(num_sets);
}

bool GrammarMatcher::IsAccepting() const {
  for (uint32_t i = set_begin_.back(); i < items_.size(); ++i) {
    const GrammarPosition& p = positions_[items_[i].pos];
    if (p.kind == GrammarPosition::Kind::kEnd && p.rule == goal_rule_ && items_[i].origin == 0) {
      return true;
    }
  }
  return false;
}

bool GrammarMatcher::CanAcceptMore() const {
  for (uint32_t i = set_begin_.back(); i < items_.size(); ++i) {
    if (positions_[items_[i].pos].kind == GrammarPosition::Kind::kBytes) return true;
  }
  return false;
}

ByteSet GrammarMatcher::NextBytes() const {
  ByteSet next;
  for (uint32_t i = set_begin_.back(); i < items_.size(); ++i) {
    const GrammarPosition& p = positions_[items_[i].pos];
    if (p.kind == GrammarPosition::Kind::kBytes) next.UnionWith(grammar_->byte_set(p.index));
  }
  return next;
}

void GrammarMatcher::Signature(std::vector<int32_t>* signature) const {
  // What later steps read: the current set (scanned, predicted from, completed in) and, where an
  // item of rule q started in an earlier set o (so q may complete there), the rule items of set o
  // that wait on q, which continue rules that started further back: the closure of such
  // (rule, set) pairs. Other items of earlier sets are never read again. Absolute set numbers
  // only matter through "is it the current set" and "is it set 0", so the sets are renumbered by
  // rank.
  const int32_t current = static_cast<int32_t>(set_begin_.size()) - 1;
  if (live_rules_.size() < static_cast<size_t>(current)) live_rules_.resize(current);
  waiting_.clear();
  referenced_sets_.clear();
  // live_rules_[set]: the rules that may complete with that origin; sets only reach back.
  const auto live = [&](int32_t rule, int32_t set) {
    if (set == current) return;
    std::vector<int32_t>& rules = live_rules_[set];
    if (rules.empty()) referenced_sets_.push_back(set);
    if (std::find(rules.begin(), rules.end(), rule) == rules.end()) rules.push_back(rule);
  };
  for (uint32_t i = set_begin_[current]; i < items_.size(); ++i) {
    live(positions_[items_[i].pos].rule, items_[i].origin);
  }
  // From the latest set back: a set's live rules are final once every later set is done, but for
  // those its own predictions add (origin == the set), which are scanned for again.
  for (int32_t set = current - 1; set >= 0; --set) {
    std::vector<int32_t>& rules = live_rules_[set];
    if (rules.empty()) continue;
    if (set_begin_[set + 1] - set_begin_[set] > kIndexedSetSize) {
      const std::vector<std::pair<int32_t, uint32_t>>& index = WaitingIndex(set);
      for (size_t k = 0; k < rules.size(); ++k) {
        for (auto it = std::lower_bound(index.begin(), index.end(),
                                        std::pair<int32_t, uint32_t>(rules[k], 0));
             it != index.end() && it->first == rules[k]; ++it) {
          const Item w = items_[it->second];
          waiting_.push_back({set, w});
          live(positions_[w.pos].rule, w.origin);
        }
      }
      continue;
    }
    for (size_t done = 0; done < rules.size();) {
      const size_t end = rules.size();
      for (uint32_t i = set_begin_[set]; i < set_begin_[set + 1]; ++i) {
        const GrammarPosition& w = positions_[items_[i].pos];
        if (w.kind != GrammarPosition::Kind::kRule ||
            std::find(rules.begin() + done, rules.begin() + end, w.index) == rules.begin() + end) {
          continue;
        }
        waiting_.push_back({set, items_[i]});
        live(w.rule, items_[i].origin);
      }
      done = end;
    }
  }
  for (int32_t set : referenced_sets_) live_rules_[set].clear();
  // Ranks of the sets the closure reached (every origin of a live pair or a waiting item is one).
  std::sort(referenced_sets_.begin(), referenced_sets_.end());
  if (set_rank_.size() < static_cast<size_t>(current)) set_rank_.resize(current);
  for (size_t k = 0; k < referenced_sets_.size(); ++k) {
    set_rank_[referenced_sets_[k]] = static_cast<int32_t>(k);
  }
  const auto rank = [&](int32_t set) { return set == current ? -1 : set_rank_[set]; };
  signature->clear();
  signature->push_back(goal_rule_);
  // Where set 0 is (IsAccepting asks for origin 0): the current set, the first referenced, none.
  signature->push_back(current == 0 ? 2 : (!referenced_sets_.empty() && referenced_sets_[0] == 0));
  // Items packed into one integer each so that sorting compares integers: the current set's as
  // (position, origin rank + 1), the waiting ones as (set rank, position, origin rank).
  sorted_keys_.clear();
  for (uint32_t i = set_begin_[current]; i < items_.size(); ++i) {
    sorted_keys_.push_back((static_cast<uint64_t>(items_[i].pos) << 32) |
                           static_cast<uint32_t>(rank(items_[i].origin) + 1));
  }
  std::sort(sorted_keys_.begin(), sorted_keys_.end());
  signature->push_back(static_cast<int32_t>(sorted_keys_.size()));
  for (uint64_t key : sorted_keys_) {
    signature->push_back(static_cast<int32_t>(key >> 32));
    signature->push_back(static_cast<int32_t>(key & 0xffffffff) - 1);
  }
  // Ranks and positions fit: fewer than 2^20 sets are referenced in a compile walk (a context's
  // chain plus a token's bytes) and a grammar has at most 2^20 positions; wider ones keep the
  // pair comparison.
  const bool packable = referenced_sets_.size() < (1u << 20);
  sorted_keys_.clear();
  if (packable) {
    for (const auto& [set, item] : waiting_) {
      sorted_keys_.push_back((static_cast<uint64_t>(rank(set)) << 44) |
                             (static_cast<uint64_t>(item.pos) << 20) |
                             static_cast<uint64_t>(rank(item.origin)));
    }
    std::sort(sorted_keys_.begin(), sorted_keys_.end());
    signature->push_back(static_cast<int32_t>(sorted_keys_.size()));
    for (uint64_t key : sorted_keys_) {
      signature->push_back(static_cast<int32_t>(key >> 44));
      signature->push_back(static_cast<int32_t>((key >> 20) & 0xffffff));
      signature->push_back(static_cast<int32_t>(key & 0xfffff));
    }
    return;
  }
  for (auto& [set, item] : waiting_) {
    set = rank(set);
    item.origin = rank(item.origin);
  }
  std::sort(waiting_.begin(), waiting_.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second.pos != b.second.pos ? a.second.pos < b.second.pos
                                        : a.second.origin < b.second.origin;
  });
  signature->push_back(static_cast<int32_t>(waiting_.size()));
  for (const auto& [set, item] : waiting_) {
    signature->push_back(set);
    signature->push_back(item.pos);
    signature->push_back(item.origin);
  }
}

void GrammarMatcher::ScanPositions(std::vector<int32_t>* positions) const {
  const size_t first = positions->size();
  for (uint32_t i = set_begin_.back(); i < items_.size(); ++i) {
    const int32_t pos = items_[i].pos;
    if (positions_[pos].kind != GrammarPosition::Kind::kBytes) continue;
    if (std::find(positions->begin() + first, positions->end(), pos) == positions->end()) {
      positions->push_back(pos);
    }
  }
}

}  // namespace pagoda::structured
