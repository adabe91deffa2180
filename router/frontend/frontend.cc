#include "router/frontend/frontend.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random.h"
#include "common/status_macros.h"

namespace pagoda {

Frontend::Frontend(ReplicaSet* replicas, const Tokenizer* tokenizer, FrontendOptions options)
    : replicas_(replicas),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      created_unix_seconds_(absl::ToUnixSeconds(replicas->clock().Now())),
      rng_state_((static_cast<uint64_t>(std::random_device()()) << 32) ^ std::random_device()()),
      grammar_cache_(options_.grammar_cache_bytes) {}

uint64_t Frontend::NextRandom() {
  absl::MutexLock lock(&mu_);
  // splitmix64: ids and seeds need uniqueness and spread, not secrecy.
  rng_state_ += kSplitMix64Gamma;
  return SplitMix64Mix(rng_state_);
}

absl::Status Frontend::CheckModel(const std::string& model) const {
  if (model.empty() || model == options_.model_name) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(
      "model: '", model, "' is not served here; the served model is '", options_.model_name, "'"));
}

absl::StatusOr<std::shared_ptr<const structured::CompiledGrammar>> Frontend::CompileConstraint(
    const SamplingParams& params) {
  std::shared_ptr<const structured::TokenVocabulary> vocabulary;
  {
    absl::MutexLock lock(&vocabulary_mu_);
    if (vocabulary_ == nullptr) {
      std::vector<int32_t> stop_ids =
          options_.stop_token_ids.empty() ? tokenizer_->stop_token_ids() : options_.stop_token_ids;
      absl::StatusOr<std::shared_ptr<const structured::TokenVocabulary>> built =
          structured::TokenVocabulary::FromTokenizer(*tokenizer_, std::move(stop_ids),
                                                     options_.model_name);
      // Not the client's fault: an Internal error, not a 400.
      if (!built.ok()) {
        return absl::InternalError(absl::StrCat("the served model's vocabulary for structured ",
                                                "output: ", built.status().message()));
      }
      vocabulary_ = *std::move(built);
    }
    vocabulary = vocabulary_;
  }
  return grammar_cache_.GetOrCompile(structured::GrammarKindOf(params.constraint_kind),
                                     params.constraint, std::move(vocabulary));
}

absl::StatusOr<std::unique_ptr<RequestSession>> Frontend::Submit(GenerationInput input) {
  RETURN_IF_ERROR(CheckModel(input.model));
  if (input.text.has_value() && !input.token_ids.empty()) {
    return absl::InvalidArgumentError("prompt: give either text or token ids, not both");
  }
  if (input.request_id.size() > 256 ||
      std::any_of(input.request_id.begin(), input.request_id.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return absl::InvalidArgumentError(
        "request_id: must be at most 256 bytes without control characters");
  }
  if (input.text.has_value() && input.text->empty()) {
    // Not a BOS-only prompt: an empty text is a client mistake (vLLM refuses it too).
    return absl::InvalidArgumentError("prompt: must not be empty");
  }
  EngineRequest request;
  request.prompt_token_ids = input.text.has_value()
                                 ? tokenizer_->Encode(*input.text, input.add_special_tokens)
                                 : std::move(input.token_ids);
  RETURN_IF_ERROR(TokenizeBadWords(*tokenizer_, input.params));
  const std::string param =
      input.constraint_param.empty() ? "structured_output" : input.constraint_param;
  if (absl::Status valid =
          ValidateGenerationRequest(request.prompt_token_ids, input.params, options_.limits);
      !valid.ok()) {
    // SamplingParams names its field "constraint"; the client named it otherwise.
    constexpr char kConstraint[] = "constraint: ";
    const std::string message(valid.message());
    if (!absl::StartsWith(message, kConstraint)) return valid;
    return absl::InvalidArgumentError(
        absl::StrCat(param, ": ", message.substr(sizeof(kConstraint) - 1)));
  }
  if (input.params.constrained()) {
    absl::StatusOr<std::shared_ptr<const structured::CompiledGrammar>> compiled =
        CompileConstraint(input.params);
    if (!compiled.ok()) {
      if (!absl::IsInvalidArgument(compiled.status())) return compiled.status();
      return absl::InvalidArgumentError(absl::StrCat(param, ": ", compiled.status().message()));
    }
  }
  request.request_id = input.request_id.empty() ? absl::StrFormat("cmpl-%016x", NextRandom())
                                                : std::move(input.request_id);
  // Resolved here and kept: a request moved to another replica draws the same samples.
  request.seed = input.params.seed.has_value() ? *input.params.seed : NextRandom();
  request.params = std::move(input.params);
  request.priority = input.priority;
  // On the clock the sessions measure latencies with.
  request.arrival_time_s = replicas_->clock().NowUnixSeconds();
  return replicas_->Submit(std::move(request));
}

}  // namespace pagoda
