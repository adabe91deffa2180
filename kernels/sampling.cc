#include "kernels/sampling.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/sampling.h"

namespace pagoda::kernels {
namespace {

absl::Status Null(std::string_view op, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(op), ": ", std::string(what), " is null"));
}

// A CSR list over the batch: offsets [num_seqs + 1] from 0, non-decreasing, ids present when any.
absl::Status CheckOffsets(std::string_view op, std::string_view what, const SamplingRows& b,
                          const int64_t* offsets, const int32_t* ids) {
  if (offsets == nullptr) return Null(op, absl::StrCat(std::string(what), " offsets"));
  if (offsets[0] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(op), ": ", std::string(what),
                                                   " offsets[0]=", offsets[0], " is not 0"));
  }
  for (int64_t s = 0; s < b.num_seqs; ++s) {
    if (offsets[s + 1] < offsets[s]) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(op), ": ", std::string(what), " offsets decrease at row ", s));
    }
  }
  if (offsets[b.num_seqs] > 0 && ids == nullptr) {
    return Null(op, absl::StrCat(std::string(what), " token_ids"));
  }
  return absl::OkStatus();
}

absl::Status CheckIds(std::string_view op, std::string_view what, const SamplingRows& b,
                      const int64_t* offsets, const int32_t* ids) {
  for (int64_t i = 0; i < b.num_rows; ++i) {
    const int64_t s = b.row(i);
    for (int64_t j = offsets[s]; j < offsets[s + 1]; ++j) {
      if (ids[j] < 0 || ids[j] >= b.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat(std::string(op), ": row ", s, ": ", std::string(what), " token id ",
                         ids[j], " is outside the vocabulary [0, ", b.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

// Runs the CPU or the CUDA twin when the batch selects any row.
template <typename Params, typename Cpu, typename Cuda>
absl::Status Dispatch(const Params& params, Cpu cpu, Cuda cuda) {
  RETURN_IF_ERROR(params.Validate());
  if (params.batch.num_rows == 0) return absl::OkStatus();
  if (params.batch.device == Device::kCuda) return cuda(params);
  cpu(params);
  return absl::OkStatus();
}

}  // namespace

absl::Status SamplingRows::Validate(std::string_view op) const {
  if (num_seqs < 0 || vocab_size <= 0 || vocab_size > std::numeric_limits<int32_t>::max() ||
      num_rows < 0 || (rows == nullptr && num_rows != num_seqs) || num_rows > num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(op), ": bad batch num_seqs=", num_seqs, " vocab_size=", vocab_size,
                     " num_rows=", num_rows,
                     " (need vocab_size in [1, 2^31 - 1], num_rows <= num_seqs, and num_rows == "
                     "num_seqs when rows is null)"));
  }
  if (max_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(op), ": max_threads=", max_threads, " is negative"));
  }
  if (rows == nullptr) return absl::OkStatus();
  for (int64_t i = 0; i < num_rows; ++i) {
    if (rows[i] < 0 || rows[i] >= num_seqs || (i > 0 && rows[i] <= rows[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(op), ": rows[", i, "]=", rows[i],
                       " is not ascending inside [0, num_seqs=", num_seqs, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status SanitizeLogitsParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("sanitize_logits"));
  if (batch.num_rows > 0 && (logits == nullptr || row_max == nullptr)) {
    return Null("sanitize_logits", "logits or row_max");
  }
  return absl::OkStatus();
}

absl::Status LogSoftmaxParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("log_softmax"));
  if (batch.num_rows > 0 && (logits == nullptr || row_max == nullptr || logprobs == nullptr)) {
    return Null("log_softmax", "logits, row_max or logprobs");
  }
  return absl::OkStatus();
}

absl::Status TopKParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("top_k"));
  if (max_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k: max_k=", max_k, " is negative"));
  }
  if (batch.num_rows == 0) return absl::OkStatus();
  if (values == nullptr || k == nullptr) return Null("top_k", "values or k");
  if (max_k > 0 && (top_ids == nullptr || top_values == nullptr)) {
    return Null("top_k", "top_ids or top_values");
  }
  for (int64_t i = 0; i < batch.num_rows; ++i) {
    const int64_t s = batch.row(i);
    if (k[s] < 0 || k[s] > max_k) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k: row ", s, " has k=", k[s], " outside [0, max_k=", max_k, "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status MaskTokensParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("mask_tokens"));
  if (batch.num_rows == 0) return absl::OkStatus();
  if (logits == nullptr) return Null("mask_tokens", "logits");
  return CheckOffsets("mask_tokens", "mask", batch, offsets, token_ids);
}

absl::Status TokenBitmaskParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("token_bitmask"));
  if (batch.num_rows == 0) return absl::OkStatus();
  if (logits == nullptr || bitmask == nullptr) return Null("token_bitmask", "logits or bitmask");
  if (bitmask_words < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("token_bitmask: bitmask_words must be >= 1, got ", bitmask_words));
  }
  return absl::OkStatus();
}

absl::Status PenaltiesParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("penalties"));
  if (batch.num_rows == 0) return absl::OkStatus();
  if (logits == nullptr || repetition_penalty == nullptr || frequency_penalty == nullptr ||
      presence_penalty == nullptr) {
    return Null("penalties", "logits or a penalty");
  }
  RETURN_IF_ERROR(CheckOffsets("penalties", "prompt", batch, prompt_offsets, prompt_token_ids));
  RETURN_IF_ERROR(CheckOffsets("penalties", "output", batch, output_offsets, output_token_ids));
  for (int64_t i = 0; i < batch.num_rows; ++i) {
    const int64_t s = batch.row(i);
    if (!(repetition_penalty[s] > 0.0f) || !std::isfinite(repetition_penalty[s]) ||
        !std::isfinite(frequency_penalty[s]) || !std::isfinite(presence_penalty[s])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "penalties: row ", s,
          " needs a finite repetition_penalty > 0 and finite frequency and "
          "presence penalties, got ",
          repetition_penalty[s], ", ", frequency_penalty[s], ", ", presence_penalty[s]));
    }
  }
  return absl::OkStatus();
}

absl::Status PenaltiesParams::ValidateTokenIds() const {
  if (batch.num_rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckIds("penalties", "prompt", batch, prompt_offsets, prompt_token_ids));
  return CheckIds("penalties", "output", batch, output_offsets, output_token_ids);
}

absl::Status ArgmaxParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("argmax"));
  if (batch.num_rows > 0 && (logits == nullptr || token_ids == nullptr)) {
    return Null("argmax", "logits or token_ids");
  }
  return absl::OkStatus();
}

absl::Status SoftmaxWeightsParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("softmax_weights"));
  if (batch.num_rows == 0) return absl::OkStatus();
  if (logits == nullptr || temperature == nullptr || min_p == nullptr || row_max == nullptr) {
    return Null("softmax_weights", "logits, temperature, min_p or row_max");
  }
  for (int64_t i = 0; i < batch.num_rows; ++i) {
    const int64_t s = batch.row(i);
    if (!(temperature[s] > 0.0f) || !std::isfinite(temperature[s]) || !(min_p[s] >= 0.0f) ||
        !(min_p[s] <= 1.0f)) {
      return absl::InvalidArgumentError(absl::StrCat("softmax_weights: row ", s,
                                                     " needs a finite temperature > 0 and min_p in "
                                                     "[0, 1], got ",
                                                     temperature[s], " and ", min_p[s]));
    }
  }
  return absl::OkStatus();
}

absl::Status SampleFromWeightsParams::Validate() const {
  RETURN_IF_ERROR(batch.Validate("sample_from_weights"));
  if (batch.num_rows == 0) return absl::OkStatus();
  if (weights == nullptr || top_k == nullptr || top_p == nullptr || uniform == nullptr ||
      token_ids == nullptr) {
    return Null("sample_from_weights", "weights, top_k, top_p, uniform or token_ids");
  }
  for (int64_t i = 0; i < batch.num_rows; ++i) {
    const int64_t s = batch.row(i);
    if (!(top_p[s] > 0.0f) || !(top_p[s] <= 1.0f) || !(uniform[s] >= 0.0) || !(uniform[s] < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("sample_from_weights: row ", s,
                                                     " needs top_p in (0, 1] and uniform in "
                                                     "[0, 1), got ",
                                                     top_p[s], " and ", uniform[s]));
    }
  }
  return absl::OkStatus();
}

absl::Status SanitizeLogits(const SanitizeLogitsParams& params) {
  return Dispatch(params, cpu::SanitizeLogits, cuda::SanitizeLogits);
}

absl::Status LogSoftmax(const LogSoftmaxParams& params) {
  return Dispatch(params, cpu::LogSoftmax, cuda::LogSoftmax);
}

absl::Status TopK(const TopKParams& params) { return Dispatch(params, cpu::TopK, cuda::TopK); }

absl::Status MaskTokens(const MaskTokensParams& params) {
  return Dispatch(params, cpu::MaskTokens, cuda::MaskTokens);
}

absl::Status ApplyTokenBitmask(const TokenBitmaskParams& params) {
  return Dispatch(params, cpu::ApplyTokenBitmask, cuda::ApplyTokenBitmask);
}

absl::Status ApplyPenalties(const PenaltiesParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (!params.token_ids_checked) RETURN_IF_ERROR(params.ValidateTokenIds());
  if (params.batch.num_rows == 0) return absl::OkStatus();
  if (params.batch.device == Device::kCuda) return cuda::ApplyPenalties(params);
  cpu::ApplyPenalties(params);
  return absl::OkStatus();
}

absl::Status Argmax(const ArgmaxParams& params) {
  return Dispatch(params, cpu::Argmax, cuda::Argmax);
}

absl::Status SoftmaxWeights(const SoftmaxWeightsParams& params) {
  return Dispatch(params, cpu::SoftmaxWeights, cuda::SoftmaxWeights);
}

absl::Status SampleFromWeights(const SampleFromWeightsParams& params) {
  return Dispatch(params, cpu::SampleFromWeights, cuda::SampleFromWeights);
}

}  // namespace pagoda::kernels
