// The Llama family: Llama 1-3, Mistral, SmolLM2, TinyLlama (LlamaForCausalLM, MistralForCausalLM),
// Qwen2 (Qwen2ForCausalLM: q/k/v biases) and dense Qwen3 (Qwen3ForCausalLM: config.qk_norm, an
// RMSNorm of every head of q and of k after the projection and before RoPE, with [head_dim]
// weights shared by all heads; explicit head_dim) and Phi-3 (Phi3ForCausalLM: the same forward
// from fused checkpoints, config.fused_projections; RoPE on the first config.rotary_dim dims of
// each head; LongRoPE frequencies). A pre-norm decoder: per layer
//   h = x + o_proj(attention(rope(q), rope(k), v))     q, k, v = qkv_proj(rms_norm(x))
//                                                       (Qwen3: q, k = q_norm(q), k_norm(k))
//   x = h + down_proj(silu(gate_proj(n)) * up_proj(n))  n = rms_norm(h)
// then a final RMSNorm and the LM head (tied to the embedding or not). Qwen3-MoE and Mixtral
// (Qwen3MoeForCausalLM, MixtralForCausalLM) are this forward with a mixture of experts in place of
// the MLP of their sparse layers (config.IsMoeLayer; worker/models/moe.h).
//
// Checkpoint names (Hugging Face / GGUF):
//   model.embed_tokens.weight / token_embd.weight        model.norm.weight / output_norm.weight
//   lm_head.weight / output.weight (absent when tied)
//   model.layers.N.input_layernorm.weight / blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias} / blk.N.attn_{q,k,v,output}.{weight,bias}
//   model.layers.N.self_attn.{q,k}_norm.weight / blk.N.attn_{q,k}_norm.weight (Qwen3)
//   model.layers.N.post_attention_layernorm.weight / blk.N.ffn_norm.weight
//   model.layers.N.mlp.{gate,up,down}_proj.weight / blk.N.ffn_{gate,up,down}.weight
// Phi-3 instead: model.layers.N.self_attn.qkv_proj.weight / blk.N.attn_qkv.weight ([q; k; v]
// rows) and model.layers.N.mlp.gate_up_proj.weight / blk.N.ffn_up.weight ([gate; up] rows), each
// split at load into the slots of q, k, v (gate, up): under tensor parallelism a rank reads only
// its heads' rows of each part.
// GGUF `llama` files store attn_q/attn_k rows permuted for GGML's pairwise RoPE; the loader
// un-permutes them (WeightSlot::rope_heads), so one forward pass (Hugging Face's rotate-half RoPE)
// serves both formats. `qwen2` and `qwen3` files are not permuted.
//
// Tensor parallelism (tensor_parallel.h): q/k/v and gate/up column-parallel, o_proj and down_proj
// row-parallel followed by an all-reduce, the LM head vocab-parallel; the per-head q/k norm
// weights whole on every rank.
//
//   const ModelArchitecture& llama = LlamaFamily();
#pragma once

#include "worker/models/model.h"

namespace pagoda {

/// The definition of the Llama family.
const ModelArchitecture& LlamaFamily();

}  // namespace pagoda
