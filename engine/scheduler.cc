#include "engine/scheduler.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/step/stop_rules.h"
#include "engine/beam_search.h"

namespace pagoda {
namespace {

template <typename Container, typename T>
void EraseSeq(Container& c, T* seq) {
  auto it = std::find(c.begin(), c.end(), seq);
  if (it != c.end()) c.erase(it);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether a queued sequence could be scheduled now (not waiting for an in-flight result or for
// its sibling beams).
template <typename Container>
bool AnyRunnable(const Container& seqs) {
  return std::any_of(seqs.begin(), seqs.end(), [](const Sequence* seq) {
    return seq->num_pending_tokens == 0 && !seq->beam_ready;
  });
}

}  // namespace

struct Scheduler::InFlightStep {
  int64_t step_id = 0;
  std::vector<std::pair<Sequence*, int64_t>> samples;  // (sequence, tokens expected)
};

Scheduler::Scheduler(const EngineConfig& config, const ExecutorInfo& info,
                     std::vector<int32_t> eos_token_ids)
    : config_(config),
      block_size_(info.block_size),
      max_model_len_(config.max_model_len > 0 ? config.max_model_len : info.max_model_len),
      num_device_blocks_(info.num_device_blocks),
      vocab_size_(info.vocab_size),
      eos_token_ids_(std::move(eos_token_ids)),
      kv_(std::make_unique<KVCacheManager>(
          KVCacheManager::Options{.num_device_blocks = static_cast<int32_t>(info.num_device_blocks),
                                  .num_host_blocks = static_cast<int32_t>(info.num_host_blocks),
                                  .block_size = static_cast<int32_t>(info.block_size),
                                  .enable_prefix_caching = config.enable_prefix_caching})),
      beam_search_(std::make_unique<BeamSearch>(this)) {}

Scheduler::~Scheduler() = default;

// --- Requests --------------------------------------------------------------------------------

absl::Status Scheduler::CheckFits(const EngineRequest& request) const {
  const std::string& id = request.request_id;
  if (request.prompt_token_ids.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, " has an empty prompt"));
  }
  if (vocab_size_ > 0) {
    for (int32_t token : request.prompt_token_ids) {
      if (token < 0 || token >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrCat("request ", id, ": prompt token ", token,
                                                       " is outside the vocabulary [0, ",
                                                       vocab_size_, ")"));
      }
    }
  }
  if (absl::Status s = request.params.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": ", s.message()));
  }
  const bool is_static = config_.scheduler == SchedulerKind::kStatic;
  if (is_static && request.params.beam_search()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": the static scheduler does not support beam search"));
  }
  if (!request.resumed_output_token_ids.empty()) RETURN_IF_ERROR(CheckResumed(request));
  const int64_t prompt_len = static_cast<int64_t>(request.prompt_token_ids.size());
  const int64_t total = prompt_len + request.params.max_tokens;
  if (total > max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", id, " can never fit: ", prompt_len, " prompt tokens + max_tokens ",
        request.params.max_tokens, " = ", total, " exceed max_model_len ", max_model_len_));
  }
  // Static batching reserves every sample's whole length; paged sequences need one at a time.
  const int64_t num_blocks = CeilDiv(total, block_size_) * (is_static ? request.params.n : 1);
  if (num_blocks > num_device_blocks_) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", id, " can never fit: it needs ", num_blocks, " KV blocks of ",
                     block_size_, " tokens but the whole cache holds ", num_device_blocks_));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::CheckResumed(const EngineRequest& request) const {
  const std::string& id = request.request_id;
  const SamplingParams& params = request.params;
  if (params.n != 1 || params.beam_search()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", id, ": only n == 1 without beam search can resume outputs (n = ", params.n,
        ", beam_width = ", params.beam_width, ")"));
  }
  const std::vector<int32_t>& resumed = request.resumed_output_token_ids;
  const int64_t num_resumed = static_cast<int64_t>(resumed.size());
  if (num_resumed >= params.max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": ", num_resumed, " resumed output tokens leave nothing to ",
                     "generate under max_tokens ", params.max_tokens));
  }
  const int64_t prompt_len = static_cast<int64_t>(request.prompt_token_ids.size());
  const int64_t total = prompt_len + num_resumed;
  if (total >= max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", id, ": ", request.prompt_token_ids.size(), " prompt tokens + ", num_resumed,
        " resumed output tokens = ", total, " leave no room under max_model_len ", max_model_len_));
  }
  const StopRules rules(params, eos_token_ids_, max_model_len_);
  for (int64_t i = 0; i < num_resumed; ++i) {
    const int32_t token = resumed[i];
    if (vocab_size_ > 0 && (token < 0 || token >= vocab_size_)) {
      return absl::InvalidArgumentError(absl::StrCat("request ", id, ": resumed output token ",
                                                     token, " is outside the vocabulary [0, ",
                                                     vocab_size_, ")"));
    }
    // The original replica would have finished the request on it (AppendTokens' rule).
    if (EndsOnToken(rules.Check(token, i + 1, prompt_len + i + 1))) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", id, ": resumed output ", i, " (token ", token,
                       ") is a stop token, so the request had finished there"));
    }
  }
  return absl::OkStatus();
}

absl::Status Scheduler::AddRequest(EngineRequest request) {
  if (auto it = requests_by_id_.find(request.request_id);
      it != requests_by_id_.end() && it->second->num_unfinished > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("request ", request.request_id, " is already in the engine"));
  }
  if (absl::Status s = CheckFits(request); !s.ok()) return s;
  if (config_.max_waiting_requests > 0 && num_unstarted_requests_ >= config_.max_waiting_requests) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the waiting queue is full (", config_.max_waiting_requests, " requests)"));
  }
  auto owned = std::make_unique<Request>();
  Request* req = owned.get();
  req->request = std::move(request);
  req->arrival_order = next_arrival_++;
  req->beam_search = req->request.params.beam_search();
  requests_by_id_[req->id()] = req;
  requests_.emplace(req->arrival_order, std::move(owned));
  ++num_unstarted_requests_;

  const bool is_static = config_.scheduler == SchedulerKind::kStatic;
  const int32_t n = req->beam_search ? 1 : req->request.params.n;
  // Samples share the prompt by forking, except under static batching (no sharing there).
  req->samples_forked = n == 1 || is_static;
  req->next_beam_index = n;
  const std::vector<int32_t>& resumed = req->request.resumed_output_token_ids;
  for (int32_t i = 0; i < n; ++i) {
    std::vector<int32_t> token_ids = req->request.prompt_token_ids;
    // A resumed request (n == 1) continues like a sequence preempted by recompute.
    token_ids.insert(token_ids.end(), resumed.begin(), resumed.end());
    Sequence* seq = NewSequence(req, i, std::move(token_ids));
    seq->cumulative_logprob = req->request.resumed_cumulative_logprob;
    if (i == 0 || req->samples_forked) InsertWaiting(seq);
  }
  if (!req->samples_forked) fork_pending_.push_back(req);
  return absl::OkStatus();
}

Sequence* Scheduler::NewSequence(Request* request, int32_t index, std::vector<int32_t> token_ids) {
  auto owned = std::make_unique<Sequence>();
  Sequence* seq = owned.get();
  seq->seq_id = absl::StrCat(request->id(), "#", index);
  seq->request = request;
  seq->index = index;
  seq->handle = NewHandle();
  seq->seed = SampleSeed(request->request.seed, index);
  seq->params = request->request.params;
  if (request->beam_search) {
    seq->params.temperature = 0;
    seq->params.logprobs =
        std::min<int32_t>(2 * seq->params.beam_width, SamplingParams::kMaxLogprobs);
  }
  seq->token_ids = std::move(token_ids);
  seq->num_prompt_tokens = static_cast<int64_t>(request->request.prompt_token_ids.size());
  request->seqs.push_back(std::move(owned));
  ++request->num_unfinished;
  seqs_by_id_[seq->seq_id] = seq;
  return seq;
}

bool Scheduler::Precedes(const Sequence& a, const Sequence& b) const {
  if (config_.policy == SchedulingPolicy::kPriority &&
      a.request->priority() != b.request->priority()) {
    return a.request->priority() < b.request->priority();
  }
  if (a.request->arrival_order != b.request->arrival_order) {
    return a.request->arrival_order < b.request->arrival_order;
  }
  return a.index < b.index;
}

void Scheduler::InsertRunning(Sequence* seq) {
  seq->status = SequenceStatus::kRunning;
  auto at = std::upper_bound(running_.begin(), running_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  running_.insert(at, seq);
}

void Scheduler::InsertWaiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  waiting_.insert(at, seq);
}

void Scheduler::InsertSwapped(Sequence* seq) {
  seq->status = SequenceStatus::kSwapped;
  auto at = std::upper_bound(swapped_.begin(), swapped_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  swapped_.insert(at, seq);
}

void Scheduler::RemoveFromLists(Sequence* seq) {
  switch (seq->status) {
    case SequenceStatus::kRunning:
      EraseSeq(running_, seq);
      break;
    case SequenceStatus::kWaiting:
      EraseSeq(waiting_, seq);
      break;
    case SequenceStatus::kSwapped:
      EraseSeq(swapped_, seq);
      break;
    case SequenceStatus::kFinished:
      break;
  }
}

void Scheduler::AbortRequest(const std::string& request_id) {
  auto it = requests_by_id_.find(request_id);
  if (it == requests_by_id_.end()) return;
  Request* req = it->second;
  if (req->num_unfinished == 0) return;
  if (!req->started) {
    req->started = true;
    --num_unstarted_requests_;
  }
  for (auto& seq : req->seqs) Finish(seq.get(), FinishReason::kAbort, std::nullopt);
  EraseSeq(fork_pending_, req);
}

void Scheduler::FinishSequence(const std::string& seq_id, FinishReason reason) {
  auto it = seqs_by_id_.find(seq_id);
  if (it == seqs_by_id_.end() || it->second->request->beam_search) return;
  Finish(it->second, reason, std::nullopt);
}

void Scheduler::Finish(Sequence* seq, FinishReason reason, std::optional<int32_t> stop_token) {
  if (seq->finished()) return;
  RemoveFromLists(seq);
  seq->status = SequenceStatus::kFinished;
  seq->finish_reason = reason;
  seq->stop_token_id = stop_token;
  seq->beam_ready = false;
  seq->replace_last_token_ids.clear();
  to_release_.push_back(seq);
  --seq->request->num_unfinished;
}

void Scheduler::MaybeRetireRequest(Request* request) {
  if (request->num_unfinished > 0 || request->num_in_flight_refs > 0) return;
  for (const auto& seq : request->seqs) {
    if (!seq->released) return;
  }
  // The ids may name a newer request already; those entries stay.
  for (const auto& seq : request->seqs) {
    auto it = seqs_by_id_.find(seq->seq_id);
    if (it != seqs_by_id_.end() && it->second == seq.get()) seqs_by_id_.erase(it);
  }
  if (auto it = requests_by_id_.find(request->id());
      it != requests_by_id_.end() && it->second == request) {
    requests_by_id_.erase(it);
  }
  requests_.erase(request->arrival_order);  // destroys `request`
}

bool Scheduler::HasUnfinishedRequests() const { return !requests_.empty(); }

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running_seqs = static_cast<int64_t>(running_.size());
  s.num_waiting_seqs = static_cast<int64_t>(waiting_.size());
  s.num_swapped_seqs = static_cast<int64_t>(swapped_.size());
  absl::flat_hash_set<const Request*> running;
  for (const Sequence* seq : running_) running.insert(seq->request);
  absl::flat_hash_set<const Request*> swapped;
  for (const Sequence* seq : swapped_) {
    if (!running.contains(seq->request)) swapped.insert(seq->request);
  }
  s.num_running_requests = static_cast<int64_t>(running.size());
  s.num_swapped_requests = static_cast<int64_t>(swapped.size());
  s.num_waiting_requests = num_unstarted_requests_;
  s.kv_cache_usage = kv_->Usage();
  s.num_free_blocks = kv_->NumFreeBlocks();
  s.num_preemptions = num_preemptions_;
  s.prefix_cache_queries = kv_->prefix_cache_queries();
  s.prefix_cache_hits = kv_->prefix_cache_hits();
  s.last_num_prefill_tokens = last_prefill_tokens_;
  s.last_num_decode_tokens = last_decode_tokens_;
  s.last_num_scheduled_tokens = last_prefill_tokens_ + last_decode_tokens_;
  s.num_in_flight_steps = num_in_flight_steps();
  return s;
}

// --- Planning ----------------------------------------------------------------------------------

std::optional<ScheduledStep> Scheduler::Schedule() {
  ScheduledStep step;
  step.plan.step_id = next_step_id_;
  plan_new_seqs_.clear();
  plan_cached_seqs_.clear();
  plan_samples_.clear();
  plan_num_seqs_ = 0;
  plan_num_steps_ = 1;
  ReleaseFinished(step);
  if (config_.scheduler == SchedulerKind::kStatic) {
    ScheduleStatic(step);
  } else {
    ScheduleContinuous(step);
  }
  FinishPlan(step);
  last_prefill_tokens_ = step.num_prefill_tokens;
  last_decode_tokens_ = step.num_decode_tokens;
  if (step.sequences.empty() && step.plan.finished_seq_ids.empty() && step.plan.swap_out.empty()) {
    return std::nullopt;
  }
  auto record = std::make_unique<InFlightStep>();
  record->step_id = next_step_id_++;
  record->samples = plan_samples_;
  for (const auto& [seq, expected] : record->samples) ++seq->request->num_in_flight_refs;
  in_flight_.push_back(std::move(record));
  return step;
}

void Scheduler::ReleaseFinished(ScheduledStep& step) {
  absl::flat_hash_set<Request*> requests;
  for (Sequence* seq : to_release_) {
    kv_->Free(seq->handle);
    if (seq->on_workers) step.plan.finished_seq_ids.push_back(seq->seq_id);
    seq->on_workers = false;
    seq->released = true;
    requests.insert(seq->request);
  }
  to_release_.clear();
  for (Request* request : requests) MaybeRetireRequest(request);
}

void Scheduler::ScheduleContinuous(ScheduledStep& step) {
  int64_t budget = config_.max_num_batched_tokens;
  ForkPendingSamples(step);
  // Multi-step only when every runnable sequence decodes and nothing waits to be admitted.
  int32_t k = std::max<int32_t>(1, config_.num_scheduler_steps);
  if (k > 1 && (!waiting_.empty() || !swapped_.empty() || !fork_pending_.empty())) k = 1;
  for (size_t i = 0; k > 1 && i < running_.size(); ++i) {
    const Sequence& seq = *running_[i];
    const int64_t uncomputed = static_cast<int64_t>(seq.token_ids.size()) - seq.num_computed_tokens;
    const bool decodes =
        seq.num_pending_tokens > 0 || (uncomputed == 1 && seq.num_output_tokens() > 0);
    if (seq.request->beam_search || !decodes) k = 1;
  }
  plan_num_steps_ = k;
  ScheduleRunning(step, budget);
  if (step.preempted_seq_ids.empty()) ScheduleSwappedIn(step, budget);
  if (step.preempted_seq_ids.empty() && !AnyRunnable(swapped_)) ScheduleWaiting(step, budget);
  // Nothing can run and nothing is in flight, yet sequences wait: the blocks are held by idle
  // running sequences (beams waiting for their siblings). Preempt them until one can run.
  while (plan_num_seqs_ == 0 && in_flight_.empty() && !running_.empty() &&
         (AnyRunnable(waiting_) || AnyRunnable(swapped_))) {
    Preempt(step, running_.back());
    ScheduleSwappedIn(step, budget);
    if (!AnyRunnable(swapped_)) ScheduleWaiting(step, budget);
  }
}

void Scheduler::ScheduleStatic(ScheduledStep& step) {
  int64_t budget = std::numeric_limits<int64_t>::max() / 4;
  if (!running_.empty()) {
    ScheduleRunning(step, budget);
    return;
  }
  // A new fixed batch: whole prompts, each reserving its full length.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Sequence* seq = *it;
    if (plan_num_seqs_ >= config_.max_num_seqs) break;
    if (seq->num_pending_tokens > 0) {
      ++it;
      continue;
    }
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    const int64_t lookahead =
        std::max<int64_t>(0, seq->num_prompt_tokens + seq->params.max_tokens - size);
    if (!kv_->AllocateSlots(seq->handle, size, lookahead)) break;
    it = waiting_.erase(it);
    InsertRunning(seq);
    if (!seq->request->started) {
      seq->request->started = true;
      --num_unstarted_requests_;
      step.started_request_ids.push_back(seq->request->id());
    }
    seq->num_computed_tokens = size;
    AddToPlan(step, seq, 0, size, 1, false);
  }
}

void Scheduler::ForkPendingSamples(ScheduledStep& step) {
  (void)step;
  for (auto it = fork_pending_.begin(); it != fork_pending_.end();) {
    Request* req = *it;
    Sequence* parent = req->seqs[0].get();
    if (parent->finished()) {
      it = fork_pending_.erase(it);
      continue;
    }
    if (parent->status != SequenceStatus::kRunning || !kv_->Contains(parent->handle) ||
        parent->num_computed_tokens != parent->num_prompt_tokens - 1) {
      ++it;
      continue;
    }
    for (size_t i = 1; i < req->seqs.size(); ++i) {
      Sequence* child = req->seqs[i].get();
      if (child->finished()) continue;
      const absl::Status s = kv_->Fork(parent->handle, child->handle);
      PAGODA_CHECK(s.ok()) << "fork of " << child->seq_id << " failed: " << s;
      child->num_computed_tokens = parent->num_computed_tokens;
      InsertRunning(child);
    }
    req->samples_forked = true;
    it = fork_pending_.erase(it);
  }
}

int64_t Scheduler::RemainingTokens(const Sequence& seq) const {
  return StopRules(seq.params, eos_token_ids_, max_model_len_)
      .NumOutputsLeft(seq.num_expected_output_tokens(), seq.total_len());
}

void Scheduler::ScheduleRunning(ScheduledStep& step, int64_t& budget) {
  const int32_t k = plan_num_steps_;
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    if (plan_num_seqs_ >= config_.max_num_seqs || budget <= 0) break;
    if (seq->beam_ready || (seq->request->beam_search && seq->num_pending_tokens > 0)) continue;
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    int64_t uncomputed = size - seq->num_computed_tokens;
    if (!seq->request->samples_forked && seq->index == 0) {
      uncomputed = std::min(uncomputed, seq->num_prompt_tokens - 1 - seq->num_computed_tokens);
    }
    const bool decode =
        seq->num_pending_tokens > 0 || (uncomputed == 1 && seq->num_output_tokens() > 0);
    int64_t num_tokens = 0;    // KV positions this plan computes
    int64_t num_first = 0;     // tokens of the first step
    int64_t num_expected = 0;  // samples expected
    if (decode) {
      const int64_t remaining = RemainingTokens(*seq);
      if (remaining <= 0) continue;  // finishes when its in-flight result arrives
      num_tokens = std::min<int64_t>(k, remaining);
      num_first = 1;
      num_expected = num_tokens;
    } else {
      if (uncomputed <= 0) continue;
      num_tokens = std::min(uncomputed, budget);
      if (!config_.enable_chunked_prefill && num_tokens < uncomputed &&
          config_.scheduler != SchedulerKind::kStatic) {
        continue;
      }
      num_first = num_tokens;
      num_expected = seq->num_computed_tokens + num_tokens == size ? 1 : 0;
    }
    // Make room by preempting from the back: the lowest-priority, newest sequences.
    bool allocated = true;
    while (!kv_->AllocateSlots(seq->handle, num_tokens)) {
      Sequence* victim = running_.back();
      Preempt(step, victim);
      if (victim == seq) {
        allocated = false;
        break;
      }
    }
    if (!allocated) break;
    const int64_t computed_before = seq->num_computed_tokens;
    seq->num_computed_tokens += num_tokens;
    AddToPlan(step, seq, computed_before, num_first, num_expected, decode);
    budget -= decode ? 1 : num_first;
  }
}

void Scheduler::ScheduleSwappedIn(ScheduledStep& step, int64_t& budget) {
  for (auto it = swapped_.begin(); it != swapped_.end();) {
    Sequence* seq = *it;
    if (plan_num_seqs_ >= config_.max_num_seqs || budget <= 0) break;
    if (seq->num_pending_tokens > 0 || seq->beam_ready) {
      ++it;
      continue;
    }
    if (!kv_->CanSwapIn(seq->handle)) break;
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_->SwapIn(seq->handle);
    if (!pairs.ok()) break;
    step.plan.swap_in.insert(step.plan.swap_in.end(), pairs->begin(), pairs->end());
    it = swapped_.erase(it);
    InsertRunning(seq);
    seq->num_computed_tokens = kv_->NumTokens(seq->handle);
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    int64_t n = std::min(size - seq->num_computed_tokens, budget);
    if (n > 0 && !kv_->AllocateSlots(seq->handle, n)) n = 0;
    const int64_t computed_before = seq->num_computed_tokens;
    seq->num_computed_tokens += n;
    const bool decode = n == 1 && seq->num_output_tokens() > 0;
    AddToPlan(step, seq, computed_before, n, seq->num_computed_tokens == size ? 1 : 0, decode);
    budget -= n;
  }
}

void Scheduler::ScheduleWaiting(ScheduledStep& step, int64_t& budget) {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Sequence* seq = *it;
    if (plan_num_seqs_ >= config_.max_num_seqs || budget <= 0) break;
    if (seq->num_pending_tokens > 0 || seq->beam_ready) {
      ++it;
      continue;
    }
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    const PrefixMatch match = kv_->GetComputedBlocks(seq->token_ids);
    int64_t target = size;
    if (!seq->request->samples_forked && seq->index == 0) target = seq->num_prompt_tokens - 1;
    const int64_t to_compute = std::max<int64_t>(0, target - match.num_computed_tokens);
    const int64_t n = std::min(to_compute, budget);
    if (!config_.enable_chunked_prefill && n < to_compute) break;
    if (!kv_->AllocateSlots(seq->handle, n, 0, &match)) break;
    it = waiting_.erase(it);
    InsertRunning(seq);
    if (!seq->request->started) {
      seq->request->started = true;
      --num_unstarted_requests_;
      step.started_request_ids.push_back(seq->request->id());
    }
    seq->num_computed_tokens = match.num_computed_tokens + n;
    AddToPlan(step, seq, match.num_computed_tokens, n, seq->num_computed_tokens == size ? 1 : 0,
              false);
    budget -= n;
  }
}

void Scheduler::Preempt(ScheduledStep& step, Sequence* seq) {
  EraseSeq(running_, seq);
  ++num_preemptions_;
  step.preempted_seq_ids.push_back(seq->seq_id);
  seq->replace_last_token_ids.clear();
  bool swapped = false;
  if (config_.preemption_mode == PreemptionMode::kSwap && kv_->host_pool().num_blocks() > 0) {
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_->SwapOut(seq->handle);
    if (pairs.ok()) {
      step.plan.swap_out.insert(step.plan.swap_out.end(), pairs->begin(), pairs->end());
      InsertSwapped(seq);
      swapped = true;
    }
  }
  if (!swapped) {
    kv_->Free(seq->handle);
    seq->num_computed_tokens = 0;
    InsertWaiting(seq);
  }
  if (seq->on_workers) step.plan.finished_seq_ids.push_back(seq->seq_id);
  seq->on_workers = false;
}

void Scheduler::AddToPlan(ScheduledStep& step, Sequence* seq, int64_t computed_before,
                          int64_t num_first_step_tokens, int64_t num_expected_samples,
                          bool is_decode) {
  kv_->CacheBlocks(seq->handle, seq->token_ids);
  if (!seq->on_workers) {
    step.plan.new_sequences.push_back({.seq_id = seq->seq_id,
                                       .token_ids = seq->token_ids,
                                       .num_prompt_tokens = seq->num_prompt_tokens,
                                       .num_computed_tokens = computed_before,
                                       .num_scheduled_tokens = num_first_step_tokens,
                                       .sampling_params = seq->params,
                                       .seed = seq->seed});
    plan_new_seqs_.push_back(seq);
    seq->on_workers = true;
    seq->replace_last_token_ids.clear();
  } else {
    step.plan.cached_sequences.push_back(
        {.seq_id = seq->seq_id,
         .num_scheduled_tokens = num_first_step_tokens,
         .replace_last_token_ids = std::exchange(seq->replace_last_token_ids, {})});
    plan_cached_seqs_.push_back(seq);
  }
  seq->last_scheduled_step = step.plan.step_id;
  ++plan_num_seqs_;
  if (num_expected_samples > 0) {
    seq->num_pending_tokens += num_expected_samples;
    plan_samples_.emplace_back(seq, num_expected_samples);
  }
  step.sequences.push_back({.seq_id = seq->seq_id,
                            .request_id = seq->request->id(),
                            .index = seq->index,
                            .num_scheduled_tokens = num_first_step_tokens,
                            .is_prefill = !is_decode,
                            .samples = num_expected_samples > 0});
  if (is_decode) {
    step.num_decode_tokens += num_first_step_tokens;
  } else {
    step.num_prefill_tokens += num_first_step_tokens;
  }
}

void Scheduler::FinishPlan(ScheduledStep& step) {
  for (size_t i = 0; i < plan_new_seqs_.size(); ++i) {
    step.plan.new_sequences[i].block_ids = kv_->TakeNewBlockIds(plan_new_seqs_[i]->handle);
  }
  for (size_t i = 0; i < plan_cached_seqs_.size(); ++i) {
    const SeqHandle h = plan_cached_seqs_[i]->handle;
    step.plan.cached_sequences[i].new_block_ids = kv_->TakeNewBlockIds(h);
    step.plan.cached_sequences[i].replaced_block_ids = kv_->TakeReplacedBlockIds(h);
  }
  step.plan.block_copies = kv_->TakeBlockCopies();
  const bool all_decode = step.num_prefill_tokens == 0 && !step.sequences.empty();
  step.plan.num_steps = all_decode ? plan_num_steps_ : 1;
}

// --- Results -----------------------------------------------------------------------------------

std::vector<SequenceUpdate> Scheduler::ApplyResult(const StepResult& result) {
  std::vector<SequenceUpdate> updates;
  PAGODA_CHECK(!in_flight_.empty() && in_flight_.front()->step_id == result.step_id)
      << "the result of step " << result.step_id << " is not the oldest in flight";
  std::unique_ptr<InFlightStep> record = std::move(in_flight_.front());
  in_flight_.pop_front();
  absl::flat_hash_map<std::string_view, const SequenceOutput*> outputs;
  for (const SequenceOutput& out : result.outputs) outputs[out.seq_id] = &out;

  std::vector<Request*> beam_requests;
  std::vector<Request*> touched;
  for (const auto& [seq, expected] : record->samples) {
    seq->num_pending_tokens -= expected;
    --seq->request->num_in_flight_refs;
    touched.push_back(seq->request);
    auto it = outputs.find(seq->seq_id);
    if (seq->finished() || it == outputs.end() || it->second->token_ids.empty()) continue;
    const SequenceOutput& out = *it->second;
    if (seq->request->beam_search) {
      seq->last_candidates.clear();
      if (!out.top_logprobs.empty() && !out.top_logprobs[0].empty()) {
        seq->last_candidates = out.top_logprobs[0];
      } else {
        seq->last_candidates.emplace_back(out.token_ids[0],
                                          out.logprobs.empty() ? 0.0f : out.logprobs[0]);
      }
      seq->beam_ready = true;
      beam_requests.push_back(seq->request);
      continue;
    }
    AppendTokens(seq, out, updates);
  }
  for (Request* req : beam_requests) {
    if (req->num_unfinished > 0 && BeamSearch::AllBeamsReady(*req)) {
      beam_search_->Step(req, updates);
    }
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Request* req : touched) MaybeRetireRequest(req);
  return updates;
}

void Scheduler::AppendTokens(Sequence* seq, const SequenceOutput& out,
                             std::vector<SequenceUpdate>& updates) {
  SequenceUpdate update{.request_id = seq->request->id(),
                        .seq_id = seq->seq_id,
                        .index = seq->index,
                        .num_prompt_tokens = seq->num_prompt_tokens};
  const StopRules rules(seq->params, eos_token_ids_, max_model_len_);
  for (size_t j = 0; j < out.token_ids.size(); ++j) {
    const int32_t token = out.token_ids[j];
    seq->token_ids.push_back(token);
    update.new_token_ids.push_back(token);
    if (j < out.logprobs.size()) {
      update.logprobs.push_back(out.logprobs[j]);
      seq->cumulative_logprob += out.logprobs[j];
    }
    if (j < out.top_logprobs.size()) update.top_logprobs.push_back(out.top_logprobs[j]);
    const TokenStop stop =
        rules.Check(token, seq->num_output_tokens(), static_cast<int64_t>(seq->token_ids.size()));
    if (EndsOnToken(stop)) {
      Finish(seq, FinishReason::kStop, token);
      break;
    }
    if (stop == TokenStop::kLength) {
      Finish(seq, FinishReason::kLength, std::nullopt);
      break;
    }
  }
  update.num_output_tokens = seq->num_output_tokens();
  update.cumulative_logprob = seq->cumulative_logprob;
  update.finish_reason = seq->finish_reason;
  update.stop_token_id = seq->stop_token_id;
  update.request_finished = seq->request->num_unfinished == 0;
  updates.push_back(std::move(update));
}

}  // namespace pagoda
