// Prints random strings that constrained decoding lets through: each walk samples uniformly
// among the tokens the mask allows (a stop id when allowed once past --budget tokens, and then
// tokens that complete the string when there are some), over the toy vocabulary, until the stop
// id. One line per walk: the bytes in hex. Exits 1 when the mask is ever empty before the stop id
// (a dead end) or a walk does not finish within --max-tokens.
//
//   structured_random_walk --kind json_schema --grammar '{"type": "integer"}' --walks 20
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "structured/compiled_grammar.h"
#include "structured/gbnf_parser.h"
#include "structured/json_schema_grammar.h"
#include "structured/regex_grammar.h"
#include "structured/token_matcher.h"
#include "tests/structured/toy_vocabulary.h"

namespace pagoda::structured {
namespace {

absl::StatusOr<Grammar> Build(const std::string& kind, const std::string& text) {
  if (kind == "json_schema") return JsonSchemaToGrammar(text);
  if (kind == "json_object") return JsonObjectGrammar();
  if (kind == "regex") return RegexToGrammar(text);
  if (kind == "gbnf") return ParseGbnf(text);
  if (kind == "choice") return ChoiceToGrammar(absl::StrSplit(text, '\n'));
  return absl::InvalidArgumentError("unknown --kind " + kind);
}

int Main(int argc, char** argv) {
  std::string kind = "json_schema", text;
  int walks = 10, budget = 40, max_tokens = 3000;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--kind")
      kind = value;
    else if (flag == "--grammar")
      text = value;
    else if (flag == "--walks")
      walks = std::stoi(value);
    else if (flag == "--budget")
      budget = std::stoi(value);
    else if (flag == "--max-tokens")
      max_tokens = std::stoi(value);
    else if (flag == "--seed")
      seed = std::stoull(value);
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  absl::StatusOr<Grammar> grammar = Build(kind, text);
  if (!grammar.ok()) {
    std::cerr << grammar.status() << "\n";
    return 2;
  }
  auto vocab = testing::ToyVocabulary();
  auto compiled =
      CompiledGrammar::Compile(std::make_shared<const Grammar>(*std::move(grammar)), vocab).value();
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> mask(vocab->bitmask_words());
  for (int w = 0; w < walks; ++w) {
    TokenMatcher matcher(compiled);
    std::string out;
    for (int step = 0; !matcher.IsTerminated(); ++step) {
      if (step >= max_tokens) {
        std::cerr << "walk " << w << " did not finish in " << max_tokens << " tokens\n";
        return 1;
      }
      matcher.FillNextTokenBitmask(absl::MakeSpan(mask));
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->size(); ++id) {
        if ((mask[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
      }
      if (allowed.empty()) {
        std::cerr << "walk " << w << ": no token allowed after '" << out << "'\n";
        return 1;
      }
      int32_t pick = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
      if (step >= budget) {
        std::vector<int32_t> finishing;
        for (int32_t id : allowed) {
          if (id == testing::kToyEos) {
            finishing = {id};
            break;
          }
          if (matcher.AcceptToken(id)) {
            if (matcher.IsAccepting()) finishing.push_back(id);
            matcher.Rollback(1);
          }
        }
        if (!finishing.empty()) {
          pick = finishing[std::uniform_int_distribution<size_t>(0, finishing.size() - 1)(rng)];
        }
      }
      if (!matcher.AcceptToken(pick)) {
        std::cerr << "walk " << w << ": a masked-in token was rejected\n";
        return 1;
      }
      if (pick != testing::kToyEos) out += vocab->token_bytes(pick);
    }
    for (unsigned char c : out) std::printf("%02x", c);
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace pagoda::structured

int main(int argc, char** argv) { return pagoda::structured::Main(argc, argv); }
