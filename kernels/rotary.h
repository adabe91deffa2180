// Rotary position embedding (RoPE) applied in place to queries and keys.
//
// Two layouts of the rotated pairs within a head:
// - kRotateHalf (Hugging Face LLaMA, "neox"): pairs (i, i + rotary_dim/2).
// - kInterleaved (GPT-J, llama2.c): pairs (2i, 2i + 1).
// The cos/sin table comes from BuildRopeCache, which also applies LLaMA-3 or linear frequency
// scaling.
//
//   ASSIGN_OR_RETURN(RopeCache cache, BuildRopeCache({.head_dim = 64, .max_positions = 2048,
//                                                      .theta = 10000.0}));
//   RETURN_IF_ERROR(ApplyRotary({.q = q, .k = k, .positions = pos, .cache = &cache, ...}));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rope_scaling.h"

namespace pagoda::kernels {

enum class RotaryStyle { kRotateHalf, kInterleaved };

struct RopeConfig {
  int64_t head_dim = 0;  // rotary_dim: the whole head is rotated (partial rotary not needed yet)
  int64_t max_positions = 0;
  double theta = 10000.0;
  Llama3RopeScaling llama3 = {};  // "= {}" lets designated initializers leave it out
  double linear_factor = 0.0;     // > 0: linear scaling, every frequency divided by it (Gemma 3)
};

/// cos_sin[pos * head_dim + i] = cos(pos * inv_freq[i]) for i < head_dim/2, and
/// cos_sin[pos * head_dim + head_dim/2 + i] = sin(pos * inv_freq[i]).
struct RopeCache {
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  std::vector<float> cos_sin;  // [max_positions, head_dim]
};

absl::StatusOr<RopeCache> BuildRopeCache(const RopeConfig& config);

struct RotaryParams {
  float* q = nullptr;                  // [num_tokens, num_heads, head_dim], row stride q_stride
  float* k = nullptr;                  // [num_tokens, num_kv_heads, head_dim], row stride k_stride
  const int32_t* positions = nullptr;  // [num_tokens], each in [0, cache->max_positions)
  const RopeCache* cache = nullptr;
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t q_stride = 0;  // floats between consecutive tokens of q (num_heads*head_dim if packed)
  int64_t k_stride = 0;  // floats between consecutive tokens of k
  RotaryStyle style = RotaryStyle::kRotateHalf;

  absl::Status Validate() const;
};

/// Rotates q and k in place. A position outside the cache is InvalidArgument.
absl::Status ApplyRotary(const RotaryParams& params);

}  // namespace pagoda::kernels
