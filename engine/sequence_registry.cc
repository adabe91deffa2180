#include "engine/sequence_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pagoda {
namespace {

template <typename Container>
void Erase(Container& c, Sequence* seq) {
  auto it = std::find(c.begin(), c.end(), seq);
  if (it != c.end()) c.erase(it);
}

}  // namespace

Request* SequenceRegistry::AddRequest(EngineRequest request) {
  auto owned = std::make_unique<Request>();
  Request* req = owned.get();
  req->request = std::move(request);
  req->arrival_order = next_arrival_++;
  req->beam_search = req->request.params.beam_search();
  requests_by_id_[req->id()] = req;
  requests_.emplace(req->arrival_order, std::move(owned));
  ++num_unstarted_requests_;
  return req;
}

Request* SequenceRegistry::FindRequest(const std::string& request_id) const {
  auto it = requests_by_id_.find(request_id);
  return it == requests_by_id_.end() ? nullptr : it->second;
}

Sequence* SequenceRegistry::FindSequence(const std::string& seq_id) const {
  auto it = seqs_by_id_.find(seq_id);
  return it == seqs_by_id_.end() ? nullptr : it->second;
}

Sequence* SequenceRegistry::NewSequence(Request* request, int32_t index,
                                        std::vector<int32_t> token_ids) {
  auto owned = std::make_unique<Sequence>();
  Sequence* seq = owned.get();
  seq->seq_id = absl::StrCat(request->id(), "#", index);
  seq->request = request;
  seq->index = index;
  seq->handle = next_handle_++;
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

bool SequenceRegistry::MarkStarted(Request* request) {
  if (request->started) return false;
  request->started = true;
  --num_unstarted_requests_;
  return true;
}

void SequenceRegistry::Finish(Sequence* seq, FinishReason reason,
                              std::optional<int32_t> stop_token) {
  if (seq->finished()) return;
  RemoveFromQueue(seq);
  seq->status = SequenceStatus::kFinished;
  seq->finish_reason = reason;
  seq->stop_token_id = stop_token;
  seq->beam_ready = false;
  seq->replace_last_token_ids.clear();
  to_release_.push_back(seq);
  --seq->request->num_unfinished;
}

std::vector<Sequence*> SequenceRegistry::TakeFinished() { return std::exchange(to_release_, {}); }

void SequenceRegistry::MaybeRetire(Request* request) {
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

bool SequenceRegistry::Precedes(const Sequence& a, const Sequence& b) const {
  if (policy_ == SchedulingPolicy::kPriority && a.request->priority() != b.request->priority()) {
    return a.request->priority() < b.request->priority();
  }
  if (a.request->arrival_order != b.request->arrival_order) {
    return a.request->arrival_order < b.request->arrival_order;
  }
  return a.index < b.index;
}

void SequenceRegistry::InsertRunning(Sequence* seq) {
  seq->status = SequenceStatus::kRunning;
  auto at = std::upper_bound(running_.begin(), running_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  running_.insert(at, seq);
}

void SequenceRegistry::InsertWaiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  waiting_.insert(at, seq);
}

void SequenceRegistry::InsertSwapped(Sequence* seq) {
  seq->status = SequenceStatus::kSwapped;
  auto at = std::upper_bound(swapped_.begin(), swapped_.end(), seq,
                             [this](Sequence* a, Sequence* b) { return Precedes(*a, *b); });
  swapped_.insert(at, seq);
}

void SequenceRegistry::RemoveFromQueue(Sequence* seq) {
  switch (seq->status) {
    case SequenceStatus::kRunning:
      Erase(running_, seq);
      break;
    case SequenceStatus::kWaiting:
      Erase(waiting_, seq);
      break;
    case SequenceStatus::kSwapped:
      Erase(swapped_, seq);
      break;
    case SequenceStatus::kFinished:
      break;
  }
}

}  // namespace pagoda
