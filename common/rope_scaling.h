// RoPE frequency scaling read from a model's config (Hugging Face "rope_scaling"); the rotary
// kernels (kernels/rotary.h) apply it when they build their cos/sin table.
//
//   ModelConfig config = ...;  // config.rope_scaling.factor == 0: no scaling
//   kernels::RopeConfig rope{.head_dim = 64, .max_positions = 8192, .llama3 = config.rope_scaling};
#pragma once

#include <cstdint>
#include <vector>

namespace pagoda {

/// LLaMA-3 "rope_scaling": {"rope_type": "llama3", ...}. factor == 0 means no scaling.
struct Llama3RopeScaling {
  double factor = 0.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

/// LongRoPE (Phi-3 "rope_scaling": {"type": "longrope", "short_factor": [...], "long_factor":
/// [...]}): each rotary frequency divided by a per-frequency factor, and cos/sin multiplied by an
/// attention factor. transformers switches between the short and the long factors on the current
/// sequence length; Pagoda, whose cached keys must not change meaning, picks one set per model
/// from the positions it serves (long iff max model length > original_max_position_embeddings, as
/// vLLM and llama.cpp do). Empty factors: none.
struct LongRopeScaling {
  std::vector<double> short_factor;  // [rotary_dim / 2]
  std::vector<double> long_factor;   // [rotary_dim / 2]
  int64_t original_max_position_embeddings = 0;
  /// sqrt(1 + ln(s) / ln(original)), s = max_position_embeddings / original (1 when s <= 1), or
  /// rope_scaling's attention_factor when given.
  double attention_factor = 1.0;

  bool enabled() const { return !short_factor.empty(); }
  /// The factors a model serving positions [0, max_positions) uses.
  const std::vector<double>& FactorsFor(int64_t max_positions) const {
    return max_positions > original_max_position_embeddings ? long_factor : short_factor;
  }
};

}  // namespace pagoda
