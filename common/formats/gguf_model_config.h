// ModelConfig from a GGUF file's metadata, for the architectures `llama` (Llama 1-3, Mistral,
// SmolLM2, TinyLlama; Mixtral when {arch}.expert_count > 0), `qwen2`, `qwen3` (dense Qwen3: q/k
// norms blk.N.attn_{q,k}_norm, head_dim from attention.key_length, which the converter writes from
// config.json's head_dim), `qwen3moe` (Qwen3-MoE: expert_count, expert_used_count,
// expert_feed_forward_length; every layer sparse and the top k renormalised, as llama.cpp runs
// it, unless expert_weights_norm is false) and `phi3` (Phi-3/3.5, Phi-4-mini: fused
// blk.N.attn_qkv and [gate; up] blk.N.ffn_up, partial rotary from rope.dimension_count, LongRoPE
// from the tensors rope_factors_long/short.weight with rope.scaling.original_context_length and
// rope.scaling.attn_factor, the window in attention.sliding_window, 0 for none), `gemma2` and
// `gemma3` (their window, sliding-layer pattern, local RoPE base, soft-caps and attention scale as
// llama.cpp reads them: see ReadGemma in the .cc and docs/architecture.md).
//
// Keys read (prefix "{arch}." = the value of general.architecture): context_length,
// embedding_length, block_count, feed_forward_length, attention.head_count(_kv),
// attention.layer_norm_rms_epsilon, attention.key_length/value_length, rope.freq_base,
// rope.dimension_count, rope.scaling.*; tokenizer.ggml.tokens (vocab size; else {arch}.vocab_size,
// else the rows of token_embd.weight), tokenizer.ggml.{bos,eos,eot,eom}_token_id. Tied embeddings
// = no output.weight tensor. Llama 3 RoPE scaling is not in the metadata: llama.cpp's converter
// stores the per-frequency divisors as the tensor rope_freqs.weight, from which the
// Llama3RopeScaling parameters are recovered (and checked to reproduce every divisor). Missing,
// mistyped or unsupported keys (per-layer head counts, experts outside llama/qwen3moe, partial
// rotary, YaRN/linear scaling) are errors naming the key.
//
// RoPE layout: llama.cpp's converter permutes the Q and K projection rows of `llama` models for
// GGML's RoPE, which rotates adjacent pairs (2i, 2i+1) of each head; Hugging Face's rotate_half
// (which Pagoda's rotary kernel implements) pairs (i, i + head_dim/2). `qwen2` and `qwen3` files
// are NOT permuted (the converter's Qwen3Model derives from Qwen2Model, which does not permute;
// GGML runs them with NEOX-style RoPE, the Hugging Face pairing); nor are qwen3's q/k norms,
// which act on the Hugging Face layout of each head. So a weight loader
// must un-permute attn_q (with num_attention_heads) and attn_k (with num_key_value_heads), and
// their biases if any, of `llama` files only: within each head of head_dim rows,
//   hf_row[j * head_dim/2 + i] = gguf_row[2 * i + j]   (i < head_dim/2, j in {0, 1}).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
//   ASSIGN_OR_RETURN(ModelConfig config, ModelConfigFromGguf(*gguf));
//   bool unpermute_qk = GgufRopeIsInterleaved(*gguf);  // true for llama
#pragma once

#include "absl/status/statusor.h"
#include "common/formats/gguf.h"
#include "common/model_config.h"

namespace pagoda {

/// The hyper-parameters of a llama, qwen2, qwen3, qwen3moe, phi3, gemma2 or gemma3 GGUF.
/// `architecture` is the Hugging Face name (LlamaForCausalLM or MixtralForCausalLM,
/// Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM,
/// Gemma3ForCausalLM); `torch_dtype` is F16/BF16 for files whose general.file_type says so and
/// F32 otherwise (quantized tensors keep their own DType).
absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

/// True when the file's attn_q/attn_k rows are permuted for GGML's adjacent-pair RoPE (the
/// `llama` architecture), so a loader must un-permute them (see above).
bool GgufRopeIsInterleaved(const GgufFile& file);

}  // namespace pagoda
