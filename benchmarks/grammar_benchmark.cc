// Structured outputs with SmolLM2's vocabulary (49152 tokens): the cold compile of a typical
// JSON Schema (schema -> grammar -> CompiledGrammar), of free JSON, and the per-token cost of the
// mask (FillNextTokenBitmask + AcceptToken) along a realistic JSON answer, tokenized by the model's
// own tokenizer. --model=PATH (default models/SmolLM2-135M-Instruct.Q4_1.gguf).
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/model_source.h"
#include "structured/compiled_grammar.h"
#include "structured/grammar_cache.h"
#include "structured/json_schema_grammar.h"
#include "structured/token_matcher.h"
#include "structured/token_vocabulary.h"

namespace pagoda::structured {
namespace {

constexpr char kSchema[] = R"({
  "type": "object",
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string", "minLength": 1},
    "email": {"type": "string", "format": "email"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "status": {"enum": ["active", "suspended", "deleted"]},
    "created": {"type": "string", "format": "date-time"},
    "address": {
      "type": "object",
      "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                     "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
      "required": ["street", "city"]
    },
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
    "scores": {"type": "array", "items": {"type": "number"}},
    "manager": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]}
  },
  "required": ["id", "name", "age", "status", "tags"],
  "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"},
            "reports": {"type": "array", "items": {"$ref": "#/$defs/person"}}},
            "required": ["name"]}}
})";

// A small one: three properties, one optional.
constexpr char kSmallSchema[] = R"({"type": "object", "properties": {
    "city": {"type": "string"}, "temperature_c": {"type": "number"},
    "conditions": {"enum": ["sunny", "cloudy", "rain", "snow"]}},
    "required": ["city", "temperature_c"]})";

constexpr char kAnswer[] =
    R"({"id": "0b6f2c1e-8d4a-4f3b-9c2e-7a5d1e0f4b3c", "name": "Ada Lovelace", )"
    R"("email": "ada@example.com", "age": 36, "status": "active", )"
    R"("created": "2024-03-15T09:30:00Z", "address": {"street": "12 St James's Square", )"
    R"("city": "London", "zip": "10001"}, "tags": ["mathematics", "poetry", "engines"], )"
    R"("scores": [9.5, 8.75, 10], "manager": {"name": "Charles Babbage", "reports": []}})";

std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Setup {
  std::unique_ptr<Tokenizer> tokenizer;
  std::shared_ptr<const TokenVocabulary> vocab;
};

Setup& GetSetup() {
  static Setup* setup = [] {
    auto* s = new Setup();
    auto tokenizer = LoadTokenizerFrom(model_path);
    if (!tokenizer.ok()) {
      std::cerr << "grammar_benchmark: " << tokenizer.status() << "\n";
      std::exit(1);
    }
    s->tokenizer = *std::move(tokenizer);
    const auto start = std::chrono::steady_clock::now();
    auto vocab =
        TokenVocabulary::FromTokenizer(*s->tokenizer, EosTokenIds({}, *s->tokenizer), model_path);
    std::cerr << "vocabulary of " << (*vocab)->size() << " tokens, trie of "
              << (*vocab)->num_trie_nodes() << " nodes, built in "
              << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count()
              << " ms\n";
    s->vocab = *vocab;
    return s;
  }();
  return *setup;
}

std::shared_ptr<const CompiledGrammar> CompileSchema(const char* schema) {
  auto grammar = JsonSchemaToGrammar(schema);
  if (!grammar.ok()) {
    std::cerr << grammar.status() << "\n";
    std::exit(1);
  }
  return CompiledGrammar::Compile(std::make_shared<const Grammar>(*std::move(grammar)),
                                  GetSetup().vocab)
      .value();
}

void BM_CompileTypicalSchema(benchmark::State& state) {
  GetSetup();
  std::shared_ptr<const CompiledGrammar> compiled;
  for (auto _ : state) compiled = CompileSchema(kSchema);
  state.counters["positions"] = static_cast<double>(compiled->grammar()->positions().size());
  state.counters["uncertain"] = static_cast<double>(compiled->num_uncertain());
  state.counters["MiB"] = static_cast<double>(compiled->memory_bytes()) / (1 << 20);
  state.counters["states"] = static_cast<double>(compiled->num_states());
}
BENCHMARK(BM_CompileTypicalSchema)->Unit(benchmark::kMillisecond);

void BM_CompileSmallSchema(benchmark::State& state) {
  GetSetup();
  for (auto _ : state) benchmark::DoNotOptimize(CompileSchema(kSmallSchema));
}
BENCHMARK(BM_CompileSmallSchema)->Unit(benchmark::kMillisecond);

// A string with maxLength N: one context per remaining length, each walked in full.
void BM_CompileMaxLength(benchmark::State& state) {
  GetSetup();
  const std::string schema =
      R"({"type": "string", "maxLength": )" + std::to_string(state.range(0)) + "}";
  std::shared_ptr<const CompiledGrammar> compiled;
  for (auto _ : state) compiled = CompileSchema(schema.c_str());
  state.counters["MiB"] = static_cast<double>(compiled->memory_bytes()) / (1 << 20);
  state.counters["states"] = static_cast<double>(compiled->num_states());
}
BENCHMARK(BM_CompileMaxLength)->Arg(8)->Arg(32)->Arg(128)->Unit(benchmark::kMillisecond);

void BM_CompileJsonObject(benchmark::State& state) {
  GetSetup();
  for (auto _ : state) {
    auto grammar = JsonObjectGrammar();
    benchmark::DoNotOptimize(
        CompiledGrammar::Compile(std::make_shared<const Grammar>(*std::move(grammar)),
                                 GetSetup().vocab)
            .value());
  }
}
BENCHMARK(BM_CompileJsonObject)->Unit(benchmark::kMillisecond);

void BM_CacheHit(benchmark::State& state) {
  GrammarCache cache(256 << 20);
  (void)cache.GetOrCompile(GrammarKind::kJsonSchema, kSchema, GetSetup().vocab);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        cache.GetOrCompile(GrammarKind::kJsonSchema, kSchema, GetSetup().vocab));
  }
}
BENCHMARK(BM_CacheHit)->Unit(benchmark::kMicrosecond);

// One iteration: the whole answer, a mask before every token and after the last (EOS).
void BM_MaskPerToken(benchmark::State& state) {
  Setup& setup = GetSetup();
  auto compiled = CompileSchema(kSchema);
  const std::vector<int32_t> ids = setup.tokenizer->Encode(kAnswer, /*add_special_tokens=*/false);
  std::vector<uint32_t> mask(setup.vocab->bitmask_words());
  for (auto _ : state) {
    TokenMatcher matcher(compiled);
    for (int32_t id : ids) {
      matcher.FillNextTokenBitmask(absl::MakeSpan(mask));
      if (!((mask[id >> 5] >> (id & 31)) & 1) || !matcher.AcceptToken(id)) {
        state.SkipWithError("the answer's token is not allowed");
        return;
      }
    }
    matcher.FillNextTokenBitmask(absl::MakeSpan(mask));
    benchmark::DoNotOptimize(mask.data());
  }
  state.counters["tokens"] = static_cast<double>(ids.size() + 1);
  state.counters["us_per_token"] = benchmark::Counter(
      static_cast<double>(ids.size() + 1) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_MaskPerToken)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagoda::structured

int main(int argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--model=", 0) == 0) {
      pagoda::structured::model_path = arg.substr(8);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
