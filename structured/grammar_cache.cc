#include "structured/grammar_cache.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "structured/gbnf_parser.h"
#include "structured/json_schema_grammar.h"
#include "structured/regex_grammar.h"

namespace pagoda::structured {

GrammarKind GrammarKindOf(SamplingParams::ConstraintKind kind) {
  using Kind = SamplingParams::ConstraintKind;
  switch (kind) {
    case Kind::kJsonObject:
      return GrammarKind::kJsonObject;
    case Kind::kRegex:
      return GrammarKind::kRegex;
    case Kind::kChoice:
      return GrammarKind::kChoice;
    case Kind::kGrammar:
      return GrammarKind::kGbnf;
    case Kind::kJsonSchema:
    case Kind::kNone:
      break;
  }
  return GrammarKind::kJsonSchema;
}

absl::StatusOr<Grammar> BuildGrammar(GrammarKind kind, std::string_view text) {
  switch (kind) {
    case GrammarKind::kJsonSchema:
      return JsonSchemaToGrammar(text);
    case GrammarKind::kJsonObject:
      return JsonObjectGrammar();
    case GrammarKind::kRegex:
      return RegexToGrammar(text);
    case GrammarKind::kGbnf:
      return ParseGbnf(text);
    case GrammarKind::kChoice: {
      const nlohmann::json list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!list.is_array()) return absl::InvalidArgumentError("choice: not a JSON array");
      std::vector<std::string> choices;
      for (const nlohmann::json& c : list) {
        if (!c.is_string()) return absl::InvalidArgumentError("choice: not an array of strings");
        choices.push_back(c.get<std::string>());
      }
      return ChoiceToGrammar(choices);
    }
  }
  return absl::InvalidArgumentError("unknown grammar kind");
}

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCache::GetOrCompile(
    GrammarKind kind, std::string_view text, std::shared_ptr<const TokenVocabulary> vocabulary) {
  const Key key = absl::StrCat(static_cast<int>(kind), ":", vocabulary->id().size(), ":",
                               vocabulary->id(), std::string(text));
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++stats_.hits;
      return it->second.compiled;
    }
    ++stats_.misses;
  }
  ASSIGN_OR_RETURN(Grammar grammar, BuildGrammar(kind, text));
  // A grammar whose sets would not fit the whole cache is refused, not compiled and dropped.
  ASSIGN_OR_RETURN(std::shared_ptr<const CompiledGrammar> compiled,
                   CompiledGrammar::Compile(std::make_shared<const Grammar>(std::move(grammar)),
                                            std::move(vocabulary), {.max_bytes = max_bytes_}));
  const size_t bytes = compiled->memory_bytes() + key.size();
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(key); it != entries_.end()) return it->second.compiled;
  if (bytes > max_bytes_) return compiled;  // too big to keep
  lru_.push_front(key);
  entries_[key] = {.compiled = compiled, .bytes = bytes, .lru = lru_.begin()};
  stats_.bytes += bytes;
  while (stats_.bytes > max_bytes_) {
    auto victim = entries_.find(lru_.back());
    stats_.bytes -= victim->second.bytes;
    entries_.erase(victim);
    lru_.pop_back();
    ++stats_.evictions;
  }
  return compiled;
}

GrammarCache::Stats GrammarCache::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s = stats_;
  s.entries = entries_.size();
  return s;
}

}  // namespace pagoda::structured
