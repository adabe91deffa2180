#include "tools/generate_command.h"

#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "common/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/arg_parser.h"
#include "tools/offline_generator.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

struct GenerateFlags {
  std::string model;
  std::string load_format = "auto";
  std::string prompt;
  std::string prompts_file;
  std::string output;
  int64_t max_tokens = 16;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = -1;
  double min_p = 0.0;
  std::optional<int64_t> seed;
  bool ignore_eos = false;
  int64_t block_size = 16;
  int64_t kv_cache_blocks = 0;
  double kv_cache_memory_gib = 4.0;
  int64_t max_num_batched_tokens = 4096;
  int64_t max_num_seqs = 256;
  std::string log_level = "warn";
};

// Per-request sampling defaults from the command line, as the JSON fields a prompts file uses.
nlohmann::json DefaultSamplingJson(const GenerateFlags& flags) {
  nlohmann::json j = {{"max_tokens", flags.max_tokens}, {"temperature", flags.temperature},
                      {"top_p", flags.top_p},           {"top_k", flags.top_k},
                      {"min_p", flags.min_p},           {"ignore_eos", flags.ignore_eos}};
  return j;
}

uint64_t MixSeed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

absl::StatusOr<std::vector<GenerationRequest>> ReadRequests(const GenerateFlags& flags) {
  std::vector<nlohmann::json> lines;
  if (!flags.prompt.empty()) {
    lines.push_back({{"prompt", flags.prompt}});
  } else {
    std::ifstream in(flags.prompts_file);
    if (!in) return absl::NotFoundError(absl::StrCat(flags.prompts_file, ": cannot open"));
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(flags.prompts_file, ":", number, ": not a JSON object"));
      }
      const bool has_text = j.contains("prompt") && j["prompt"].is_string();
      const bool has_ids = j.contains("prompt_token_ids") && j["prompt_token_ids"].is_array();
      if (!has_text && !has_ids) {
        return absl::InvalidArgumentError(
            absl::StrCat(flags.prompts_file, ":", number,
                         ": needs \"prompt\" (a string) or \"prompt_token_ids\" (a list of ints)"));
      }
      j["_line"] = number;
      lines.push_back(std::move(j));
    }
    if (lines.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flags.prompts_file, ": no prompts"));
    }
  }

  std::random_device entropy;
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json& line = lines[i];
    const std::string where =
        line.contains("_line") ? absl::StrCat(flags.prompts_file, ":", line["_line"].get<int64_t>())
                               : std::string("--prompt");
    GenerationRequest request;
    nlohmann::json sampling = DefaultSamplingJson(flags);
    for (auto it = line.begin(); it != line.end(); ++it) {
      if (it.key() == "prompt") {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": \"prompt\" must be a string"));
        }
        request.prompt = it.value().get<std::string>();
      } else if (it.key() == "prompt_token_ids") {
        for (const auto& id : it.value()) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
              id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
            return absl::InvalidArgumentError(
                absl::StrCat(where, ": prompt_token_ids must hold non-negative 32-bit integers"));
          }
          request.prompt_token_ids.push_back(id.get<int32_t>());
        }
      } else if (it.key() != "_line") {
        sampling[it.key()] = it.value();
      }
    }
    auto params = SamplingParams::FromJson(sampling);
    if (!params.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", params.status().message()));
    }
    request.params = *params;
    if (request.params.seed.has_value()) {
      request.seed = *request.params.seed;
    } else if (flags.seed.has_value()) {
      request.seed = MixSeed(static_cast<uint64_t>(*flags.seed), i);
    } else {
      request.seed = (uint64_t{entropy()} << 32) ^ entropy();
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

absl::Status Generate(const GenerateFlags& flags) {
  if (flags.prompt.empty() == flags.prompts_file.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompts-file");
  }
  if (flags.load_format != "auto" && flags.load_format != "dummy") {
    return absl::InvalidArgumentError(
        absl::StrCat("--load-format must be auto or dummy, got '", flags.load_format, "'"));
  }
  if (flags.block_size <= 0 || flags.max_num_batched_tokens <= 0 || flags.max_num_seqs <= 0 ||
      flags.kv_cache_blocks < 0 || flags.kv_cache_memory_gib <= 0) {
    return absl::InvalidArgumentError(
        "--block-size, --max-num-batched-tokens, --max-num-seqs and --kv-cache-memory-gib must "
        "be positive, --kv-cache-blocks non-negative");
  }
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory(flags.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromDirectory(flags.model));
  ASSIGN_OR_RETURN(std::vector<GenerationRequest> requests, ReadRequests(flags));

  ModelWeights weights;
  if (flags.load_format == "dummy") {
    weights = DummyModelWeights(config, static_cast<uint64_t>(flags.seed.value_or(0)));
  } else {
    ASSIGN_OR_RETURN(weights, LoadModelWeights(config, flags.model));
  }

  int64_t num_blocks = flags.kv_cache_blocks;
  if (num_blocks == 0) {
    // Enough for every request at its full length, within the memory budget.
    const KvCacheShape shape{.num_layers = config.num_hidden_layers,
                             .block_size = flags.block_size,
                             .num_kv_heads = config.num_key_value_heads,
                             .head_dim = config.head_dim};
    const int64_t budget_blocks =
        static_cast<int64_t>(flags.kv_cache_memory_gib * (1ll << 30)) / shape.bytes_per_block();
    const int64_t max_len = config.max_position_embeddings;
    num_blocks = std::max<int64_t>(
        1, std::min<int64_t>(budget_blocks,
                             static_cast<int64_t>(requests.size()) *
                                 ((max_len + flags.block_size - 1) / flags.block_size)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(config, std::move(weights),
                                       {.num_blocks = num_blocks, .block_size = flags.block_size}));
  PAGODA_LOG(info, "model {}: {} layers, hidden {}, {} KV blocks of {} tokens", flags.model,
             config.num_hidden_layers, config.hidden_size, num_blocks, flags.block_size);

  OfflineGenerator generator(
      runner.get(), tokenizer.get(),
      {.max_num_batched_tokens = flags.max_num_batched_tokens, .max_num_seqs = flags.max_num_seqs});
  ASSIGN_OR_RETURN(std::vector<GenerationResult> results, generator.Generate(std::move(requests)));

  if (!flags.prompt.empty() && flags.output.empty()) {
    std::printf("%s%s\n", results[0].prompt.c_str(), results[0].text.c_str());
    return absl::OkStatus();
  }
  std::string out;
  for (const GenerationResult& r : results) {
    nlohmann::json line = {{"prompt", r.prompt},
                           {"prompt_token_ids", r.prompt_token_ids},
                           {"token_ids", r.token_ids},
                           {"text", r.text},
                           {"finish_reason", FinishReasonName(r.finish_reason)}};
    if (!r.logprobs.empty()) {
      line["logprobs"] = r.logprobs;
      nlohmann::json top = nlohmann::json::array();
      for (const auto& step : r.top_logprobs) {
        nlohmann::json entries = nlohmann::json::array();
        for (const auto& [id, lp] : step) entries.push_back({id, lp});
        top.push_back(std::move(entries));
      }
      line["top_logprobs"] = std::move(top);
    }
    out += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
  }
  if (flags.output.empty()) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    return absl::OkStatus();
  }
  std::ofstream file(flags.output, std::ios::binary | std::ios::trunc);
  file << out;
  file.flush();
  if (!file) return absl::UnavailableError(absl::StrCat(flags.output, ": write failed"));
  return absl::OkStatus();
}

}  // namespace

int RunGenerateCommand(int argc, const char* const* argv) {
  GenerateFlags flags;
  ArgParser parser("pagoda generate",
                   "Generate completions offline: every prompt runs through the paged KV cache "
                   "in one batch.");
  parser.AddString("model", &flags.model, "Hugging Face model directory", /*required=*/true);
  parser.AddString("load-format", &flags.load_format,
                   "auto (safetensors) or dummy (deterministic random weights)");
  parser.AddString("prompt", &flags.prompt, "One prompt; its completion is printed");
  parser.AddString("prompts-file", &flags.prompts_file,
                   "JSONL of {\"prompt\": ...} with optional sampling fields");
  parser.AddString("output", &flags.output, "Write results as JSONL here (default: stdout)");
  parser.AddInt("max-tokens", &flags.max_tokens, "Tokens to generate per prompt");
  parser.AddDouble("temperature", &flags.temperature, "Sampling temperature; 0 is greedy");
  parser.AddDouble("top-p", &flags.top_p, "Nucleus sampling mass");
  parser.AddInt("top-k", &flags.top_k, "Keep the k most likely tokens; -1 keeps all");
  parser.AddDouble("min-p", &flags.min_p, "Drop tokens below min-p times the top probability");
  parser.AddOptionalInt("seed", &flags.seed,
                        "Seed: request i gets a seed derived from it (and dummy weights use it)");
  parser.AddBool("ignore-eos", &flags.ignore_eos, "Keep generating after EOS");
  parser.AddInt("block-size", &flags.block_size, "KV cache block size in tokens");
  parser.AddInt("kv-cache-blocks", &flags.kv_cache_blocks,
                "KV cache blocks; 0 sizes the cache for the whole batch within "
                "--kv-cache-memory-gib");
  parser.AddDouble("kv-cache-memory-gib", &flags.kv_cache_memory_gib,
                   "Memory cap for an automatically sized KV cache");
  parser.AddInt("max-num-batched-tokens", &flags.max_num_batched_tokens,
                "New tokens per step across the batch (longer prompts are chunked)");
  parser.AddInt("max-num-seqs", &flags.max_num_seqs, "Sequences running at once");
  parser.AddString("log-level", &flags.log_level, "trace|debug|info|warn|error");
  absl::Status status = parser.Parse(argc, argv);
  if (absl::IsCancelled(status)) return 0;
  if (status.ok()) status = InitLogging("pagoda", flags.log_level);
  if (status.ok()) status = Generate(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "pagoda generate: %s\n", std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace pagoda
