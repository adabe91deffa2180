#include "tools/bench/throughput_bench.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "engine/speculative_config.h"
#include "tools/bench/dataset.h"
#include "tools/bench/prompt_text.h"
#include "tools/bench/report.h"
#include "worker/device_selection.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

std::vector<EngineRequest> EngineRequests(const std::vector<BenchRequest>& requests,
                                          const WorkloadConfig& workload) {
  std::vector<EngineRequest> out;
  out.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EngineRequest r{.request_id = absl::StrCat("bench-", i),
                    .prompt_token_ids = requests[i].prompt_token_ids,
                    .seed = workload.dataset.seed * 1'000'003 + i};
    r.params.temperature = static_cast<float>(workload.temperature);
    r.params.max_tokens = static_cast<int32_t>(requests[i].output_len);
    r.params.ignore_eos = workload.ignore_eos;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

absl::Status RunThroughputBench(const ThroughputBenchConfig& c) {
  ASSIGN_OR_RETURN(const ModelSource model, ModelSource::Open(c.model_dir));
  const ModelConfig& config = model.config();
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                   c.workload.tokenizer_dir == c.model_dir
                       ? model.LoadTokenizer()
                       : LoadTokenizerFrom(c.workload.tokenizer_dir));
  ASSIGN_OR_RETURN(const PromptText text, PromptText::Create(tokenizer.get()));
  DatasetOptions dataset = c.workload.dataset;
  if (dataset.max_model_len == 0) dataset.max_model_len = config.max_position_embeddings;
  ASSIGN_OR_RETURN(const std::vector<BenchRequest> requests,
                   MakeDataset(dataset, &text, tokenizer.get()));

  ModelWeights weights;
  const WeightLoadOptions load_options{.dtype = c.memory.weight_dtype};
  if (c.load_format == "dummy") {
    weights = DummyModelWeights(config, dataset.seed, {}, load_options);
  } else {
    ASSIGN_OR_RETURN(weights, LoadModelWeights(model, {}, load_options));
  }
  const CacheConfig& cache = c.engine.cache;
  const DType kv_dtype = c.memory.kv_cache_dtype;
  // A draft model's KV cache shares the blocks: each block holds both within the budget.
  std::optional<ModelSource> draft;
  if (!c.engine.engine.speculative.model.empty()) {
    ASSIGN_OR_RETURN(draft, ModelSource::Open(c.engine.engine.speculative.model));
  }
  const ModelConfig* draft_config = draft.has_value() ? &draft->config() : nullptr;
  const int64_t num_blocks =
      cache.num_gpu_blocks_override > 0
          ? cache.num_gpu_blocks_override
          : InProcessExecutor::NumBlocksForBudget(
                config, cache.block_size, cache.kv_cache_memory_bytes, {}, kv_dtype, draft_config);
  if (num_blocks < 1) {
    return absl::InvalidArgumentError("--kv-cache-memory-gib holds not even one KV block");
  }
  const int64_t num_host_blocks =
      cache.swap_space_bytes > 0
          ? InProcessExecutor::NumBlocksForBudget(config, cache.block_size, cache.swap_space_bytes,
                                                  {}, kv_dtype, draft_config)
          : 0;
  ASSIGN_OR_RETURN(const Device device, SelectDevice(c.memory.device));
  const std::vector<int32_t> eos = EosTokenIds(config.eos_token_ids, *tokenizer);
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessExecutor> executor,
                   InProcessExecutor::Create(config, std::move(weights),
                                             {.num_device_blocks = num_blocks,
                                              .num_host_blocks = num_host_blocks,
                                              .block_size = cache.block_size,
                                              .kv_cache_dtype = kv_dtype,
                                              .extra_eos_token_ids = eos,
                                              .draft = {.path = c.engine.engine.speculative.model,
                                                        .load_format = c.load_format,
                                                        .dummy_seed = dataset.seed + 1,
                                                        .dtype = c.memory.weight_dtype},
                                              .model_path = c.model_dir,
                                              .device = device,
                                              .enforce_eager = c.memory.enforce_eager,
                                              .max_num_seqs = c.engine.engine.max_num_seqs}));
  ASSIGN_OR_RETURN(std::unique_ptr<EngineLoop> engine,
                   EngineLoop::Create(c.engine.engine, std::move(executor), tokenizer.get(), eos));

  std::vector<EngineRequest> engine_requests = EngineRequests(requests, c.workload);
  // When each request's first and last tokens came: a request's deltas come one at a time, and
  // RunToCompletion returns after the last, so each slot has one writer and is read after.
  std::vector<DecodeSpan> spans(engine_requests.size());
  std::vector<char> has_first(engine_requests.size(), 0);
  const auto start = std::chrono::steady_clock::now();
  const auto on_delta = [&](size_t i, const RequestOutput& delta) {
    bool tokens = false;
    for (const CompletionOutput& out : delta.outputs) tokens |= !out.token_ids.empty();
    if (!tokens) return;
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!has_first[i]) spans[i].first_token_s = t;
    has_first[i] = 1;
    spans[i].last_token_s = t;
  };
  ASSIGN_OR_RETURN(const std::vector<RequestOutput> outputs,
                   engine->RunToCompletion(std::move(engine_requests), on_delta));
  ThroughputRun run;
  run.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < outputs.size(); ++i) {
    int64_t generated = 0;
    for (const CompletionOutput& out : outputs[i].outputs) {
      generated += static_cast<int64_t>(out.token_ids.size());
    }
    const std::optional<Usage>& usage = outputs[i].usage;
    run.input_lens.push_back(usage.has_value() ? usage->prompt_tokens : requests[i].prompt_len);
    run.output_lens.push_back(usage.has_value() ? usage->completion_tokens : generated);
    spans[i].output_tokens = generated;
  }
  run.decode_spans = std::move(spans);

  const RunDescription description{
      .date = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::LocalTimeZone()),
      .backend = "engine",
      .target = c.model_dir,
      .model_id = model.DefaultName(),
      .tokenizer_id = c.workload.tokenizer_dir,
      .dataset_name = std::string(DatasetKindName(dataset.kind)),
      .num_prompts = static_cast<int64_t>(requests.size()),
      .seed = dataset.seed};
  std::fputs(FormatThroughputReport(description, run).c_str(), stdout);
  if (c.engine.engine.speculative.enabled()) {
    std::printf("%s\n", FormatSpeculativeStats(engine->stats()).c_str());
  }
  std::fflush(stdout);
  if (!c.workload.result_json.empty()) {
    RETURN_IF_ERROR(WriteJsonFile(c.workload.result_json, ThroughputResultJson(description, run)));
  }
  return absl::OkStatus();
}

}  // namespace pagoda
