// Paged attention over a flattened variable-length batch (prefill chunks and decodes together).
//
// Sequence s owns query tokens [query_start_loc[s], query_start_loc[s+1]) of q/out and has
// seq_lens[s] tokens of context in the paged cache, the new ones included (their K/V must already
// be written with WriteKvCache). Query token j of a q_len-token chunk sits at position
// seq_lens[s] - q_len + j and attends causally to cache positions [0, that position]: a prefill
// chunk sees its cached prefix plus itself, a decode (q_len 1) sees everything. With a sliding
// window W, position p sees only (p - W, p]: the blocks of positions before every query's window
// are never read (the engine may have freed them; their block-table entries are not checked).
// Cache position p of sequence s lives in block block_tables[s * max_blocks_per_seq + p /
// block_size], row p % block_size of each KV head's rows there (kv_cache_write.h's layout; the
// keys transposed within the block where keys_transposed). GQA:
// query head h reads KV head h / (num_heads / num_kv_heads). Softmax is computed online in fp32 (no
// [q_len, context] matrix is formed). The cache holds fp32 or bf16; bf16 rows are widened to fp32 a
// chunk at a time as they are read.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct PagedAttentionParams {
  float* out = nullptr;                   // [num_tokens, num_heads, head_dim], packed
  const float* q = nullptr;               // [num_tokens, num_heads, head_dim], row stride q_stride
  const void* key_cache = nullptr;        // [num_blocks, num_kv_heads, block_size, head_dim], or
                                          // [.., head_dim, block_size] where keys_transposed
  const void* value_cache = nullptr;      // [num_blocks, num_kv_heads, block_size, head_dim]
  DType cache_dtype = DType::kF32;        // of key_cache and value_cache: kF32 or kBF16
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  const int32_t* query_start_loc = nullptr;  // [num_seqs + 1], query_start_loc[0] == 0
  const int32_t* seq_lens = nullptr;         // [num_seqs], context length incl. new tokens
  int64_t num_seqs = 0;
  int64_t num_tokens = 0;  // == query_start_loc[num_seqs]
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // divides num_heads
  int64_t head_dim = 0;
  int64_t block_size = 0;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t q_stride = 0;  // floats between consecutive tokens of q
  /// The keys are stored transposed within each head's block (kv_cache_write.h's
  /// TransposedKeyOffset): only where PrefersTransposedKeys(device, block_size) says so.
  bool keys_transposed = false;
  /// Optional: an upper bound on every sequence's query length, known on the host (ModelRunner
  /// builds it with the metadata). The CUDA twin picks its path from it (decode for short
  /// queries, tiled prefill for longer ones) and sizes its grid by it; results never depend on
  /// it. 0: unknown (num_tokens is used). The CPU's Validate() checks it against the queries.
  int64_t max_query_len = 0;
  float scale = 0.0f;  // usually 1 / sqrt(head_dim)
  /// > 0: the query at position p attends to positions (p - sliding_window, p] only (Mistral,
  /// Gemma's local layers; transformers' rule kv_idx > q_idx - sliding_window). 0: all of [0, p].
  int64_t sliding_window = 0;
  /// > 0: each scaled score s becomes logit_softcap * tanh(s / logit_softcap) before the softmax
  /// (Gemma 2's attention logit soft-capping). 0: none.
  float logit_softcap = 0.0f;
  /// The caller checked every block id the sequences use against num_blocks, once for the
  /// whole step (ModelRunner does): PagedAttention then skips ValidateBlockIds(), which would
  /// repeat the same O(blocks) scan in every layer.
  bool block_ids_checked = false;
  /// kCuda: every pointer is device memory, block_tables, query_start_loc and seq_lens too, so
  /// Validate() checks only what it can without reading them: the caller checks them on its host
  /// copy (ModelRunner builds them) and must set block_ids_checked. The CUDA twin still never
  /// reads outside the cache: a block id outside it contributes nothing. head_dim <= 256.
  /// A sequence with seq_lens[s] == 0 and query tokens (the padding entries of a CUDA graph's
  /// fixed-size decode batch) gets zeros on CUDA; the CPU's Validate() refuses it (q_len >
  /// seq_len).
  Device device = Device::kCpu;

  /// Cheap (O(num_seqs)): shapes and pointers, and that every sequence's query fits in its
  /// context and its context in its block table.
  absl::Status Validate() const;
  /// O(blocks used): every block id a sequence's context uses is in [0, num_blocks). Call after
  /// Validate(). With a sliding window only the blocks from FirstVisiblePosition on are used.
  absl::Status ValidateBlockIds() const;
  /// The first cache position any query token of sequence `seq` attends to: 0 without a window.
  int64_t FirstVisiblePosition(int64_t seq) const;
};

/// Whether paged attention on `device` with blocks of `block_size` positions reads keys stored
/// transposed (faster there, the same results bit for bit): the layout a KV cache for it should
/// take (KvCacheShape::keys_transposed). True on a CPU with the AVX-512 form of the attention
/// (not under PAGODA_CPU_ISA=avx2 or scalar) when block_size is a multiple of 16.
bool PrefersTransposedKeys(Device device, int64_t block_size);

/// Validate(), ValidateBlockIds() unless block_ids_checked, then the attention.
absl::Status PagedAttention(const PagedAttentionParams& params);

}  // namespace pagoda::kernels
