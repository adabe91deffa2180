// The CUDA twins of kernels/sampling.h, called by its dispatch points with validated params whose
// batch.device is Device::kCuda. Where each array lives:
//   - on the device: the vocabulary-sized arrays and every per-row output — logits, logprobs,
//     values, weights, row_max, top_ids / top_values, token_ids;
//   - on the host: the batch's rows and the per-row settings the dispatch point validates — k,
//     temperature, min_p, the mask offsets and ids, the token bitmask. Each twin copies what it
//     reads of them to the device (a per-thread buffer, in the current stream's order).
// One block per selected row; results equal the CPU twins' exactly for SanitizeLogits, Argmax,
// MaskTokens, ApplyTokenBitmask, TopK and ApplyPenalties, and within float rounding for
// LogSoftmax and SoftmaxWeights (the device's expf against the CPU's polynomial; sums in another
// order). SampleFromWeights keeps the same entries (top_k, then top_p, found by a radix select on
// the weights' bits instead of a sort) and draws from the same distribution, but walks the kept
// entries in ascending id order where the CPU walks them heaviest first after a filter: the same
// uniform may give another token. Its sums use atomics, so an entry on a rounding boundary of
// top_p may be kept in one run and not in another.
#pragma once

#include "absl/status/status.h"
#include "kernels/sampling.h"

namespace pagoda::kernels::cuda {

absl::Status SanitizeLogits(const SanitizeLogitsParams& params);
absl::Status LogSoftmax(const LogSoftmaxParams& params);
absl::Status TopK(const TopKParams& params);
absl::Status MaskTokens(const MaskTokensParams& params);
absl::Status ApplyTokenBitmask(const TokenBitmaskParams& params);
absl::Status Argmax(const ArgmaxParams& params);
absl::Status SoftmaxWeights(const SoftmaxWeightsParams& params);
absl::Status ApplyPenalties(const PenaltiesParams& params);
absl::Status SampleFromWeights(const SampleFromWeightsParams& params);

}  // namespace pagoda::kernels::cuda
