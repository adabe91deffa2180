#include "worker/model_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/formats/gguf.h"
#include "common/formats/gguf_model_config.h"
#include "common/formats/safetensors.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "kernels/dequantize.h"
#include "worker/models/registry.h"

namespace pagoda {
namespace {

// Elements per unit of parallel work, for both loading and dummy initialization.
constexpr int64_t kChunkElements = int64_t{1} << 18;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Where a slot's values come from: a checkpoint tensor's bytes (null data: dummy values).
struct Source {
  DType dtype = DType::kF32;
  std::span<const std::byte> data;
  const std::string* file = nullptr;  // for error messages
  bool rope_permuted = false;         // rows permuted for GGML's pairwise RoPE (GGUF llama)
  float offset = 0.0f;                // added to every element of a vector (WeightSlot::hf_offset)
};

// The checkpoint tensors of a plan's slots, and what keeps their bytes alive.
struct Sources {
  std::vector<Source> by_slot;  // [plan.slots.size()]
  /// Set when the bytes outlive loading (a GGUF file): whole tensors are then viewed, not copied.
  std::shared_ptr<const void> owner;
  bool dummy = false;
  uint64_t seed = 0;  // dummy weights
};

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

// The dummy values of a slot's kind: norms 1, embeddings +-0.1, projections and biases
// +-1/sqrt(fan_in) (the fan-in is the unsharded one, so a shard holds slices of the unsharded
// weights).
float DummyBound(const WeightSlot& slot) {
  switch (slot.kind) {
    case WeightKind::kEmbedding:
      return 0.1f;
    case WeightKind::kNorm:
      return 0.0f;  // unused: norms are 1
    case WeightKind::kProjection:
    case WeightKind::kBias:
      return 1.0f / std::sqrt(static_cast<float>(slot.fan_in));
  }
  return 0.0f;
}

// The row of the checkpoint tensor that holds Hugging Face row `row` of `slot`. A GGUF `llama`
// file stores each head's Q/K rows permuted for GGML's pairwise RoPE:
//   hf_row[j * head_dim/2 + i] = gguf_row[2 * i + j]   (i < head_dim/2, j in {0, 1}).
int64_t SourceRow(const WeightSlot& slot, const Source& source, int64_t row) {
  if (!source.rope_permuted || slot.rope_heads <= 0) return row;
  const int64_t head_rows = slot.shape[0] / slot.rope_heads;
  const int64_t half = head_rows / 2;
  const int64_t head = row / head_rows;
  const int64_t local = row % head_rows;
  return head * head_rows + 2 * (local % half) + local / half;
}

// The type a slot is stored in: norms and biases fp32, the rest their checkpoint's (GGUF) or the
// requested type.
DType StoredDType(const WeightSlot& slot, const Source& source, DType requested, bool keep_own) {
  if (slot.kind == WeightKind::kNorm || slot.kind == WeightKind::kBias) return DType::kF32;
  return keep_own ? source.dtype : requested;
}

// One part of a target: consecutive slots stored in one type.
struct Part {
  int32_t target;
  size_t first_slot, end_slot;
  DType dtype;
  int64_t rows;
  Tensor* tensor;  // where it goes (a Tensor target, or the LinearWeight's part)
};

// Converts `count` elements of `src_dtype` at `src` into `dst_dtype` at `dst` (a whole number of
// both types' blocks). `scratch` holds `count` floats.
absl::Status Convert(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t count,
                     std::vector<float>& scratch) {
  if (src_dtype == dst_dtype) {
    ASSIGN_OR_RETURN(const int64_t bytes, RowBytes(src_dtype, count));
    std::memcpy(dst, src, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }
  if (dst_dtype == DType::kF32) {
    return kernels::Dequantize(
        {.dtype = src_dtype, .src = src, .dst = static_cast<float*>(dst), .num_elements = count});
  }
  scratch.resize(static_cast<size_t>(count));
  RETURN_IF_ERROR(kernels::Dequantize(
      {.dtype = src_dtype, .src = src, .dst = scratch.data(), .num_elements = count}));
  return kernels::Quantize(
      {.dtype = dst_dtype, .src = scratch.data(), .dst = dst, .num_elements = count});
}

// Rows [row_begin, row_end) of a slot's window into its part, `row_offset` rows into the part.
absl::Status FillRows(const WeightSlot& slot, const Source& source, const Sources& sources,
                      Tensor& dest, int64_t row_offset, int64_t row_begin, int64_t row_end) {
  std::vector<float> scratch;
  const DType dst_dtype = dest.dtype();
  if (slot.is_vector()) {
    // Vectors are fp32 and small: all of a dummy's or checkpoint's elements, then the window.
    float* out = dest.mutable_data_as<float>() + row_offset;
    if (sources.dummy) {
      for (int64_t r = row_begin; r < row_end; ++r) {
        out[r] = slot.kind == WeightKind::kNorm
                     ? 1.0f
                     : DummyBound(slot) * DummyUniform(sources.seed, slot.full_index,
                                                       slot.full_offset + slot.row_begin + r);
      }
      return absl::OkStatus();
    }
    std::vector<float> all(static_cast<size_t>(slot.shape[0]));
    RETURN_IF_ERROR(kernels::Dequantize({.dtype = source.dtype,
                                         .src = source.data.data(),
                                         .dst = all.data(),
                                         .num_elements = slot.shape[0]}));
    for (int64_t r = row_begin; r < row_end; ++r) {
      out[r] =
          all[static_cast<size_t>(SourceRow(slot, source, slot.row_begin + r))] + source.offset;
    }
    return absl::OkStatus();
  }
  const int64_t cols = slot.cols();
  for (int64_t r = row_begin; r < row_end; ++r) {
    std::byte* out = dest.mutable_row(row_offset + r);
    if (sources.dummy) {
      // Generated in fp32, then stored in the part's type.
      scratch.resize(static_cast<size_t>(slot.num_cols));
      const int64_t full_row = slot.full_offset + (slot.row_begin + r) * cols + slot.col_begin;
      const float bound = DummyBound(slot);
      for (int64_t c = 0; c < slot.num_cols; ++c) {
        scratch[c] = bound * DummyUniform(sources.seed, slot.full_index, full_row + c);
      }
      std::vector<float> unused;
      RETURN_IF_ERROR(Convert(DType::kF32, scratch.data(), dst_dtype, out, slot.num_cols, unused));
      continue;
    }
    ASSIGN_OR_RETURN(const int64_t src_row_bytes, RowBytes(source.dtype, cols));
    ASSIGN_OR_RETURN(const int64_t col_offset, RowBytes(source.dtype, slot.col_begin));
    const int64_t src_row = SourceRow(slot, source, slot.row_begin + r);
    const std::byte* src = source.data.data() + src_row * src_row_bytes + col_offset;
    RETURN_IF_ERROR(Convert(source.dtype, src, dst_dtype, out, slot.num_cols, scratch));
  }
  return absl::OkStatus();
}

// Builds every target of `plan` from `sources`: sizes the parts, views whole GGUF tensors that
// need no change, and fills the rest in parallel chunks of rows.
absl::Status Materialize(const WeightPlan& plan, const Sources& sources,
                         const std::vector<DType>& stored) {
  const std::vector<WeightSlot>& slots = plan.slots;
  // Group each target's consecutive slots of one stored type into parts.
  std::vector<Part> parts;
  for (size_t s = 0; s < slots.size(); ++s) {
    const WeightSlot& slot = slots[s];
    if (!parts.empty() && parts.back().target == slot.target && parts.back().dtype == stored[s]) {
      parts.back().end_slot = s + 1;
      parts.back().rows += slot.padded_rows;
      continue;
    }
    parts.push_back({slot.target, s, s + 1, stored[s], slot.padded_rows, nullptr});
  }
  // Size every LinearWeight's parts first: pointers into them stay valid from here on.
  for (const Part& part : parts) {
    const WeightTarget& target = plan.targets[static_cast<size_t>(part.target)];
    if (target.linear != nullptr) target.linear->parts.emplace_back();
  }
  std::vector<size_t> next_part(plan.targets.size(), 0);
  for (Part& part : parts) {
    const WeightTarget& target = plan.targets[static_cast<size_t>(part.target)];
    const WeightSlot& first = slots[part.first_slot];
    if (target.linear != nullptr) {
      part.tensor = &target.linear->parts[next_part[static_cast<size_t>(part.target)]++];
    } else {
      if (!target.tensor->empty()) {
        // Two types in one plain tensor: only possible for an embedding-sized target, never for
        // the fp32 norms and biases.
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", first.hf_name, " and the tensors stacked with it have different types"));
      }
      part.tensor = target.tensor;
    }
    if (part.rows == 0) continue;  // e.g. the o_proj bias off rank 0: stays empty
    const Source& source = sources.by_slot[part.first_slot];
    const bool whole = part.end_slot == part.first_slot + 1 && first.row_begin == 0 &&
                       first.num_rows == first.shape[0] && first.padded_rows == first.num_rows &&
                       first.col_begin == 0 && first.num_cols == first.cols() &&
                       !(source.rope_permuted && first.rope_heads > 0) && source.offset == 0.0f;
    std::vector<int64_t> shape = first.is_vector()
                                     ? std::vector<int64_t>{part.rows}
                                     : std::vector<int64_t>{part.rows, first.num_cols};
    if (whole && sources.owner != nullptr && source.dtype == part.dtype) {
      absl::StatusOr<Tensor> view =
          Tensor::View(part.dtype, shape, source.data.data(), sources.owner);
      if (view.ok()) {  // else misaligned for in-place reads: copied below
        *part.tensor = *std::move(view);
        part.rows = -1;  // done
        continue;
      }
    }
    ASSIGN_OR_RETURN(*part.tensor, Tensor::Zeros(part.dtype, std::move(shape)));
  }

  // Fill in chunks of rows so one big embedding does not serialize the work. Only the window of
  // each tensor is read: row slices are contiguous in the file, column slices are read row by row.
  struct Chunk {
    size_t slot;
    Tensor* dest;
    int64_t row_offset;          // of the slot's window in dest
    int64_t row_begin, row_end;  // rows of the window
  };
  std::vector<Chunk> chunks;
  for (const Part& part : parts) {
    if (part.rows <= 0) continue;
    int64_t row_offset = 0;
    for (size_t s = part.first_slot; s < part.end_slot; ++s) {
      const WeightSlot& slot = slots[s];
      const int64_t rows_per_chunk =
          slot.is_vector()
              ? std::max<int64_t>(1, slot.num_rows)
              : std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, slot.num_cols));
      for (int64_t begin = 0; begin < slot.num_rows; begin += rows_per_chunk) {
        chunks.push_back(
            {s, part.tensor, row_offset, begin, std::min(slot.num_rows, begin + rows_per_chunk)});
      }
      row_offset += slot.padded_rows;
    }
  }
  std::vector<absl::Status> statuses(chunks.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& chunk = chunks[c];
    statuses[c] = FillRows(slots[chunk.slot], sources.by_slot[chunk.slot], sources, *chunk.dest,
                           chunk.row_offset, chunk.row_begin, chunk.row_end);
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (!statuses[c].ok()) {
      const Source& source = sources.by_slot[chunks[c].slot];
      return absl::Status(
          statuses[c].code(),
          absl::StrCat(source.file != nullptr ? *source.file : "dummy weights", ": ",
                       slots[chunks[c].slot].hf_name, ": ", statuses[c].message()));
    }
  }
  return absl::OkStatus();
}

// A quantized row is never split inside a block: every column window of a block-format slot
// starts and ends on a block boundary.
absl::Status CheckBlockWindows(const WeightPlan& plan, const std::vector<DType>& stored,
                               const Sources& sources, int32_t tp_size, bool gguf) {
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    const WeightSlot& slot = plan.slots[s];
    const DTypeTraits& t = Traits(stored[s]);
    if (slot.is_vector() || t.block_elements == 1) continue;
    if (slot.col_begin % t.block_elements != 0 || slot.num_cols % t.block_elements != 0) {
      const Source& source = sources.by_slot[s];
      return absl::InvalidArgumentError(absl::StrCat(
          source.file != nullptr ? *source.file : "", ": tensor ",
          gguf ? slot.gguf_name : slot.hf_name, " is ", std::string(DTypeName(stored[s])),
          " (blocks of ", t.block_elements, " elements) and tensor parallel size ", tp_size,
          " would split its rows at column ", slot.col_begin, " of ", slot.cols(),
          ", inside a block; use a tensor parallel size that divides its ",
          slot.cols() / t.block_elements, " blocks per row"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DType> SafetensorsToDType(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::kF32:
      return DType::kF32;
    case SafetensorsDType::kF16:
      return DType::kF16;
    case SafetensorsDType::kBF16:
      return DType::kBF16;
    default:
      return absl::InvalidArgumentError("unsupported");
  }
}

absl::StatusOr<ModelWeights> LoadSafetensors(const ModelConfig& config, const ShardLayout& layout,
                                             const ModelArchitecture& arch, const std::string& dir,
                                             const WeightLoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> checkpoint,
                   SafetensorsCheckpoint::Open(dir));
  // Validate everything against the config before allocating anything.
  ModelWeights weights;
  const WeightPlan plan = arch.PlanWeights(config, layout, weights);
  Sources sources;
  sources.by_slot.resize(plan.slots.size());
  absl::flat_hash_set<std::string> expected;
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    const WeightSlot& slot = plan.slots[s];
    expected.insert(slot.hf_name);
    const TensorInfo* info = checkpoint->Find(slot.hf_name);
    if (info == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": tensor ", slot.hf_name, " is missing from the checkpoint"));
    }
    const std::string& file = checkpoint->FileOf(slot.hf_name);
    absl::StatusOr<DType> dtype = SafetensorsToDType(info->dtype);
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", slot.hf_name, " has dtype ",
                                                     std::string(SafetensorsDTypeName(info->dtype)),
                                                     "; expected F32, F16 or BF16"));
    }
    if (info->shape != slot.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor ", slot.hf_name, " has shape ", ShapeString(info->shape), " but ",
          checkpoint->dir(), "/config.json implies ", ShapeString(slot.shape)));
    }
    sources.by_slot[s] = {
        .dtype = *dtype, .data = info->data, .file = &file, .offset = slot.hf_offset};
  }
  for (const std::string& name : checkpoint->TensorNames()) {
    if (!expected.contains(name) && !plan.elsewhere_hf.contains(name) && !plan.ignorable_hf(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(checkpoint->FileOf(name), ": unexpected tensor ", name, " (not part of a ",
                       config.architecture, " with this config.json)"));
    }
  }
  const DType requested = options.dtype.value_or(config.torch_dtype);
  std::vector<DType> stored(plan.slots.size());
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    stored[s] = StoredDType(plan.slots[s], sources.by_slot[s], requested, /*keep_own=*/false);
  }
  RETURN_IF_ERROR(Materialize(plan, sources, stored));
  return weights;
}

absl::StatusOr<ModelWeights> LoadGguf(const ModelConfig& config, const ShardLayout& layout,
                                      const ModelArchitecture& arch,
                                      std::shared_ptr<const GgufFile> gguf,
                                      const WeightLoadOptions& options) {
  const std::string& path = gguf->source();
  if (options.dtype.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype ", std::string(DTypeName(*options.dtype)), ": ", path,
                     " is a GGUF file, whose weights keep the types they are stored in; use "
                     "--dtype auto"));
  }
  const bool permuted = GgufRopeIsInterleaved(*gguf);
  ModelWeights weights;
  const WeightPlan plan = arch.PlanWeights(config, layout, weights);
  Sources sources;
  sources.by_slot.resize(plan.slots.size());
  sources.owner = gguf;
  absl::flat_hash_set<std::string> expected;
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    const WeightSlot& slot = plan.slots[s];
    expected.insert(slot.gguf_name);
    const GgufTensor* tensor = gguf->FindTensor(slot.gguf_name);
    if (tensor == nullptr) {
      return absl::NotFoundError(absl::StrCat(path, ": tensor ", slot.gguf_name, " (", slot.hf_name,
                                              ") is missing from the file"));
    }
    // An expert's matrix is one of a stacked [num_experts, rows, cols] tensor.
    std::vector<int64_t> shape = slot.shape;
    if (slot.gguf_expert >= 0) shape.insert(shape.begin(), slot.gguf_num_experts);
    if (tensor->shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", slot.gguf_name, " has shape ", ShapeString(tensor->shape),
                       " but the file's metadata implies ", ShapeString(shape)));
    }
    std::span<const std::byte> data = tensor->data;
    if (slot.gguf_expert >= 0) {
      ASSIGN_OR_RETURN(const int64_t row_bytes, RowBytes(tensor->dtype, slot.cols()));
      const int64_t matrix_bytes = slot.shape[0] * row_bytes;
      data = data.subspan(static_cast<size_t>(slot.gguf_expert * matrix_bytes),
                          static_cast<size_t>(matrix_bytes));
    }
    sources.by_slot[s] = {
        .dtype = tensor->dtype, .data = data, .file = &gguf->source(), .rope_permuted = permuted};
  }
  for (const GgufTensor& tensor : gguf->tensors()) {
    if (!expected.contains(std::string(tensor.name)) && !plan.ignorable_gguf(tensor.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unexpected tensor ", std::string(tensor.name), " (not part of a ",
                       config.architecture, " with this file's metadata)"));
    }
  }
  std::vector<DType> stored(plan.slots.size());
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    stored[s] = StoredDType(plan.slots[s], sources.by_slot[s], DType::kF32, /*keep_own=*/true);
  }
  RETURN_IF_ERROR(CheckBlockWindows(plan, stored, sources, layout.shard.size, /*gguf=*/true));
  RETURN_IF_ERROR(Materialize(plan, sources, stored));
  return weights;
}

}  // namespace

int64_t LinearWeight::out_features() const {
  int64_t rows = 0;
  for (const Tensor& part : parts) rows += part.rows();
  return rows;
}

int64_t LinearWeight::num_bytes() const {
  int64_t bytes = 0;
  for (const Tensor& part : parts) bytes += part.num_bytes();
  return bytes;
}

std::vector<float> LinearWeight::ToFloats() const {
  std::vector<float> out;
  for (const Tensor& part : parts) {
    const std::vector<float> values = TensorToFloats(part);
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}

LinearWeight LinearWeight::FromFloats(int64_t out_features, int64_t in_features,
                                      std::span<const float> values) {
  LinearWeight w;
  w.parts.push_back(Tensor::FromFloats({out_features, in_features}, values));
  return w;
}

int64_t ModelWeights::num_bytes() const {
  absl::flat_hash_set<const void*> seen;
  int64_t bytes = 0;
  const auto add = [&](const Tensor& t) {
    if (!t.empty() && seen.insert(t.data()).second) bytes += t.num_bytes();
  };
  add(embed_tokens);
  add(norm);
  add(lm_head);
  for (const LayerWeights& layer : layers) {
    add(layer.input_layernorm);
    add(layer.qkv_bias);
    add(layer.q_norm);
    add(layer.k_norm);
    add(layer.o_bias);
    add(layer.attn_output_norm);
    add(layer.mlp_output_norm);
    add(layer.post_attention_layernorm);
    std::vector<const LinearWeight*> linears = {&layer.qkv_proj, &layer.o_proj, &layer.gate_up_proj,
                                                &layer.down_proj, &layer.experts.router};
    for (const LinearWeight& w : layer.experts.gate_up_proj) linears.push_back(&w);
    for (const LinearWeight& w : layer.experts.down_proj) linears.push_back(&w);
    for (const LinearWeight* w : linears) {
      for (const Tensor& part : w->parts) add(part);
    }
  }
  return bytes + packed_bytes;
}

namespace {

absl::StatusOr<ModelWeights> Load(const ModelConfig& config, const std::string& path,
                                  std::shared_ptr<const GgufFile> gguf,
                                  const TensorParallelShard& shard,
                                  const WeightLoadOptions& options) {
  ASSIGN_OR_RETURN(const ShardLayout layout, ComputeShardLayout(config, shard));
  ASSIGN_OR_RETURN(const ModelArchitecture* arch, FindModelArchitecture(config.architecture));
  if (options.dtype.has_value() && *options.dtype != DType::kF32 && *options.dtype != DType::kF16 &&
      *options.dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights can be stored as float32, float16 or bfloat16, not ",
                     std::string(DTypeName(*options.dtype))));
  }
  if (gguf != nullptr) return LoadGguf(config, layout, *arch, std::move(gguf), options);
  return LoadSafetensors(config, layout, *arch, path, options);
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const std::string& path,
                                              const TensorParallelShard& shard,
                                              const WeightLoadOptions& options) {
  std::shared_ptr<const GgufFile> gguf;
  if (IsGgufPath(path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> opened, GgufFile::Open(path));
    gguf = std::move(opened);
  }
  return Load(config, path, std::move(gguf), shard, options);
}

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelSource& model,
                                              const TensorParallelShard& shard,
                                              const WeightLoadOptions& options) {
  return Load(model.config(), model.path(), model.gguf(), shard, options);
}

ModelWeights DummyModelWeights(const ModelConfig& config, uint64_t seed,
                               const TensorParallelShard& shard, const WeightLoadOptions& options) {
  absl::StatusOr<ShardLayout> layout = ComputeShardLayout(config, shard);
  PAGODA_CHECK(layout.ok()) << "DummyModelWeights: " << layout.status();
  absl::StatusOr<const ModelArchitecture*> arch = FindModelArchitecture(config.architecture);
  PAGODA_CHECK(arch.ok()) << "DummyModelWeights: " << arch.status();
  const DType dtype = options.dtype.value_or(DType::kF32);
  PAGODA_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16)
      << "DummyModelWeights: weights are stored as float32, float16 or bfloat16, not "
      << DTypeName(dtype);
  ModelWeights weights;
  const WeightPlan plan = (*arch)->PlanWeights(config, *layout, weights);
  Sources sources;
  sources.by_slot.resize(plan.slots.size());
  sources.dummy = true;
  sources.seed = seed;
  std::vector<DType> stored(plan.slots.size());
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    stored[s] = StoredDType(plan.slots[s], sources.by_slot[s], dtype, /*keep_own=*/false);
  }
  const absl::Status status = Materialize(plan, sources, stored);
  PAGODA_CHECK(status.ok()) << "DummyModelWeights: " << status;
  return weights;
}

absl::StatusOr<Tensor> DeviceWeightTensor(const Tensor& tensor, Device device) {
  if (tensor.empty()) return Tensor();
  const DType dtype = tensor.dtype();
  if (dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16) {
    return tensor.CopyTo(device);
  }
  const std::vector<float> values = TensorToFloats(tensor);
  ASSIGN_OR_RETURN(Tensor bf16, Tensor::Zeros(DType::kBF16, tensor.shape()));
  uint16_t* out = bf16.mutable_data_as<uint16_t>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = FloatToBFloat16(values[i]);
  return bf16.CopyTo(device);
}

namespace {

absl::Status MoveLinear(LinearWeight& w, Device device) {
  for (Tensor& part : w.parts) {
    ASSIGN_OR_RETURN(part, DeviceWeightTensor(part, device));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelWeights> CopyModelWeightsTo(const ModelWeights& weights, Device device) {
  ModelWeights out = weights;  // shares every storage; each tensor is replaced below
  if (device == Device::kCpu) return out;
  const bool tied =
      !weights.lm_head.empty() && weights.lm_head.data() == weights.embed_tokens.data();
  ASSIGN_OR_RETURN(out.embed_tokens, DeviceWeightTensor(weights.embed_tokens, device));
  ASSIGN_OR_RETURN(out.norm, DeviceWeightTensor(weights.norm, device));
  if (tied) {
    out.lm_head = out.embed_tokens;
  } else {
    ASSIGN_OR_RETURN(out.lm_head, DeviceWeightTensor(weights.lm_head, device));
  }
  for (LayerWeights& layer : out.layers) {
    for (Tensor* t :
         {&layer.input_layernorm, &layer.qkv_bias, &layer.q_norm, &layer.k_norm, &layer.o_bias,
          &layer.post_attention_layernorm, &layer.attn_output_norm, &layer.mlp_output_norm}) {
      ASSIGN_OR_RETURN(*t, DeviceWeightTensor(*t, device));
    }
    for (LinearWeight* w : {&layer.qkv_proj, &layer.o_proj, &layer.gate_up_proj, &layer.down_proj,
                            &layer.experts.router}) {
      RETURN_IF_ERROR(MoveLinear(*w, device));
    }
    for (std::vector<LinearWeight>* ws : {&layer.experts.gate_up_proj, &layer.experts.down_proj}) {
      for (LinearWeight& w : *ws) RETURN_IF_ERROR(MoveLinear(w, device));
    }
  }
  return out;
}

}  // namespace pagoda
