#include "worker/model_weights.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

// Elements per unit of parallel work, for both loading and dummy initialization.
constexpr int64_t kChunkElements = int64_t{1} << 18;

// One checkpoint tensor and where its fp32 values go: a row range of a (possibly fused) matrix.
struct Slot {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float>* dest;
  int64_t offset;  // elements into *dest
};

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The tensors of `config`, each bound to its destination (left empty: see SizeDestinations).
std::vector<Slot> PlanSlots(const ModelConfig& config, ModelWeights& weights) {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t q = config.q_size();
  const int64_t kv = config.kv_size();
  std::vector<Slot> slots;
  auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float>& dest,
                 int64_t offset) {
    slots.push_back({std::move(name), std::move(shape), &dest, offset});
  };
  add("model.embed_tokens.weight", {config.vocab_size, hidden}, weights.embed_tokens, 0);
  weights.layers.resize(config.num_hidden_layers);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[i];
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    add(prefix + "input_layernorm.weight", {hidden}, layer.input_layernorm, 0);
    add(prefix + "self_attn.q_proj.weight", {q, hidden}, layer.qkv_proj, 0);
    add(prefix + "self_attn.k_proj.weight", {kv, hidden}, layer.qkv_proj, q * hidden);
    add(prefix + "self_attn.v_proj.weight", {kv, hidden}, layer.qkv_proj, (q + kv) * hidden);
    if (config.attention_bias) {
      add(prefix + "self_attn.q_proj.bias", {q}, layer.qkv_bias, 0);
      add(prefix + "self_attn.k_proj.bias", {kv}, layer.qkv_bias, q);
      add(prefix + "self_attn.v_proj.bias", {kv}, layer.qkv_bias, q + kv);
    }
    add(prefix + "self_attn.o_proj.weight", {hidden, q}, layer.o_proj, 0);
    if (config.o_proj_bias) {
      add(prefix + "self_attn.o_proj.bias", {hidden}, layer.o_bias, 0);
    }
    add(prefix + "post_attention_layernorm.weight", {hidden}, layer.post_attention_layernorm, 0);
    add(prefix + "mlp.gate_proj.weight", {inter, hidden}, layer.gate_up_proj, 0);
    add(prefix + "mlp.up_proj.weight", {inter, hidden}, layer.gate_up_proj, inter * hidden);
    add(prefix + "mlp.down_proj.weight", {hidden, inter}, layer.down_proj, 0);
  }
  add("model.norm.weight", {hidden}, weights.norm, 0);
  if (!config.tie_word_embeddings) {
    add("lm_head.weight", {config.vocab_size, hidden}, weights.lm_head, 0);
  }
  return slots;
}

// Sizes every destination to hold its slots.
void SizeDestinations(const std::vector<Slot>& slots) {
  for (const Slot& slot : slots) {
    const size_t end = static_cast<size_t>(slot.offset + NumElements(slot.shape));
    if (slot.dest->size() < end) slot.dest->resize(end);
  }
}

// Checkpoint entries that are not weights: buffers some exporters save.
bool IsIgnorable(const std::string& name, const ModelConfig& config) {
  if (absl::EndsWith(name, "rotary_emb.inv_freq")) return true;
  return config.tie_word_embeddings && name == "lm_head.weight";  // tied: the embedding wins
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills `values` uniformly in [-bound, bound); chunk c of tensor t has its own stream, so the
// result does not depend on the thread count.
void FillUniform(std::vector<float>& values, float bound, uint64_t seed, uint64_t tensor_index) {
  const int64_t n = static_cast<int64_t>(values.size());
  const int64_t num_chunks = (n + kChunkElements - 1) / kChunkElements;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < num_chunks; ++c) {
    uint64_t state = seed ^ (tensor_index * 0xd1b54a32d192ed03ull) ^
                     (static_cast<uint64_t>(c) * 0x8cb92ba72f3d8dd7ull);
    SplitMix64(state);
    const int64_t end = std::min(n, (c + 1) * kChunkElements);
    for (int64_t i = c * kChunkElements; i < end; ++i) {
      // 24 random bits -> [0, 1) exactly representable in fp32.
      const float unit = static_cast<float>(SplitMix64(state) >> 40) * (1.0f / 16777216.0f);
      values[i] = bound * (2.0f * unit - 1.0f);
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

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> checkpoint,
                   SafetensorsCheckpoint::Open(dir));
  // Validate everything against the config before allocating anything.
  ModelWeights weights;
  const std::vector<Slot> slots = PlanSlots(config, weights);
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
  // Convert in chunks so one big embedding does not serialize the work.
  struct Chunk {
    const Slot* slot;
    const TensorInfo* info;
    int64_t begin, end;  // elements
  };
  std::vector<Chunk> chunks;
  for (const Slot& slot : slots) {
    const TensorInfo* info = checkpoint->Find(slot.name);
    const int64_t n = NumElements(slot.shape);
    for (int64_t begin = 0; begin < n; begin += kChunkElements) {
      chunks.push_back({&slot, info, begin, std::min(n, begin + kChunkElements)});
    }
  }
  std::vector<absl::Status> statuses(chunks.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& chunk = chunks[c];
    const size_t element_size = SafetensorsDTypeSize(chunk.info->dtype);
    TensorInfo part;
    part.name = chunk.slot->name;
    part.dtype = chunk.info->dtype;
    part.shape = {chunk.end - chunk.begin};
    part.data =
        chunk.info->data.subspan(static_cast<size_t>(chunk.begin) * element_size,
                                 static_cast<size_t>(chunk.end - chunk.begin) * element_size);
    float* dest = chunk.slot->dest->data() + chunk.slot->offset + chunk.begin;
    statuses[c] = ConvertToFloat(part, std::span<float>(dest, chunk.end - chunk.begin));
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (!statuses[c].ok()) {
      return absl::Status(statuses[c].code(), absl::StrCat(checkpoint->FileOf(chunks[c].slot->name),
                                                           ": ", statuses[c].message()));
    }
  }
  return weights;
}

ModelWeights DummyModelWeights(const ModelConfig& config, uint64_t seed) {
  ModelWeights weights;
  const std::vector<Slot> slots = PlanSlots(config, weights);
  SizeDestinations(slots);
  // Fill each destination once (fused matrices share one fan-in, so one bound serves them all).
  uint64_t tensor_index = 0;
  const std::vector<float>* previous = nullptr;
  for (const Slot& slot : slots) {
    std::vector<float>& dest = *slot.dest;
    if (&dest == previous) continue;
    previous = &dest;
    ++tensor_index;
    const bool is_norm =
        absl::EndsWith(slot.name, "layernorm.weight") || slot.name == "model.norm.weight";
    const bool is_embedding =
        slot.name == "model.embed_tokens.weight" || slot.name == "lm_head.weight";
    if (is_norm) {
      std::fill(dest.begin(), dest.end(), 1.0f);
    } else if (is_embedding) {
      FillUniform(dest, 0.1f, seed, tensor_index);
    } else {
      // Biases share their projection's fan-in (hidden for q/k/v, q_size for o), as in PyTorch.
      int64_t fan_in = config.hidden_size;
      if (absl::EndsWith(slot.name, "o_proj.weight")) fan_in = config.q_size();
      if (absl::EndsWith(slot.name, "down_proj.weight")) fan_in = config.intermediate_size;
      if (absl::EndsWith(slot.name, "o_proj.bias")) fan_in = config.q_size();
      FillUniform(dest, 1.0f / std::sqrt(static_cast<float>(fan_in)), seed, tensor_index);
    }
  }
  return weights;
}

}  // namespace pagoda
