#include "router/cluster_config.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model_source.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

constexpr int32_t kWorkerInitTimeoutMs = 30'000;  // the rendezvous of the ranks inside Init

}  // namespace

absl::StatusOr<std::vector<std::vector<std::string>>> ParseReplicaFlags(
    const std::vector<std::string>& flags) {
  if (flags.empty()) return absl::InvalidArgumentError("--replica: at least one is needed");
  std::vector<std::vector<std::string>> replicas;
  for (const std::string& flag : flags) {
    std::vector<std::string> workers = absl::StrSplit(flag, ',', absl::SkipWhitespace());
    if (workers.empty()) return absl::InvalidArgumentError("--replica: names no worker");
    for (const std::string& worker : workers) {
      const size_t colon = worker.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == worker.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--replica: '", worker, "' is not host:port"));
      }
    }
    replicas.push_back(std::move(workers));
  }
  return replicas;
}

absl::StatusOr<ReplicaSetOptions> MakeReplicaSetOptions(const ClusterConfig& config,
                                                        const ServedModel& model,
                                                        RouterMetrics* metrics) {
  ReplicaSetOptions options{
      .scheduler = {.policy = config.routing_policy, .block_size = config.cache.block_size},
      .failover_wait = config.failover_wait,
      .admission_wait = config.admission_wait,
      .metrics = metrics};
  RETURN_IF_ERROR(options.scheduler.Validate());

  internal::InitRequest init;
  init.set_model_dir(config.worker_model_dir);
  init.set_load_format(config.load_format);
  init.set_communicator("auto");
  init.set_block_size(static_cast<int32_t>(config.cache.block_size));
  init.set_num_device_blocks(config.cache.num_gpu_blocks_override);
  init.set_kv_cache_memory_bytes(config.cache.kv_cache_memory_bytes);
  init.set_swap_space_bytes(config.cache.swap_space_bytes);
  init.set_max_model_len(model.max_model_len);
  init.mutable_extra_eos_token_ids()->Add(model.eos_token_ids.begin(), model.eos_token_ids.end());
  init.set_timeout_ms(kWorkerInitTimeoutMs);
  init.set_max_num_batched_tokens(config.engine.max_num_batched_tokens);
  init.set_max_num_seqs(config.engine.max_num_seqs);
  if (const std::string& draft_path = config.engine.speculative.model; !draft_path.empty()) {
    // Refused here, once, rather than by every worker's Init, forever.
    absl::StatusOr<ModelSource> draft = ModelSource::Open(draft_path);
    if (!draft.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--speculative-config: the draft model: ", draft.status().message()));
    }
    RETURN_IF_ERROR(CheckDraftVocabulary(model.source != nullptr ? model.source->path() : "",
                                         model.config, draft_path, draft->config()));
    init.set_draft_model_dir(draft_path);
  }

  EngineConfig engine = config.engine;
  engine.max_model_len = model.max_model_len;
  engine.max_waiting_requests = config.max_queued_requests;
  for (size_t i = 0; i < config.replicas.size(); ++i) {
    // A TP size the model cannot be split over would fail every worker's Init, forever.
    const int64_t size = static_cast<int64_t>(config.replicas[i].size());
    const absl::Status s =
        model.source != nullptr
            ? CheckTensorParallelSize(*model.source, size, config.load_format == "dummy",
                                      config.expert_parallel)
            : CheckTensorParallelSize(model.config, size, config.expert_parallel);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--replica ", i, " has ", config.replicas[i].size(), " workers: ", s.message()));
    }
    ReplicaOptions replica{.index = static_cast<int32_t>(i),
                           .engine = engine,
                           .tokenizer = model.tokenizer.get(),
                           .eos_token_ids = model.eos_token_ids,
                           .health_interval = config.health_interval};
    replica.executor.worker_addresses = config.replicas[i];
    replica.executor.init = init;
    replica.executor.tls = config.worker_tls;
    // The workers label their metrics with it: the same value as the router's replica label.
    replica.executor.init.set_replica(absl::StrCat(i));
    replica.executor.init_timeout = config.init_timeout;
    replica.executor.step_timeout = config.step_timeout;
    options.replicas.push_back(std::move(replica));
  }
  return options;
}

}  // namespace pagoda
