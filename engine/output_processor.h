// OutputProcessor: turns what the scheduler reports per sequence after a step (new token ids,
// logprobs, finish state) into the streamed RequestOutput deltas of each request: text deltas
// from an IncrementalDetokenizer (split UTF-8 held back, SentencePiece spaces right) filtered by
// a StopChecker (stop strings matched across token boundaries, never emitted; text that may
// begin one held back until decided), token id and logprob deltas, finish and stop reasons, and
// usage on the last delta.
//
// Stop strings are the processor's to find: when one is found, the tokens after it are dropped
// from the output and the sequence is reported back in `stopped` so the engine tells the
// scheduler (Scheduler::FinishSequence), which frees its blocks. EOS, stop token ids, max_tokens
// and max_model_len are the scheduler's: it reports them in SequenceUpdate::finish_reason.
//
// A request resumed on this replica after a failover (EngineRequest::resumed_output_token_ids)
// first has its earlier outputs run through the detokenizer and stop checker without a callback,
// which leaves both as the original replica's processor left them (text streamed, text held back
// as a possible stop string start, decoding window); its deltas then continue that stream. Its
// accumulated deltas hold only what this replica streamed; its usage counts all outputs.
//
// Single-threaded (the engine loop's thread), except Prepare(); callbacks run on that thread,
// must not block, and may call back into the EngineLoop (AddRequest, Abort) but not into this
// object.
//
//   OutputProcessor processor(tokenizer);
//   RETURN_IF_ERROR(processor.AddRequest(engine_request,
//                                        [](const RequestOutput& delta) { stream(delta); }));
//   std::vector<std::string> stopped = processor.Process(scheduler.ApplyResult(result));
//   for (const std::string& seq : stopped) scheduler.FinishSequence(seq, FinishReason::kStop);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/finish_reason.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/stop_checker.h"

namespace pagoda {

using TopLogprobs = std::vector<std::pair<int32_t, float>>;  // (token id, logprob), best first

/// One completion of a request (vLLM's CompletionOutput): in a streamed delta, the text, ids and
/// logprobs new since the previous delta; in an accumulated result, all of them.
struct CompletionOutput {
  int32_t index = 0;  // 0 .. n-1 (for beam search: rank, best first)
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<float> logprobs;  // per token, when the request asked for logprobs
  std::vector<TopLogprobs> top_logprobs;
  std::optional<double> cumulative_logprob;   // sum of logprobs so far, when known
  std::optional<FinishReason> finish_reason;  // set once, on the completion's last delta
  StopReason stop_reason;
};

/// Token counts of a finished request (OpenAI "usage").
struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // over all completions
};

struct RequestOutput {
  std::string request_id;
  std::vector<CompletionOutput> outputs;  // in a delta: only the completions that changed
  bool finished = false;                  // the last delta of the request
  std::optional<Usage> usage;             // on the last delta
  /// Why the engine failed the request (finish_reason abort), e.g. an executor error; empty for
  /// completions and client aborts.
  std::string error;
  /// When this engine first scheduled the request (Unix seconds, like
  /// EngineRequest::arrival_time_s): set by the EngineLoop on the request's first delta only when
  /// it was scheduled by then. For queue-time metrics.
  std::optional<double> first_scheduled_time_s;
};

using OutputCallback = std::function<void(const RequestOutput&)>;

/// Folds a streamed delta into an accumulated result (texts and ids appended per index).
void MergeRequestOutput(RequestOutput& total, const RequestOutput& delta);

class OutputProcessor {
  struct Request;  // a request's state (output_processor.cc)

 public:
  /// A request's state built by Prepare(), not tracked yet (it may move between threads).
  class PreparedRequest {
   public:
    PreparedRequest(PreparedRequest&&) noexcept;
    PreparedRequest& operator=(PreparedRequest&&) noexcept;
    ~PreparedRequest();

   private:
    friend class OutputProcessor;
    explicit PreparedRequest(std::unique_ptr<Request> request);
    std::unique_ptr<Request> request_;
  };

  /// `tokenizer` must outlive this object.
  explicit OutputProcessor(const Tokenizer* tokenizer);
  ~OutputProcessor();
  OutputProcessor(const OutputProcessor&) = delete;
  OutputProcessor& operator=(const OutputProcessor&) = delete;

  /// Builds the state of a request (params.n completions; for beam search the n best beams)
  /// whose callback will receive every delta, the last with finished=true; replays resumed
  /// outputs. InvalidArgument when resumed outputs come with n > 1 or beam search, or a stop
  /// string ends within them (the request had finished there). Thread-safe: it reads nothing of
  /// this object but the tokenizer, so an engine can do this work on the caller's thread.
  absl::StatusOr<PreparedRequest> Prepare(const EngineRequest& request,
                                          OutputCallback callback) const;
  /// Starts tracking a prepared request. AlreadyExists for a live id.
  absl::Status AddRequest(PreparedRequest request);
  /// Prepare(), then AddRequest().
  absl::Status AddRequest(const EngineRequest& request, OutputCallback callback);

  /// Applies one step's updates (Scheduler::ApplyResult, any order, several requests), calls
  /// each changed request's callback once, and returns the seq_ids that a stop string finished
  /// while the scheduler still considers them running. Updates of unknown requests or finished
  /// sequences are ignored (a step planned before a stop was seen may still report tokens).
  /// Beam search reports each returned beam once, with all its tokens, when the request ends.
  std::vector<std::string> Process(std::span<const SequenceUpdate> updates);
  /// The same, but hands those seq_ids (when there are any) to `on_stopped` before the first
  /// callback runs, so the scheduler has finished them by the time a client sees its request
  /// end, and the client may reuse the request's id at once.
  void Process(std::span<const SequenceUpdate> updates,
               absl::FunctionRef<void(std::span<const std::string>)> on_stopped);

  /// Ends a request now: its unfinished completions get finish_reason abort, their held-back
  /// text is flushed, and the callback receives the last delta (with `error`, when given).
  /// Unknown ids are ignored.
  void Abort(const std::string& request_id, const std::string& error = "");

  /// Abort for every live request (engine shutdown or failure).
  void AbortAll(const std::string& error);

  bool HasRequest(const std::string& request_id) const { return requests_.contains(request_id); }
  int64_t num_requests() const { return static_cast<int64_t>(requests_.size()); }

 private:
  struct Sequence;

  // Feeds the resumed outputs of a fresh request into its first completion, silently.
  absl::Status ReplayResumedOutputs(Request& request) const;
  // Feeds one update into its sequence; appends the changes to `out`. True when a stop string
  // finished a sequence the scheduler had not finished.
  bool ApplyUpdate(Request& request, const SequenceUpdate& update, CompletionOutput& out);
  // Finishes the request when all its completions have; sets usage and `finished`.
  void MaybeFinish(Request& request, RequestOutput& output);
  std::unique_ptr<Sequence> NewSequence(const Request& request) const;

  const Tokenizer* tokenizer_;
  absl::flat_hash_map<std::string, std::unique_ptr<Request>> requests_;
};

}  // namespace pagoda
