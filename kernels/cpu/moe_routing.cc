#include "kernels/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {

void MoeRoute(const MoeRouteParams& p) {
  const int64_t experts = p.num_experts;
  const int64_t k = p.top_k;
  // Per token: softmax (max-subtracted, as torch's), then the k largest probabilities (the lower
  // expert index first among equals).
#pragma omp parallel if (p.num_tokens * experts >= internal::kParallelMinElements)
  {
    std::vector<float> probs(static_cast<size_t>(experts));
    std::vector<int32_t> order(static_cast<size_t>(experts));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < p.num_tokens; ++t) {
      const float* logits = p.router_logits + t * experts;
      const float max = *std::max_element(logits, logits + experts);
      float sum = 0.0f;
      for (int64_t e = 0; e < experts; ++e) {
        probs[e] = std::exp(logits[e] - max);
        sum += probs[e];
      }
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
      });
      float chosen = 0.0f;
      for (int64_t j = 0; j < k; ++j) chosen += probs[order[j]];
      const float scale = p.renormalize ? 1.0f / chosen : 1.0f / sum;
      for (int64_t j = 0; j < k; ++j) {
        p.topk_experts[t * k + j] = order[j];
        p.topk_weights[t * k + j] = probs[order[j]] * scale;
      }
    }
  }
  // Group the choices by expert (a counting sort, stable in token order).
  std::fill(p.expert_offsets, p.expert_offsets + experts + 1, 0);
  const int64_t pairs = p.num_tokens * k;
  for (int64_t i = 0; i < pairs; ++i) ++p.expert_offsets[p.topk_experts[i] + 1];
  for (int64_t e = 0; e < experts; ++e) p.expert_offsets[e + 1] += p.expert_offsets[e];
  std::vector<int64_t> next(p.expert_offsets, p.expert_offsets + experts);
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t row = next[p.topk_experts[i]]++;
    p.sorted_tokens[row] = static_cast<int32_t>(i / k);
    p.token_rows[i] = static_cast<int32_t>(row);
  }
}

void MoeGather(const MoeGatherParams& p) {
  const size_t bytes = static_cast<size_t>(p.width) * sizeof(float);
#pragma omp parallel for schedule(static) if (p.num_rows * p.width >= \
                                              internal::kParallelMinElements)
  for (int64_t r = 0; r < p.num_rows; ++r) {
    std::memcpy(p.output + r * p.width, p.input + p.rows[r] * p.width, bytes);
  }
}

void MoeCombine(const MoeCombineParams& p) {
  const int64_t width = p.width;
#pragma omp parallel for schedule(static) if (p.num_tokens * width >= \
                                              internal::kParallelMinElements)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    float* __restrict out = p.output + t * width;
    bool first = true;
    for (int64_t j = 0; j < p.top_k; ++j) {
      const int64_t local_row = p.token_rows[t * p.top_k + j] - p.row_begin;
      if (local_row < 0 || local_row >= p.num_rows) continue;  // another rank's expert
      const float w = p.topk_weights[t * p.top_k + j];
      const float* __restrict row = p.expert_out + local_row * width;
      if (first) {
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) out[i] = w * row[i];
      } else {
#pragma omp simd
        for (int64_t i = 0; i < width; ++i) out[i] += w * row[i];
      }
      first = false;
    }
    if (first) std::fill(out, out + width, 0.0f);
  }
}

}  // namespace pagoda::kernels::cpu
