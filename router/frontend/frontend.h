// Frontend: what the router's gRPC and HTTP frontends share between parsing a request and
// streaming its deltas — the model name check, tokenization, validation against the serving
// limits, the request id, seed and arrival time (on the ReplicaSet's clock), and admission
// through the ReplicaSet.
//
//   Frontend frontend(&replicas, tokenizer.get(), {.model_name = "stories260K", .limits = limits});
//   ASSIGN_OR_RETURN(std::unique_ptr<RequestSession> session,
//                    frontend.Submit({.model = "stories260K", .text = "Once upon a time",
//                                     .params = params}));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/sampling_params.h"
#include "common/tokenizer/tokenizer.h"
#include "router/frontend/request_validation.h"
#include "router/replica_set.h"
#include "router/request_session.h"
#include "structured/compiled_grammar.h"
#include "structured/grammar_cache.h"
#include "structured/token_vocabulary.h"

namespace pagoda {

struct FrontendOptions {
  std::string model_name;  // the id clients name the model by
  ServingLimits limits;
  /// The ids generation stops at (the served model's EOS ids): a constraint allows them exactly
  /// where its grammar accepts. Empty: the tokenizer's stop ids.
  std::vector<int32_t> stop_token_ids;
  /// Bound on the compiled grammars the frontend keeps (structured/grammar_cache.h).
  size_t grammar_cache_bytes = size_t{256} << 20;
};

/// A generation request as a frontend parsed it.
struct GenerationInput {
  std::string request_id;           // empty: the frontend assigns "cmpl-<random>"
  std::string model;                // empty: the served model
  std::optional<std::string> text;  // the prompt as text, or
  std::vector<int32_t> token_ids;   // as token ids
  bool add_special_tokens = true;   // BOS for text prompts
  SamplingParams params;
  /// The API field params' constraint came from ("response_format", "guided_json", ...), named by
  /// a compile error; empty: "structured_output" (the gRPC field).
  std::string constraint_param;
  int32_t priority = 0;
};

class Frontend {
 public:
  Frontend(ReplicaSet* replicas, const Tokenizer* tokenizer, FrontendOptions options);

  /// NotFound ("model: ...") unless `model` is empty or the served model's name.
  absl::Status CheckModel(const std::string& model) const;

  /// CheckModel, tokenization (of the prompt and of bad_words), ValidateGenerationRequest
  /// (InvalidArgument naming the field), compiling a constraint (InvalidArgument naming
  /// constraint_param: an invalid schema or regex, an unsupported keyword, a grammar that accepts
  /// nothing), then ReplicaSet::Submit (AlreadyExists, Unavailable, ResourceExhausted).
  absl::StatusOr<std::unique_ptr<RequestSession>> Submit(GenerationInput input);

  const std::string& model_name() const { return options_.model_name; }
  const ServingLimits& limits() const { return options_.limits; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  ReplicaSet& replicas() { return *replicas_; }
  /// Compiles (or finds cached) a constraint against the served model's vocabulary, built from
  /// the tokenizer on the first constrained request. InvalidArgument for a bad constraint.
  absl::StatusOr<std::shared_ptr<const structured::CompiledGrammar>> CompileConstraint(
      const SamplingParams& params);
  structured::GrammarCache::Stats grammar_cache_stats() const { return grammar_cache_.stats(); }
  /// The ReplicaSet's clock: arrival and creation times, and the frontends' pacing.
  const Clock& clock() const { return replicas_->clock(); }
  int64_t created_unix_seconds() const { return created_unix_seconds_; }

 private:
  uint64_t NextRandom();

  ReplicaSet* const replicas_;
  const Tokenizer* const tokenizer_;
  const FrontendOptions options_;
  const int64_t created_unix_seconds_;

  absl::Mutex mu_;
  uint64_t rng_state_ ABSL_GUARDED_BY(mu_);
  absl::Mutex vocabulary_mu_;
  std::shared_ptr<const structured::TokenVocabulary> vocabulary_ ABSL_GUARDED_BY(vocabulary_mu_);
  structured::GrammarCache grammar_cache_;
};

}  // namespace pagoda
