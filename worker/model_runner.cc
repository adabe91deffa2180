#include "worker/model_runner.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/kv_cache_write.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"

namespace pagoda {
namespace {

// Grows a buffer to at least n elements; the contents are overwritten by the step.
template <typename T>
T* Reserve(std::vector<T>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

// out = in @ weight^T (+ bias broadcast over rows).
absl::Status Linear(const float* in, const std::vector<float>& weight,
                    const std::vector<float>& bias, float* out, int64_t rows, int64_t out_features,
                    int64_t in_features) {
  float beta = 0.0f;
  if (!bias.empty()) {
    for (int64_t r = 0; r < rows; ++r) std::copy(bias.begin(), bias.end(), out + r * out_features);
    beta = 1.0f;
  }
  return kernels::Gemm({.a = in,
                        .b = weight.data(),
                        .c = out,
                        .m = rows,
                        .n = out_features,
                        .k = in_features,
                        .beta = beta});
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(
    const ModelConfig& config, ModelWeights weights, const ModelRunnerOptions& options) {
  ASSIGN_OR_RETURN(const ShardLayout layout, ComputeShardLayout(config, options.shard));
  const TensorParallelShard& shard = options.shard;
  Communicator* communicator = options.communicator;
  if (shard.size > 1 && communicator == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel size ", shard.size, " needs a communicator"));
  }
  if (communicator != nullptr &&
      (communicator->rank() != shard.rank || communicator->size() != shard.size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the communicator is rank ", communicator->rank(), " of ", communicator->size(),
        " but the model shard is rank ", shard.rank, " of ", shard.size));
  }
  if (static_cast<int64_t>(weights.layers.size()) != config.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("model weights have ", weights.layers.size(),
                                                   " layers but the config says ",
                                                   config.num_hidden_layers));
  }
  const int64_t hidden = config.hidden_size;
  const auto floats = [](const std::vector<float>& v) { return static_cast<int64_t>(v.size()); };
  if ((!weights.layers.empty() &&
       (floats(weights.layers[0].qkv_proj) != layout.qkv_width() * hidden ||
        floats(weights.layers[0].gate_up_proj) != 2 * layout.intermediate_size * hidden)) ||
      floats(weights.lm_head_or_embedding()) != layout.vocab_rows * hidden) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model weights are not those of tensor parallel rank ", shard.rank, " of ", shard.size));
  }
  ASSIGN_OR_RETURN(KvCache kv_cache, KvCache::Create({.num_layers = config.num_hidden_layers,
                                                      .num_blocks = options.num_blocks,
                                                      .block_size = options.block_size,
                                                      .num_kv_heads = layout.num_kv_heads,
                                                      .head_dim = config.head_dim}));
  const int64_t max_positions =
      options.max_positions > 0 ? options.max_positions : config.max_position_embeddings;
  ASSIGN_OR_RETURN(kernels::RopeCache rope,
                   kernels::BuildRopeCache({.head_dim = config.head_dim,
                                            .max_positions = max_positions,
                                            .theta = config.rope_theta,
                                            .llama3 = config.rope_scaling}));
  return std::unique_ptr<ModelRunner>(new ModelRunner(
      config, layout, communicator, std::move(weights), std::move(kv_cache), std::move(rope)));
}

absl::Status ModelRunner::AllReduce(float* data, int64_t count) {
  if (communicator_ == nullptr) return absl::OkStatus();
  return communicator_->AllReduceSum(data, count);
}

absl::Status ModelRunner::ValidateBatch(absl::Span<const SequenceInput> batch) const {
  const int64_t block_size = kv_cache_.shape().block_size;
  const int64_t num_blocks = kv_cache_.shape().num_blocks;
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& seq = batch[s];
    const int64_t seq_len = seq.num_computed_tokens + static_cast<int64_t>(seq.token_ids.size());
    if (seq.token_ids.empty() || seq.num_computed_tokens < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, " of the step has no new tokens or a negative start"));
    }
    if (seq_len > rope_.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " reaches position ",
                                                     seq_len - 1, " but the model supports ",
                                                     rope_.max_positions, " positions"));
    }
    const int64_t blocks_needed = (seq_len + block_size - 1) / block_size;
    if (static_cast<int64_t>(seq.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", s, " has ", seq_len, " tokens of context but its block table holds ",
          seq.block_table.size(), " blocks of ", block_size));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      if (seq.block_table[b] < 0 || seq.block_table[b] >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", s, " uses block ", seq.block_table[b], " outside [0, ", num_blocks, ")"));
      }
    }
    for (const int32_t id : seq.token_ids) {
      if (id < 0 || id >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has token id ", id,
                                                       " outside the vocabulary [0, ",
                                                       config_.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

void ModelRunner::PrepareMetadata(absl::Span<const SequenceInput> batch) {
  const int64_t block_size = kv_cache_.shape().block_size;
  token_ids_.clear();
  positions_.clear();
  slot_mapping_.clear();
  query_start_loc_.assign(1, 0);
  seq_lens_.clear();
  max_blocks_per_seq_ = 1;
  for (const SequenceInput& seq : batch) {
    const int64_t seq_len = seq.num_computed_tokens + static_cast<int64_t>(seq.token_ids.size());
    for (size_t i = 0; i < seq.token_ids.size(); ++i) {
      const int64_t pos = seq.num_computed_tokens + static_cast<int64_t>(i);
      token_ids_.push_back(seq.token_ids[i]);
      positions_.push_back(static_cast<int32_t>(pos));
      slot_mapping_.push_back(int64_t{seq.block_table[pos / block_size]} * block_size +
                              pos % block_size);
    }
    query_start_loc_.push_back(static_cast<int32_t>(token_ids_.size()));
    seq_lens_.push_back(static_cast<int32_t>(seq_len));
    max_blocks_per_seq_ = std::max(max_blocks_per_seq_, (seq_len + block_size - 1) / block_size);
  }
  block_tables_.assign(batch.size() * max_blocks_per_seq_, 0);
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = std::min<int64_t>(max_blocks_per_seq_, batch[s].block_table.size());
    std::copy_n(batch[s].block_table.begin(), n, block_tables_.begin() + s * max_blocks_per_seq_);
  }
}

absl::Status ModelRunner::RunLayer(int64_t layer, int64_t num_tokens) {
  // Sizes are this shard's: its heads and its slice of the MLP.
  const LayerWeights& w = weights_.layers[layer];
  const int64_t hidden = config_.hidden_size;
  const int64_t q_size = layout_.q_size();
  const int64_t kv_size = layout_.kv_size();
  const int64_t qkv_width = layout_.qkv_width();
  const int64_t inter = layout_.intermediate_size;

  float* qkv = Reserve(qkv_, num_tokens * qkv_width);
  RETURN_IF_ERROR(
      Linear(hidden_.data(), w.qkv_proj, w.qkv_bias, qkv, num_tokens, qkv_width, hidden));
  float* q = qkv;
  float* k = qkv + q_size;
  float* v = qkv + q_size + kv_size;
  RETURN_IF_ERROR(kernels::ApplyRotary({.q = q,
                                        .k = k,
                                        .positions = positions_.data(),
                                        .cache = &rope_,
                                        .num_tokens = num_tokens,
                                        .num_heads = layout_.num_heads,
                                        .num_kv_heads = layout_.num_kv_heads,
                                        .head_dim = config_.head_dim,
                                        .q_stride = qkv_width,
                                        .k_stride = qkv_width,
                                        .style = kernels::RotaryStyle::kRotateHalf}));
  const KvCacheShape& shape = kv_cache_.shape();
  // The step's token ids, slots and block tables were checked once (ValidateBatch, or the
  // StepRunner's plan check): the kernels skip their index scans, which would repeat per layer.
  RETURN_IF_ERROR(kernels::WriteKvCache({.key = k,
                                         .value = v,
                                         .key_cache = kv_cache_.key(layer),
                                         .value_cache = kv_cache_.value(layer),
                                         .slot_mapping = slot_mapping_.data(),
                                         .num_tokens = num_tokens,
                                         .num_kv_heads = shape.num_kv_heads,
                                         .head_dim = shape.head_dim,
                                         .block_size = shape.block_size,
                                         .num_blocks = shape.num_blocks,
                                         .key_stride = qkv_width,
                                         .value_stride = qkv_width,
                                         .slots_checked = true}));
  float* attn = Reserve(attn_, num_tokens * q_size);
  RETURN_IF_ERROR(kernels::PagedAttention(
      {.out = attn,
       .q = q,
       .key_cache = kv_cache_.key(layer),
       .value_cache = kv_cache_.value(layer),
       .block_tables = block_tables_.data(),
       .query_start_loc = query_start_loc_.data(),
       .seq_lens = seq_lens_.data(),
       .num_seqs = static_cast<int64_t>(seq_lens_.size()),
       .num_tokens = num_tokens,
       .num_heads = layout_.num_heads,
       .num_kv_heads = shape.num_kv_heads,
       .head_dim = shape.head_dim,
       .block_size = shape.block_size,
       .num_blocks = shape.num_blocks,
       .max_blocks_per_seq = max_blocks_per_seq_,
       .q_stride = qkv_width,
       .scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim))),
       .block_ids_checked = true}));
  float* proj = Reserve(proj_, num_tokens * hidden);
  // Row-parallel o_proj: each rank's heads give a partial sum (rank 0 adds the bias).
  RETURN_IF_ERROR(Linear(attn, w.o_proj, w.o_bias, proj, num_tokens, hidden, q_size));
  RETURN_IF_ERROR(AllReduce(proj, num_tokens * hidden));
  // residual += attention output; hidden = post_attention_layernorm(residual).
  RETURN_IF_ERROR(kernels::RmsNorm({.input = proj,
                                    .weight = w.post_attention_layernorm.data(),
                                    .output = hidden_.data(),
                                    .residual = residual_.data(),
                                    .num_tokens = num_tokens,
                                    .hidden_size = hidden,
                                    .eps = static_cast<float>(config_.rms_norm_eps)}));
  float* gate_up = Reserve(gate_up_, num_tokens * 2 * inter);
  RETURN_IF_ERROR(
      Linear(hidden_.data(), w.gate_up_proj, {}, gate_up, num_tokens, 2 * inter, hidden));
  float* act = Reserve(act_, num_tokens * inter);
  RETURN_IF_ERROR(
      kernels::SiluAndMul({.input = gate_up, .output = act, .num_tokens = num_tokens, .d = inter}));
  RETURN_IF_ERROR(Linear(act, w.down_proj, {}, proj, num_tokens, hidden, inter));
  RETURN_IF_ERROR(AllReduce(proj, num_tokens * hidden));
  // The next sub-block's norm (next layer's input norm, or the final norm) adds proj into
  // the residual stream.
  const std::vector<float>& next_norm = layer + 1 < config_.num_hidden_layers
                                            ? weights_.layers[layer + 1].input_layernorm
                                            : weights_.norm;
  return kernels::RmsNorm({.input = proj,
                           .weight = next_norm.data(),
                           .output = hidden_.data(),
                           .residual = residual_.data(),
                           .num_tokens = num_tokens,
                           .hidden_size = hidden,
                           .eps = static_cast<float>(config_.rms_norm_eps)});
}

absl::StatusOr<StepLogits*> ModelRunner::Execute(absl::Span<const SequenceInput> batch) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  return ExecuteValidated(batch);
}

absl::StatusOr<StepLogits*> ModelRunner::ExecuteValidated(absl::Span<const SequenceInput> batch) {
  assert(ValidateBatch(batch).ok());
  PrepareMetadata(batch);
  const int64_t num_tokens = static_cast<int64_t>(token_ids_.size());
  const int64_t hidden = config_.hidden_size;
  logits_.num_rows = 0;
  logits_.vocab_size = config_.vocab_size;
  logits_.seq_index.clear();
  if (num_tokens == 0) return &logits_;

  float* residual = Reserve(residual_, num_tokens * hidden);
  Reserve(hidden_, num_tokens * hidden);
  RETURN_IF_ERROR(kernels::Embedding({.token_ids = token_ids_.data(),
                                      .table = weights_.embed_tokens.data(),
                                      .output = residual,
                                      .num_tokens = num_tokens,
                                      .vocab_size = config_.vocab_size,
                                      .hidden_size = hidden,
                                      .token_ids_checked = true}));
  RETURN_IF_ERROR(kernels::RmsNorm({.input = residual,
                                    .weight = weights_.layers[0].input_layernorm.data(),
                                    .output = hidden_.data(),
                                    .num_tokens = num_tokens,
                                    .hidden_size = hidden,
                                    .eps = static_cast<float>(config_.rms_norm_eps)}));
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    RETURN_IF_ERROR(RunLayer(layer, num_tokens));
  }

  // hidden_ now holds the final-normed states; the LM head runs only on sampling rows.
  for (size_t s = 0; s < batch.size(); ++s) {
    if (batch[s].sample) logits_.seq_index.push_back(static_cast<int32_t>(s));
  }
  const int64_t rows = static_cast<int64_t>(logits_.seq_index.size());
  logits_.num_rows = rows;
  if (rows == 0) return &logits_;
  float* last = Reserve(last_hidden_, rows * hidden);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t token = query_start_loc_[logits_.seq_index[r] + 1] - 1;
    std::copy_n(hidden_.data() + token * hidden, hidden, last + r * hidden);
  }
  RETURN_IF_ERROR(ComputeLogits(rows));
  return &logits_;
}

absl::Status ModelRunner::ComputeLogits(int64_t rows) {
  const int64_t hidden = config_.hidden_size;
  const int64_t vocab = config_.vocab_size;
  const float* head = weights_.lm_head_or_embedding().data();
  float* logits = Reserve(logits_.values, rows * vocab);
  const int64_t tp_size = layout_.shard.size;
  if (tp_size == 1) {
    return kernels::Gemm(
        {.a = last_hidden_.data(), .b = head, .c = logits, .m = rows, .n = vocab, .k = hidden});
  }
  // Vocab-parallel: this rank's V' logits of every row, then every rank's side by side.
  const int64_t local_vocab = layout_.vocab_rows;
  float* local = Reserve(local_logits_, rows * local_vocab);
  RETURN_IF_ERROR(kernels::Gemm(
      {.a = last_hidden_.data(), .b = head, .c = local, .m = rows, .n = local_vocab, .k = hidden}));
  float* gathered = Reserve(gathered_logits_, tp_size * rows * local_vocab);
  RETURN_IF_ERROR(communicator_->AllGather(local, rows * local_vocab, gathered));
  // gathered is [tp_size, rows, V']; the padding rows of the last ranks are dropped.
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < tp_size && k * local_vocab < vocab; ++k) {
      const int64_t n = std::min(local_vocab, vocab - k * local_vocab);
      std::copy_n(gathered + (k * rows + r) * local_vocab, n, logits + r * vocab + k * local_vocab);
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda
