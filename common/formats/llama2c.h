// llama2.c checkpoints (Karpathy's run.c format), converted into a Hugging Face model folder:
// config.json (LlamaForCausalLM, float32) and model.safetensors.
//
// The checkpoint is 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means an untied classifier follows), then fp32
// tensors. llama2.c rotates interleaved pairs (2i, 2i+1) of each head while the Hugging Face
// LLaMA rotates halves (i, i + head_dim/2), so the wq and wk rows are permuted per head.
// The tokenizer (tok*.bin) is converted separately (common/llama2c_tokenizer.h).
//
//   RETURN_IF_ERROR(ConvertLlama2cCheckpoint("stories260K.bin", "/models/stories260K"));
//   ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory("/models/stories260K"));
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace pagoda {

/// The hyper-parameters in a llama2.c checkpoint header, validated against the file size.
struct Llama2cHeader {
  int64_t dim = 0;
  int64_t hidden_dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t vocab_size = 0;  // absolute value
  int64_t seq_len = 0;
  bool shared_classifier = true;  // the header's vocab_size was positive

  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return n_kv_heads * head_size(); }
  /// The equivalent Hugging Face config (LlamaForCausalLM, fp32, eps 1e-5, theta 10000).
  ModelConfig ToModelConfig() const;
};

/// Reads and validates the header of `checkpoint_path`, including the exact file size.
absl::StatusOr<Llama2cHeader> ReadLlama2cHeader(const std::string& checkpoint_path);

/// Writes out_dir/config.json and out_dir/model.safetensors (creating out_dir if needed).
absl::Status ConvertLlama2cCheckpoint(const std::string& checkpoint_path,
                                      const std::string& out_dir);

/// Converts checkpoint + tokenizer into out_dir (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json). The tokenizer's vocabulary size must match the checkpoint's.
absl::Status ConvertLlama2cModel(const std::string& checkpoint_path,
                                 const std::string& tokenizer_path, const std::string& out_dir);

}  // namespace pagoda
