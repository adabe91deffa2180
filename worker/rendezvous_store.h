// RendezvousStore: the key/value store the ranks of one replica meet through while they build
// their communicator (Gloo pair addresses, the NCCL unique id). Values are set once and read by
// the other ranks, who block until the key appears. Rank 0 keeps an InMemoryRendezvousStore and
// serves it to the other ranks over its Worker service (GrpcRendezvousStore is their client).
//
//   InMemoryRendezvousStore store;
//   RETURN_IF_ERROR(store.Set("g7/nccl/unique_id", id));                     // rank 0
//   ASSIGN_OR_RETURN(std::string id, store.Get("g7/nccl/unique_id", absl::Seconds(30)));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pagoda {

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;

  /// Sets (or overwrites) key.
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
  /// Blocks until key is set; DeadlineExceeded naming the key after `timeout`.
  virtual absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) = 0;
};

/// A thread-safe store in this process: rank 0's own store, and the one tests share between
/// ranks running as threads.
class InMemoryRendezvousStore final : public RendezvousStore {
 public:
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override;

  /// Forgets the keys of `replica`'s generations before `generation` (keys
  /// "<replica>/g<generation>/...", as WorkerRuntime names them), so that a rank 0 re-initialised
  /// again and again keeps only what its live rendezvous needs. Newer generations' keys stay: a
  /// peer may already have set them.
  void ForgetGenerationsBefore(const std::string& replica, uint64_t generation);
  /// Keys held.
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
