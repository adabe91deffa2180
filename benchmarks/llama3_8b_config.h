// The Llama-3-8B shape the GPU benchmarks run on with dummy bf16 weights (issue 16): 32 layers,
// hidden 4096, 32 heads, 8 KV heads (head_dim 128), intermediate 14336, vocab 128256, untied LM
// head, RoPE base 500000 without scaling, context 8192 — Meta-Llama-3-8B's config.json. The
// same shape is built in Python by benchmarks/hf_generate_baseline.py.
#pragma once

#include "common/model_config.h"

namespace pagoda {

inline ModelConfig Llama3_8BConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.max_position_embeddings = 8192;
  c.tie_word_embeddings = false;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};
  return c;
}

/// The same family shrunk to 2 layers of hidden 64 (4 heads, 2 KV heads, head_dim 16,
/// intermediate 128), the vocabulary kept: the GPU benchmarks' check of themselves on the CPU.
inline ModelConfig TinyLlama3Config() {
  ModelConfig c = Llama3_8BConfig();
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  return c;
}

}  // namespace pagoda
