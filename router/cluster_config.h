// ClusterConfig: the replicas pagoda-router drives, as its flags describe them — each --replica
// list of worker addresses, what every worker is told in Init (model path, load format, the KV
// cache sizing of the engine flags, context length, EOS ids), the engine config of each
// replica's EngineLoop, routing and timeouts — and the ReplicaSetOptions they make.
//
//   ASSIGN_OR_RETURN(config.replicas, ParseReplicaFlags(flags.replicas));
//   ASSIGN_OR_RETURN(ReplicaSetOptions options, MakeReplicaSetOptions(config, model, &metrics));
//   ReplicaSet replicas(std::move(options));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls_files.h"
#include "engine/engine_args.h"
#include "engine/engine_config.h"
#include "router/global_scheduler.h"
#include "router/replica_set.h"
#include "router/served_model.h"

namespace pagoda {

struct ClusterConfig {
  std::vector<std::vector<std::string>> replicas;  // per replica: host:port in rank order
  std::string worker_model_dir;                    // the model's path on the workers
  std::string load_format = "safetensors";         // or dummy
  bool expert_parallel = false;        // the workers hold whole experts (--enable-expert-parallel)
  TlsPem worker_tls;                   // the channels to the workers (--worker-tls-*)
  EngineConfig engine;                 // from the engine flags
  CacheConfig cache;                   // per worker
  int64_t max_queued_requests = 1024;  // waiting requests per replica
  RoutingPolicy routing_policy = RoutingPolicy::kPrefixAware;
  absl::Duration health_interval = absl::Milliseconds(500);
  absl::Duration init_timeout = absl::Minutes(10);
  absl::Duration step_timeout = absl::Minutes(2);
  absl::Duration failover_wait = absl::Seconds(60);
  absl::Duration admission_wait = absl::Seconds(30);
};

/// The --replica values ("host:port,host:port", one per replica) as address lists;
/// InvalidArgument naming the bad value (none at all, an empty list, an address without a port).
absl::StatusOr<std::vector<std::vector<std::string>>> ParseReplicaFlags(
    const std::vector<std::string>& flags);

/// One ReplicaOptions per replica (its index is also the `replica` label its workers put on their
/// metrics), each engine limited to the model's context length; `model` (its tokenizer) and
/// `metrics` are borrowed and must outlive the ReplicaSet.
absl::StatusOr<ReplicaSetOptions> MakeReplicaSetOptions(const ClusterConfig& config,
                                                        const ServedModel& model,
                                                        RouterMetrics* metrics);

}  // namespace pagoda
