#include "structured/grammar.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pagoda::structured {
namespace {

bool ElementDerives(const GrammarElement& e, const std::vector<ByteSet>& sets,
                    const std::vector<bool>& productive) {
  return e.kind == GrammarElement::Kind::kBytes ? !sets[e.index].empty() : productive[e.index];
}

std::string ByteSetToString(const ByteSet& set) {
  std::string out = "[";
  for (int b = 0; b < 256; ++b) {
    if (!set.Contains(static_cast<uint8_t>(b))) continue;
    int e = b;
    while (e + 1 < 256 && set.Contains(static_cast<uint8_t>(e + 1))) ++e;
    absl::StrAppend(&out, absl::StrFormat("\\x%02X", b));
    if (e > b) absl::StrAppend(&out, absl::StrFormat("-\\x%02X", e));
    b = e;
  }
  return out + "]";
}

}  // namespace

absl::StatusOr<Grammar> Grammar::Create(std::vector<GrammarRule> rules,
                                        std::vector<ByteSet> byte_sets, int32_t root) {
  const int32_t num_rules = static_cast<int32_t>(rules.size());
  if (num_rules == 0 || num_rules > kMaxRules) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: ", num_rules, " rules (1 to ", kMaxRules, " allowed)"));
  }
  if (root < 0 || root >= num_rules) {
    return absl::InvalidArgumentError(absl::StrCat("grammar: root rule id ", root, " is missing"));
  }
  int64_t num_positions = 0;
  for (const GrammarRule& rule : rules) {
    for (const auto& alt : rule.alternatives) {
      num_positions += static_cast<int64_t>(alt.size()) + 1;
      for (const GrammarElement& e : alt) {
        const size_t limit =
            e.kind == GrammarElement::Kind::kBytes ? byte_sets.size() : rules.size();
        if (e.index < 0 || static_cast<size_t>(e.index) >= limit) {
          return absl::InvalidArgumentError(absl::StrCat(
              "grammar: rule '", rule.name, "' refers to a missing ",
              e.kind == GrammarElement::Kind::kBytes ? "byte set " : "rule ", e.index));
        }
      }
    }
  }
  if (num_positions > kMaxPositions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grammar: ", num_positions, " element positions, over the limit of ", kMaxPositions));
  }

  // Productive rules (derive at least one string), to a fixed point.
  std::vector<bool> productive(num_rules, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < num_rules; ++r) {
      if (productive[r]) continue;
      for (const auto& alt : rules[r].alternatives) {
        bool all = true;
        for (const GrammarElement& e : alt) all = all && ElementDerives(e, byte_sets, productive);
        if (all) {
          productive[r] = changed = true;
          break;
        }
      }
    }
  }
  if (!productive[root]) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: the root rule '", rules[root].name, "' accepts no string"));
  }
  for (GrammarRule& rule : rules) {
    std::vector<std::vector<GrammarElement>> kept;
    for (auto& alt : rule.alternatives) {
      bool all = true;
      for (const GrammarElement& e : alt) all = all && ElementDerives(e, byte_sets, productive);
      if (all) kept.push_back(std::move(alt));
    }
    rule.alternatives = std::move(kept);
  }

  Grammar g;
  g.nullable_.assign(num_rules, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < num_rules; ++r) {
      if (g.nullable_[r]) continue;
      for (const auto& alt : rules[r].alternatives) {
        bool all = true;
        for (const GrammarElement& e : alt) {
          all = all && e.kind == GrammarElement::Kind::kRule && g.nullable_[e.index];
        }
        if (all) {
          g.nullable_[r] = changed = true;
          break;
        }
      }
    }
  }
  g.starts_.resize(num_rules);
  g.positions_.reserve(num_positions);
  for (int32_t r = 0; r < num_rules; ++r) {
    for (const auto& alt : rules[r].alternatives) {
      g.starts_[r].push_back(static_cast<int32_t>(g.positions_.size()));
      for (const GrammarElement& e : alt) {
        g.positions_.push_back({.kind = e.kind == GrammarElement::Kind::kBytes
                                            ? GrammarPosition::Kind::kBytes
                                            : GrammarPosition::Kind::kRule,
                                .index = e.index,
                                .rule = r});
      }
      g.positions_.push_back({.kind = GrammarPosition::Kind::kEnd, .index = r, .rule = r});
    }
  }
  g.rules_ = std::move(rules);
  g.byte_sets_ = std::move(byte_sets);
  g.root_ = root;
  return g;
}

std::string Grammar::ToString() const {
  std::string out;
  for (int32_t r = 0; r < num_rules(); ++r) {
    absl::StrAppend(&out, rules_[r].name, " ::=");
    bool first = true;
    for (const auto& alt : rules_[r].alternatives) {
      if (!first) absl::StrAppend(&out, " |");
      first = false;
      if (alt.empty()) absl::StrAppend(&out, " \"\"");
      for (const GrammarElement& e : alt) {
        absl::StrAppend(&out, " ",
                        e.kind == GrammarElement::Kind::kBytes
                            ? ByteSetToString(byte_sets_[e.index])
                            : rules_[e.index].name);
      }
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace pagoda::structured
