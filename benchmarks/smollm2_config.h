// The SmolLM2-135M shape the CPU benchmarks run on with dummy weights (30 layers, hidden 576,
// 9 heads, 3 KV heads, head_dim 64, intermediate 1536, vocab 49152, tied embeddings).
#pragma once

#include "common/model_config.h"

namespace pagoda {

inline ModelConfig SmolLm2Config() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 100000.0;
  c.max_position_embeddings = 2048;
  c.tie_word_embeddings = true;
  return c;
}

}  // namespace pagoda
