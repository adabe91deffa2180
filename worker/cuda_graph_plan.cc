#include "worker/cuda_graph_plan.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pagoda {
namespace {

// The next multiple of 8 at or after `offset`.
int64_t Align8(int64_t offset) { return (offset + 7) / 8 * 8; }

template <typename T>
T* At(absl::Span<std::byte> out, int64_t offset) {
  return reinterpret_cast<T*>(out.data() + offset);
}

}  // namespace

std::vector<int64_t> DefaultCudaGraphSizes(int64_t max_num_seqs) {
  const int64_t cap =
      max_num_seqs > 0 ? std::min(max_num_seqs, kMaxCudaGraphSize) : kMaxCudaGraphSize;
  std::vector<int64_t> sizes;
  for (const int64_t size : {1, 2, 4}) {
    if (size <= cap) sizes.push_back(size);
  }
  for (int64_t size = 8; size <= cap; size += 8) sizes.push_back(size);
  if (sizes.back() != cap) sizes.push_back(cap);
  return sizes;
}

absl::StatusOr<std::vector<int64_t>> NormalizeCudaGraphSizes(std::vector<int64_t> sizes) {
  if (sizes.empty()) return absl::InvalidArgumentError("no CUDA graph capture size");
  for (const int64_t size : sizes) {
    if (size < 1 || size > kMaxCudaGraphSize) {
      return absl::InvalidArgumentError(absl::StrCat("CUDA graph capture size ", size,
                                                     " is outside [1, ", kMaxCudaGraphSize, "]"));
    }
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

int CudaGraphSizeIndex(absl::Span<const int64_t> sizes, int64_t n) {
  const auto it = std::lower_bound(sizes.begin(), sizes.end(), n);
  return it == sizes.end() ? -1 : static_cast<int>(it - sizes.begin());
}

std::string_view CudaGraphIneligibility(absl::Span<const SequenceInput> batch, int num_kv_groups) {
  if (batch.empty()) return "an empty step";
  if (num_kv_groups != 1) return "more than one KV cache group";
  for (const SequenceInput& seq : batch) {
    if (seq.token_ids.size() != 1) return "a prefill or verification chunk";
    if (!seq.sample || seq.num_sampled_tokens != 1) return "a sequence that does not sample";
  }
  return "";
}

CudaGraphMetadataLayout CudaGraphMetadataLayout::For(int64_t size, int64_t max_blocks_per_seq) {
  CudaGraphMetadataLayout l{.size = size, .max_blocks_per_seq = max_blocks_per_seq};
  int64_t end = 0;
  const auto put = [&end](int64_t bytes) {
    const int64_t offset = Align8(end);
    end = offset + bytes;
    return offset;
  };
  l.token_ids = put(size * 4);
  l.positions = put(size * 4);
  l.slot_mapping = put(size * 8);
  l.query_start_loc = put((size + 1) * 4);
  l.seq_lens = put(size * 4);
  l.row_tokens = put(size * 8);
  l.block_tables = put(size * max_blocks_per_seq * 4);
  l.bytes = Align8(end);
  return l;
}

void FillCudaGraphMetadata(absl::Span<const SequenceInput> batch, int64_t block_size,
                           const CudaGraphMetadataLayout& layout, absl::Span<std::byte> out) {
  assert(static_cast<int64_t>(out.size()) >= layout.bytes);
  assert(static_cast<int64_t>(batch.size()) <= layout.size);
  std::memset(out.data(), 0, static_cast<size_t>(layout.bytes));  // padding tables: block 0
  auto* token_ids = At<int32_t>(out, layout.token_ids);
  auto* positions = At<int32_t>(out, layout.positions);
  auto* slots = At<int64_t>(out, layout.slot_mapping);
  auto* query_start_loc = At<int32_t>(out, layout.query_start_loc);
  auto* seq_lens = At<int32_t>(out, layout.seq_lens);
  auto* row_tokens = At<int64_t>(out, layout.row_tokens);
  auto* tables = At<int32_t>(out, layout.block_tables);
  const int64_t n = static_cast<int64_t>(batch.size());
  for (int64_t s = 0; s < layout.size; ++s) {
    query_start_loc[s] = static_cast<int32_t>(s);
    row_tokens[s] = s;
    if (s >= n) {  // padding: token 0 at position 0 of a one-token context, written nowhere
      token_ids[s] = 0;
      positions[s] = 0;
      slots[s] = -1;
      seq_lens[s] = 1;
      continue;
    }
    const SequenceInput& seq = batch[s];
    const int64_t pos = seq.num_computed_tokens;
    token_ids[s] = seq.token_ids[0];
    positions[s] = static_cast<int32_t>(pos);
    slots[s] = int64_t{seq.block_table[pos / block_size]} * block_size + pos % block_size;
    seq_lens[s] = static_cast<int32_t>(pos + 1);
    const int64_t blocks =
        std::min<int64_t>(layout.max_blocks_per_seq, static_cast<int64_t>(seq.block_table.size()));
    std::copy_n(seq.block_table.begin(), blocks, tables + s * layout.max_blocks_per_seq);
  }
  query_start_loc[layout.size] = static_cast<int32_t>(layout.size);
}

}  // namespace pagoda
