#include "proto/step_codec.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/repeated_field.h"

namespace pagoda {
namespace {

using Pairs = std::vector<std::pair<int32_t, int32_t>>;
using ::google::protobuf::RepeatedField;
using ::google::protobuf::RepeatedPtrField;

// Ids come off the wire: a hostile one must not blow up the error message.
constexpr size_t kMaxIdBytesInErrors = 64;

std::string Label(const char* kind, const std::string& id) {
  if (id.size() <= kMaxIdBytesInErrors) return absl::StrCat(kind, " \"", id, "\"");
  return absl::StrCat(kind, " \"", id.substr(0, kMaxIdBytesInErrors), "...\" (", id.size(),
                      " bytes)");
}

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status WithPrefix(const std::string& prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

template <typename T>
void AppendAll(const std::vector<T>& values, RepeatedField<T>* out) {
  out->Add(values.begin(), values.end());
}

template <typename T>
std::vector<T> ToVector(const RepeatedField<T>& values) {
  return std::vector<T>(values.begin(), values.end());
}

void EncodePairs(const Pairs& pairs, RepeatedField<int32_t>* out) {
  out->Reserve(static_cast<int>(2 * pairs.size()));
  for (const auto& [first, second] : pairs) {
    out->AddAlreadyReserved(first);
    out->AddAlreadyReserved(second);
  }
}

absl::Status DecodePairs(const RepeatedField<int32_t>& flat, const std::string& where,
                         const char* field, Pairs* out) {
  if (flat.size() % 2 != 0) {
    return Invalid(where, absl::StrCat(field, " must hold pairs [a0, b0, a1, b1, ...], got ",
                                       flat.size(), " ints (odd)"));
  }
  out->reserve(static_cast<size_t>(flat.size() / 2));
  for (int i = 0; i < flat.size(); i += 2) out->emplace_back(flat.Get(i), flat.Get(i + 1));
  return absl::OkStatus();
}

// A count of tokens in a sequence's token_ids (or, with no bound, of tokens to schedule).
absl::Status CheckCount(int64_t value, const std::string& where, const char* field,
                        int64_t max = -1) {
  if (value < 0) return Invalid(where, absl::StrCat(field, " must be >= 0, got ", value));
  if (max >= 0 && value > max) {
    return Invalid(where,
                   absl::StrCat(field, " ", value, " exceeds the sequence's ", max, " token ids"));
  }
  return absl::OkStatus();
}

using ConstraintKind = SamplingParams::ConstraintKind;

v1::StructuredOutput::Kind ConstraintKindToProto(ConstraintKind kind) {
  switch (kind) {
    case ConstraintKind::kJsonSchema:
      return v1::StructuredOutput::KIND_JSON_SCHEMA;
    case ConstraintKind::kJsonObject:
      return v1::StructuredOutput::KIND_JSON_OBJECT;
    case ConstraintKind::kRegex:
      return v1::StructuredOutput::KIND_REGEX;
    case ConstraintKind::kChoice:
      return v1::StructuredOutput::KIND_CHOICE;
    case ConstraintKind::kGrammar:
      return v1::StructuredOutput::KIND_GRAMMAR;
    case ConstraintKind::kNone:
      break;
  }
  return v1::StructuredOutput::KIND_UNSPECIFIED;
}

absl::StatusOr<ConstraintKind> ConstraintKindFromProto(int kind) {
  switch (kind) {
    case v1::StructuredOutput::KIND_UNSPECIFIED:
      return ConstraintKind::kNone;
    case v1::StructuredOutput::KIND_JSON_SCHEMA:
      return ConstraintKind::kJsonSchema;
    case v1::StructuredOutput::KIND_JSON_OBJECT:
      return ConstraintKind::kJsonObject;
    case v1::StructuredOutput::KIND_REGEX:
      return ConstraintKind::kRegex;
    case v1::StructuredOutput::KIND_CHOICE:
      return ConstraintKind::kChoice;
    case v1::StructuredOutput::KIND_GRAMMAR:
      return ConstraintKind::kGrammar;
    default:
      return absl::InvalidArgumentError(absl::StrCat("structured_output: unknown kind ", kind));
  }
}

}  // namespace

void EncodeSamplingParams(const SamplingParams& params, v1::SamplingParams* out) {
  out->Clear();
  out->set_temperature(params.temperature);
  out->set_top_k(params.top_k);
  out->set_top_p(params.top_p);
  out->set_min_p(params.min_p);
  out->set_repetition_penalty(params.repetition_penalty);
  out->set_presence_penalty(params.presence_penalty);
  out->set_frequency_penalty(params.frequency_penalty);
  if (params.seed.has_value()) out->set_seed(*params.seed);
  out->set_logprobs(params.logprobs);
  out->set_max_tokens(params.max_tokens);
  out->set_min_tokens(params.min_tokens);
  out->set_ignore_eos(params.ignore_eos);
  AppendAll(params.stop_token_ids, out->mutable_stop_token_ids());
  out->mutable_stop()->Reserve(static_cast<int>(params.stop.size()));
  for (const std::string& stop : params.stop) out->add_stop(stop);
  out->set_include_stop_str_in_output(params.include_stop_str_in_output);
  out->set_skip_special_tokens(params.skip_special_tokens);
  out->set_disable_speculative_decoding(params.disable_speculative_decoding);
  out->set_n(params.n);
  out->set_beam_width(params.beam_width);
  out->set_length_penalty(params.length_penalty);
  if (params.constrained()) {
    out->mutable_structured_output()->set_kind(ConstraintKindToProto(params.constraint_kind));
    out->mutable_structured_output()->set_text(params.constraint);
  }
  for (const auto& [id, bias] : params.logit_bias) (*out->mutable_logit_bias())[id] = bias;
  AppendAll(params.allowed_token_ids, out->mutable_allowed_token_ids());
  out->mutable_bad_words()->Reserve(static_cast<int>(params.bad_words.size()));
  for (const std::string& word : params.bad_words) out->add_bad_words(word);
  out->mutable_bad_words_token_ids()->Reserve(static_cast<int>(params.bad_words_token_ids.size()));
  for (const std::vector<int32_t>& ids : params.bad_words_token_ids) {
    AppendAll(ids, out->add_bad_words_token_ids()->mutable_ids());
  }
}

absl::StatusOr<SamplingParams> DecodeSamplingParams(const v1::SamplingParams& proto) {
  SamplingParams params;
  if (proto.has_temperature()) params.temperature = proto.temperature();
  if (proto.has_top_k()) params.top_k = proto.top_k();
  if (proto.has_top_p()) params.top_p = proto.top_p();
  if (proto.has_min_p()) params.min_p = proto.min_p();
  if (proto.has_repetition_penalty()) params.repetition_penalty = proto.repetition_penalty();
  if (proto.has_presence_penalty()) params.presence_penalty = proto.presence_penalty();
  if (proto.has_frequency_penalty()) params.frequency_penalty = proto.frequency_penalty();
  if (proto.has_seed()) params.seed = proto.seed();
  if (proto.has_logprobs()) params.logprobs = proto.logprobs();
  if (proto.has_max_tokens()) params.max_tokens = proto.max_tokens();
  if (proto.has_min_tokens()) params.min_tokens = proto.min_tokens();
  params.ignore_eos = proto.ignore_eos();
  params.stop_token_ids = ToVector(proto.stop_token_ids());
  params.stop.assign(proto.stop().begin(), proto.stop().end());
  params.include_stop_str_in_output = proto.include_stop_str_in_output();
  if (proto.has_skip_special_tokens()) params.skip_special_tokens = proto.skip_special_tokens();
  params.disable_speculative_decoding = proto.disable_speculative_decoding();
  if (proto.has_n()) params.n = proto.n();
  if (proto.has_beam_width()) params.beam_width = proto.beam_width();
  if (proto.has_length_penalty()) params.length_penalty = proto.length_penalty();
  if (proto.has_structured_output()) {
    ASSIGN_OR_RETURN(params.constraint_kind,
                     ConstraintKindFromProto(proto.structured_output().kind()));
    params.constraint = proto.structured_output().text();
  }
  // A map has no order, and a client's list need not have one: both are sorted here, for
  // SamplingParams' one-entry-per-id form (an id the list repeats counts once).
  for (const auto& [id, bias] : proto.logit_bias()) params.logit_bias.emplace_back(id, bias);
  std::sort(params.logit_bias.begin(), params.logit_bias.end());
  params.allowed_token_ids = ToVector(proto.allowed_token_ids());
  std::sort(params.allowed_token_ids.begin(), params.allowed_token_ids.end());
  params.allowed_token_ids.erase(
      std::unique(params.allowed_token_ids.begin(), params.allowed_token_ids.end()),
      params.allowed_token_ids.end());
  // Bounded before copying: a hostile message must not make the decoder allocate without limit
  // (Validate() checks the rest: empty sequences, negative ids).
  if (proto.bad_words_size() > static_cast<int>(SamplingParams::kMaxBadWords)) {
    return absl::InvalidArgumentError(absl::StrCat("bad_words: at most ",
                                                   SamplingParams::kMaxBadWords, " words, got ",
                                                   proto.bad_words_size()));
  }
  params.bad_words.assign(proto.bad_words().begin(), proto.bad_words().end());
  size_t num_ids = 0;
  for (const v1::TokenIds& ids : proto.bad_words_token_ids()) num_ids += ids.ids_size();
  if (proto.bad_words_token_ids_size() > static_cast<int>(2 * SamplingParams::kMaxBadWords) ||
      num_ids > SamplingParams::kMaxBadWordsTokenIds) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad_words_token_ids: at most ", 2 * SamplingParams::kMaxBadWords,
                     " sequences of ", SamplingParams::kMaxBadWordsTokenIds,
                     " token ids in all, got ", proto.bad_words_token_ids_size(), " of ", num_ids));
  }
  params.bad_words_token_ids.reserve(static_cast<size_t>(proto.bad_words_token_ids_size()));
  for (const v1::TokenIds& ids : proto.bad_words_token_ids()) {
    params.bad_words_token_ids.push_back(ToVector(ids.ids()));
  }
  return params;
}

void EncodeNewSequence(const NewSequence& seq, internal::NewSequence* out) {
  out->Clear();
  out->set_seq_id(seq.seq_id);
  AppendAll(seq.token_ids, out->mutable_token_ids());
  out->set_num_prompt_tokens(seq.num_prompt_tokens);
  out->set_num_computed_tokens(seq.num_computed_tokens);
  out->set_num_scheduled_tokens(seq.num_scheduled_tokens);
  AppendAll(seq.block_ids, out->mutable_block_ids());
  EncodeSamplingParams(seq.sampling_params, out->mutable_sampling_params());
  out->set_seed(seq.seed);
  for (const std::vector<int32_t>& table : seq.more_block_ids) {
    AppendAll(table, out->add_more_block_ids()->mutable_block_ids());
  }
}

absl::StatusOr<NewSequence> DecodeNewSequence(const internal::NewSequence& proto) {
  const std::string where = Label("new sequence", proto.seq_id());
  // Every count indexes token_ids: bounding each keeps later sums of them from overflowing.
  const int64_t num_tokens = proto.token_ids_size();
  RETURN_IF_ERROR(CheckCount(proto.num_prompt_tokens(), where, "num_prompt_tokens", num_tokens));
  RETURN_IF_ERROR(
      CheckCount(proto.num_computed_tokens(), where, "num_computed_tokens", num_tokens));
  RETURN_IF_ERROR(
      CheckCount(proto.num_scheduled_tokens(), where, "num_scheduled_tokens", num_tokens));
  NewSequence seq;
  seq.seq_id = proto.seq_id();
  seq.token_ids = ToVector(proto.token_ids());
  seq.num_prompt_tokens = proto.num_prompt_tokens();
  seq.num_computed_tokens = proto.num_computed_tokens();
  seq.num_scheduled_tokens = proto.num_scheduled_tokens();
  seq.block_ids = ToVector(proto.block_ids());
  absl::StatusOr<SamplingParams> params = DecodeSamplingParams(proto.sampling_params());
  if (!params.ok()) return WithPrefix(where, params.status());
  seq.sampling_params = *std::move(params);
  seq.seed = proto.seed();
  seq.more_block_ids.reserve(static_cast<size_t>(proto.more_block_ids_size()));
  for (const internal::GroupBlockTable& table : proto.more_block_ids()) {
    seq.more_block_ids.push_back(ToVector(table.block_ids()));
  }
  return seq;
}

void EncodeCachedSequence(const CachedSequence& seq, internal::CachedSequence* out) {
  out->Clear();
  out->set_seq_id(seq.seq_id);
  EncodePairs(seq.replaced_block_ids, out->mutable_replaced_block_ids());
  AppendAll(seq.new_block_ids, out->mutable_new_block_ids());
  out->set_num_scheduled_tokens(seq.num_scheduled_tokens);
  AppendAll(seq.replace_last_token_ids, out->mutable_replace_last_token_ids());
  AppendAll(seq.draft_token_ids, out->mutable_draft_token_ids());
  out->set_num_worker_draft_tokens(seq.num_worker_draft_tokens);
  if (seq.draft_guard_token_id >= 0) out->set_draft_guard_token_id(seq.draft_guard_token_id);
  for (const GroupBlockDelta& group : seq.more_groups) {
    internal::GroupBlockDelta* delta = out->add_more_groups();
    EncodePairs(group.replaced_block_ids, delta->mutable_replaced_block_ids());
    AppendAll(group.new_block_ids, delta->mutable_new_block_ids());
  }
}

absl::StatusOr<CachedSequence> DecodeCachedSequence(const internal::CachedSequence& proto) {
  const std::string where = Label("cached sequence", proto.seq_id());
  RETURN_IF_ERROR(CheckCount(proto.num_scheduled_tokens(), where, "num_scheduled_tokens"));
  CachedSequence seq;
  seq.seq_id = proto.seq_id();
  RETURN_IF_ERROR(DecodePairs(proto.replaced_block_ids(), where, "replaced_block_ids",
                              &seq.replaced_block_ids));
  seq.new_block_ids = ToVector(proto.new_block_ids());
  seq.num_scheduled_tokens = proto.num_scheduled_tokens();
  seq.replace_last_token_ids = ToVector(proto.replace_last_token_ids());
  seq.draft_token_ids = ToVector(proto.draft_token_ids());
  RETURN_IF_ERROR(CheckCount(proto.num_worker_draft_tokens(), where, "num_worker_draft_tokens"));
  seq.num_worker_draft_tokens = proto.num_worker_draft_tokens();
  if (proto.has_draft_guard_token_id()) {
    RETURN_IF_ERROR(CheckCount(proto.draft_guard_token_id(), where, "draft_guard_token_id"));
    seq.draft_guard_token_id = proto.draft_guard_token_id();
  }
  seq.more_groups.reserve(static_cast<size_t>(proto.more_groups_size()));
  for (const internal::GroupBlockDelta& delta : proto.more_groups()) {
    GroupBlockDelta group;
    RETURN_IF_ERROR(DecodePairs(delta.replaced_block_ids(), where, "more_groups.replaced_block_ids",
                                &group.replaced_block_ids));
    group.new_block_ids = ToVector(delta.new_block_ids());
    seq.more_groups.push_back(std::move(group));
  }
  return seq;
}

void EncodeStepPlan(const StepPlan& plan, internal::StepPlan* out) {
  out->Clear();
  out->set_step_id(plan.step_id);
  out->mutable_new_sequences()->Reserve(static_cast<int>(plan.new_sequences.size()));
  for (const NewSequence& seq : plan.new_sequences)
    EncodeNewSequence(seq, out->add_new_sequences());
  out->mutable_cached_sequences()->Reserve(static_cast<int>(plan.cached_sequences.size()));
  for (const CachedSequence& seq : plan.cached_sequences) {
    EncodeCachedSequence(seq, out->add_cached_sequences());
  }
  out->mutable_finished_seq_ids()->Reserve(static_cast<int>(plan.finished_seq_ids.size()));
  for (const std::string& id : plan.finished_seq_ids) out->add_finished_seq_ids(id);
  EncodePairs(plan.swap_out, out->mutable_swap_out());
  EncodePairs(plan.swap_in, out->mutable_swap_in());
  EncodePairs(plan.block_copies, out->mutable_block_copies());
  out->set_num_steps(plan.num_steps);
}

absl::StatusOr<StepPlan> DecodeStepPlan(const internal::StepPlan& proto) {
  const std::string where = absl::StrCat("step plan ", proto.step_id());
  if (proto.num_steps() < 1) {
    return Invalid(where, absl::StrCat("num_steps must be >= 1, got ", proto.num_steps()));
  }
  StepPlan plan;
  plan.step_id = proto.step_id();
  plan.new_sequences.reserve(static_cast<size_t>(proto.new_sequences_size()));
  for (const internal::NewSequence& seq : proto.new_sequences()) {
    absl::StatusOr<NewSequence> decoded = DecodeNewSequence(seq);
    if (!decoded.ok()) return WithPrefix(where, decoded.status());
    plan.new_sequences.push_back(*std::move(decoded));
  }
  plan.cached_sequences.reserve(static_cast<size_t>(proto.cached_sequences_size()));
  for (const internal::CachedSequence& seq : proto.cached_sequences()) {
    absl::StatusOr<CachedSequence> decoded = DecodeCachedSequence(seq);
    if (!decoded.ok()) return WithPrefix(where, decoded.status());
    plan.cached_sequences.push_back(*std::move(decoded));
  }
  plan.finished_seq_ids.assign(proto.finished_seq_ids().begin(), proto.finished_seq_ids().end());
  RETURN_IF_ERROR(DecodePairs(proto.swap_out(), where, "swap_out", &plan.swap_out));
  RETURN_IF_ERROR(DecodePairs(proto.swap_in(), where, "swap_in", &plan.swap_in));
  RETURN_IF_ERROR(DecodePairs(proto.block_copies(), where, "block_copies", &plan.block_copies));
  plan.num_steps = proto.num_steps();
  return plan;
}

void EncodeSequenceOutput(const SequenceOutput& output, internal::SequenceOutput* out) {
  out->Clear();
  out->set_seq_id(output.seq_id);
  AppendAll(output.token_ids, out->mutable_token_ids());
  AppendAll(output.logprobs, out->mutable_logprobs());
  out->mutable_top_logprobs()->Reserve(static_cast<int>(output.top_logprobs.size()));
  for (const std::vector<std::pair<int32_t, float>>& top : output.top_logprobs) {
    internal::TopLogprobs* encoded = out->add_top_logprobs();
    RepeatedField<int32_t>* token_ids = encoded->mutable_token_ids();
    RepeatedField<float>* logprobs = encoded->mutable_logprobs();
    token_ids->Reserve(static_cast<int>(top.size()));
    logprobs->Reserve(static_cast<int>(top.size()));
    for (const auto& [token_id, logprob] : top) {
      token_ids->AddAlreadyReserved(token_id);
      logprobs->AddAlreadyReserved(logprob);
    }
  }
}

absl::StatusOr<SequenceOutput> DecodeSequenceOutput(const internal::SequenceOutput& proto) {
  const std::string where = Label("output of sequence", proto.seq_id());
  const int num_tokens = proto.token_ids_size();
  // Per-token arrays are absent (logprobs not requested) or hold one entry per token.
  if (proto.logprobs_size() != 0 && proto.logprobs_size() != num_tokens) {
    return Invalid(where, absl::StrCat("logprobs has ", proto.logprobs_size(), " entries for ",
                                       num_tokens, " token ids"));
  }
  if (proto.top_logprobs_size() != 0 && proto.top_logprobs_size() != num_tokens) {
    return Invalid(where, absl::StrCat("top_logprobs has ", proto.top_logprobs_size(),
                                       " entries for ", num_tokens, " token ids"));
  }
  SequenceOutput output;
  output.seq_id = proto.seq_id();
  output.token_ids = ToVector(proto.token_ids());
  output.logprobs = ToVector(proto.logprobs());
  output.top_logprobs.reserve(static_cast<size_t>(proto.top_logprobs_size()));
  for (int i = 0; i < proto.top_logprobs_size(); ++i) {
    const internal::TopLogprobs& top = proto.top_logprobs(i);
    if (top.token_ids_size() != top.logprobs_size()) {
      return Invalid(where, absl::StrCat("top_logprobs[", i, "] has ", top.token_ids_size(),
                                         " token ids but ", top.logprobs_size(), " logprobs"));
    }
    std::vector<std::pair<int32_t, float>>& decoded = output.top_logprobs.emplace_back();
    decoded.reserve(static_cast<size_t>(top.token_ids_size()));
    for (int j = 0; j < top.token_ids_size(); ++j) {
      decoded.emplace_back(top.token_ids(j), top.logprobs(j));
    }
  }
  return output;
}

void EncodeStepResult(const StepResult& result, internal::StepResult* out) {
  out->Clear();
  out->set_step_id(result.step_id);
  out->mutable_outputs()->Reserve(static_cast<int>(result.outputs.size()));
  for (const SequenceOutput& output : result.outputs) {
    EncodeSequenceOutput(output, out->add_outputs());
  }
}

absl::StatusOr<StepResult> DecodeStepResult(const internal::StepResult& proto) {
  StepResult result;
  result.step_id = proto.step_id();
  result.outputs.reserve(static_cast<size_t>(proto.outputs_size()));
  for (const internal::SequenceOutput& output : proto.outputs()) {
    absl::StatusOr<SequenceOutput> decoded = DecodeSequenceOutput(output);
    if (!decoded.ok()) {
      return WithPrefix(absl::StrCat("step result ", proto.step_id()), decoded.status());
    }
    result.outputs.push_back(*std::move(decoded));
  }
  return result;
}

}  // namespace pagoda
