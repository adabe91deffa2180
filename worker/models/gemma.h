// Gemma 2 and Gemma 3 text models (Gemma2ForCausalLM, Gemma3ForCausalLM; GGUF gemma2, gemma3).
// A decoder with "sandwich" norms: per layer
//   x = x + post_attn_norm(o_proj(attention(rope(q), rope(k), v)))  q, k, v = qkv_proj(norm(x))
//                                                                   (Gemma 3: q, k = q_norm,
//                                                                   k_norm)
//   x = x + post_ffn_norm(down_proj(gelu_tanh(gate_proj(n)) * up_proj(n)))  n = pre_ffn_norm(x)
// after an embedding scaled by sqrt(hidden_size), then a final norm, the LM head (tied) and, for
// Gemma 2, final logit soft-capping (config.final_logit_softcap). Attention scores are scaled by
// query_pre_attn_scalar^-0.5 and soft-capped (Gemma 2, attn_logit_softcap); the sliding layers
// (config.LayerWindow) attend within the window and rotate with their own RoPE base (Gemma 3's
// rope_local_base_freq), the global ones with rope_theta and linear scaling (Gemma 3).
//
// Every RMSNorm scales by (1 + w). Hugging Face checkpoints store w, llama.cpp's converter 1 + w;
// the safetensors loader adds the one (WeightSlot::hf_offset), so both formats load the same
// plain RMSNorm weights and the forward uses the ordinary RMSNorm op (no per-step add, and GGUF
// norm tensors are used in place).
//
// Checkpoint names (Hugging Face / GGUF), besides the Llama ones of llama.h:
//   model.layers.N.post_attention_layernorm.weight / blk.N.post_attention_norm.weight
//   model.layers.N.pre_feedforward_layernorm.weight / blk.N.ffn_norm.weight
//   model.layers.N.post_feedforward_layernorm.weight / blk.N.post_ffw_norm.weight
//   model.layers.N.self_attn.{q,k}_norm.weight / blk.N.attn_{q,k}_norm.weight (Gemma 3)
// Tensor parallelism as the Llama family's (decoder_plan.h).
//
//   const ModelArchitecture& gemma = GemmaFamily();
#pragma once

#include "worker/models/model.h"

namespace pagoda {

/// The definition of Gemma 2 and Gemma 3 (text).
const ModelArchitecture& GemmaFamily();

}  // namespace pagoda
