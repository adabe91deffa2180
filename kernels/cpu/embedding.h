// The CPU twin of kernels/embedding.h, called by its dispatch point with validated params
// (num_tokens > 0, every token id in range).
#pragma once

#include "kernels/embedding.h"

namespace pagoda::kernels::cpu {

void Embedding(const EmbeddingParams& params);

}  // namespace pagoda::kernels::cpu
