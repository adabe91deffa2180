#include "engine/output_processor.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tokenizer/incremental_detokenizer.h"

namespace pagoda {

struct OutputProcessor::Sequence {
  Sequence(const Tokenizer& tokenizer, const EngineRequest& request)
      : detok(tokenizer, request.prompt_token_ids, request.params.skip_special_tokens),
        checker(StopStringsOnly(request.params)) {}

  // The scheduler decides EOS, stop token ids and length; the checker only finds stop strings
  // (and holds back text that may begin one).
  static StopConfig StopStringsOnly(const SamplingParams& params) {
    StopConfig config;
    config.stop_strings = params.stop;
    config.include_stop_str_in_output = params.include_stop_str_in_output;
    config.min_tokens = params.min_tokens;
    config.max_tokens = std::numeric_limits<int64_t>::max();
    return config;
  }

  IncrementalDetokenizer detok;
  StopChecker checker;
  int64_t num_output_tokens = 0;  // kept tokens (after a stop string, none are added)
  double cumulative_logprob = 0;
  bool finished = false;
};

struct OutputProcessor::Request {
  EngineRequest info;
  OutputCallback callback;
  std::vector<std::unique_ptr<Sequence>> sequences;  // by output index
  int32_t num_finished = 0;
  int64_t num_completion_tokens = 0;
};

namespace {

void MergeCompletion(CompletionOutput& total, const CompletionOutput& delta) {
  total.text += delta.text;
  total.token_ids.insert(total.token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
  total.logprobs.insert(total.logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  total.top_logprobs.insert(total.top_logprobs.end(), delta.top_logprobs.begin(),
                            delta.top_logprobs.end());
  if (delta.cumulative_logprob.has_value()) total.cumulative_logprob = delta.cumulative_logprob;
  if (delta.finish_reason.has_value()) {
    total.finish_reason = delta.finish_reason;
    total.stop_reason = delta.stop_reason;
  }
}

CompletionOutput& FindOrAdd(std::vector<CompletionOutput>& outputs, int32_t index) {
  auto it = std::ranges::find(outputs, index, &CompletionOutput::index);
  if (it != outputs.end()) return *it;
  outputs.push_back(CompletionOutput{.index = index});
  return outputs.back();
}

bool Changed(const CompletionOutput& c) {
  return !c.text.empty() || !c.token_ids.empty() || c.finish_reason.has_value();
}

}  // namespace

void MergeRequestOutput(RequestOutput& total, const RequestOutput& delta) {
  if (total.request_id.empty()) total.request_id = delta.request_id;
  for (const CompletionOutput& c : delta.outputs)
    MergeCompletion(FindOrAdd(total.outputs, c.index), c);
  std::ranges::sort(total.outputs, {}, &CompletionOutput::index);
  total.finished = total.finished || delta.finished;
  if (delta.usage.has_value()) total.usage = delta.usage;
  if (!delta.error.empty()) total.error = delta.error;
}

OutputProcessor::PreparedRequest::PreparedRequest(std::unique_ptr<Request> request)
    : request_(std::move(request)) {}
OutputProcessor::PreparedRequest::PreparedRequest(PreparedRequest&&) noexcept = default;
OutputProcessor::PreparedRequest& OutputProcessor::PreparedRequest::operator=(
    PreparedRequest&&) noexcept = default;
OutputProcessor::PreparedRequest::~PreparedRequest() = default;

OutputProcessor::OutputProcessor(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
OutputProcessor::~OutputProcessor() = default;

std::unique_ptr<OutputProcessor::Sequence> OutputProcessor::NewSequence(
    const Request& request) const {
  return std::make_unique<Sequence>(*tokenizer_, request.info);
}

absl::StatusOr<OutputProcessor::PreparedRequest> OutputProcessor::Prepare(
    const EngineRequest& info, OutputCallback callback) const {
  auto request = std::make_unique<Request>();
  request->info = info;
  request->callback = std::move(callback);
  for (int32_t i = 0; i < std::max(info.params.n, 1); ++i) {
    request->sequences.push_back(NewSequence(*request));
  }
  if (!info.resumed_output_token_ids.empty()) {
    RETURN_IF_ERROR(ReplayResumedOutputs(*request));
    request->info.resumed_output_token_ids = {};  // in the sequence's state now
  }
  return PreparedRequest(std::move(request));
}

absl::Status OutputProcessor::ReplayResumedOutputs(Request& request) const {
  const EngineRequest& info = request.info;
  if (info.params.n != 1 || info.params.beam_search()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", info.request_id, ": only n == 1 without beam search can resume outputs"));
  }
  Sequence& seq = *request.sequences[0];
  const int64_t num_prompt_tokens = static_cast<int64_t>(info.prompt_token_ids.size());
  const std::vector<int32_t>& resumed = info.resumed_output_token_ids;
  for (size_t i = 0; i < resumed.size(); ++i) {
    // ApplyUpdate's path for a token that does not end the sequence; the text it gives was
    // streamed by the original replica (or is held back here as it was there).
    ++seq.num_output_tokens;
    const StopResult r =
        seq.checker.Append(seq.detok.Append(resumed[i]), resumed[i], seq.num_output_tokens,
                           num_prompt_tokens + seq.num_output_tokens);
    if (r.finish_reason.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("request ", info.request_id,
                                                     ": a stop string ends at resumed output ", i,
                                                     ", so the request had finished there"));
    }
  }
  seq.cumulative_logprob = info.resumed_cumulative_logprob;
  return absl::OkStatus();
}

absl::Status OutputProcessor::AddRequest(PreparedRequest prepared) {
  std::unique_ptr<Request>& request = prepared.request_;
  const std::string& id = request->info.request_id;
  if (requests_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("request id '", id, "' is in use"));
  }
  requests_.emplace(id, std::move(request));
  return absl::OkStatus();
}

absl::Status OutputProcessor::AddRequest(const EngineRequest& info, OutputCallback callback) {
  ASSIGN_OR_RETURN(PreparedRequest prepared, Prepare(info, std::move(callback)));
  return AddRequest(std::move(prepared));
}

bool OutputProcessor::ApplyUpdate(Request& request, const SequenceUpdate& delta,
                                  CompletionOutput& out) {
  Sequence& seq = *request.sequences[delta.index];
  const SamplingParams& params = request.info.params;
  const int64_t num_prompt_tokens = static_cast<int64_t>(request.info.prompt_token_ids.size());
  auto finish = [&](FinishReason reason, StopReason stop_reason) {
    seq.finished = true;
    out.finish_reason = reason;
    out.stop_reason = std::move(stop_reason);
    ++request.num_finished;
    request.num_completion_tokens += seq.num_output_tokens;
  };
  // The scheduler stops on a token for EOS (no stop reason) or a stop token id (that id).
  auto token_stop_reason = [&]() {
    const std::optional<int32_t> id = delta.stop_token_id;
    return id.has_value() &&
                   std::ranges::find(params.stop_token_ids, *id) != params.stop_token_ids.end()
               ? StopReason(*id)
               : StopReason();
  };

  // Beam search reports the beam's score-relevant sum itself (its logprobs may be absent).
  if (params.beam_search()) out.cumulative_logprob = delta.cumulative_logprob;
  const size_t num_new = delta.new_token_ids.size();
  for (size_t j = 0; j < num_new; ++j) {
    const int32_t id = delta.new_token_ids[j];
    ++seq.num_output_tokens;
    out.token_ids.push_back(id);
    if (j < delta.logprobs.size()) {
      out.logprobs.push_back(delta.logprobs[j]);
      seq.cumulative_logprob += delta.logprobs[j];
      if (!params.beam_search()) out.cumulative_logprob = seq.cumulative_logprob;
    }
    if (j < delta.top_logprobs.size()) out.top_logprobs.push_back(delta.top_logprobs[j]);

    const std::string text = seq.detok.Append(id);
    // The scheduler's finish applies after the last new token.
    const bool scheduler_finished = j + 1 == num_new && delta.finish_reason.has_value();
    const FinishReason scheduler_reason =
        scheduler_finished ? *delta.finish_reason : FinishReason::kStop;
    if (scheduler_finished && scheduler_reason == FinishReason::kStop &&
        !params.include_stop_str_in_output) {
      out.text += seq.checker.Flush();  // the stop token's own text is left out
      finish(FinishReason::kStop, token_stop_reason());
      return false;
    }
    StopResult r = seq.checker.Append(text, id, seq.num_output_tokens,
                                      num_prompt_tokens + seq.num_output_tokens);
    out.text += r.emit_now;
    if (r.finish_reason.has_value()) {
      // A stop string: the tokens after this one are dropped.
      finish(*r.finish_reason, std::move(r.stop_reason));
      return !delta.finish_reason.has_value();
    }
    if (scheduler_finished) {
      out.text += seq.checker.Flush();
      if (scheduler_reason != FinishReason::kAbort) out.text += seq.detok.Finish();
      finish(scheduler_reason,
             scheduler_reason == FinishReason::kStop ? token_stop_reason() : StopReason());
      return false;
    }
  }
  if (num_new == 0 && delta.finish_reason.has_value()) {
    out.text += seq.checker.Flush();
    if (*delta.finish_reason != FinishReason::kAbort) out.text += seq.detok.Finish();
    finish(*delta.finish_reason, StopReason());
  }
  return false;
}

void OutputProcessor::MaybeFinish(Request& request, RequestOutput& output) {
  if (request.num_finished < static_cast<int32_t>(request.sequences.size())) return;
  output.finished = true;
  output.usage = Usage{
      .prompt_tokens = static_cast<int64_t>(request.info.prompt_token_ids.size()),
      .completion_tokens = request.num_completion_tokens,
  };
}

std::vector<std::string> OutputProcessor::Process(std::span<const SequenceUpdate> updates) {
  std::vector<std::string> stopped;
  Process(updates,
          [&stopped](std::span<const std::string> ids) { stopped.assign(ids.begin(), ids.end()); });
  return stopped;
}

void OutputProcessor::Process(std::span<const SequenceUpdate> updates,
                              absl::FunctionRef<void(std::span<const std::string>)> on_stopped) {
  std::vector<std::string> stopped;
  // The requests this step changed, in the order their first update came.
  std::vector<std::pair<Request*, RequestOutput>> changed;
  auto entry_for = [&](Request& request) -> RequestOutput& {
    auto it = std::ranges::find(changed, &request, &std::pair<Request*, RequestOutput>::first);
    if (it != changed.end()) return it->second;
    changed.push_back({&request, RequestOutput{.request_id = request.info.request_id}});
    return changed.back().second;
  };
  for (const SequenceUpdate& update : updates) {
    auto it = requests_.find(update.request_id);
    if (it == requests_.end()) continue;
    Request& request = *it->second;
    if (update.index < 0 || update.index >= static_cast<int32_t>(request.sequences.size())) {
      PAGODA_LOG(error, "request {}: output index {} out of range", update.request_id,
                 update.index);
      continue;
    }
    if (update.request_finished) {
      // Beam search may return fewer beams than n: the ones never reported end empty.
      entry_for(request);
    }
    if (request.sequences[update.index]->finished) continue;
    CompletionOutput out{.index = update.index};
    if (ApplyUpdate(request, update, out)) stopped.push_back(update.seq_id);
    if (Changed(out)) MergeCompletion(FindOrAdd(entry_for(request).outputs, out.index), out);
  }
  if (!stopped.empty()) on_stopped(stopped);
  for (auto& [request, output] : changed) {
    if (request->info.params.beam_search() &&
        std::ranges::any_of(updates, [&request_id = output.request_id](const SequenceUpdate& u) {
          return u.request_finished && u.request_id == request_id;
        })) {
      for (auto& seq : request->sequences) {
        if (!seq->finished) {
          seq->finished = true;
          ++request->num_finished;
        }
      }
    }
    MaybeFinish(*request, output);
    if (!output.finished) {
      request->callback(output);
      continue;
    }
    // Erase first: the callback may add a request with the same id.
    auto it = requests_.find(output.request_id);
    std::unique_ptr<Request> owned = std::move(it->second);
    requests_.erase(it);
    owned->callback(output);
  }
}

void OutputProcessor::Abort(const std::string& request_id, const std::string& error) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;
  Request& request = *it->second;
  RequestOutput output{.request_id = request_id, .error = error};
  for (size_t i = 0; i < request.sequences.size(); ++i) {
    Sequence& seq = *request.sequences[i];
    if (seq.finished) continue;
    seq.finished = true;
    ++request.num_finished;
    request.num_completion_tokens += seq.num_output_tokens;
    output.outputs.push_back({.index = static_cast<int32_t>(i),
                              .text = seq.checker.Flush(),
                              .finish_reason = FinishReason::kAbort});
  }
  output.finished = true;
  output.usage = Usage{
      .prompt_tokens = static_cast<int64_t>(request.info.prompt_token_ids.size()),
      .completion_tokens = request.num_completion_tokens,
  };
  // Erase first: the callback may add a request with the same id.
  std::unique_ptr<Request> owned = std::move(it->second);
  requests_.erase(it);
  owned->callback(output);
}

void OutputProcessor::AbortAll(const std::string& error) {
  std::vector<std::string> ids;
  ids.reserve(requests_.size());
  for (const auto& [id, request] : requests_) ids.push_back(id);
  std::ranges::sort(ids);
  for (const std::string& id : ids) Abort(id, error);
}

}  // namespace pagoda
