#include "tools/bench/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/bench/sharegpt_like.h"

namespace pagoda {
namespace {

// Seeds of the independent streams one --seed feeds (so adding a draw to one dataset does not
// move another's).
constexpr uint64_t kLengthStream = 0x6c656e67746873ull;  // "lengths"
constexpr uint64_t kOffsetStream = 0x6f666673657473ull;  // "offsets"

std::mt19937_64 Stream(uint64_t seed, uint64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  return std::mt19937_64(seq);
}

// Where prompts start in the corpus: every token position once, in a seeded order, before any
// repeats. Prompts that start at different positions share no leading KV block, so the server's
// prefix cache finds nothing to reuse between them (only a run longer than the corpus has
// positions reuses them).
class StartPositions {
 public:
  StartPositions(int64_t corpus_tokens, uint64_t seed)
      : rng_(Stream(seed, kOffsetStream)), positions_(static_cast<size_t>(corpus_tokens)) {
    std::iota(positions_.begin(), positions_.end(), uint64_t{0});
    next_ = positions_.size();
  }

  uint64_t Next() {
    if (next_ == positions_.size()) {
      std::shuffle(positions_.begin(), positions_.end(), rng_);
      next_ = 0;
    }
    return positions_[next_++];
  }

 private:
  std::mt19937_64 rng_;
  std::vector<uint64_t> positions_;
  size_t next_ = 0;
};

// A request of `prompt`; the output is shortened when the prompt came out a token longer than
// asked and the pair would no longer fit the context (a server refuses such a request).
BenchRequest FromPrompt(PromptText::Prompt prompt, int64_t output_len, int64_t max_model_len) {
  BenchRequest r;
  r.prompt = std::move(prompt.text);
  r.prompt_token_ids = std::move(prompt.token_ids);
  r.prompt_len = static_cast<int64_t>(r.prompt_token_ids.size());
  r.output_len = output_len;
  if (max_model_len > 0 && r.prompt_len + r.output_len > max_model_len) {
    r.output_len = std::max<int64_t>(1, max_model_len - r.prompt_len);
  }
  return r;
}

absl::StatusOr<std::vector<BenchRequest>> ShareGptLike(const DatasetOptions& o,
                                                       const PromptText& text) {
  ShareGptLikeWorkload::Options workload{.seed = o.seed};
  if (o.max_model_len > 0) {
    if (o.max_model_len < 8) {
      return absl::InvalidArgumentError(absl::StrCat("sharegpt-like: the model's context (",
                                                     o.max_model_len, " tokens) is too short"));
    }
    // A ShareGPT conversation that does not fit the context is dropped, as vLLM's benchmark
    // drops it: rejection keeps the shape of what fits.
    workload.max_total_len = std::min(workload.max_total_len, o.max_model_len);
    workload.max_prompt_len = std::min(workload.max_prompt_len, o.max_model_len - 1);
  }
  StartPositions starts(text.corpus_tokens(), o.seed);
  std::vector<BenchRequest> requests;
  for (const SyntheticLengths& l : ShareGptLikeWorkload(workload).SampleLengths(o.num_prompts)) {
    requests.push_back(
        FromPrompt(text.Make(starts.Next(), l.prompt_len), l.output_len, o.max_model_len));
  }
  return requests;
}

// vLLM's sample range: [floor(len * (1 - r)), floor(len * (1 + r))], at least 1.
std::pair<int64_t, int64_t> Range(int64_t len, double ratio) {
  const auto low = static_cast<int64_t>(std::floor(static_cast<double>(len) * (1 - ratio)));
  const auto high = static_cast<int64_t>(std::floor(static_cast<double>(len) * (1 + ratio)));
  return {std::max<int64_t>(1, low), std::max<int64_t>(1, high)};
}

absl::StatusOr<std::vector<BenchRequest>> Random(const DatasetOptions& o, const PromptText& text) {
  const auto [in_low, in_high] = Range(o.random_input_len, o.random_range_ratio);
  const auto [out_low, out_high] = Range(o.random_output_len, o.random_range_ratio);
  if (o.max_model_len > 0 && in_high + out_high > o.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--random-input-len + --random-output-len reach ", in_high + out_high,
        " tokens (with --random-range-ratio), beyond the model's context of ", o.max_model_len));
  }
  std::mt19937_64 lengths = Stream(o.seed, kLengthStream);
  StartPositions starts(text.corpus_tokens(), o.seed);
  std::uniform_int_distribution<int64_t> input(in_low, in_high);
  std::uniform_int_distribution<int64_t> output(out_low, out_high);
  std::vector<BenchRequest> requests;
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    const int64_t input_len = input(lengths);
    const int64_t output_len = output(lengths);
    requests.push_back(
        FromPrompt(text.Make(starts.Next(), input_len), output_len, o.max_model_len));
  }
  return requests;
}

absl::StatusOr<std::vector<BenchRequest>> Prefix(const DatasetOptions& o, const PromptText& text) {
  const int64_t total = o.prefix_len + o.suffix_len + o.prefix_output_len;
  if (o.max_model_len > 0 && total > o.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix-len + --suffix-len + --prefix-output-len = ", total,
                     " tokens, beyond the model's context of ", o.max_model_len));
  }
  StartPositions starts(text.corpus_tokens(), o.seed);
  std::vector<PromptText::Prompt> prefixes;
  for (int64_t k = 0; k < o.prefix_num_prompts; ++k) {
    prefixes.push_back(text.Make(starts.Next(), o.prefix_len));
  }
  // Each prefix serves an equal share of the requests, in a seeded order.
  std::vector<int64_t> which(o.num_prompts);
  for (int64_t i = 0; i < o.num_prompts; ++i) which[i] = i % o.prefix_num_prompts;
  std::mt19937_64 order = Stream(o.seed, kLengthStream);
  std::shuffle(which.begin(), which.end(), order);
  std::vector<BenchRequest> requests;
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    const PromptText::Prompt suffix = text.MakeSuffix(starts.Next(), o.suffix_len);
    // A paragraph break keeps the prefix's tokens the same whatever follows it.
    PromptText::Prompt prompt{.text = absl::StrCat(prefixes[which[i]].text, "\n", suffix.text)};
    prompt.token_ids = text.Encode(prompt.text);
    requests.push_back(FromPrompt(std::move(prompt), o.prefix_output_len, o.max_model_len));
  }
  return requests;
}

// A positive integer field of a jsonl line, or an error naming it.
absl::StatusOr<int64_t> PositiveInt(const nlohmann::json& line, const std::string& key,
                                    const std::string& where) {
  const nlohmann::json& value = line[key];
  if (!value.is_number_integer() || value.get<int64_t>() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", key, "\" must be a positive integer, got ", value.dump()));
  }
  return value.get<int64_t>();
}

}  // namespace

absl::StatusOr<DatasetKind> ParseDatasetKind(std::string_view name) {
  for (DatasetKind kind : {DatasetKind::kShareGptLike, DatasetKind::kRandom, DatasetKind::kPrefix,
                           DatasetKind::kJsonl}) {
    if (name == DatasetKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--dataset-name must be sharegpt-like, random, prefix or jsonl, got '",
                   std::string(name), "'"));
}

const char* DatasetKindName(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kShareGptLike:
      return "sharegpt-like";
    case DatasetKind::kRandom:
      return "random";
    case DatasetKind::kPrefix:
      return "prefix";
    case DatasetKind::kJsonl:
      return "jsonl";
  }
  return "unknown";
}

absl::StatusOr<std::vector<BenchRequest>> MakeDataset(const DatasetOptions& options,
                                                      const PromptText* text,
                                                      const Tokenizer* tokenizer) {
  if (options.kind == DatasetKind::kJsonl) {
    return ReadJsonlDataset(options.path, options.num_prompts, tokenizer, options.max_model_len);
  }
  if (text == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("the ", DatasetKindName(options.kind),
                                                   " dataset needs a tokenizer (--tokenizer or "
                                                   "--model-dir)"));
  }
  switch (options.kind) {
    case DatasetKind::kShareGptLike:
      return ShareGptLike(options, *text);
    case DatasetKind::kRandom:
      return Random(options, *text);
    case DatasetKind::kPrefix:
      return Prefix(options, *text);
    case DatasetKind::kJsonl:
      break;
  }
  return absl::InternalError("unknown dataset");
}

absl::StatusOr<std::vector<BenchRequest>> ReadJsonlDataset(const std::string& path,
                                                           int64_t num_prompts,
                                                           const Tokenizer* tokenizer,
                                                           int64_t max_model_len) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the dataset file"));
  std::vector<BenchRequest> requests;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (num_prompts > 0 && static_cast<int64_t>(requests.size()) == num_prompts) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat(path, ":", number);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
    }
    if (!j.contains("prompt") || !j["prompt"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs \"prompt\" (a string)"));
    }
    BenchRequest r;
    r.prompt = j["prompt"].get<std::string>();
    if (r.prompt.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty prompt"));
    const bool has_max_tokens = j.contains("max_tokens");
    const bool has_output_len = j.contains("output_len");
    if (has_max_tokens == has_output_len) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, has_max_tokens ? ": give one of \"max_tokens\" and \"output_len\", not both"
                                : ": needs \"max_tokens\" or \"output_len\" (a positive integer)"));
    }
    ASSIGN_OR_RETURN(r.output_len,
                     PositiveInt(j, has_max_tokens ? "max_tokens" : "output_len", where));
    if (tokenizer != nullptr) {
      r.prompt_token_ids = tokenizer->Encode(r.prompt);
      r.prompt_len = static_cast<int64_t>(r.prompt_token_ids.size());
      if (max_model_len > 0 && r.prompt_len + r.output_len > max_model_len) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": the prompt's ", r.prompt_len, " tokens + ", r.output_len,
                         " output tokens exceed the model's context of ", max_model_len));
      }
    }
    requests.push_back(std::move(r));
  }
  if (requests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no requests (the file is empty)"));
  }
  if (num_prompts > 0 && static_cast<int64_t>(requests.size()) < num_prompts) {
    return absl::InvalidArgumentError(absl::StrCat("--num-prompts is ", num_prompts, " but ", path,
                                                   " holds only ", requests.size(), " requests"));
  }
  return requests;
}

}  // namespace pagoda
