#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/step/stop_rules.h"

namespace pagoda {

bool BeamSearch::AllBeamsReady(const Request& request) {
  bool any = false;
  for (const auto& seq : request.seqs) {
    if (seq->finished()) continue;
    if (!seq->beam_ready) return false;
    any = true;
  }
  return any;
}

double BeamSearch::Score(double cumulative_logprob, int64_t length, float length_penalty) {
  return cumulative_logprob / std::pow(static_cast<double>(std::max<int64_t>(length, 1)),
                                       static_cast<double>(length_penalty));
}

void BeamSearch::Step(Request* request, std::vector<SequenceUpdate>& updates) {
  const SamplingParams& params = request->request.params;
  const size_t width = static_cast<size_t>(params.beam_width);
  struct Candidate {
    Sequence* beam;
    int32_t token;
    double cumulative_logprob;
  };
  std::vector<Candidate> candidates;
  std::vector<Sequence*> live;
  for (const auto& seq : request->seqs) {
    if (seq->finished()) continue;
    live.push_back(seq.get());
    for (const auto& [token, logprob] : seq->last_candidates) {
      candidates.push_back({seq.get(), token, seq->cumulative_logprob + logprob});
    }
    seq->beam_ready = false;
  }
  // Best first; ties by beam (older first) then token id, so the outcome is deterministic.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) {
                     if (a.cumulative_logprob != b.cumulative_logprob) {
                       return a.cumulative_logprob > b.cumulative_logprob;
                     }
                     if (a.beam->index != b.beam->index) return a.beam->index < b.beam->index;
                     return a.token < b.token;
                   });
  if (candidates.size() > 2 * width) candidates.resize(2 * width);

  std::vector<Candidate> next;  // the new running beams
  size_t num_selected = 0;      // running beams plus those that ended on length
  for (size_t rank = 0; rank < candidates.size() && num_selected < width; ++rank) {
    const Candidate& c = candidates[rank];
    const int64_t out_len = c.beam->num_output_tokens() + 1;
    std::vector<int32_t> outputs(c.beam->token_ids.begin() + c.beam->num_prompt_tokens,
                                 c.beam->token_ids.end());
    outputs.push_back(c.token);
    const StopRules rules(c.beam->params, eos_token_ids_, max_model_len_);
    // The candidate is not appended yet: min_tokens counts the outputs before it, as the
    // sampler's stop-token mask does (candidates come from raw logprobs, which it leaves alone).
    if (c.beam->num_output_tokens() >= c.beam->params.min_tokens &&
        EndsOnToken(rules.StopTokenKind(c.token))) {
      // vLLM V0: an ending candidate counts only when it ranks within the beam width.
      if (rank < width) {
        request->finished_beams.push_back(
            {.output_token_ids = std::move(outputs),
             .cumulative_logprob = c.cumulative_logprob,
             .score = Score(c.cumulative_logprob, out_len - 1, params.length_penalty),
             .finish_reason = FinishReason::kStop,
             .stop_token_id = c.token});
      }
      continue;
    }
    ++num_selected;
    if (rules.NumOutputsLeft(out_len, c.beam->num_prompt_tokens + out_len) <= 0) {
      request->finished_beams.push_back(
          {.output_token_ids = std::move(outputs),
           .cumulative_logprob = c.cumulative_logprob,
           .score = Score(c.cumulative_logprob, out_len, params.length_penalty),
           .finish_reason = FinishReason::kLength});
      continue;
    }
    next.push_back(c);
  }

  // early_stopping = False: done once the best running beam cannot beat the width-th finished.
  bool done = next.empty();
  if (!done && request->finished_beams.size() >= width) {
    std::vector<double> scores;
    for (const FinishedBeam& b : request->finished_beams) scores.push_back(b.score);
    std::sort(scores.begin(), scores.end(), std::greater<double>());
    double best_running = -INFINITY;
    for (const Candidate& c : next) {
      best_running = std::max(
          best_running,
          Score(c.cumulative_logprob, c.beam->num_output_tokens() + 1, params.length_penalty));
    }
    done = scores[width - 1] >= best_running;
  }
  if (done) {
    for (Sequence* beam : live) {
      beam->dropped = true;
      registry_->Finish(beam, FinishReason::kAbort, std::nullopt);
    }
    FinishRequest(request, updates);
    return;
  }

  // Forks first (they share the parent's blocks as computed), then the parents continue.
  KVCacheManager& kv = *kv_;
  std::vector<std::pair<Sequence*, int32_t>> continues;
  for (Sequence* beam : live) {
    bool first = true;
    for (const Candidate& c : next) {
      if (c.beam != beam) continue;
      if (first) {
        continues.emplace_back(beam, c.token);
        beam->cumulative_logprob = c.cumulative_logprob;
        first = false;
        continue;
      }
      std::vector<int32_t> tokens = beam->token_ids;
      tokens.push_back(c.token);
      Sequence* child =
          registry_->NewSequence(request, request->next_beam_index++, std::move(tokens));
      child->cumulative_logprob = c.cumulative_logprob;
      if (beam->status == SequenceStatus::kRunning && kv.Contains(beam->handle) &&
          !kv.IsSwappedOut(beam->handle)) {
        const absl::Status s = kv.Fork(beam->handle, child->handle);
        PAGODA_CHECK(s.ok()) << "fork of beam " << beam->seq_id << " failed: " << s;
        child->num_computed_tokens = beam->num_computed_tokens;
        registry_->InsertRunning(child);
      } else {
        registry_->InsertWaiting(child);  // recomputed from its tokens
      }
    }
    if (first) {
      beam->dropped = true;
      registry_->Finish(beam, FinishReason::kAbort, std::nullopt);
    }
  }
  for (auto& [beam, token] : continues) {
    beam->token_ids.push_back(token);
    if (beam->on_workers) beam->replace_last_token_ids = {token};
  }
}

void BeamSearch::FinishRequest(Request* request, std::vector<SequenceUpdate>& updates) {
  std::vector<FinishedBeam>& beams = request->finished_beams;
  std::stable_sort(beams.begin(), beams.end(),
                   [](const FinishedBeam& a, const FinishedBeam& b) { return a.score > b.score; });
  const size_t n = std::min<size_t>(beams.size(), request->request.params.n);
  const int64_t num_prompt = static_cast<int64_t>(request->request.prompt_token_ids.size());
  for (size_t rank = 0; rank < n; ++rank) {
    FinishedBeam& b = beams[rank];
    updates.push_back({.request_id = request->id(),
                       .seq_id = absl::StrCat(request->id(), "#beam", rank),
                       .index = static_cast<int32_t>(rank),
                       .new_token_ids = b.output_token_ids,
                       .num_prompt_tokens = num_prompt,
                       .num_output_tokens = static_cast<int64_t>(b.output_token_ids.size()),
                       .cumulative_logprob = b.cumulative_logprob,
                       .finish_reason = b.finish_reason,
                       .stop_token_id = b.stop_token_id,
                       .request_finished = rank + 1 == n});
  }
}

}  // namespace pagoda
