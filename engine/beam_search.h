// BeamSearch: vLLM V0 beam search over the Scheduler's sequences. Every live beam samples
// greedily with the top 2 * beam_width alternatives; once all live beams of a request have
// sampled, Step() ranks the candidates by cumulative logprob, keeps the beam_width best as the
// new beams (a beam that wins several candidates is forked: its blocks are shared, copy-on-write),
// drops the losers, and moves candidates that end (EOS, a stop token, max_tokens) to the finished
// beams, ranked by cumulative_logprob / length^length_penalty. The request finishes when no beam
// can beat the beam_width-th finished one (early_stopping = False), returning the n best.
//
// It works on the SequenceRegistry and the KVCacheManager the Scheduler composes: new beams are
// registry sequences (forked in the KV cache when their parent's blocks are on the device, else
// queued to be recomputed), losers are finished with kAbort and released with the rest.
//
//   BeamSearch beam_search(&registry, &kv, eos_token_ids, max_model_len);
//   if (BeamSearch::AllBeamsReady(*request)) beam_search.Step(request, updates);
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/request.h"
#include "engine/sequence_registry.h"
#include "engine/sequence_update.h"

namespace pagoda {

class BeamSearch {
 public:
  /// `registry` and `kv` must outlive it. `eos_token_ids` and `max_model_len`: the scheduler's
  /// stop rules (common/step/stop_rules.h).
  BeamSearch(SequenceRegistry* registry, KVCacheManager* kv, std::vector<int32_t> eos_token_ids,
             int64_t max_model_len)
      : registry_(registry),
        kv_(kv),
        eos_token_ids_(std::move(eos_token_ids)),
        max_model_len_(max_model_len) {}

  /// Whether every live beam of `request` has a sample awaiting a decision.
  static bool AllBeamsReady(const Request& request);

  /// Decides one step of `request` (AllBeamsReady must hold); appends the request's final
  /// updates to `updates` when it finishes.
  void Step(Request* request, std::vector<SequenceUpdate>& updates);

  /// cumulative_logprob / length^length_penalty (length counts output tokens, EOS excluded).
  static double Score(double cumulative_logprob, int64_t length, float length_penalty);

 private:
  void FinishRequest(Request* request, std::vector<SequenceUpdate>& updates);

  SequenceRegistry* const registry_;
  KVCacheManager* const kv_;
  const std::vector<int32_t> eos_token_ids_;
  const int64_t max_model_len_;
};

}  // namespace pagoda
