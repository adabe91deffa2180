#include "structured/internal/unshare_rules.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagoda::structured::internal {
namespace {

int32_t NumPositions(const GrammarRule& rule) {
  int32_t n = 0;
  for (const auto& alt : rule.alternatives) n += static_cast<int32_t>(alt.size()) + 1;
  return n;
}

// The rules `rule` reaches (itself first), or empty when it reaches itself again or they hold
// more than kMaxCopiedPositions positions.
std::vector<int32_t> SmallClosure(const Grammar& g, int32_t rule) {
  std::vector<int32_t> closure = {rule};
  std::vector<bool> seen(g.num_rules(), false);
  seen[rule] = true;
  int32_t positions = NumPositions(g.rule(rule));
  for (size_t i = 0; i < closure.size(); ++i) {
    for (const auto& alt : g.rule(closure[i]).alternatives) {
      for (const GrammarElement& e : alt) {
        if (e.kind != GrammarElement::Kind::kRule) continue;
        if (e.index == rule) return {};
        if (seen[e.index]) continue;
        seen[e.index] = true;
        closure.push_back(e.index);
        positions += NumPositions(g.rule(e.index));
        if (positions > kMaxCopiedPositions) return {};
      }
    }
  }
  return closure;
}

}  // namespace

namespace {

class Unsharer {
 public:
  explicit Unsharer(const Grammar& g) : g_(g) {
    const int32_t n = g.num_rules();
    std::vector<int32_t> uses(n, 0);
    for (int32_t r = 0; r < n; ++r) {
      for (const auto& alt : g.rule(r).alternatives) {
        for (size_t i = 0; i < alt.size(); ++i) {
          const GrammarElement& e = alt[i];
          if (e.kind == GrammarElement::Kind::kRule && !(i == 0 && e.index == r)) ++uses[e.index];
        }
      }
    }
    copyable_.assign(n, false);
    for (int32_t r = 0; r < n; ++r) {
      copyable_[r] = r != g.root() && uses[r] > 1 && !SmallClosure(g, r).empty();
    }
    for (int32_t r = 0; r < n; ++r) {
      rules_.push_back(g.rule(r));
      origin_.push_back(r);
      copy_root_.push_back(false);
    }
    total_ = static_cast<int64_t>(g.positions().size());
  }

  UnsharedGrammar Run() {
    // Uses in the input's rules get copies; a copy's own uses of copyable rules get copies too,
    // its other rules (left-recursive helpers) are copied once per copy.
    for (int32_t r = 0; r < g_.num_rules(); ++r) Rewrite(r, nullptr);
    absl::StatusOr<Grammar> unshared =
        Grammar::Create(std::move(rules_), g_.byte_sets(), g_.root());
    PAGODA_CHECK(unshared.ok());  // the same language, within the limits
    return {.grammar = *std::move(unshared),
            .origin_rule = std::move(origin_),
            .copy_root = std::move(copy_root_)};
  }

 private:
  using Instance = absl::flat_hash_map<int32_t, int32_t>;

  // Points the rule references of rules_[id] at copies: a fresh one per use of a copyable rule
  // (budget permitting), else the instance's copy (or the input rule outside any copy).
  void Rewrite(int32_t id, Instance* instance) {
    for (size_t a = 0; a < rules_[id].alternatives.size(); ++a) {
      for (size_t i = 0; i < rules_[id].alternatives[a].size(); ++i) {
        const GrammarElement e = rules_[id].alternatives[a][i];
        if (e.kind != GrammarElement::Kind::kRule) continue;
        const int32_t target = origin_[e.index];
        int32_t replacement = e.index;
        if (copyable_[target] && total_ + Size(target) <= kMaxTotalPositions) {
          Instance fresh;
          replacement = Copy(target, &fresh);
          copy_root_[replacement] = true;
        } else if (instance != nullptr) {
          replacement = Copy(target, instance);
        }
        rules_[id].alternatives[a][i].index = replacement;
      }
    }
  }

  int32_t Copy(int32_t rule, Instance* instance) {
    if (auto it = instance->find(rule); it != instance->end()) return it->second;
    const int32_t id = static_cast<int32_t>(rules_.size());
    (*instance)[rule] = id;
    GrammarRule copy = g_.rule(rule);
    copy.name = absl::StrCat(copy.name, "@", id);
    total_ += NumPositions(copy);
    rules_.push_back(std::move(copy));
    origin_.push_back(rule);
    copy_root_.push_back(false);
    Rewrite(id, instance);
    return id;
  }

  int64_t Size(int32_t rule) const {
    int64_t size = 0;
    for (int32_t r : SmallClosure(g_, rule)) size += NumPositions(g_.rule(r));
    return size;
  }

  const Grammar& g_;
  std::vector<bool> copyable_;
  std::vector<GrammarRule> rules_;
  std::vector<int32_t> origin_;
  std::vector<bool> copy_root_;
  int64_t total_ = 0;
};

}  // namespace

UnsharedGrammar UnshareSmallRules(const Grammar& g) { return Unsharer(g).Run(); }

}  // namespace pagoda::structured::internal
