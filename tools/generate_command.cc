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
#include "common/json_util.h"
#include "common/logging.h"
#include "common/model_args.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "common/random.h"
#include "common/sampling_params.h"
#include "common/status_macros.h"
#include "common/tokenizer/bad_words.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_args.h"
#include "engine/engine_config.h"
#include "engine/engine_loop.h"
#include "engine/finish_reason.h"
#include "engine/speculative_config.h"
#include "nlohmann/json.hpp"
#include "worker/device_selection.h"
#include "worker/in_process_executor.h"
#include "worker/kv_cache.h"
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
  int64_t n = 1;
  int64_t beam_width = 0;
  double length_penalty = 1.0;
  std::vector<std::string> stop;
  // Offline defaults: a larger KV budget (the cache is sized for the batch within it), no prefix
  // caching, and --scheduler.
  EngineArgs engine_args{
      .kv_cache_memory_gib = 4.0, .enable_prefix_caching = false, .offline = true};
  ModelArgs model_args;
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

// One prompt of the command line or the prompts file, before tokenization.
struct GenerationRequest {
  std::string prompt;                     // used when prompt_token_ids is empty
  std::vector<int32_t> prompt_token_ids;  // already tokenized (BOS included)
  SamplingParams params;
  uint64_t seed = 0;  // resolved: params.seed, one derived from --seed, or a random one
};

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
      absl::StatusOr<nlohmann::json> parsed = ParseJson(line);
      nlohmann::json j = parsed.ok() ? std::move(*parsed) : nlohmann::json();
      if (!j.is_object()) {
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
        if (!SamplingParams::IsJsonField(it.key())) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": unknown field \"", it.key(), "\" (docs/cli.md lists them)"));
        }
        sampling[it.key()] = it.value();
      }
    }
    // best_of is the beam width with use_beam_search; OpenAI's candidate ranking is the HTTP
    // API's (generate returns every one of n completions).
    if (line.contains("best_of") && !line.value("use_beam_search", false)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": best_of needs use_beam_search here (for n ranked samples use the "
                       "HTTP API's best_of; generate returns all n)"));
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

// Every prompt through the EngineLoop: continuous batching over the paged KV cache, or the
// static policy's fixed waves (--scheduler static).
absl::StatusOr<std::vector<ResultLine>> RunEngine(
    const EngineSetup& setup, const ModelMemoryConfig& memory, const ModelConfig& config,
    const Tokenizer& tokenizer, ModelWeights weights, std::vector<GenerationRequest> requests,
    int64_t num_blocks, const std::string& model_path, const DraftModelOptions& draft) {
  const CacheConfig& cache = setup.cache;
  const int64_t num_host_blocks =
      cache.swap_space_bytes > 0
          ? InProcessExecutor::NumBlocksForBudget(config, cache.block_size, cache.swap_space_bytes,
                                                  {}, memory.kv_cache_dtype)
          : 0;
  ASSIGN_OR_RETURN(const Device device, SelectDevice(memory.device));
  const std::vector<int32_t> eos = EosTokenIds(config.eos_token_ids, tokenizer);
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessExecutor> executor,
                   InProcessExecutor::Create(config, std::move(weights),
                                             {.num_device_blocks = num_blocks,
                                              .num_host_blocks = num_host_blocks,
                                              .block_size = cache.block_size,
                                              .kv_cache_dtype = memory.kv_cache_dtype,
                                              .max_model_len = setup.engine.max_model_len,
                                              .extra_eos_token_ids = eos,
                                              .draft = draft,
                                              .model_path = model_path,
                                              .device = device,
                                              .enforce_eager = memory.enforce_eager,
                                              .max_num_seqs = setup.engine.max_num_seqs}));
  ASSIGN_OR_RETURN(std::unique_ptr<EngineLoop> engine,
                   EngineLoop::Create(setup.engine, std::move(executor), &tokenizer, eos));

  std::vector<ResultLine> lines(requests.size());
  std::vector<EngineRequest> engine_requests;
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationRequest& r = requests[i];
    if (r.prompt_token_ids.empty()) r.prompt_token_ids = tokenizer.Encode(r.prompt);
    // As the router's Frontend does: the worker bans token ids, not words.
    r.params.bad_words_token_ids = BadWordsTokenIds(r.params.bad_words, tokenizer);
    lines[i].prompt = r.prompt;
    lines[i].prompt_token_ids = r.prompt_token_ids;
    engine_requests.push_back(EngineRequest{.request_id = std::to_string(i),
                                            .prompt_token_ids = std::move(r.prompt_token_ids),
                                            .params = std::move(r.params),
                                            .seed = r.seed});
  }
  ASSIGN_OR_RETURN(std::vector<RequestOutput> outputs,
                   engine->RunToCompletion(std::move(engine_requests)));
  if (setup.engine.speculative.enabled()) {
    std::fprintf(stderr, "%s\n", FormatSpeculativeStats(engine->stats()).c_str());
  }
  for (size_t i = 0; i < outputs.size(); ++i) lines[i].output = std::move(outputs[i]);
  return lines;
}

// --num-gpu-blocks-override, else enough blocks for every sequence at its full length within
// --kv-cache-memory-gib (a draft model's KV cache shares the blocks and the budget).
int64_t NumDeviceBlocks(const EngineSetup& setup, const ModelMemoryConfig& memory,
                        const ModelConfig& config, const std::vector<GenerationRequest>& requests,
                        const ModelConfig* draft) {
  const CacheConfig& cache = setup.cache;
  if (cache.num_gpu_blocks_override > 0) return cache.num_gpu_blocks_override;
  const KvCacheShape shape{.num_layers = config.num_hidden_layers,
                           .block_size = cache.block_size,
                           .num_kv_heads = config.num_key_value_heads,
                           .head_dim = config.head_dim,
                           .dtype = memory.kv_cache_dtype};
  const int64_t draft_bytes =
      draft != nullptr ? KvBytesPerBlock(*draft, cache.block_size, {}, memory.kv_cache_dtype) : 0;
  const int64_t budget_blocks =
      cache.kv_cache_memory_bytes / (shape.bytes_per_block() + draft_bytes);
  const int64_t max_len = setup.engine.max_model_len > 0
                              ? std::min(setup.engine.max_model_len, config.max_position_embeddings)
                              : config.max_position_embeddings;
  int64_t num_seqs = 0;
  for (const GenerationRequest& r : requests) {
    num_seqs += std::max<int64_t>({1, r.params.n, r.params.beam_width});
  }
  return std::max<int64_t>(
      1, std::min<int64_t>(budget_blocks,
                           num_seqs * ((max_len + cache.block_size - 1) / cache.block_size)));
}

absl::Status Generate(const GenerateFlags& flags) {
  if (flags.prompt.empty() == flags.prompts_file.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompts-file");
  }
  if (flags.load_format != "auto" && flags.load_format != "dummy") {
    return absl::InvalidArgumentError(
        absl::StrCat("--load-format must be auto or dummy, got '", flags.load_format, "'"));
  }
  ASSIGN_OR_RETURN(const EngineSetup setup, flags.engine_args.Build());
  ASSIGN_OR_RETURN(const ModelMemoryConfig memory, flags.model_args.Build());
  ASSIGN_OR_RETURN(const ModelSource model, ModelSource::Open(flags.model));
  const ModelConfig& config = model.config();
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, model.LoadTokenizer());
  ASSIGN_OR_RETURN(std::vector<GenerationRequest> requests, ReadRequests(flags));
  if (setup.engine.scheduler == SchedulerKind::kStatic) {
    // The static baseline stays what it was: one completion per prompt, no stop strings.
    for (size_t i = 0; i < requests.size(); ++i) {
      const SamplingParams& p = requests[i].params;
      if (p.n != 1 || p.beam_search() || !p.stop.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("request ", i,
                         ": --scheduler static supports neither n > 1, beam search "
                         "nor stop strings"));
      }
    }
  }

  ModelWeights weights;
  if (flags.load_format == "dummy") {
    weights = DummyModelWeights(config, static_cast<uint64_t>(flags.seed.value_or(0)), {},
                                {.dtype = memory.weight_dtype});
  } else {
    ASSIGN_OR_RETURN(weights, LoadModelWeights(model, {}, {.dtype = memory.weight_dtype}));
  }

  std::optional<ModelSource> draft;
  if (!setup.engine.speculative.model.empty()) {
    absl::StatusOr<ModelSource> opened = ModelSource::Open(setup.engine.speculative.model);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("cannot open the draft model: ", opened.status().message()));
    }
    draft.emplace(*std::move(opened));
  }
  const int64_t num_blocks = NumDeviceBlocks(setup, memory, config, requests,
                                             draft.has_value() ? &draft->config() : nullptr);
  PAGODA_LOG(info,
             "model {}: {} layers, hidden {}, weights {:.1f} MiB, {} KV blocks of {} tokens ({}), "
             "{} scheduler",
             flags.model, config.num_hidden_layers, config.hidden_size,
             static_cast<double>(weights.num_bytes()) / (1 << 20), num_blocks,
             setup.cache.block_size, DTypeName(memory.kv_cache_dtype), flags.engine_args.scheduler);

  const bool list_outputs = std::ranges::any_of(requests, [](const GenerationRequest& r) {
    return r.params.n > 1 || r.params.beam_search();
  });
  ASSIGN_OR_RETURN(const std::vector<ResultLine> lines,
                   RunEngine(setup, memory, config, *tokenizer, std::move(weights),
                             std::move(requests), num_blocks, flags.model,
                             {.path = setup.engine.speculative.model,
                              .load_format = flags.load_format == "dummy" ? "dummy" : "",
                              .dummy_seed = static_cast<uint64_t>(flags.seed.value_or(0)) + 1,
                              .dtype = memory.weight_dtype}));
  return WriteResults(flags, lines, list_outputs);
}

}  // namespace

int RunGenerateCommand(int argc, const char* const* argv) {
  GenerateFlags flags;
  ArgParser parser("pagoda generate",
                   "Generate completions offline: every prompt runs through the engine "
                   "(continuous batching over the paged KV cache).");
  parser.AddString("model", &flags.model,
                   "Model: a Hugging Face directory (config.json, safetensors, tokenizer) or a "
                   ".gguf file",
                   /*required=*/true);
  parser.AddString("load-format", &flags.load_format,
                   "auto (the model's weights) or dummy (deterministic random weights)");
  flags.model_args.Register(parser);
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
  parser.AddInt("n", &flags.n, "Completions per prompt (they share the prompt's KV blocks)");
  parser.AddInt("beam-width", &flags.beam_width,
                "Beam search with this many beams (>= 2); returns the --n best");
  parser.AddDouble("length-penalty", &flags.length_penalty,
                   "Beam score = cumulative logprob / length^penalty");
  parser.AddStringList("stop", &flags.stop, "Stop string: the text ends before it");
  flags.engine_args.Register(parser);
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
