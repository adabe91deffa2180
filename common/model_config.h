// The hyper-parameters of a LLaMA-family model, read from a Hugging Face config.json.
//
// Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM, Phi3ForCausalLM (fused qkv_proj / gate_up_proj checkpoints, partial rotary,
// LongRoPE), the mixtures of experts Qwen3MoeForCausalLM and MixtralForCausalLM, and
// Gemma2ForCausalLM, Gemma3ForCausalLM (text-only, model_type gemma3_text). Every field
// is validated (positive sizes, heads dividing hidden size, KV heads dividing heads, known
// rope_scaling type and dtype); errors name the file and the field.
//
//   ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory("/models/smollm2"));
//   int64_t q_width = config.num_attention_heads * config.head_dim;
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/rope_scaling.h"

namespace pagoda {

/// The activation of the gated MLP: act(gate) * up.
enum class MlpActivation : uint8_t {
  kSilu,      // "silu" (LLaMA, Qwen)
  kGeluTanh,  // "gelu_pytorch_tanh" (Gemma)
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  Llama3RopeScaling rope_scaling;  // factor 0: none
  LongRopeScaling longrope;        // Phi-3; no factors: none
  /// The first dims of each head RoPE rotates (partial_rotary_factor); 0: all of head_dim.
  int64_t rotary_dim = 0;
  /// Phi-3: the checkpoint holds qkv_proj = [q; k; v] and gate_up_proj = [gate; up] rows, split
  /// into the usual weight slots at load.
  bool fused_projections = false;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o for Llama) biases; always true for Qwen2 q/k/v
  bool o_proj_bias = false;     // Llama's attention_bias also covers o_proj; Qwen2's does not
  bool qk_norm = false;         // Qwen3: per-head RMSNorm of q and k (weights [head_dim]) pre-RoPE
  // Gemma 2 / 3 (the defaults are every other family's behaviour).
  MlpActivation hidden_act = MlpActivation::kSilu;
  double query_pre_attn_scalar = 0.0;  // > 0: scores scaled by its ^-0.5 (0: head_dim^-0.5)
  double attn_logit_softcap = 0.0;     // > 0: each score s becomes cap * tanh(s / cap)
  double final_logit_softcap = 0.0;    // > 0: each logit x becomes cap * tanh(x / cap)
  double rope_local_theta = 0.0;       // > 0: RoPE base of the sliding layers (0: rope_theta)
  double rope_linear_factor = 0.0;     // > 0: the full-attention layers' positions / factor
  int64_t bos_token_id = -1;           // -1: none
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id (int or list)
  DType torch_dtype = DType::kF32;     // storage dtype of the checkpoint; CPU compute is fp32
  /// > 0: a sliding layer's query at position p attends to positions (p - sliding_window, p] only
  /// (transformers' rule kv_idx > q_idx - sliding_window). 0: every layer attends to all of [0, p].
  int64_t sliding_window = 0;
  /// [num_hidden_layers]: which layers slide (Gemma's local layers, Qwen2's layers from
  /// max_window_layers on). Empty with sliding_window > 0: every layer slides (Mistral).
  std::vector<bool> sliding_layers;

  // Mixture of experts (Qwen3-MoE, Mixtral): a sparse layer's MLP is num_experts SwiGLU experts
  // of width moe_intermediate_size, of which a router picks num_experts_per_tok per token.
  // num_experts 0: every layer is dense (intermediate_size).
  int64_t num_experts = 0;            // Qwen3-MoE num_experts, Mixtral num_local_experts
  int64_t num_experts_per_tok = 0;    // top-k, in [1, num_experts]
  int64_t moe_intermediate_size = 0;  // each expert's width (Mixtral: its intermediate_size)
  /// The chosen experts' weights: softmax over all experts' logits, then renormalised to sum 1
  /// over the top k (true; Mixtral always) or kept as they are (false).
  bool norm_topk_prob = false;
  int64_t decoder_sparse_step = 1;       // Qwen3-MoE: layer i is sparse when (i + 1) % step == 0
  std::vector<int64_t> mlp_only_layers;  // Qwen3-MoE: layers that stay dense regardless

  /// Whether `layer`'s MLP is the mixture of experts (transformers' Qwen3MoeDecoderLayer rule).
  bool IsMoeLayer(int64_t layer) const;

  /// Parses config.json text; `source` (the path) prefixes every error message.
  static absl::StatusOr<ModelConfig> FromJson(std::string_view json_text, std::string_view source);
  /// Reads DIR/config.json, and the stop ids of DIR/generation_config.json when there is one.
  static absl::StatusOr<ModelConfig> FromDirectory(const std::string& dir);

  /// The JSON a Hugging Face loader accepts for this config (used by `pagoda convert`).
  std::string ToJson() const;

  /// The window of `layer`: sliding_window for a sliding layer, 0 (full attention) otherwise.
  int64_t LayerWindow(int64_t layer) const;
  /// sliding_window when every layer slides with it, else 0: then the KV blocks wholly before the
  /// window of a sequence's next token are never read again by any layer (the engine frees them).
  int64_t UniformSlidingWindow() const;

  int64_t q_size() const { return num_attention_heads * head_dim; }
  int64_t kv_size() const { return num_key_value_heads * head_dim; }
  int64_t rotated_dims() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
};

/// The largest tensor-parallel size CheckTensorParallelSize considers (and lists).
inline constexpr int64_t kMaxTensorParallelSize = 64;

/// OK when the model can be split over `size` tensor-parallel ranks (Megatron sharding:
/// num_attention_heads, intermediate_size and moe_intermediate_size divisible by it,
/// num_key_value_heads divisible by it
/// or a divisor of it; with `expert_parallel` num_experts instead of moe_intermediate_size, as
/// each rank holds whole experts); otherwise InvalidArgument naming the field that does not
/// divide and the
/// sizes that would work, e.g. "num_attention_heads (9) is not divisible by the tensor parallel
/// size 2; tensor parallel sizes that work for this model: 1, 3, 9". Checked up front by every
/// command that starts workers, so a bad --tp fails at once instead of in every worker's Init.
absl::Status CheckTensorParallelSize(const ModelConfig& config, int64_t size,
                                     bool expert_parallel = false);

}  // namespace pagoda
