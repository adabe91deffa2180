// The request lists `pagoda bench` sends: seeded synthetic datasets made of real text
// (sharegpt-like, random, prefix) and user files (jsonl).
//
// - sharegpt-like: ShareGptLikeWorkload's lengths (means ~200 prompt / ~180 output tokens,
//   long-tailed, prompt <= 1024, total <= 2048; both bounds lowered to the model's context).
// - random: prompt and output lengths uniform in [len * (1 - r), len * (1 + r)] (vLLM's
//   --random-range-ratio r).
// - prefix: `prefix_num_prompts` shared system prompts of `prefix_len` tokens, each request one
//   of them (seeded choice) plus its own `suffix_len`-token suffix.
// - jsonl: one {"prompt": str, "max_tokens" | "output_len": int} per line; errors name the line.
//
// Prompts are PromptText windows starting at seeded, distinct corpus positions (every position
// once before any repeats, so prompts share no prefix-cache blocks unless the dataset means them
// to). The same options give the same requests.
//
//   ASSIGN_OR_RETURN(PromptText text, PromptText::Create(tokenizer.get()));
//   ASSIGN_OR_RETURN(std::vector<BenchRequest> requests,
//                    MakeDataset({.kind = DatasetKind::kRandom, .num_prompts = 100}, &text,
//                               tokenizer.get()));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "tools/bench/prompt_text.h"

namespace pagoda {

enum class DatasetKind { kShareGptLike, kRandom, kPrefix, kJsonl };

/// "sharegpt-like", "random", "prefix", "jsonl".
absl::StatusOr<DatasetKind> ParseDatasetKind(std::string_view name);
const char* DatasetKindName(DatasetKind kind);

struct DatasetOptions {
  DatasetKind kind = DatasetKind::kShareGptLike;
  int64_t num_prompts = 1000;  // jsonl: 0 takes every line
  uint64_t seed = 0;
  int64_t max_model_len = 0;  // prompt + output tokens must fit; 0: no bound
  // random
  int64_t random_input_len = 1024;
  int64_t random_output_len = 128;
  double random_range_ratio = 0;  // [0, 1)
  // prefix
  int64_t prefix_num_prompts = 10;  // distinct shared prefixes
  int64_t prefix_len = 256;
  int64_t suffix_len = 256;
  int64_t prefix_output_len = 128;
  // jsonl
  std::string path;
};

struct BenchRequest {
  std::string prompt;                     // the text; what an HTTP request sends
  std::vector<int32_t> prompt_token_ids;  // Encode(prompt), BOS included; empty without tokenizer
  int64_t prompt_len = 0;                 // prompt_token_ids.size(); 0 when unknown
  int64_t output_len = 0;                 // max_tokens
  std::string json_schema;                // a JSON Schema the output must follow; empty: none
};

/// The requests of `options`. `text` is needed by the synthetic datasets, `tokenizer` (may be
/// null) by jsonl to fill prompt_token_ids and check the context. InvalidArgument names the
/// offending option or file line.
absl::StatusOr<std::vector<BenchRequest>> MakeDataset(const DatasetOptions& options,
                                                      const PromptText* text,
                                                      const Tokenizer* tokenizer);

/// A jsonl dataset: every non-blank line of `path`, or the first `num_prompts` (> 0).
absl::StatusOr<std::vector<BenchRequest>> ReadJsonlDataset(const std::string& path,
                                                           int64_t num_prompts,
                                                           const Tokenizer* tokenizer,
                                                           int64_t max_model_len);

}  // namespace pagoda
