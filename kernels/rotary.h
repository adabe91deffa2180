// Rotary position embedding (RoPE) applied in place to queries and keys.
//
// Two layouts of the rotated pairs within a head:
// - kRotateHalf (Hugging Face LLaMA, "neox"): pairs (i, i + rotary_dim/2).
// - kInterleaved (GPT-J, llama2.c): pairs (2i, 2i + 1).
// Partial rotary (Phi-3.5, Phi-4-mini: partial_rotary_factor < 1): only the first rotary_dim
// dims of each head are rotated, the rest pass through. The cos/sin table comes from
// BuildRopeCache, which also applies LLaMA-3 or linear frequency scaling and LongRoPE's
// per-frequency factors and attention factor.
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
#include "kernels/device.h"

namespace pagoda::kernels {

enum class RotaryStyle { kRotateHalf, kInterleaved };

struct RopeConfig {
  int64_t head_dim = 0;  // rotary_dim: the dims rotated (the whole head, or its first part)
  int64_t max_positions = 0;
  double theta = 10000.0;
  Llama3RopeScaling llama3 = {};  // "= {}" lets designated initializers leave it out
  /// Empty, or [head_dim / 2] positive LongRoPE factors (one set, short or long, chosen by the
  /// model): inv_freq[i] = 1 / (freq_factors[i] * theta^(2i / head_dim)).
  std::vector<double> freq_factors = {};
  double attention_factor = 1.0;  // > 0: multiplies every cos and sin (LongRoPE)
  double linear_factor = 0.0;     // > 0: linear scaling, every frequency divided by it (Gemma 3)
};

/// cos_sin[pos * head_dim + i] = a * cos(pos * inv_freq[i]) for i < head_dim/2, and
/// cos_sin[pos * head_dim + head_dim/2 + i] = a * sin(pos * inv_freq[i]), a the attention factor.
struct RopeCache {
  int64_t head_dim = 0;  // the rotary dims
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
  int64_t rotary_dim = 0;  // even, <= head_dim: the first rotary_dim dims rotate (0: head_dim)
  int64_t q_stride = 0;    // floats between consecutive tokens of q (num_heads*head_dim if packed)
  int64_t k_stride = 0;    // floats between consecutive tokens of k
  RotaryStyle style = RotaryStyle::kRotateHalf;
  /// kCuda: q, k and positions are on the device, and so is device_cos_sin, a copy of
  /// cache->cos_sin (the cache still gives the shapes). Positions there are the caller's to
  /// check (ModelRunner builds them); the CUDA twin leaves a token outside the table unrotated.
  Device device = Device::kCpu;
  const float* device_cos_sin = nullptr;  // [cache->max_positions, head_dim], kCuda only

  absl::Status Validate() const;
  int64_t rotated_dims() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
};

/// Rotates q and k in place. A position outside the cache is InvalidArgument (host positions).
absl::Status ApplyRotary(const RotaryParams& params);

}  // namespace pagoda::kernels
