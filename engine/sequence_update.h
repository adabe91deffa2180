// SequenceUpdate: what one sequence gained from a step's result — new tokens, logprobs, finish
// state — as the Scheduler (and BeamSearch, for finished beam requests) hands it to the
// OutputProcessor.
//
//   for (const SequenceUpdate& update : scheduler.ApplyResult(result)) {
//     stream(update.request_id, update.index, update.new_token_ids);
//     if (update.finish_reason) { ... }
//   }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/finish_reason.h"

namespace pagoda {

struct SequenceUpdate {
  std::string request_id;
  std::string seq_id;
  /// Output index within the request: sample i of n; for beam search the rank of a returned
  /// beam (beam requests report only once they finish, each beam with all its output tokens).
  int32_t index = 0;
  std::vector<int32_t> new_token_ids;
  std::vector<float> logprobs;  // per new token, when sampling_params.logprobs >= 0
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;
  int64_t num_prompt_tokens = 0;
  int64_t num_output_tokens = 0;  // after the new tokens
  double cumulative_logprob = 0;  // beam search: the beam's cumulative logprob
  std::optional<FinishReason> finish_reason;
  std::optional<int32_t> stop_token_id;  // the stop token (EOS or stop_token_ids) that ended it
  bool request_finished = false;         // no sequence of the request is left unfinished
};

}  // namespace pagoda
