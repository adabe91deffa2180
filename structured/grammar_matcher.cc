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
  set_begin_.push_back(0);
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
  add_left_recursive(positions[chain[0]].rule, 0);
  for (size_t k = 0; k < chain.size(); ++k) {
    m.set_begin_.push_back(static_cast<uint32_t>(m.items_.size()));
    m.items_.push_back({chain[k], static_cast<int32_t>(k)});
    if (k + 1 < chain.size()) add_left_recursive(positions[chain[k + 1]].rule, k + 1);
  }
  return m;
}

void GrammarMatcher::Add(Item item) {
  const uint32_t begin = set_begin_.back();
  for (uint32_t i = begin; i < items_.size(); ++i) {
    if (items_[i].pos == item.pos && items_[i].origin == item.origin) return;
  }
  if (items_.size() - begin >= kMaxItemsPerSet) {
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
      // (origin == current) sees the set as far as it is; Add's nullable advance covers the rest.
      const uint32_t from = set_begin_[item.origin];
      const uint32_t to = item.origin == current ? static_cast<uint32_t>(items_.size())
                                                 : set_begin_[item.origin + 1];
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

bool GrammarMatcher::ScanByte(uint8_t byte) {
  const uint32_t begin = set_begin_.back();
  const uint32_t end = static_cast<uint32_t>(items_.size());
  set_begin_.push_back(end);
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
  return false;
}

void GrammarMatcher::Truncate(uint32_t num_sets) {
  items_.resize(set_begin_[num_sets]);
  set_begin_.resize(num_sets);
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
