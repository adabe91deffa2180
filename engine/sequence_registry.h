// SequenceRegistry: the Scheduler's requests and sequences and the queues that hold them —
// running (holding device blocks), waiting (queued, or preempted by recompute) and swapped
// (preempted to host blocks) — each kept in scheduling order: by priority under
// SchedulingPolicy::kPriority, then by arrival, then by sample index. It owns every Request (and
// through it every Sequence) from admission until the request is retired: all its sequences
// finished and released, and no in-flight plan naming it.
//
//   SequenceRegistry registry(SchedulingPolicy::kFcfs);
//   Request* request = registry.AddRequest(std::move(engine_request));
//   registry.InsertWaiting(registry.NewSequence(request, 0, prompt_token_ids));
//   ...
//   registry.Finish(seq, FinishReason::kStop, token);  // leaves its queue, awaits release
//   for (Sequence* done : registry.TakeFinished()) { free its blocks; done->released = true; }
//   registry.MaybeRetire(request);
//
// Not thread-safe: one EngineLoop thread owns the Scheduler that owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/engine_config.h"
#include "engine/finish_reason.h"
#include "engine/request.h"

namespace pagoda {

class SequenceRegistry {
 public:
  explicit SequenceRegistry(SchedulingPolicy policy) : policy_(policy) {}
  SequenceRegistry(const SequenceRegistry&) = delete;
  SequenceRegistry& operator=(const SequenceRegistry&) = delete;

  // --- Requests and sequences -------------------------------------------------------------
  /// Takes a new request (the caller checked that no unfinished one has its id); it counts as
  /// waiting until MarkStarted. Its sequences are added with NewSequence.
  Request* AddRequest(EngineRequest request);
  /// The latest request / sequence under an id (possibly finished but not retired), or nullptr.
  Request* FindRequest(const std::string& request_id) const;
  Sequence* FindSequence(const std::string& seq_id) const;
  /// Sequence `index` of `request` over token_ids, with its own KV handle and seed; in no queue.
  Sequence* NewSequence(Request* request, int32_t index, std::vector<int32_t> token_ids);
  /// The request was admitted (or aborted): it no longer counts as waiting. True the first time.
  bool MarkStarted(Request* request);
  /// Ends a sequence: it leaves its queue and awaits release (TakeFinished). No-op if finished.
  void Finish(Sequence* seq, FinishReason reason, std::optional<int32_t> stop_token);
  /// The sequences finished since the last call, whose blocks and worker state the caller
  /// releases (setting `released`).
  std::vector<Sequence*> TakeFinished();
  /// Destroys the request once it is done: no unfinished sequence, none unreleased, no
  /// in-flight plan naming it. Ids a newer request already took keep pointing at it.
  void MaybeRetire(Request* request);

  // --- Queues (the batching policies edit them in place) ------------------------------------
  void InsertRunning(Sequence* seq);
  void InsertWaiting(Sequence* seq);
  void InsertSwapped(Sequence* seq);
  /// Takes the sequence out of whichever queue holds it.
  void RemoveFromQueue(Sequence* seq);
  std::vector<Sequence*>& running() { return running_; }
  std::deque<Sequence*>& waiting() { return waiting_; }
  std::vector<Sequence*>& swapped() { return swapped_; }
  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const std::vector<Sequence*>& swapped() const { return swapped_; }
  /// n > 1 requests whose samples 1..n-1 are not forked from sample 0 yet.
  std::vector<Request*>& fork_pending() { return fork_pending_; }

  bool empty() const { return requests_.empty(); }
  /// Requests never admitted (pagoda:num_requests_waiting; the waiting-queue bound).
  int64_t num_unstarted_requests() const { return num_unstarted_requests_; }

 private:
  bool Precedes(const Sequence& a, const Sequence& b) const;

  const SchedulingPolicy policy_;
  // Every request held, by arrival_order: finished ones stay until their sequences are released
  // and no in-flight plan names them.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Request>> requests_;
  // The latest request / sequence under each id. A finished one may be replaced by a new request
  // reusing its id while it is still held above.
  absl::flat_hash_map<std::string, Request*> requests_by_id_;
  absl::flat_hash_map<std::string, Sequence*> seqs_by_id_;
  std::vector<Sequence*> running_;     // admitted, holding device blocks
  std::deque<Sequence*> waiting_;      // queued or preempted (recompute), in admission order
  std::vector<Sequence*> swapped_;     // preempted by swapping, oldest first
  std::vector<Sequence*> to_release_;  // finished, still known to the KV manager or the workers
  std::vector<Request*> fork_pending_;
  SeqHandle next_handle_ = 0;
  uint64_t next_arrival_ = 0;
  int64_t num_unstarted_requests_ = 0;
};

}  // namespace pagoda
