#include "engine/scheduler.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/step/stop_rules.h"
#include "engine/batching_policy.h"
#include "engine/continuous_batching.h"
#include "engine/static_batching.h"

namespace pagoda {

struct Scheduler::InFlightStep {
  int64_t step_id = 0;
  int64_t num_tokens = 0;                              // prefill + decode tokens to compute
  int64_t num_dropped_draft_tokens = 0;                // guarded drafts dropped since planned
  std::vector<std::pair<Sequence*, int64_t>> samples;  // (sequence, tokens expected)
};

Scheduler::Scheduler(const EngineConfig& config, const ExecutorInfo& info,
                     std::vector<int32_t> eos_token_ids)
    : config_(config),
      info_(info),
      block_size_(info.block_size),
      max_model_len_(config.max_model_len > 0 ? config.max_model_len : info.max_model_len),
      num_device_blocks_(info.num_device_blocks),
      vocab_size_(info.vocab_size),
      eos_token_ids_(std::move(eos_token_ids)),
      kv_(std::make_unique<KVCacheManager>(
          KVCacheManager::Options{.num_device_blocks = static_cast<int32_t>(info.num_device_blocks),
                                  .num_host_blocks = static_cast<int32_t>(info.num_host_blocks),
                                  .block_size = static_cast<int32_t>(info.block_size),
                                  .enable_prefix_caching = config.enable_prefix_caching,
                                  .sliding_window = info.sliding_window,
                                  .group_sliding_windows = info.kv_group_windows})),
      history_(
          config.speculative.method == SpeculativeMethod::kNgram &&
                  config.speculative.prompt_lookup_history_tokens > 0
              ? std::make_unique<LookupHistory>(config.speculative.prompt_lookup_history_tokens)
              : nullptr),
      registry_(config.policy),
      plan_(kv_.get()),
      preemptor_(config.preemption_mode, &registry_, kv_.get()),
      beam_search_(&registry_, kv_.get(), eos_token_ids_, max_model_len_) {
  const BatchingParts parts{.config = &config_,
                            .registry = &registry_,
                            .kv = kv_.get(),
                            .preemptor = &preemptor_,
                            .history = history_.get(),
                            .max_model_len = max_model_len_};
  if (config_.scheduler == SchedulerKind::kStatic) {
    batching_ = std::make_unique<StaticBatching>(parts);
  } else {
    batching_ = std::make_unique<ContinuousBatching>(parts);
  }
}

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
  // Static batching reserves every sample's whole length; paged sequences need one at a time,
  // and under a sliding window only its blocks.
  const int64_t num_blocks =
      config_.PeakSequenceBlocks(info_, total) * (is_static ? request.params.n : 1);
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
  if (const Request* held = registry_.FindRequest(request.request_id);
      held != nullptr && held->num_unfinished > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("request ", request.request_id, " is already in the engine"));
  }
  if (absl::Status s = CheckFits(request); !s.ok()) return s;
  if (config_.max_waiting_requests > 0 &&
      registry_.num_unstarted_requests() >= config_.max_waiting_requests) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the waiting queue is full (", config_.max_waiting_requests, " requests)"));
  }
  Request* req = registry_.AddRequest(std::move(request));
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
    Sequence* seq = registry_.NewSequence(req, i, std::move(token_ids));
    seq->cumulative_logprob = req->request.resumed_cumulative_logprob;
    if (i == 0 || req->samples_forked) registry_.InsertWaiting(seq);
  }
  if (!req->samples_forked) registry_.fork_pending().push_back(req);
  return absl::OkStatus();
}

void Scheduler::AbortRequest(const std::string& request_id) {
  Request* req = registry_.FindRequest(request_id);
  if (req == nullptr || req->num_unfinished == 0) return;
  registry_.MarkStarted(req);
  for (auto& seq : req->seqs) registry_.Finish(seq.get(), FinishReason::kAbort, std::nullopt);
  std::erase(registry_.fork_pending(), req);
}

void Scheduler::FinishSequence(const std::string& seq_id, FinishReason reason) {
  Sequence* seq = registry_.FindSequence(seq_id);
  if (seq == nullptr || seq->request->beam_search) return;
  registry_.Finish(seq, reason, std::nullopt);
}

bool Scheduler::HasUnfinishedRequests() const { return !registry_.empty(); }

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running_seqs = static_cast<int64_t>(registry_.running().size());
  s.num_waiting_seqs = static_cast<int64_t>(registry_.waiting().size());
  s.num_swapped_seqs = static_cast<int64_t>(registry_.swapped().size());
  absl::flat_hash_set<const Request*> running;
  for (const Sequence* seq : registry_.running()) running.insert(seq->request);
  absl::flat_hash_set<const Request*> swapped;
  for (const Sequence* seq : registry_.swapped()) {
    if (!running.contains(seq->request)) swapped.insert(seq->request);
  }
  s.num_running_requests = static_cast<int64_t>(running.size());
  s.num_swapped_requests = static_cast<int64_t>(swapped.size());
  s.num_waiting_requests = registry_.num_unstarted_requests();
  s.kv_cache_usage = kv_->Usage();
  s.num_free_blocks = kv_->NumFreeBlocks();
  for (const Sequence* seq : registry_.waiting()) {
    s.num_queued_prefill_tokens += std::max<int64_t>(
        0, static_cast<int64_t>(seq->token_ids.size()) - seq->num_computed_tokens);
  }
  for (const Sequence* seq : registry_.running()) {
    // A decoding sequence has one token left to compute (its last sample); more is a prefill.
    const int64_t left = static_cast<int64_t>(seq->token_ids.size()) - seq->num_computed_tokens;
    if (left > 1) s.num_queued_prefill_tokens += left;
  }
  s.num_preemptions = preemptor_.num_preemptions();
  s.prefix_cache_queries = kv_->prefix_cache_queries();
  s.prefix_cache_hits = kv_->prefix_cache_hits();
  s.last_num_prefill_tokens = last_prefill_tokens_;
  s.last_num_decode_tokens = last_decode_tokens_;
  s.last_num_scheduled_tokens = last_prefill_tokens_ + last_decode_tokens_;
  s.spec_num_drafts = spec_.drafts;
  s.spec_num_draft_tokens = spec_.draft_tokens;
  s.spec_num_accepted_tokens = spec_.accepted_tokens;
  s.spec_num_accepted_tokens_per_pos = spec_.accepted_per_pos;
  s.num_in_flight_steps = num_in_flight_steps();
  for (const auto& step : in_flight_) s.num_in_flight_tokens += step->num_tokens;
  return s;
}

// --- Planning ----------------------------------------------------------------------------------

std::optional<ScheduledStep> Scheduler::Schedule() {
  plan_.Begin(next_step_id_);
  ReleaseFinished();
  batching_->Schedule(plan_, num_in_flight_steps());
  ScheduledStep step = plan_.Finish();
  last_prefill_tokens_ = step.num_prefill_tokens;
  last_decode_tokens_ = step.num_decode_tokens;
  if (step.sequences.empty() && step.plan.finished_seq_ids.empty() && step.plan.swap_out.empty()) {
    return std::nullopt;
  }
  auto record = std::make_unique<InFlightStep>();
  record->step_id = next_step_id_++;
  record->num_tokens = step.num_prefill_tokens + step.num_decode_tokens;
  record->samples = plan_.samples();
  for (const auto& [seq, expected] : record->samples) ++seq->request->num_in_flight_refs;
  in_flight_.push_back(std::move(record));
  return step;
}

void Scheduler::ReleaseFinished() {
  absl::flat_hash_set<Request*> requests;
  for (Sequence* seq : registry_.TakeFinished()) {
    // A completed sequence's tokens join the lookup history (aborted ones and beam candidates,
    // most of them pruned, do not).
    if (history_ != nullptr && seq->finish_reason != FinishReason::kAbort &&
        !seq->request->beam_search) {
      history_->Add(seq->token_ids);
    }
    kv_->Free(seq->handle);
    plan_.DropFromWorkers(seq);
    seq->released = true;
    requests.insert(seq->request);
  }
  for (Request* request : requests) registry_.MaybeRetire(request);
}

// --- Results -----------------------------------------------------------------------------------

std::vector<SequenceUpdate> Scheduler::ApplyResult(const StepResult& result) {
  std::vector<SequenceUpdate> updates;
  PAGODA_CHECK(!in_flight_.empty() && in_flight_.front()->step_id == result.step_id)
      << "the result of step " << result.step_id << " is not the oldest in flight";
  std::unique_ptr<InFlightStep> record = std::move(in_flight_.front());
  in_flight_.pop_front();
  last_dropped_draft_tokens_ = record->num_dropped_draft_tokens;
  absl::flat_hash_map<std::string_view, const SequenceOutput*> outputs;
  for (const SequenceOutput& out : result.outputs) outputs[out.seq_id] = &out;

  std::vector<Request*> beam_requests;
  std::vector<Request*> touched;
  for (const auto& [seq, expected] : record->samples) {
    seq->num_pending_tokens -= expected;
    --seq->request->num_in_flight_refs;
    touched.push_back(seq->request);
    // Its drafts ride on the step that last scheduled it (a sequence with drafts in flight is
    // not planned again until their result; guarded ones follow a step still in flight).
    const bool drafts_step = seq->last_scheduled_step == result.step_id;
    int64_t num_drafts = 0;
    if (drafts_step) {
      num_drafts = std::exchange(seq->num_draft_tokens_in_flight, 0);
      seq->draft_guard_token_id = -1;
    }
    auto it = outputs.find(seq->seq_id);
    if (seq->finished() || it == outputs.end() || it->second->token_ids.empty()) continue;
    const SequenceOutput& out = *it->second;
    if (num_drafts > 0) CommitDrafts(seq, num_drafts, static_cast<int64_t>(out.token_ids.size()));
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
    // A guess of this token rides on a later step (it was the one token in flight then).
    if (!drafts_step && seq->draft_guard_token_id >= 0) ResolveDraftGuard(seq, out.token_ids[0]);
  }
  for (Request* req : beam_requests) {
    if (req->num_unfinished > 0 && BeamSearch::AllBeamsReady(*req)) {
      beam_search_.Step(req, updates);
    }
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Request* req : touched) registry_.MaybeRetire(req);
  return updates;
}

void Scheduler::CommitDrafts(Sequence* seq, int64_t num_drafts, int64_t num_outputs) {
  // The worker kept the drafts equal to its samples: all outputs but the last.
  const int64_t accepted = std::clamp<int64_t>(num_outputs - 1, 0, num_drafts);
  kv_->CommitLookaheadSlots(seq->handle, accepted);
  seq->num_computed_tokens += accepted;
  ++spec_.drafts;
  spec_.draft_tokens += num_drafts;
  spec_.accepted_tokens += accepted;
  std::vector<int64_t>& per_pos = spec_.accepted_per_pos;
  if (static_cast<int64_t>(per_pos.size()) < accepted) per_pos.resize(accepted, 0);
  for (int64_t i = 0; i < accepted; ++i) ++per_pos[i];
  BatchingPolicy::AdaptSpeculation(seq, num_drafts, accepted,
                                   config_.speculative.num_speculative_tokens);
}

void Scheduler::ResolveDraftGuard(Sequence* seq, int32_t token) {
  const bool holds = token == std::exchange(seq->draft_guard_token_id, -1);
  if (holds || seq->finished()) return;
  const int64_t num_drafts = std::exchange(seq->num_draft_tokens_in_flight, 0);
  for (const std::unique_ptr<InFlightStep>& step : in_flight_) {
    if (step->step_id != seq->last_scheduled_step) continue;
    for (auto& [s, expected] : step->samples) {
      if (s != seq) continue;
      expected -= num_drafts;
      seq->num_pending_tokens -= num_drafts;
      step->num_tokens -= num_drafts;
      step->num_dropped_draft_tokens += num_drafts;
      return;
    }
  }
  PAGODA_CHECK(false) << "sequence " << seq->seq_id << ": no step in flight holds its "
                      << num_drafts << " guarded drafts";
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
      registry_.Finish(seq, FinishReason::kStop, token);
      break;
    }
    if (stop == TokenStop::kLength) {
      registry_.Finish(seq, FinishReason::kLength, std::nullopt);
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
