#include "tools/generate_command.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_config.h"
#include "engine/engine_loop.h"
#include "nlohmann/json.hpp"
#include "tools/offline_generator.h"
#include "worker/in_process_executor.h"
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
  int64_t n = 1;
  int64_t beam_width = 0;
  double length_penalty = 1.0;
  std::vector<std::string> stop;
  int64_t num_scheduler_steps = 1;
  bool enable_prefix_caching = false;
  double swap_space_gib = 0;
  std::string preemption_mode = "recompute";
  std::string scheduler = "continuous";
  bool no_async_output = false;
  std::string log_level = "warn";
};

// Per-request sampling defaults from the command line, as the JSON fields a prompts file uses.
nlohmann::json DefaultSamplingJson(const GenerateFlags& flags) {
  nlohmann::json j = {{"max_tokens", flags.max_tokens},
                      {"temperature", flags.temperature},
                      {"top_p", flags.top_p},
                      {"top_k", flags.top_k},
                      {"min_p", flags.min_p},
                      {"ignore_eos", flags.ignore_eos},
                      {"n", flags.n},
                      {"beam_width", flags.beam_width},
                      {"length_penalty", flags.length_penalty}};
  if (!flags.stop.empty()) j["stop"] = flags.stop;
  return j;
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
      request.seed = SplitMix64(static_cast<uint64_t>(*flags.seed), i + 1);
    } else {
      request.seed = (uint64_t{entropy()} << 32) ^ entropy();
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

// The result lines: top-level fields are the first output (the best beam), so consumers of
// single completions keep working; several outputs are listed under "outputs".
struct ResultLine {
  std::string prompt;
  std::vector<int32_t> prompt_token_ids;
  RequestOutput output;
};

nlohmann::json TopLogprobsJson(const std::vector<TopLogprobs>& steps) {
  nlohmann::json top = nlohmann::json::array();
  for (const auto& step : steps) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& [id, lp] : step) entries.push_back({id, lp});
    top.push_back(std::move(entries));
  }
  return top;
}

std::string FinishName(const std::optional<FinishReason>& reason) {
  return reason.has_value() ? std::string(FinishReasonName(*reason)) : std::string("abort");
}

absl::Status WriteResults(const GenerateFlags& flags, const std::vector<ResultLine>& lines,
                          bool list_outputs) {
  if (!flags.prompt.empty() && flags.output.empty()) {
    const RequestOutput& r = lines[0].output;
    for (const CompletionOutput& c : r.outputs) {
      std::printf("%s%s\n", lines[0].prompt.c_str(), c.text.c_str());
    }
    return absl::OkStatus();
  }
  std::string out;
  for (const ResultLine& line : lines) {
    const CompletionOutput best =
        line.output.outputs.empty() ? CompletionOutput{} : line.output.outputs[0];
    nlohmann::json j = {{"prompt", line.prompt},
                        {"prompt_token_ids", line.prompt_token_ids},
                        {"token_ids", best.token_ids},
                        {"text", best.text},
                        {"finish_reason", FinishName(best.finish_reason)}};
    if (!best.logprobs.empty()) {
      j["logprobs"] = best.logprobs;
      j["top_logprobs"] = TopLogprobsJson(best.top_logprobs);
    }
    if (list_outputs) {
      nlohmann::json outputs = nlohmann::json::array();
      for (const CompletionOutput& c : line.output.outputs) {
        nlohmann::json o = {{"index", c.index},
                            {"token_ids", c.token_ids},
                            {"text", c.text},
                            {"finish_reason", FinishName(c.finish_reason)}};
        if (c.cumulative_logprob.has_value()) o["cumulative_logprob"] = *c.cumulative_logprob;
        outputs.push_back(std::move(o));
      }
      j["outputs"] = std::move(outputs);
    }
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

// The old path: static waves through the OfflineGenerator (one sample per request).
absl::StatusOr<std::vector<ResultLine>> GenerateStatic(
    const GenerateFlags& flags, const ModelConfig& config, const Tokenizer& tokenizer,
    ModelWeights weights, std::vector<GenerationRequest> requests, int64_t num_blocks) {
  for (size_t i = 0; i < requests.size(); ++i) {
    const SamplingParams& p = requests[i].params;
    if (p.n != 1 || p.beam_search() || !p.stop.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", i,
                       ": --scheduler static supports neither n > 1, beam search "
                       "nor stop strings"));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(config, std::move(weights),
                                       {.num_blocks = num_blocks, .block_size = flags.block_size}));
  OfflineGenerator generator(
      runner.get(), &tokenizer,
      {.max_num_batched_tokens = flags.max_num_batched_tokens, .max_num_seqs = flags.max_num_seqs});
  ASSIGN_OR_RETURN(std::vector<GenerationResult> results, generator.Generate(std::move(requests)));
  std::vector<ResultLine> lines;
  for (GenerationResult& r : results) {
    CompletionOutput c{.text = std::move(r.text),
                       .token_ids = std::move(r.token_ids),
                       .logprobs = std::move(r.logprobs),
                       .top_logprobs = std::move(r.top_logprobs),
                       .finish_reason = r.finish_reason};
    lines.push_back({.prompt = std::move(r.prompt),
                     .prompt_token_ids = std::move(r.prompt_token_ids),
                     .output = RequestOutput{.outputs = {std::move(c)}, .finished = true}});
  }
  return lines;
}

// Every prompt through the EngineLoop: continuous batching over the paged KV cache.
absl::StatusOr<std::vector<ResultLine>> GenerateContinuous(
    const GenerateFlags& flags, const ModelConfig& config, const Tokenizer& tokenizer,
    ModelWeights weights, std::vector<GenerationRequest> requests, int64_t num_blocks) {
  ASSIGN_OR_RETURN(PreemptionMode preemption, ParsePreemptionMode(flags.preemption_mode));
  const EngineConfig engine_config{
      .max_num_seqs = flags.max_num_seqs,
      .max_num_batched_tokens = flags.max_num_batched_tokens,
      .num_scheduler_steps = static_cast<int32_t>(flags.num_scheduler_steps),
      .enable_prefix_caching = flags.enable_prefix_caching,
      .async_output = !flags.no_async_output,
      .preemption_mode = preemption,
  };
  const int64_t num_host_blocks =
      flags.swap_space_gib > 0
          ? InProcessExecutor::NumBlocksForBudget(
                config, flags.block_size, static_cast<int64_t>(flags.swap_space_gib * (1ll << 30)))
          : 0;
  const std::vector<int32_t> eos = EosTokenIds(config.eos_token_ids, tokenizer);
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessExecutor> executor,
                   InProcessExecutor::Create(config, std::move(weights),
                                             {.num_device_blocks = num_blocks,
                                              .num_host_blocks = num_host_blocks,
                                              .block_size = flags.block_size,
                                              .extra_eos_token_ids = eos}));
  ASSIGN_OR_RETURN(std::unique_ptr<EngineLoop> engine,
                   EngineLoop::Create(engine_config, std::move(executor), &tokenizer, eos));

  std::vector<ResultLine> lines(requests.size());
  std::vector<EngineRequest> engine_requests;
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationRequest& r = requests[i];
    if (r.prompt_token_ids.empty()) r.prompt_token_ids = tokenizer.Encode(r.prompt);
    lines[i].prompt = r.prompt;
    lines[i].prompt_token_ids = r.prompt_token_ids;
    engine_requests.push_back(EngineRequest{.request_id = std::to_string(i),
                                            .prompt_token_ids = std::move(r.prompt_token_ids),
                                            .params = std::move(r.params),
                                            .seed = r.seed});
  }
  ASSIGN_OR_RETURN(std::vector<RequestOutput> outputs,
                   engine->RunToCompletion(std::move(engine_requests)));
  for (size_t i = 0; i < outputs.size(); ++i) lines[i].output = std::move(outputs[i]);
  return lines;
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
      flags.kv_cache_blocks < 0 || flags.kv_cache_memory_gib <= 0 || flags.swap_space_gib < 0) {
    return absl::InvalidArgumentError(
        "--block-size, --max-num-batched-tokens, --max-num-seqs and --kv-cache-memory-gib must "
        "be positive, --kv-cache-blocks and --swap-space-gib non-negative");
  }
  if (flags.num_scheduler_steps < 1 || flags.num_scheduler_steps > 64) {
    return absl::InvalidArgumentError("--num-scheduler-steps must be in [1, 64]");
  }
  ASSIGN_OR_RETURN(SchedulerKind scheduler, ParseSchedulerKind(flags.scheduler));
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
    // Enough for every sequence at its full length, within the memory budget.
    const KvCacheShape shape{.num_layers = config.num_hidden_layers,
                             .block_size = flags.block_size,
                             .num_kv_heads = config.num_key_value_heads,
                             .head_dim = config.head_dim};
    const int64_t budget_blocks =
        static_cast<int64_t>(flags.kv_cache_memory_gib * (1ll << 30)) / shape.bytes_per_block();
    const int64_t max_len = config.max_position_embeddings;
    int64_t num_seqs = 0;
    for (const GenerationRequest& r : requests) {
      num_seqs += std::max<int64_t>({1, r.params.n, r.params.beam_width});
    }
    num_blocks = std::max<int64_t>(
        1, std::min<int64_t>(budget_blocks,
                             num_seqs * ((max_len + flags.block_size - 1) / flags.block_size)));
  }
  PAGODA_LOG(info, "model {}: {} layers, hidden {}, {} KV blocks of {} tokens, {} scheduler",
             flags.model, config.num_hidden_layers, config.hidden_size, num_blocks,
             flags.block_size, flags.scheduler);

  const bool list_outputs = std::ranges::any_of(requests, [](const GenerationRequest& r) {
    return r.params.n > 1 || r.params.beam_search();
  });
  std::vector<ResultLine> lines;
  if (scheduler == SchedulerKind::kStatic) {
    ASSIGN_OR_RETURN(lines, GenerateStatic(flags, config, *tokenizer, std::move(weights),
                                           std::move(requests), num_blocks));
  } else {
    ASSIGN_OR_RETURN(lines, GenerateContinuous(flags, config, *tokenizer, std::move(weights),
                                               std::move(requests), num_blocks));
  }
  return WriteResults(flags, lines, list_outputs);
}

}  // namespace

int RunGenerateCommand(int argc, const char* const* argv) {
  GenerateFlags flags;
  ArgParser parser("pagoda generate",
                   "Generate completions offline: every prompt runs through the engine "
                   "(continuous batching over the paged KV cache).");
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
  parser.AddInt("n", &flags.n, "Completions per prompt (they share the prompt's KV blocks)");
  parser.AddInt("beam-width", &flags.beam_width,
                "Beam search with this many beams (>= 2); returns the --n best");
  parser.AddDouble("length-penalty", &flags.length_penalty,
                   "Beam score = cumulative logprob / length^penalty");
  parser.AddStringList("stop", &flags.stop, "Stop string: the text ends before it");
  parser.AddInt("num-scheduler-steps", &flags.num_scheduler_steps,
                "Decode steps planned at once (multi-step scheduling)");
  parser.AddBool("enable-prefix-caching", &flags.enable_prefix_caching,
                 "Share the KV blocks of identical prompt prefixes across requests");
  parser.AddDouble("swap-space-gib", &flags.swap_space_gib,
                   "Host memory for swapped-out KV blocks (0: none)");
  parser.AddString("preemption-mode", &flags.preemption_mode,
                   "recompute or swap (needs --swap-space-gib) when KV blocks run out");
  parser.AddString("scheduler", &flags.scheduler,
                   "continuous (the engine) or static (fixed waves, a baseline)");
  parser.AddBool("no-async-output", &flags.no_async_output,
                 "Process each step's outputs before planning the next");
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
