#include "worker/model_weights.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/formats/safetensors.h"
#include "common/random.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

// Elements per unit of parallel work, for both loading and dummy initialization.
constexpr int64_t kChunkElements = int64_t{1} << 18;

// One checkpoint tensor and the part of it this rank holds: a window of its rows (dim 0) and, for
// matrices, of its columns (dim 1), stored row-major at a row range of a (possibly fused) matrix.
struct Slot {
  std::string name;
  std::vector<int64_t> shape;  // the whole checkpoint tensor's
  int64_t row_begin = 0;
  int64_t num_rows = 0;
  int64_t col_begin = 0;
  int64_t num_cols = 0;       // 1 for vectors
  int64_t reserved_rows = 0;  // rows the window takes in *dest (>= num_rows; the rest stay zero)
  std::vector<float>* dest = nullptr;
  int64_t offset = 0;  // elements into *dest
  // Where the whole tensor sits in the unsharded model: the index of its (fused) destination in
  // load order and the element offset into it. Dummy weights are a function of these, so a
  // shard's dummy weights are slices of the unsharded ones.
  uint64_t full_index = 0;
  int64_t full_offset = 0;

  int64_t cols() const { return shape.size() == 2 ? shape[1] : 1; }
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The tensors of `config` that the shard of `layout` holds, each bound to its destination (left
// empty: see SizeDestinations).
std::vector<Slot> PlanSlots(const ModelConfig& config, const ShardLayout& layout,
                            ModelWeights& weights) {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t q = config.q_size();
  const int64_t kv = config.kv_size();
  const int64_t hd = config.head_dim;
  const int64_t local_q = layout.q_size();
  const int64_t local_kv = layout.kv_size();
  const int64_t local_inter = layout.intermediate_size;
  std::vector<Slot> slots;
  uint64_t num_full_tensors = 0;
  const auto next_full_tensor = [&] { return ++num_full_tensors; };
  // Adds a slot holding the whole tensor; rows() and cols() then narrow its window.
  const auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float>& dest,
                       int64_t offset, uint64_t full_index, int64_t full_offset) -> Slot& {
    Slot& slot = slots.emplace_back();
    slot.name = std::move(name);
    slot.shape = std::move(shape);
    slot.num_rows = slot.reserved_rows = slot.shape[0];
    slot.num_cols = slot.cols();
    slot.dest = &dest;
    slot.offset = offset;
    slot.full_index = full_index;
    slot.full_offset = full_offset;
    return slot;
  };
  const auto rows = [](Slot& slot, int64_t begin, int64_t n) {
    slot.row_begin = begin;
    slot.num_rows = slot.reserved_rows = n;
  };
  const auto cols = [](Slot& slot, int64_t begin, int64_t n) {
    slot.col_begin = begin;
    slot.num_cols = n;
  };

  const uint64_t embedding = next_full_tensor();
  add("model.embed_tokens.weight", {config.vocab_size, hidden}, weights.embed_tokens, 0, embedding,
      0);
  weights.layers.resize(config.num_hidden_layers);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[i];
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    add(prefix + "input_layernorm.weight", {hidden}, layer.input_layernorm, 0, next_full_tensor(),
        0);
    // Column-parallel q/k/v: this rank's heads, fused as [q; k; v].
    const uint64_t qkv = next_full_tensor();
    rows(add(prefix + "self_attn.q_proj.weight", {q, hidden}, layer.qkv_proj, 0, qkv, 0),
         layout.head_begin * hd, local_q);
    rows(add(prefix + "self_attn.k_proj.weight", {kv, hidden}, layer.qkv_proj, local_q * hidden,
             qkv, q * hidden),
         layout.kv_head_begin * hd, local_kv);
    rows(add(prefix + "self_attn.v_proj.weight", {kv, hidden}, layer.qkv_proj,
             (local_q + local_kv) * hidden, qkv, (q + kv) * hidden),
         layout.kv_head_begin * hd, local_kv);
    if (config.attention_bias) {
      const uint64_t bias = next_full_tensor();
      rows(add(prefix + "self_attn.q_proj.bias", {q}, layer.qkv_bias, 0, bias, 0),
           layout.head_begin * hd, local_q);
      rows(add(prefix + "self_attn.k_proj.bias", {kv}, layer.qkv_bias, local_q, bias, q),
           layout.kv_head_begin * hd, local_kv);
      rows(add(prefix + "self_attn.v_proj.bias", {kv}, layer.qkv_bias, local_q + local_kv, bias,
               q + kv),
           layout.kv_head_begin * hd, local_kv);
    }
    // Row-parallel o_proj: the columns of this rank's heads.
    cols(add(prefix + "self_attn.o_proj.weight", {hidden, q}, layer.o_proj, 0, next_full_tensor(),
             0),
         layout.head_begin * hd, local_q);
    if (config.o_proj_bias) {
      rows(add(prefix + "self_attn.o_proj.bias", {hidden}, layer.o_bias, 0, next_full_tensor(), 0),
           0, layout.holds_o_bias ? hidden : 0);
    }
    add(prefix + "post_attention_layernorm.weight", {hidden}, layer.post_attention_layernorm, 0,
        next_full_tensor(), 0);
    const uint64_t gate_up = next_full_tensor();
    rows(add(prefix + "mlp.gate_proj.weight", {inter, hidden}, layer.gate_up_proj, 0, gate_up, 0),
         layout.intermediate_begin, local_inter);
    rows(add(prefix + "mlp.up_proj.weight", {inter, hidden}, layer.gate_up_proj,
             local_inter * hidden, gate_up, inter * hidden),
         layout.intermediate_begin, local_inter);
    cols(add(prefix + "mlp.down_proj.weight", {hidden, inter}, layer.down_proj, 0,
             next_full_tensor(), 0),
         layout.intermediate_begin, local_inter);
  }
  add("model.norm.weight", {hidden}, weights.norm, 0, next_full_tensor(), 0);
  // Vocab-parallel LM head: V' rows per rank, those past the vocabulary left zero. A tied head
  // needs its own copy of the embedding rows only when sharded.
  const bool sharded = layout.shard.size > 1;
  if (!config.tie_word_embeddings || sharded) {
    Slot& head = config.tie_word_embeddings
                     ? add("model.embed_tokens.weight", {config.vocab_size, hidden},
                           weights.lm_head, 0, embedding, 0)
                     : add("lm_head.weight", {config.vocab_size, hidden}, weights.lm_head, 0,
                           next_full_tensor(), 0);
    rows(head, layout.vocab_begin, layout.vocab_valid_rows);
    head.reserved_rows = layout.vocab_rows;
  }
  return slots;
}

// Sizes every destination to hold its slots.
void SizeDestinations(const std::vector<Slot>& slots) {
  for (const Slot& slot : slots) {
    const size_t end = static_cast<size_t>(slot.offset + slot.reserved_rows * slot.num_cols);
    if (slot.dest->size() < end) slot.dest->resize(end);
  }
}

// Checkpoint entries that are not weights: buffers some exporters save.
bool IsIgnorable(const std::string& name, const ModelConfig& config) {
  if (absl::EndsWith(name, "rotary_emb.inv_freq")) return true;
  return config.tie_word_embeddings && name == "lm_head.weight";  // tied: the embedding wins
}

// Converts elements [first, first + count) of `tensor` into `dest`.
absl::Status ConvertElements(const TensorInfo& tensor, int64_t first, int64_t count, float* dest) {
  const size_t element_size = SafetensorsDTypeSize(tensor.dtype);
  TensorInfo part;
  part.name = tensor.name;
  part.dtype = tensor.dtype;
  part.shape = {count};
  part.data = tensor.data.subspan(static_cast<size_t>(first) * element_size,
                                  static_cast<size_t>(count) * element_size);
  return ConvertToFloat(part, std::span<float>(dest, static_cast<size_t>(count)));
}

// Element `i` of dummy tensor `tensor_index`, uniform in [-1, 1). Chunk c = i / kChunkElements
// has its own SplitMix64 stream (the same values a sequential fill of the chunk draws), and its
// j-th draw is a function of j: any element can be computed alone, in any order.
float DummyUniform(uint64_t seed, uint64_t tensor_index, int64_t i) {
  const uint64_t chunk = static_cast<uint64_t>(i / kChunkElements);
  const uint64_t j = static_cast<uint64_t>(i % kChunkElements);
  const uint64_t stream =
      seed ^ (tensor_index * 0xd1b54a32d192ed03ull) ^ (chunk * 0x8cb92ba72f3d8dd7ull);
  // The stream skips its first draw.
  const uint64_t z = SplitMix64(stream, j + 2);
  // 24 random bits -> [0, 1) exactly representable in fp32.
  const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  return 2.0f * unit - 1.0f;
}

// Fills the window of `slot` with its elements of the unsharded dummy tensor, scaled by `bound`.
void FillUniform(const Slot& slot, float bound, uint64_t seed) {
  float* dest = slot.dest->data() + slot.offset;
  const int64_t cols = slot.cols();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < slot.num_rows; ++r) {
    const int64_t full_row = slot.full_offset + (slot.row_begin + r) * cols + slot.col_begin;
    for (int64_t c = 0; c < slot.num_cols; ++c) {
      dest[r * slot.num_cols + c] = bound * DummyUniform(seed, slot.full_index, full_row + c);
    }
  }
}

}  // namespace

int64_t ModelWeights::num_bytes() const {
  int64_t floats = static_cast<int64_t>(embed_tokens.size() + norm.size() + lm_head.size());
  for (const LayerWeights& layer : layers) {
    floats += static_cast<int64_t>(layer.input_layernorm.size() + layer.qkv_proj.size() +
                                   layer.qkv_bias.size() + layer.o_proj.size() +
                                   layer.o_bias.size() + layer.post_attention_layernorm.size() +
                                   layer.gate_up_proj.size() + layer.down_proj.size());
  }
  return floats * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const std::string& dir,
                                              const TensorParallelShard& shard) {
  ASSIGN_OR_RETURN(const ShardLayout layout, ComputeShardLayout(config, shard));
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> checkpoint,
                   SafetensorsCheckpoint::Open(dir));
  // Validate everything against the config before allocating anything.
  ModelWeights weights;
  const std::vector<Slot> slots = PlanSlots(config, layout, weights);
  absl::flat_hash_set<std::string> expected;
  for (const Slot& slot : slots) {
    expected.insert(slot.name);
    const TensorInfo* info = checkpoint->Find(slot.name);
    if (info == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": tensor ", slot.name, " is missing from the checkpoint"));
    }
    const std::string& file = checkpoint->FileOf(slot.name);
    if (info->dtype != SafetensorsDType::kF32 && info->dtype != SafetensorsDType::kF16 &&
        info->dtype != SafetensorsDType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", slot.name, " has dtype ",
                                                     std::string(SafetensorsDTypeName(info->dtype)),
                                                     "; expected F32, F16 or BF16"));
    }
    if (info->shape != slot.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor ", slot.name, " has shape ", ShapeString(info->shape), " but ",
          checkpoint->dir(), "/config.json implies ", ShapeString(slot.shape)));
    }
  }
  for (const std::string& name : checkpoint->TensorNames()) {
    if (!expected.contains(name) && !IsIgnorable(name, config)) {
      return absl::InvalidArgumentError(
          absl::StrCat(checkpoint->FileOf(name), ": unexpected tensor ", name, " (not part of a ",
                       config.architecture, " with this config.json)"));
    }
  }

  SizeDestinations(slots);
  // Convert in chunks of rows so one big embedding does not serialize the work. Only the
  // window of each tensor is read: row slices are contiguous in the file, column slices are
  // read row by row.
  struct Chunk {
    const Slot* slot;
    const TensorInfo* info;
    int64_t row_begin, row_end;  // rows of the window
  };
  std::vector<Chunk> chunks;
  for (const Slot& slot : slots) {
    const TensorInfo* info = checkpoint->Find(slot.name);
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElements / slot.num_cols);
    for (int64_t begin = 0; begin < slot.num_rows; begin += rows_per_chunk) {
      chunks.push_back({&slot, info, begin, std::min(slot.num_rows, begin + rows_per_chunk)});
    }
  }
  std::vector<absl::Status> statuses(chunks.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& chunk = chunks[c];
    const Slot& slot = *chunk.slot;
    const int64_t cols = slot.cols();
    float* dest = slot.dest->data() + slot.offset;
    if (slot.num_cols == cols) {
      const int64_t first = (slot.row_begin + chunk.row_begin) * cols;
      statuses[c] = ConvertElements(*chunk.info, first, (chunk.row_end - chunk.row_begin) * cols,
                                    dest + chunk.row_begin * cols);
      continue;
    }
    for (int64_t r = chunk.row_begin; r < chunk.row_end && statuses[c].ok(); ++r) {
      statuses[c] = ConvertElements(*chunk.info, (slot.row_begin + r) * cols + slot.col_begin,
                                    slot.num_cols, dest + r * slot.num_cols);
    }
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (!statuses[c].ok()) {
      return absl::Status(statuses[c].code(), absl::StrCat(checkpoint->FileOf(chunks[c].slot->name),
                                                           ": ", statuses[c].message()));
    }
  }
  return weights;
}

ModelWeights DummyModelWeights(const ModelConfig& config, uint64_t seed,
                               const TensorParallelShard& shard) {
  absl::StatusOr<ShardLayout> layout = ComputeShardLayout(config, shard);
  PAGODA_CHECK(layout.ok()) << "DummyModelWeights: " << layout.status();
  ModelWeights weights;
  const std::vector<Slot> slots = PlanSlots(config, *layout, weights);
  SizeDestinations(slots);
  for (const Slot& slot : slots) {
    const bool is_norm =
        absl::EndsWith(slot.name, "layernorm.weight") || slot.name == "model.norm.weight";
    const bool is_embedding =
        slot.name == "model.embed_tokens.weight" || slot.name == "lm_head.weight";
    if (is_norm) {
      std::fill(slot.dest->begin(), slot.dest->end(), 1.0f);
    } else if (is_embedding) {
      FillUniform(slot, 0.1f, seed);
    } else {
      // Biases share their projection's fan-in (hidden for q/k/v, q_size for o), as in PyTorch;
      // the fan-in is the unsharded one, so that a shard holds slices of the unsharded weights.
      int64_t fan_in = config.hidden_size;
      if (absl::EndsWith(slot.name, "o_proj.weight")) fan_in = config.q_size();
      if (absl::EndsWith(slot.name, "down_proj.weight")) fan_in = config.intermediate_size;
      if (absl::EndsWith(slot.name, "o_proj.bias")) fan_in = config.q_size();
      FillUniform(slot, 1.0f / std::sqrt(static_cast<float>(fan_in)), seed);
    }
  }
  return weights;
}

}  // namespace pagoda
