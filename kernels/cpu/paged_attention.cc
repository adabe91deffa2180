#include "kernels/cpu/paged_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/internal/attention_rows.h"
#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"
#include "kernels/kv_cache_write.h"

namespace pagoda::kernels::cpu {
namespace {

// Context positions per online-softmax step: their K and V rows (2 x 32 x head_dim floats) stay
// in L1 while every query row of a tile passes over them.
constexpr int64_t kChunk = 32;
// Query rows (tokens x query heads of one GQA group) per work item. Each K/V row fetched from the
// cache is used by all of them, so prefill reads the context once per tile, not once per token.
constexpr int64_t kTileRows = 32;
// Context positions per piece: longer contexts are split at multiples of this (a multiple of
// kChunk) and the pieces merged, for every batch shape alike (see PagedAttention).
constexpr int64_t kPiecePositions = 256;
static_assert(kPiecePositions % kChunk == 0);
static_assert(kChunk == internal::kGroupSoftmaxPositions);
// Runs of transposed keys (scores_transposed) per chunk.
constexpr int64_t kRun = internal::kTransposedKeyRun;
constexpr int64_t kChunkRuns = kChunk / kRun;
static_assert(kChunk % kRun == 0);
// Multiply-adds below which forking threads costs more than it saves.
constexpr int64_t kParallelMinWork = 1 << 16;

// One query tile of one sequence against one KV head, over part of the context.
struct WorkItem {
  int64_t seq;
  int64_t kv_head;
  int64_t q_begin;  // tile tokens [q_begin, q_end), relative to the sequence's first query token
  int64_t q_end;
  int64_t ctx_begin;  // context positions [ctx_begin, ctx_end) read by this item
  int64_t ctx_end;
  int64_t partial_row;  // -1: writes out; else first row of its softmax state in the partials
  int64_t cost;         // multiply-adds, for scheduling the longest first
};

// The pieces of a split tile, merged once all items ran.
struct MergeGroup {
  int64_t seq;
  int64_t kv_head;
  int64_t q_begin;
  int64_t q_end;
  int64_t first_row;  // piece i's row r is partial row first_row + i * rows + r
  int64_t num_pieces;
};

// Unnormalized softmax states of split items: running max, running sum and weighted V sum.
struct Partials {
  std::vector<float> max;  // [rows]
  std::vector<float> sum;  // [rows]
  std::vector<float> acc;  // [rows, head_dim]
};

// Per-thread working set of one item.
struct Scratch {
  float* q;    // [rows, head_dim], pre-scaled
  float* acc;  // [rows, head_dim]
  float* max;  // [rows]
  float* sum;  // [rows]
  float* k;    // [kChunk, head_dim]: a bf16 cache's K rows of the chunk, widened
  float* v;    // [kChunk, head_dim]
  float* s;    // [rows, kChunk]: scores, then weights (the group form)
};

// Points rows[c] at cache row `offset` in fp32: in place for an fp32 cache, else widened from
// bf16 into `widened` + c * dim.
inline const float* CacheRow(const void* cache, DType dtype, int64_t offset, int64_t dim,
                             float* widened) {
  if (dtype == DType::kF32) return static_cast<const float*>(cache) + offset;
  const uint16_t* __restrict src = static_cast<const uint16_t*>(cache) + offset;
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) widened[d] = internal::Bf16ToFloat(src[d]);
  return widened;
}

// The row form's online-softmax update of row r for `count` scores at s (turned into weights in
// place): the running max and sum, and the accumulator rescaled when the max grows. The caller
// then adds the weighted V rows into the accumulator. (The group form has its own, vectorized:
// AttentionGroupOps::softmax.)
inline void SoftmaxStep(const Scratch& scratch, int64_t r, int64_t dim, float softcap, float* s,
                        int64_t count) {
  if (softcap > 0.0f) {
    const float inv_cap = 1.0f / softcap;
    for (int64_t c = 0; c < count; ++c) s[c] = softcap * std::tanh(s[c] * inv_cap);
  }
  const float old_max = scratch.max[r];
  float new_max = old_max;
  for (int64_t c = 0; c < count; ++c) new_max = std::max(new_max, s[c]);
  float chunk_sum = 0.0f;
#pragma omp simd reduction(+ : chunk_sum)
  for (int64_t c = 0; c < count; ++c) {
    s[c] = internal::FastExp(s[c] - new_max);
    chunk_sum += s[c];
  }
  float* __restrict acc = scratch.acc + r * dim;
  if (new_max != old_max) {
    const float rescale = std::exp(old_max - new_max);  // 0 on the first chunk
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) acc[d] *= rescale;
    scratch.sum[r] *= rescale;
    scratch.max[r] = new_max;
  }
  scratch.sum[r] += chunk_sum;
}

// Byte offsets of the cached rows of positions [c0 + skip, c0 + n) of KV head kv_head, at
// rows[c] for position c0 + c: block by block, one table lookup per block, not per position
// (a head's rows of a block are contiguous: kv_cache_write.h's KvCacheRowOffset).
inline void CachedRowOffsets(const PagedAttentionParams& p, const int32_t* table, int64_t kv_head,
                             int64_t element, int64_t c0, int64_t skip, int64_t n, int64_t* rows) {
  const int64_t row_bytes = p.head_dim * element;
  for (int64_t c = skip; c < n;) {
    const int64_t pos = c0 + c;
    const int64_t in_block = pos % p.block_size;
    const int64_t run = std::min(p.block_size - in_block, n - c);
    const int64_t offset = KvCacheRowOffset(table[pos / p.block_size], in_block, kv_head,
                                            p.num_kv_heads, p.head_dim, p.block_size) *
                           element;
    for (int64_t i = 0; i < run; ++i) rows[c + i] = offset + i * row_bytes;
    c += run;
  }
}

// Points runs[j] at the transposed keys of positions [c0 + 16 j, c0 + 16 j + 16) of KV head
// kv_head, for the runs from the one holding position c0 + skip to the one holding c0 + n - 1.
// A run lies in one block (block_size is a multiple of 16), allocated wherever one of its
// positions is visible: its positions past the context (or before a window) are read, never used.
inline void TransposedKeyRuns(const PagedAttentionParams& p, const int32_t* table, int64_t kv_head,
                              int64_t element, int64_t c0, int64_t skip, int64_t n,
                              const void** runs) {
  const auto* key_cache = static_cast<const char*>(p.key_cache);
  for (int64_t j = skip / kRun; j * kRun < n; ++j) {
    const int64_t pos = c0 + j * kRun;
    runs[j] =
        key_cache + TransposedKeyOffset(table[pos / p.block_size], pos % p.block_size, kv_head, 0,
                                        p.num_kv_heads, p.head_dim, p.block_size) *
                        element;
  }
}

// One chunk of positions [c0, c0 + n) of a work item by the group form: the cache rows are read
// in place (bfloat16 widened in registers), and the tile's query rows share every K and V load.
// Keys stored transposed are read by runs of 16 positions (scores_transposed), the same scores.
// A row's arithmetic does not depend on the rows beside it (attention_rows.h), so results do not
// depend on the batch. The next chunk's rows (up to `end`) are prefetched meanwhile: a decode
// batch's K/V comes from memory a block at a time, from blocks anywhere in the cache, which the
// hardware prefetchers cannot guess.
PAGODA_KERNEL_CLONES void GroupChunk(const PagedAttentionParams& p, const WorkItem& w,
                                     const internal::AttentionGroupOps& ops, const Scratch& scratch,
                                     const int32_t* table, int64_t tile_pos, int64_t tile_tokens,
                                     int64_t c0, int64_t n, int64_t end) {
  const int64_t dim = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t window = p.sliding_window;
  const bool bf16 = p.cache_dtype != DType::kF32;
  const int64_t element = bf16 ? 2 : 4;
  const auto* key_cache = static_cast<const char*>(p.key_cache);
  const auto* value_cache = static_cast<const char*>(p.value_cache);
  // Positions before every row's window are never read (their blocks may be freed).
  const int64_t skip = window > 0 ? std::clamp<int64_t>(tile_pos - window + 1 - c0, 0, n) : 0;
  const bool transposed = p.keys_transposed;
  int64_t offsets[kChunk];
  const void* k_rows[kChunk];
  const void* v_rows[kChunk];
  const void* k_runs[kChunkRuns];
  CachedRowOffsets(p, table, w.kv_head, element, c0, skip, n, offsets);
  for (int64_t c = skip; c < n; ++c) v_rows[c] = value_cache + offsets[c];
  if (transposed) {
    TransposedKeyRuns(p, table, w.kv_head, element, c0, skip, n, k_runs);
  } else {
    for (int64_t c = skip; c < n; ++c) k_rows[c] = key_cache + offsets[c];
  }
  const int64_t next_n = std::min(kChunk, end - c0 - kChunk);
  if (next_n > 0) {
    CachedRowOffsets(p, table, w.kv_head, element, c0 + kChunk, 0, next_n, offsets);
    const int64_t slice_bytes = dim * element;
    for (int64_t c = 0; c < next_n; ++c) {
      for (int64_t b = 0; b < slice_bytes; b += 64) {
        if (!transposed) __builtin_prefetch(key_cache + offsets[c] + b, 0, 3);
        __builtin_prefetch(value_cache + offsets[c] + b, 0, 3);
      }
    }
    if (transposed) {
      const void* next_runs[kChunkRuns];
      TransposedKeyRuns(p, table, w.kv_head, element, c0 + kChunk, 0, next_n, next_runs);
      // A run's dimensions lie block_size elements apart: one line each, or (block_size 16) the
      // head's whole block in one range.
      const int64_t d_bytes = p.block_size * element;
      for (int64_t j = 0; j * kRun < next_n; ++j) {
        const char* run = static_cast<const char*>(next_runs[j]);
        if (p.block_size == kRun) {
          for (int64_t b = 0; b < dim * d_bytes; b += 64) __builtin_prefetch(run + b, 0, 3);
        } else {
          for (int64_t d = 0; d < dim; ++d) __builtin_prefetch(run + d * d_bytes, 0, 3);
        }
      }
    }
  }
  // Every row of the tile sees all n positions (none cut by the causal mask or a window): one
  // pass over the chunk for all of them, each K and V vector loaded once per pass of up to four
  // rows (attention_rows.cc).
  const bool whole =
      skip == 0 && tile_pos + 1 - c0 >= n && (window <= 0 || tile_pos + tile_tokens - window <= c0);
  if (whole) {
    const int64_t rows = tile_tokens * group;
    if (transposed) {
      ops.scores_transposed(scratch.q, rows, k_runs, bf16, (n + kRun - 1) / kRun, dim, p.block_size,
                            scratch.s, kChunk);
    } else {
      ops.scores(scratch.q, rows, k_rows, bf16, n, dim, scratch.s, kChunk);
    }
    ops.softmax(scratch.s, kChunk, rows, 0, n, p.logit_softcap, dim, scratch.max, scratch.sum,
                scratch.acc);
    ops.accumulate(scratch.s, kChunk, rows, v_rows, bf16, n, dim, scratch.acc);
    return;
  }
  // Token by token over its own positions: a row's operations are the same as in a whole pass
  // (the group form's contract), so where a chunk falls does not change any result.
  for (int64_t t = 0; t < tile_tokens; ++t) {
    const int64_t valid = std::min(n, tile_pos + t + 1 - c0);  // causal mask
    const int64_t first = window > 0 ? std::max<int64_t>(0, tile_pos + t - window + 1 - c0) : 0;
    if (valid <= first) continue;
    const int64_t count = valid - first;
    const int64_t r0 = t * group;
    float* s = scratch.s + r0 * kChunk;
    if (transposed) {
      const int64_t run = first / kRun;  // the runs holding [first, valid)
      ops.scores_transposed(scratch.q + r0 * dim, group, k_runs + run, bf16,
                            (valid + kRun - 1) / kRun - run, dim, p.block_size, s + run * kRun,
                            kChunk);
    } else {
      ops.scores(scratch.q + r0 * dim, group, k_rows + first, bf16, count, dim, s + first, kChunk);
    }
    ops.softmax(s, kChunk, group, first, valid, p.logit_softcap, dim, scratch.max + r0,
                scratch.sum + r0, scratch.acc + r0 * dim);
    ops.accumulate(s + first, kChunk, group, v_rows + first, bf16, count, dim,
                   scratch.acc + r0 * dim);
  }
}

// Runs one work item: online softmax over its context range for all rows of its tile, then
// either normalizes into out or leaves the unnormalized state in the partials.
PAGODA_KERNEL_CLONES void AttendTile(const PagedAttentionParams& p, const WorkItem& w,
                                     const internal::AttentionRowOps& ops,
                                     const internal::AttentionGroupOps* group_ops,
                                     const Scratch& scratch, Partials* partials) {
  const int64_t dim = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t tile_tokens = w.q_end - w.q_begin;
  const int64_t rows = tile_tokens * group;
  const int64_t first_token = p.query_start_loc[w.seq] + w.q_begin;
  const int64_t q_len = p.query_start_loc[w.seq + 1] - p.query_start_loc[w.seq];
  // Tile token t sits at position tile_pos + t and attends to [0, tile_pos + t].
  const int64_t tile_pos = p.seq_lens[w.seq] - q_len + w.q_begin;
  const int32_t* table = p.block_tables + w.seq * p.max_blocks_per_seq;

  // Row r = t * group + j is token t of the tile and query head kv_head * group + j.
  for (int64_t t = 0; t < tile_tokens; ++t) {
    const float* src = p.q + (first_token + t) * p.q_stride + w.kv_head * group * dim;
    float* __restrict dst = scratch.q + t * group * dim;
    const float scale = p.scale;
#pragma omp simd
    for (int64_t i = 0; i < group * dim; ++i) dst[i] = src[i] * scale;
  }
  std::fill(scratch.acc, scratch.acc + rows * dim, 0.0f);
  std::fill(scratch.max, scratch.max + rows, -std::numeric_limits<float>::infinity());
  std::fill(scratch.sum, scratch.sum + rows, 0.0f);

  const float* k_rows[kChunk];
  const float* v_rows[kChunk];
  float s[kChunk];
  const int64_t window = p.sliding_window;
  const float softcap = p.logit_softcap;
  const int64_t end = std::min(w.ctx_end, tile_pos + tile_tokens);
  // Chunks stay aligned to multiples of kChunk (items begin at multiples of kPiecePositions), so a
  // window only skips whole chunks before the tile's first visible position: every row still
  // meets its positions in the same chunks, whatever tile it is in.
  int64_t begin = w.ctx_begin;
  if (window > 0) begin = std::max(begin, (tile_pos - window + 1) / kChunk * kChunk);
  for (int64_t c0 = begin; c0 < end; c0 += kChunk) {
    const int64_t n = std::min(kChunk, end - c0);
    if (group_ops != nullptr) {
      GroupChunk(p, w, *group_ops, scratch, table, tile_pos, tile_tokens, c0, n, end);
      continue;
    }
    for (int64_t c = 0; c < n; ++c) {
      const int64_t pos = c0 + c;
      if (window > 0 && pos + window <= tile_pos) continue;  // before every row's window
      const int64_t offset = KvCacheRowOffset(table[pos / p.block_size], pos % p.block_size,
                                              w.kv_head, p.num_kv_heads, dim, p.block_size);
      k_rows[c] = CacheRow(p.key_cache, p.cache_dtype, offset, dim, scratch.k + c * dim);
      v_rows[c] = CacheRow(p.value_cache, p.cache_dtype, offset, dim, scratch.v + c * dim);
    }
    for (int64_t t = 0; t < tile_tokens; ++t) {
      const int64_t valid = std::min(n, tile_pos + t + 1 - c0);  // causal mask
      // The window: positions (tile_pos + t - window, tile_pos + t].
      const int64_t first = window > 0 ? std::max<int64_t>(0, tile_pos + t - window + 1 - c0) : 0;
      if (valid <= first) continue;
      const int64_t count = valid - first;
      for (int64_t j = 0; j < group; ++j) {
        const int64_t r = t * group + j;
        float* const row_s = s + first;
        ops.scores(scratch.q + r * dim, k_rows + first, count, dim, row_s);
        SoftmaxStep(scratch, r, dim, softcap, row_s, count);
        ops.accumulate(row_s, v_rows + first, count, dim, scratch.acc + r * dim);
      }
    }
  }

  if (w.partial_row >= 0) {
    std::copy(scratch.max, scratch.max + rows, partials->max.data() + w.partial_row);
    std::copy(scratch.sum, scratch.sum + rows, partials->sum.data() + w.partial_row);
    std::copy(scratch.acc, scratch.acc + rows * dim, partials->acc.data() + w.partial_row * dim);
    return;
  }
  for (int64_t t = 0; t < tile_tokens; ++t) {
    for (int64_t j = 0; j < group; ++j) {
      const int64_t r = t * group + j;
      const float inv_sum = 1.0f / scratch.sum[r];  // > 0: a row always sees its own position
      const float* __restrict acc = scratch.acc + r * dim;
      float* __restrict dst =
          p.out + ((first_token + t) * p.num_heads + w.kv_head * group + j) * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) dst[d] = acc[d] * inv_sum;
    }
  }
}

// Combines the pieces of a split tile: out = sum_i e^(m_i - M) acc_i / sum_i e^(m_i - M) l_i.
void MergePieces(const PagedAttentionParams& p, const MergeGroup& g, const Partials& partials) {
  const int64_t dim = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t rows = (g.q_end - g.q_begin) * group;
  const int64_t first_token = p.query_start_loc[g.seq] + g.q_begin;
  for (int64_t r = 0; r < rows; ++r) {
    float global_max = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < g.num_pieces; ++i) {
      global_max = std::max(global_max, partials.max[g.first_row + i * rows + r]);
    }
    float* __restrict dst =
        p.out + ((first_token + r / group) * p.num_heads + g.kv_head * group + r % group) * dim;
    std::fill(dst, dst + dim, 0.0f);
    float total = 0.0f;
    for (int64_t i = 0; i < g.num_pieces; ++i) {
      const int64_t row = g.first_row + i * rows + r;
      if (partials.sum[row] == 0.0f) continue;  // the piece lies after this row's position
      const float weight = std::exp(partials.max[row] - global_max);
      total += weight * partials.sum[row];
      const float* __restrict acc = partials.acc.data() + row * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) dst[d] += weight * acc[d];
    }
    const float inv_total = 1.0f / total;
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) dst[d] *= inv_total;
  }
}

}  // namespace

bool ReadsTransposedKeys(int64_t block_size) {
  return block_size % kRun == 0 && internal::BestAttentionGroupOps() != nullptr;
}

void PagedAttention(const PagedAttentionParams& p) {
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t tile_tokens = std::max<int64_t>(1, kTileRows / group);

  std::vector<WorkItem> items;
  int64_t total_work = 0;
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t q_len = p.query_start_loc[s + 1] - p.query_start_loc[s];
    const int64_t first_pos = p.seq_lens[s] - q_len;
    for (int64_t b = 0; b < q_len; b += tile_tokens) {
      const int64_t e = std::min(q_len, b + tile_tokens);
      const int64_t context = first_pos + e;
      const int64_t span =
          p.sliding_window > 0 ? std::min(context, p.sliding_window + e - b) : context;
      const int64_t cost = 2 * (e - b) * group * span * p.head_dim;
      for (int64_t h = 0; h < p.num_kv_heads; ++h) {
        items.push_back({s, h, b, e, 0, context, -1, cost});
        total_work += cost;
      }
    }
  }

  const int64_t num_threads = omp_get_max_threads();
  const bool parallel = num_threads > 1 && total_work >= kParallelMinWork;
  // Contexts longer than kPiecePositions are split at fixed positions, whatever the batch and the
  // thread count, and the pieces' softmax states merged afterwards: a row's result then depends
  // only on its own position (batch invariance: alone in a decode step, in a prefill chunk of any
  // length or beside other sequences, a token attends through the same pieces in the same order).
  // The split also gives a small decode batch with a long context enough items for the threads.
  Partials partials;
  std::vector<MergeGroup> merges;
  std::vector<WorkItem> split;
  int64_t partial_rows = 0;
  for (const WorkItem& w : items) {
    const int64_t context = w.ctx_end;
    if (context <= kPiecePositions) {
      split.push_back(w);
      continue;
    }
    const int64_t rows = (w.q_end - w.q_begin) * group;
    MergeGroup g{w.seq, w.kv_head, w.q_begin, w.q_end, partial_rows, 0};
    // With a window, the pieces before the tile's first visible position are not made: they hold
    // nothing any of its rows attends to (and their blocks may be gone).
    const int64_t tile_pos = context - (w.q_end - w.q_begin);
    const int64_t first_visible =
        p.sliding_window > 0 ? std::max<int64_t>(0, tile_pos - p.sliding_window + 1) : 0;
    for (int64_t b = first_visible / kPiecePositions * kPiecePositions; b < context;
         b += kPiecePositions) {
      WorkItem piece = w;
      piece.ctx_begin = b;
      piece.ctx_end = std::min(context, b + kPiecePositions);
      piece.partial_row = partial_rows;
      piece.cost = w.cost * (piece.ctx_end - b) / context;
      split.push_back(piece);
      partial_rows += rows;
      ++g.num_pieces;
    }
    merges.push_back(g);
  }
  items = std::move(split);
  partials.max.resize(static_cast<size_t>(partial_rows));
  partials.sum.resize(static_cast<size_t>(partial_rows));
  partials.acc.resize(static_cast<size_t>(partial_rows * p.head_dim));
  std::stable_sort(items.begin(), items.end(),
                   [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });

  const int64_t max_rows = std::min(tile_tokens, p.num_tokens) * group;
  const int64_t num_items = static_cast<int64_t>(items.size());
  const int64_t num_merges = static_cast<int64_t>(merges.size());
  const internal::AttentionRowOps& ops = internal::BestAttentionRowOps();
  const internal::AttentionGroupOps* group_ops = internal::BestAttentionGroupOps();
#pragma omp parallel if (parallel)
  {
    // The group form reads the cache in place; the row form widens a bf16 cache's rows first.
    const int64_t widened =
        p.cache_dtype == DType::kF32 || group_ops != nullptr ? 0 : kChunk * p.head_dim;
    const int64_t scores = group_ops != nullptr ? max_rows * kChunk : 0;
    std::vector<float> buffer(
        static_cast<size_t>(max_rows * (2 * p.head_dim + 2) + 2 * widened + scores));
    float* base = buffer.data();
    const Scratch scratch{base,
                          base + max_rows * p.head_dim,
                          base + 2 * max_rows * p.head_dim,
                          base + 2 * max_rows * p.head_dim + max_rows,
                          base + 2 * max_rows * p.head_dim + 2 * max_rows,
                          base + 2 * max_rows * p.head_dim + 2 * max_rows + widened,
                          base + 2 * max_rows * p.head_dim + 2 * max_rows + 2 * widened};
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_items; ++i) {
      AttendTile(p, items[i], ops, group_ops, scratch, &partials);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < num_merges; ++i) MergePieces(p, merges[i], partials);
  }
}

}  // namespace pagoda::kernels::cpu
