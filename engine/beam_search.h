// BeamSearch: vLLM V0 beam search over the Scheduler's sequences. Every live beam samples
// greedily with the top 2 * beam_width alternatives; once all live beams of a request have
// sampled, Step() ranks the candidates by cumulative logprob, keeps the beam_width best as the
// new beams (a beam that wins several candidates is forked: its blocks are shared, copy-on-write),
// drops the losers, and moves candidates that end (EOS, a stop token, max_tokens) to the finished
// beams, ranked by cumulative_logprob / length^length_penalty. The request finishes when no beam
// can beat the beam_width-th finished one (early_stopping = False), returning the n best.
//
//   if (AllBeamsReady(request)) beam_search.Step(request, updates);
#pragma once

#include <cstdint>
#include <vector>

#include "engine/request.h"

namespace pagoda {

class Scheduler;
struct SequenceUpdate;

class BeamSearch {
 public:
  explicit BeamSearch(Scheduler* scheduler) : scheduler_(scheduler) {}

  /// Whether every live beam of `request` has a sample awaiting a decision.
  static bool AllBeamsReady(const Request& request);

  /// Decides one step of `request` (AllBeamsReady must hold); appends the request's final
  /// updates to `updates` when it finishes.
  void Step(Request* request, std::vector<SequenceUpdate>& updates);

  /// cumulative_logprob / length^length_penalty (length counts output tokens, EOS excluded).
  static double Score(double cumulative_logprob, int64_t length, float length_penalty);

 private:
  void FinishRequest(Request* request, std::vector<SequenceUpdate>& updates);

  Scheduler* scheduler_;
};

}  // namespace pagoda
