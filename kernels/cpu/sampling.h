// The CPU twins of kernels/sampling.h, called by its dispatch points with validated params
// (num_rows > 0). Rows run in parallel (dynamic schedule) unless batch.max_threads is 1.
#pragma once

#include "kernels/sampling.h"

namespace pagoda::kernels::cpu {

void SanitizeLogits(const SanitizeLogitsParams& params);
void LogSoftmax(const LogSoftmaxParams& params);
void TopK(const TopKParams& params);
void MaskTokens(const MaskTokensParams& params);
void ApplyTokenBitmask(const TokenBitmaskParams& params);
void ApplyPenalties(const PenaltiesParams& params);
void Argmax(const ArgmaxParams& params);
void SoftmaxWeights(const SoftmaxWeightsParams& params);
void SampleFromWeights(const SampleFromWeightsParams& params);

}  // namespace pagoda::kernels::cpu
