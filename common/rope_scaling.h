// RoPE frequency scaling read from a model's config (Hugging Face "rope_scaling"); the rotary
// kernels (kernels/rotary.h) apply it when they build their cos/sin table.
//
//   ModelConfig config = ...;  // config.rope_scaling.factor == 0: no scaling
//   kernels::RopeConfig rope{.head_dim = 64, .max_positions = 8192, .llama3 = config.rope_scaling};
#pragma once

#include <cstdint>

namespace pagoda {

/// LLaMA-3 "rope_scaling": {"rope_type": "llama3", ...}. factor == 0 means no scaling.
struct Llama3RopeScaling {
  double factor = 0.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

}  // namespace pagoda
