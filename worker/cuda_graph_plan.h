// The host side of ModelRunner's CUDA graphs for decode batches, kept apart from the device so
// that it is tested on any machine: which batch sizes are captured, which batches a graph may
// run, and the fixed layout of the metadata a graph reads.
//
// A graph of size N runs the forward pass of N decode tokens — one new token per sequence, every
// sequence sampled — with every kernel argument fixed at capture: the token count N, the block
// tables' row length (max_blocks_per_seq: the model length's blocks, whatever the batch) and the
// addresses of the metadata arrays. Each step writes its batch into those arrays (one host ->
// device copy of CudaGraphMetadataLayout::bytes) and replays the smallest graph that holds it; the
// entries past the batch are padding: token 0 at position 0 with slot -1, which the KV-cache
// write skips (kernels/kv_cache_write.h), in a one-token context of block 0 (attention reads a
// slot of a valid block; the row it produces is never sampled).
//
//   const std::vector<int64_t> sizes = DefaultCudaGraphSizes(max_num_seqs);  // 1, 2, 4, 8, ...
//   if (CudaGraphIneligibility(batch, num_kv_groups).empty()) {
//     const int index = CudaGraphSizeIndex(sizes, batch.size());  // -1: larger than any graph
//     const auto layout = CudaGraphMetadataLayout::For(sizes[index], max_blocks_per_seq);
//     FillCudaGraphMetadata(batch, block_size, layout, absl::MakeSpan(host_bytes));
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/model_runner.h"

namespace pagoda {

/// The largest decode batch a graph is captured for (vLLM's default cap).
inline constexpr int64_t kMaxCudaGraphSize = 256;

/// vLLM's default capture sizes: 1, 2, 4, then every multiple of 8, up to the cap min(max_num_seqs,
/// 256), and the cap itself when it is not among them (so that every batch up to the engine's
/// largest has a graph). max_num_seqs <= 0 (unknown): a cap of 256.
std::vector<int64_t> DefaultCudaGraphSizes(int64_t max_num_seqs);

/// `sizes` sorted, without repeats; InvalidArgument naming the size unless each is in
/// [1, kMaxCudaGraphSize], or when there is none.
absl::StatusOr<std::vector<int64_t>> NormalizeCudaGraphSizes(std::vector<int64_t> sizes);

/// The index into `sizes` (sorted) of the smallest size >= n, or -1 when n exceeds them all.
int CudaGraphSizeIndex(absl::Span<const int64_t> sizes, int64_t n);

/// Empty when the graphs can run `batch` (valid, at `num_kv_groups` KV cache groups): at least one
/// sequence, each with exactly one new token and sampling exactly that one, and one KV cache group.
/// Otherwise why not, for a log line: such steps run eagerly.
std::string_view CudaGraphIneligibility(absl::Span<const SequenceInput> batch, int num_kv_groups);

/// Where a graph of `size` entries finds its metadata in its device buffer: byte offsets, each a
/// multiple of 8, of arrays laid out one after another.
struct CudaGraphMetadataLayout {
  int64_t size = 0;                // entries: tokens = sequences = sampled rows
  int64_t max_blocks_per_seq = 0;  // the block tables' row length
  int64_t token_ids = 0;           // int32 [size]
  int64_t positions = 0;           // int32 [size]
  int64_t slot_mapping = 0;        // int64 [size]; -1 for padding
  int64_t query_start_loc = 0;     // int32 [size + 1]: 0, 1, ..., size
  int64_t seq_lens = 0;            // int32 [size]
  int64_t row_tokens = 0;          // int64 [size]: the LM head's rows, 0, 1, ..., size - 1
  int64_t block_tables = 0;        // int32 [size, max_blocks_per_seq]
  int64_t bytes = 0;               // the whole buffer

  static CudaGraphMetadataLayout For(int64_t size, int64_t max_blocks_per_seq);
};

/// Writes `batch` (eligible, valid, at most layout.size sequences, each context within
/// layout.max_blocks_per_seq blocks of `block_size`) and its padding to layout.size entries into
/// `out` (layout.bytes bytes; the bytes between arrays are zeroed). Block table entries past a
/// sequence's table are 0.
void FillCudaGraphMetadata(absl::Span<const SequenceInput> batch, int64_t block_size,
                           const CudaGraphMetadataLayout& layout, absl::Span<std::byte> out);

}  // namespace pagoda
