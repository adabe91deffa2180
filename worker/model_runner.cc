#include "worker/model_runner.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/graph.h"
#include "kernels/elementwise.h"
#include "kernels/paged_attention.h"
#include "worker/cpu_weight_placement.h"
#include "worker/cuda_graph_plan.h"
#include "worker/models/registry.h"

namespace pagoda {
namespace {

// Grows a buffer to at least n elements; the contents are overwritten by the step.
template <typename T>
T* Reserve(std::vector<T>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
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
  const Device device = options.device;
  if (device == Device::kCuda) {
    if (!kernels::cuda::BuiltWithCuda()) {
      return absl::FailedPreconditionError(
          "a ModelRunner on the CUDA device needs a build with CUDA; this one has none "
          "(PAGODA_CUDA=OFF)");
    }
    if (kernels::cuda::DeviceCount() == 0) {
      return absl::FailedPreconditionError(
          "a ModelRunner on the CUDA device needs a CUDA device, and none is visible (no GPU, no "
          "driver, or CUDA_VISIBLE_DEVICES hides them)");
    }
    // The collectives then take device memory.
    if (communicator != nullptr && communicator->size() > 1 && communicator->backend() != "nccl") {
      return absl::InvalidArgumentError(
          absl::StrCat("a ModelRunner on the CUDA device needs an nccl communicator, not ",
                       std::string(communicator->backend())));
    }
  }
  const int64_t max_positions =
      options.max_positions > 0 ? options.max_positions : config.max_position_embeddings;
  ASSIGN_OR_RETURN(const ModelArchitecture* arch, FindModelArchitecture(config.architecture));
  // Refused before any weight moves.
  RETURN_IF_ERROR(arch->CheckDevice(config, device));
  if (device != Device::kCpu) {
    ASSIGN_OR_RETURN(weights, CopyModelWeightsTo(weights, device));
  } else {
    // The weights the GEMMs stream go into huge pages, packed where this CPU reads them faster.
    RETURN_IF_ERROR(PlaceWeightsForCpu(weights));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   arch->CreateModel(config, layout, std::move(weights),
                                     {.max_positions = max_positions, .device = device}));
  KvCacheGroups groups = options.kv_groups;
  const int64_t num_layers = config.num_hidden_layers;
  if (groups.num_groups() == 0) {
    groups.windows = {config.UniformSlidingWindow()};
    groups.layer_group.assign(num_layers, 0);
    for (int64_t l = 0; l < num_layers; ++l) groups.layer_slot.push_back(static_cast<int32_t>(l));
    groups.num_slots = static_cast<int32_t>(num_layers);
  }
  if (static_cast<int64_t>(groups.layer_group.size()) != num_layers ||
      static_cast<int64_t>(groups.layer_slot.size()) != num_layers || groups.num_slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache groups for ", groups.layer_group.size(), " layers and ",
                     groups.num_slots, " slots, but the model has ", num_layers, " layers"));
  }
  for (int64_t l = 0; l < num_layers; ++l) {
    if (groups.layer_group[l] < 0 || groups.layer_group[l] >= groups.num_groups() ||
        groups.layer_slot[l] < 0 || groups.layer_slot[l] >= groups.num_slots) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", l, " has KV cache group ",
                                                     groups.layer_group[l], " and slot ",
                                                     groups.layer_slot[l], " out of range"));
    }
  }
  ASSIGN_OR_RETURN(KvCache kv_cache,
                   KvCache::Create({.num_layers = groups.num_slots,
                                    .num_blocks = options.num_blocks,
                                    .block_size = options.block_size,
                                    .num_kv_heads = layout.num_kv_heads,
                                    .head_dim = config.head_dim,
                                    .dtype = options.kv_cache_dtype,
                                    .device = device,
                                    .keys_transposed = kernels::PrefersTransposedKeys(
                                        device, options.block_size)}));
  std::unique_ptr<ModelRunner> runner(new ModelRunner(config, layout, communicator,
                                                      std::move(model), std::move(kv_cache),
                                                      max_positions, std::move(groups), device));
  if (device == Device::kCuda) {
    ASSIGN_OR_RETURN(runner->stream_, kernels::cuda::Stream::Create());
  }
  return runner;
}

// What CaptureCudaGraphs captured: a graph per size, and the buffers of fixed address they read
// (the metadata, written before each replay) and write (the final hidden states).
struct ModelRunner::CudaGraphs {
  std::vector<int64_t> sizes;  // ascending
  int64_t max_blocks_per_seq = 0;
  std::vector<kernels::cuda::DeviceGraph> graphs;  // [sizes]
  std::shared_ptr<void> metadata;  // CudaGraphMetadataLayout::For(sizes.back()).bytes, device
  ActivationBuffer hidden{Device::kCuda};  // [sizes.back(), hidden_size]
  std::vector<std::byte> staging;          // the metadata on the host
  kernels::cuda::AllocationMark captured;  // before the captures: what the graphs may use
  int64_t replays = 0;
};

ModelRunner::ModelRunner(const ModelConfig& config, const ShardLayout& layout,
                         Communicator* communicator, std::unique_ptr<Model> model, KvCache kv_cache,
                         int64_t max_positions, KvCacheGroups kv_groups, Device device)
    : config_(config),
      layout_(layout),
      communicator_(communicator),
      model_(std::move(model)),
      kv_cache_(std::move(kv_cache)),
      max_positions_(max_positions),
      kv_groups_(std::move(kv_groups)),
      device_(device),
      hidden_(device),
      last_hidden_(device),
      local_logits_(device),
      gathered_logits_(device),
      device_logits_(device) {}

ModelRunner::~ModelRunner() = default;

absl::Status ModelRunner::ReallocateKvCache(int64_t num_blocks) {
  KvCacheShape shape = kv_cache_.shape();
  shape.num_blocks = num_blocks;
  if (num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("a KV cache of ", num_blocks, " blocks"));
  }
  kv_cache_ = KvCache();  // the old storage goes before the new is allocated
  ASSIGN_OR_RETURN(kv_cache_, KvCache::Create(shape));
  // The graphs hold the old cache's addresses.
  if (graphs_ != nullptr) RETURN_IF_ERROR(CaptureCudaGraphs(std::vector<int64_t>(graphs_->sizes)));
  return absl::OkStatus();
}

absl::Status ModelRunner::ValidateBatch(absl::Span<const SequenceInput> batch) const {
  const int64_t block_size = kv_cache_.shape().block_size;
  const int64_t num_blocks = kv_cache_.shape().num_blocks;
  // In a group whose layers slide, the blocks before the first query's window are never read
  // (the engine may have freed them: common/step/step.h kFreedBlockId).
  const size_t num_more_groups = kv_groups_.windows.size() - 1;
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& seq = batch[s];
    const int64_t seq_len = seq.num_computed_tokens + static_cast<int64_t>(seq.token_ids.size());
    if (seq.token_ids.empty() || seq.num_computed_tokens < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, " of the step has no new tokens or a negative start"));
    }
    if (seq.sample && (seq.num_sampled_tokens < 1 ||
                       seq.num_sampled_tokens > static_cast<int64_t>(seq.token_ids.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " samples ",
                                                     seq.num_sampled_tokens, " of its ",
                                                     seq.token_ids.size(), " new tokens"));
    }
    if (seq_len > max_positions_) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " reaches position ",
                                                     seq_len - 1, " but the model supports ",
                                                     max_positions_, " positions"));
    }
    if (seq.more_block_tables.size() != num_more_groups) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, " has ", seq.more_block_tables.size() + 1,
                       " block tables for ", num_more_groups + 1, " KV cache groups"));
    }
    const int64_t blocks_needed = (seq_len + block_size - 1) / block_size;
    for (int g = 0; g < kv_groups_.num_groups(); ++g) {
      const absl::Span<const int32_t> table = GroupTable(seq, g);
      if (static_cast<int64_t>(table.size()) < blocks_needed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", s, " has ", seq_len, " tokens of context but its block table ",
            num_more_groups > 0 ? absl::StrCat("of group ", g, " ") : "", "holds ", table.size(),
            " blocks of ", block_size));
      }
      const int64_t window = kv_groups_.windows[g];
      const int64_t first_block =
          window > 0 ? std::max<int64_t>(0, seq.num_computed_tokens - window + 1) / block_size : 0;
      for (int64_t b = first_block; b < blocks_needed; ++b) {
        if (table[b] < 0 || table[b] >= num_blocks) {
          return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " uses block ", table[b],
                                                         " outside [0, ", num_blocks, ")"));
        }
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
  max_query_len_ = 0;
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
    max_query_len_ = std::max(max_query_len_, static_cast<int64_t>(seq.token_ids.size()));
  }
  block_tables_.assign(batch.size() * max_blocks_per_seq_, 0);
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = std::min<int64_t>(max_blocks_per_seq_, batch[s].block_table.size());
    std::copy_n(batch[s].block_table.begin(), n, block_tables_.begin() + s * max_blocks_per_seq_);
  }
  // Groups 1..G-1 the same way (none with one group).
  const int num_groups = kv_groups_.num_groups();
  more_slot_mappings_.resize(num_groups - 1);
  more_block_tables_.resize(num_groups - 1);
  more_groups_.resize(num_groups - 1);
  for (int g = 1; g < num_groups; ++g) {
    std::vector<int64_t>& slots = more_slot_mappings_[g - 1];
    std::vector<int32_t>& tables = more_block_tables_[g - 1];
    slots.clear();
    tables.assign(batch.size() * max_blocks_per_seq_, 0);
    for (size_t s = 0; s < batch.size(); ++s) {
      const absl::Span<const int32_t> table = GroupTable(batch[s], g);
      for (size_t i = 0; i < batch[s].token_ids.size(); ++i) {
        const int64_t pos = batch[s].num_computed_tokens + static_cast<int64_t>(i);
        slots.push_back(int64_t{table[pos / block_size]} * block_size + pos % block_size);
      }
      const int64_t n = std::min<int64_t>(max_blocks_per_seq_, table.size());
      std::copy_n(table.begin(), n, tables.begin() + s * max_blocks_per_seq_);
    }
    more_groups_[g - 1] = {.slot_mapping = slots.data(), .block_tables = tables.data()};
  }
}

absl::StatusOr<StepLogits*> ModelRunner::Execute(absl::Span<const SequenceInput> batch) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  return ExecuteValidated(batch);
}

absl::StatusOr<ForwardBatch> ModelRunner::BatchOnDevice(const int64_t** row_tokens) {
  const int64_t num_tokens = static_cast<int64_t>(token_ids_.size());
  const int64_t num_seqs = static_cast<int64_t>(seq_lens_.size());
  ForwardBatch batch = {.num_tokens = num_tokens,
                        .token_ids = token_ids_.data(),
                        .positions = positions_.data(),
                        .slot_mapping = slot_mapping_.data(),
                        .num_seqs = num_seqs,
                        .query_start_loc = query_start_loc_.data(),
                        .seq_lens = seq_lens_.data(),
                        .block_tables = block_tables_.data(),
                        .max_blocks_per_seq = max_blocks_per_seq_,
                        .max_query_len = max_query_len_};
  if (kv_groups_.num_groups() > 1) batch.more_groups = more_groups_;
  *row_tokens = row_tokens_.data();
  if (device_ == Device::kCpu) return batch;

  // One packed buffer, each array at an 8-byte aligned offset: laid out on the host, then one
  // host -> device copy; the batch's pointers are rebased into the device copy.
  staging_.clear();
  const auto put = [this](const auto& values) -> size_t {
    const size_t offset = (staging_.size() + 7) / 8 * 8;
    const size_t bytes = values.size() * sizeof(values[0]);
    staging_.resize(offset + bytes);
    if (bytes > 0) std::memcpy(staging_.data() + offset, values.data(), bytes);
    return offset;
  };
  const size_t token_ids = put(token_ids_);
  const size_t positions = put(positions_);
  const size_t slot_mapping = put(slot_mapping_);
  const size_t query_start_loc = put(query_start_loc_);
  const size_t seq_lens = put(seq_lens_);
  const size_t block_tables = put(block_tables_);
  const size_t rows = put(row_tokens_);
  std::vector<std::pair<size_t, size_t>> more;  // (slots, tables) of groups 1..G-1
  for (size_t g = 0; g < more_groups_.size(); ++g) {
    const size_t slots = put(more_slot_mappings_[g]);
    more.emplace_back(slots, put(more_block_tables_[g]));
  }
  const int64_t bytes = static_cast<int64_t>(staging_.size());
  if (bytes > device_metadata_bytes_) {
    device_metadata_.reset();  // freed before the larger buffer is allocated
    device_metadata_bytes_ = 0;
    ASSIGN_OR_RETURN(device_metadata_, kernels::cuda::AllocateZeroed(bytes));
    device_metadata_bytes_ = bytes;
  }
  // Ordered after the previous step's kernels (the default stream), which may still read it.
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(device_metadata_.get(), staging_.data(), bytes));
  auto* base = static_cast<std::byte*>(device_metadata_.get());
  const auto at = [base]<typename T>(size_t offset, T*) {
    return reinterpret_cast<const T*>(base + offset);
  };
  batch.token_ids = at(token_ids, batch.token_ids);
  batch.positions = at(positions, batch.positions);
  batch.slot_mapping = at(slot_mapping, batch.slot_mapping);
  batch.query_start_loc = at(query_start_loc, batch.query_start_loc);
  batch.seq_lens = at(seq_lens, batch.seq_lens);
  batch.block_tables = at(block_tables, batch.block_tables);
  *row_tokens = reinterpret_cast<const int64_t*>(base + rows);
  device_more_groups_.resize(more.size());
  for (size_t g = 0; g < more.size(); ++g) {
    device_more_groups_[g] = {
        .slot_mapping = reinterpret_cast<const int64_t*>(base + more[g].first),
        .block_tables = reinterpret_cast<const int32_t*>(base + more[g].second)};
  }
  if (kv_groups_.num_groups() > 1) batch.more_groups = device_more_groups_;
  return batch;
}

absl::StatusOr<StepLogits*> ModelRunner::ExecuteValidated(absl::Span<const SequenceInput> batch,
                                                          bool keep_logits_on_device) {
  assert(ValidateBatch(batch).ok());
  const kernels::cuda::ScopedStream current(stream_);  // no effect on the CPU
  if (graphs_ != nullptr && replay_graphs_) {
    ASSIGN_OR_RETURN(const bool replayed, ReplayGraph(batch, keep_logits_on_device));
    if (replayed) return &logits_;
  }
  PrepareMetadata(batch);
  const int64_t num_tokens = static_cast<int64_t>(token_ids_.size());
  const int64_t hidden = config_.hidden_size;
  logits_.num_rows = 0;
  logits_.vocab_size = config_.vocab_size;
  logits_.seq_index.clear();
  logits_.device_values = nullptr;
  if (num_tokens == 0) return &logits_;

  // The LM head runs only on the sampling rows: which tokens they are.
  row_tokens_.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    if (!batch[s].sample) continue;
    const int64_t end = query_start_loc_[s + 1];
    for (int64_t t = end - batch[s].num_sampled_tokens; t < end; ++t) {
      logits_.seq_index.push_back(static_cast<int32_t>(s));
      row_tokens_.push_back(t);
    }
  }
  const int64_t rows = static_cast<int64_t>(row_tokens_.size());

  const int64_t* row_tokens = nullptr;
  ASSIGN_OR_RETURN(const ForwardBatch forward_batch, BatchOnDevice(&row_tokens));
  ForwardContext context{.batch = forward_batch,
                         .kv_cache = &kv_cache_,
                         .communicator = communicator_,
                         .device = device_};
  if (kv_groups_.num_groups() > 1) {
    context.batch.layer_group = kv_groups_.layer_group;
    context.batch.layer_slot = kv_groups_.layer_slot;
  }
  ASSIGN_OR_RETURN(float* final_hidden, hidden_.Reserve(num_tokens * hidden));
  {
    // What the forward pass allocates is what CUDA graphs hold (CaptureCudaGraphs).
    const kernels::cuda::ScopedCapturableWork capturable;
    RETURN_IF_ERROR(model_->Forward(context, final_hidden));
  }

  // hidden_ now holds the final-normed states.
  logits_.num_rows = rows;
  if (rows == 0) {
    // Nothing comes back to the host: wait here, so that a device error is this step's.
    if (device_ != Device::kCpu) RETURN_IF_ERROR(kernels::cuda::Synchronize());
    return &logits_;
  }
  ASSIGN_OR_RETURN(float* last, last_hidden_.Reserve(rows * hidden));
  RETURN_IF_ERROR(kernels::GatherRows({.input = final_hidden,
                                       .indices = row_tokens,
                                       .output = last,
                                       .num_rows = rows,
                                       .num_input_rows = num_tokens,
                                       .width = hidden,
                                       .indices_checked = true,
                                       .device = device_}));
  RETURN_IF_ERROR(ComputeLogits(rows, keep_logits_on_device));
  return &logits_;
}

absl::Status ModelRunner::LogitsToHost() {
  if (logits_.device_values == nullptr) return absl::OkStatus();
  const kernels::cuda::ScopedStream current(stream_);
  const int64_t n = logits_.num_rows * logits_.vocab_size;
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(Reserve(logits_.values, n), logits_.device_values,
                                           n * static_cast<int64_t>(sizeof(float))));
  logits_.device_values = nullptr;
  return absl::OkStatus();
}

absl::Status ModelRunner::ComputeLogits(int64_t rows, bool keep_on_device) {
  const int64_t vocab = config_.vocab_size;
  const int64_t tp_size = layout_.shard.size;
  const bool on_device = device_ != Device::kCpu;
  if (tp_size == 1 && !on_device) {
    return model_->ComputeLogits(last_hidden_.data(), rows, Reserve(logits_.values, rows * vocab));
  }
  // Vocab-parallel: this rank's V' logits of every row (on CUDA unsharded: all of them, then one
  // copy to the host unless they stay on the device).
  const int64_t local_vocab = layout_.vocab_rows;
  ASSIGN_OR_RETURN(float* local, local_logits_.Reserve(rows * local_vocab));
  RETURN_IF_ERROR(model_->ComputeLogits(last_hidden_.data(), rows, local));
  constexpr int64_t kFloat = sizeof(float);
  if (tp_size == 1 && local_vocab == vocab) {
    logits_.device_values = local;
    return keep_on_device ? absl::OkStatus() : LogitsToHost();
  }
  // Then every rank's side by side: gathered is [tp_size, rows, V'].
  float* gathered = local;
  if (tp_size > 1) {
    ASSIGN_OR_RETURN(gathered, gathered_logits_.Reserve(tp_size * rows * local_vocab));
    RETURN_IF_ERROR(communicator_->AllGather(local, rows * local_vocab, gathered));
  }
  if (on_device) {
    // Each rank's columns into [rows, vocab], the padding of the last ranks dropped: on the
    // device when the logits stay there, else straight into the host's.
    float* out = nullptr;
    if (keep_on_device) {
      ASSIGN_OR_RETURN(out, device_logits_.Reserve(rows * vocab));
    } else {
      out = Reserve(logits_.values, rows * vocab);
    }
    for (int64_t k = 0; k < tp_size && k * local_vocab < vocab; ++k) {
      const int64_t n = std::min(local_vocab, vocab - k * local_vocab);
      RETURN_IF_ERROR(kernels::cuda::CopyRows(out + k * local_vocab, vocab * kFloat,
                                              gathered + k * rows * local_vocab,
                                              local_vocab * kFloat, n * kFloat, rows));
    }
    if (keep_on_device) logits_.device_values = out;
    return absl::OkStatus();
  }
  float* logits = Reserve(logits_.values, rows * vocab);
  // The padding rows of the last ranks are dropped.
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < tp_size && k * local_vocab < vocab; ++k) {
      const int64_t n = std::min(local_vocab, vocab - k * local_vocab);
      std::copy_n(gathered + (k * rows + r) * local_vocab, n, logits + r * vocab + k * local_vocab);
    }
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::CaptureCudaGraphs(absl::Span<const int64_t> sizes) {
  if (device_ != Device::kCuda) {
    return absl::FailedPreconditionError("CUDA graphs need a ModelRunner on the CUDA device");
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> sorted,
                   NormalizeCudaGraphSizes(std::vector<int64_t>(sizes.begin(), sizes.end())));
  graphs_.reset();  // the old graphs and their buffers go first
  if (kv_groups_.num_groups() != 1) {
    PAGODA_LOG(info, "no CUDA graphs: the model has {} KV cache groups; every step runs eagerly",
               kv_groups_.num_groups());
    return absl::OkStatus();
  }
  const kernels::cuda::ScopedStream current(stream_);
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const kernels::cuda::DeviceMemoryInfo before, kernels::cuda::MemoryInfo());
  auto graphs = std::make_unique<CudaGraphs>();
  graphs->sizes = std::move(sorted);
  const int64_t block_size = kv_cache_.shape().block_size;
  graphs->max_blocks_per_seq = (max_positions_ + block_size - 1) / block_size;
  const CudaGraphMetadataLayout largest =
      CudaGraphMetadataLayout::For(graphs->sizes.back(), graphs->max_blocks_per_seq);
  ASSIGN_OR_RETURN(graphs->metadata, kernels::cuda::AllocateZeroed(largest.bytes));
  RETURN_IF_ERROR(graphs->hidden.Reserve(graphs->sizes.back() * config_.hidden_size).status());
  graphs_ = std::move(graphs);
  if (absl::Status status = CaptureGraphs(/*warm_up_with_peers=*/true); !status.ok()) {
    graphs_.reset();
    return status;
  }
  ASSIGN_OR_RETURN(const kernels::cuda::DeviceMemoryInfo after, kernels::cuda::MemoryInfo());
  PAGODA_LOG(
      info, "captured {} CUDA graphs of decode batches (sizes {}) in {:.0f} ms, {:.1f} MiB",
      graphs_->sizes.size(), absl::StrJoin(graphs_->sizes, ", "),
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
      static_cast<double>(before.free_bytes - after.free_bytes) / (1 << 20));
  return absl::OkStatus();
}

std::vector<int64_t> ModelRunner::cuda_graph_sizes() const {
  return graphs_ != nullptr ? graphs_->sizes : std::vector<int64_t>();
}

int64_t ModelRunner::cuda_graph_replays() const {
  return graphs_ != nullptr ? graphs_->replays : 0;
}

namespace {

// The batch a graph of `layout`'s size runs: its metadata at `base` (the device buffer).
ForwardBatch GraphBatch(const CudaGraphMetadataLayout& layout, std::byte* base) {
  const auto at = [base]<typename T>(int64_t offset, const T*) {
    return reinterpret_cast<const T*>(base + offset);
  };
  // Decodes: paged attention's plan takes its decode path (max_query_len 1) whatever the size.
  ForwardBatch batch{.num_tokens = layout.size,
                     .num_seqs = layout.size,
                     .max_blocks_per_seq = layout.max_blocks_per_seq,
                     .max_query_len = 1};
  batch.token_ids = at(layout.token_ids, batch.token_ids);
  batch.positions = at(layout.positions, batch.positions);
  batch.slot_mapping = at(layout.slot_mapping, batch.slot_mapping);
  batch.query_start_loc = at(layout.query_start_loc, batch.query_start_loc);
  batch.seq_lens = at(layout.seq_lens, batch.seq_lens);
  batch.block_tables = at(layout.block_tables, batch.block_tables);
  return batch;
}

}  // namespace

absl::Status ModelRunner::CaptureGraphs(bool warm_up_with_peers) {
  CudaGraphs& g = *graphs_;
  const int64_t block_size = kv_cache_.shape().block_size;
  float* const out = g.hidden.data();
  auto* const base = static_cast<std::byte*>(g.metadata.get());
  g.graphs.assign(g.sizes.size(), kernels::cuda::DeviceGraph());
  // The metadata of a batch of padding alone (it writes no KV slot), for the warm-up run and for
  // the capture, which records addresses only.
  const auto upload_padding = [&](const CudaGraphMetadataLayout& layout) {
    g.staging.resize(layout.bytes);
    FillCudaGraphMetadata({}, block_size, layout, absl::MakeSpan(g.staging));
    return kernels::cuda::CopyBytes(base, g.staging.data(), layout.bytes);
  };
  const auto context = [&](const CudaGraphMetadataLayout& layout, Communicator* communicator) {
    return ForwardContext{.batch = GraphBatch(layout, base),
                          .kv_cache = &kv_cache_,
                          .communicator = communicator,
                          .device = device_};
  };
  // Every size runs once first, largest first (each buffer grows once), so that the captures
  // find every buffer allocated — this thread's cuBLAS handle too (a grow during a capture is
  // an error: kernels/cuda/graph.h). Without peers the
  // all-reduces are skipped: the padding's values do not matter, and no other rank is meeting
  // this one then.
  const kernels::cuda::ScopedCapturableWork capturable;  // the warm-up allocates what graphs hold
  for (int i = static_cast<int>(g.sizes.size()) - 1; i >= 0; --i) {
    const auto layout = CudaGraphMetadataLayout::For(g.sizes[i], g.max_blocks_per_seq);
    RETURN_IF_ERROR(upload_padding(layout));
    RETURN_IF_ERROR(
        model_->Forward(context(layout, warm_up_with_peers ? communicator_ : nullptr), out));
  }
  RETURN_IF_ERROR(kernels::cuda::Synchronize());
  kernels::cuda::AllocationMark mark = kernels::cuda::MarkAllocations();
  for (int i = static_cast<int>(g.sizes.size()) - 1; i >= 0; --i) {
    const auto layout = CudaGraphMetadataLayout::For(g.sizes[i], g.max_blocks_per_seq);
    const ForwardContext c = context(layout, communicator_);
    absl::StatusOr<kernels::cuda::DeviceGraph> graph =
        kernels::cuda::DeviceGraph::Capture([&] { return model_->Forward(c, out); });
    if (!graph.ok()) {
      return absl::Status(graph.status().code(),
                          absl::StrCat("capturing the CUDA graph of decode batch size ", g.sizes[i],
                                       ": ", graph.status().message()));
    }
    g.graphs[i] = *std::move(graph);
  }
  if (kernels::cuda::FreedSince(mark)) {
    return absl::InternalError("a device buffer was freed while the CUDA graphs were captured");
  }
  g.captured = mark;
  return absl::OkStatus();
}

absl::StatusOr<bool> ModelRunner::ReplayGraph(absl::Span<const SequenceInput> batch,
                                              bool keep_on_device) {
  const int index = CudaGraphSizeIndex(graphs_->sizes, static_cast<int64_t>(batch.size()));
  if (index < 0 || !CudaGraphIneligibility(batch, kv_groups_.num_groups()).empty()) return false;
  if (kernels::cuda::FreedSince(graphs_->captured)) {
    // A buffer of the forward pass was freed since the capture (one grew for a larger eager
    // step): the graphs may hold its address. Captured again,
    // on this thread, with a warm-up run that meets no other rank (they are not recapturing).
    if (absl::Status status = CaptureGraphs(/*warm_up_with_peers=*/false); !status.ok()) {
      PAGODA_LOG(warn, "CUDA graphs off, every step runs eagerly: {}",
                 std::string(status.message()));
      graphs_.reset();
      return false;
    }
    PAGODA_LOG(info, "CUDA graphs captured again: a device buffer was freed since the capture");
  }
  CudaGraphs& g = *graphs_;
  const int64_t n = static_cast<int64_t>(batch.size());
  const auto layout = CudaGraphMetadataLayout::For(g.sizes[index], g.max_blocks_per_seq);
  g.staging.resize(layout.bytes);
  FillCudaGraphMetadata(batch, kv_cache_.shape().block_size, layout, absl::MakeSpan(g.staging));
  auto* const base = static_cast<std::byte*>(g.metadata.get());
  // Stream-ordered after the previous step's kernels, which may still read the buffer.
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(base, g.staging.data(), layout.bytes));
  RETURN_IF_ERROR(g.graphs[index].Launch());
  ++g.replays;

  // The LM head, eagerly, on the batch's rows only (the padding rows are never sampled).
  logits_.num_rows = n;
  logits_.vocab_size = config_.vocab_size;
  logits_.seq_index.resize(n);
  for (int64_t s = 0; s < n; ++s) logits_.seq_index[s] = static_cast<int32_t>(s);
  logits_.device_values = nullptr;
  const int64_t hidden = config_.hidden_size;
  ASSIGN_OR_RETURN(float* last, last_hidden_.Reserve(n * hidden));
  RETURN_IF_ERROR(
      kernels::GatherRows({.input = g.hidden.data(),
                           .indices = reinterpret_cast<const int64_t*>(base + layout.row_tokens),
                           .output = last,
                           .num_rows = n,
                           .num_input_rows = layout.size,
                           .width = hidden,
                           .indices_checked = true,
                           .device = device_}));
  RETURN_IF_ERROR(ComputeLogits(n, keep_on_device));
  return true;
}

}  // namespace pagoda
