// The device code of paged attention (kernels/cuda/paged_attention.cu launches it; the launch
// plan is kernels/cuda/paged_attention_plan.h): DecodeKernel and CombineKernel (split-context
// decode), PrefillKernel (tiled prefill), all in fp32 with the cache's rows widened as they are
// read. Included by paged_attention.cu only, and by the CPU emulation test
// (tests/kernels/cuda_paged_attention_emulated_test.cc, PAGODA_CUDA_EMULATION), which runs these
// kernels on the CPU through tests/kernels/cuda_emulation.h where no device is.
#pragma once

#include <cstdint>

#include "kernels/cuda/paged_attention_plan.h"
#ifndef PAGODA_CUDA_EMULATION
#include "kernels/cuda/internal/device_math.cuh"
#endif

namespace pagoda::kernels::cuda::internal {
namespace {  // one translation unit per binary includes this

constexpr unsigned int kFullMask = 0xffffffffu;
// Decode and prefill: a warp-wide row of head_dim <= 256 is 8 dims per lane (lane l holds dims
// l, l + 32, ...); the decode block's V pass gives each of its 128 threads 2 dims.
constexpr int kDimsPerLane = static_cast<int>(kMaxHeadDim) / kWarpSize;
constexpr int kDimsPerDecodeThread = static_cast<int>(kMaxHeadDim) / kDecodeThreads;
constexpr int kDimsPerCombineThread = static_cast<int>(kMaxHeadDim) / kCombineThreads;
constexpr int kDecodeWarps = kDecodeThreads / kWarpSize;
constexpr int kPrefillWarps = kPrefillThreads / kWarpSize;
constexpr int kRowsPerWarp = static_cast<int>(kPrefillRows) / kPrefillWarps;
constexpr int kHeadsPerBlock = static_cast<int>(kMaxHeadsPerBlock);
constexpr int kPartition = static_cast<int>(kPartitionSize);
static_assert(kMaxHeadDim % kDecodeThreads == 0 && kMaxHeadDim % kCombineThreads == 0);
static_assert(kPrefillRows % kPrefillWarps == 0 && kKvTile == kWarpSize);

struct F32Cache {
  using Element = float;
  __device__ static float Load(const float* p) { return *p; }
};
struct Bf16Cache {
  using Element = uint16_t;
  __device__ static float Load(const uint16_t* p) { return Bf16ToFloat(*p); }
};

// The params every attention kernel reads, by value (one launch argument).
template <typename Cache>
struct Args {
  float* out;
  const float* q;
  const typename Cache::Element* key_cache;
  const typename Cache::Element* value_cache;
  const int32_t* block_tables;
  const int32_t* query_start_loc;
  const int32_t* seq_lens;
  int64_t num_seqs;
  int64_t num_heads;
  int64_t head_dim;
  int64_t num_kv_heads;
  int64_t block_size;
  int64_t num_blocks;
  int64_t max_blocks_per_seq;
  int64_t q_stride;
  float scale;
  int64_t sliding_window;
  float logit_softcap;
  int64_t group;            // query heads per KV head
  int64_t heads_per_block;  // of one group
  int64_t head_chunks;      // blocks per KV head
};

__device__ float WarpSum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(kFullMask, v, offset);
  }
  return v;
}

__device__ float WarpMax(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  return v;
}

__device__ float SoftCap(float score, float cap) {
  return cap > 0.0f ? cap * tanhf(score / cap) : score;
}

// A weight exp(score - running_max) that is 0 for a masked (-inf) score, even when running_max
// is -inf too.
__device__ float Weight(float score, float running_max) {
  return score == -INFINITY ? 0.0f : expf(score - running_max);
}

// Query token t of the flattened batch: its sequence and the cache positions [first, position]
// it attends to (empty, position < first, for a padding entry whose seq_len is 0).
struct QueryToken {
  int64_t seq;
  int64_t position;
  int64_t first;
};

__device__ QueryToken LocateToken(const int32_t* query_start_loc, const int32_t* seq_lens,
                                  int64_t num_seqs, int64_t sliding_window, int64_t t) {
  // The sequence holding t: the last s with query_start_loc[s] <= t (empty sequences before it
  // share its start).
  int64_t lo = 0;
  int64_t hi = num_seqs;  // answer in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (query_start_loc[mid] <= t) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const int64_t q_len = int64_t{query_start_loc[lo + 1]} - query_start_loc[lo];
  // Query token j of the chunk sits at position seq_len - q_len + j.
  const int64_t position = seq_lens[lo] - q_len + (t - query_start_loc[lo]);
  const int64_t first =
      sliding_window > 0 ? max(int64_t{0}, position - sliding_window + 1) : int64_t{0};
  return {lo, position, first};
}

// Where KV head kv_head of cache position pos starts in the cache (elements), or -1 when the
// block table names a block outside the cache. The layout is kernels/kv_cache_write.h's:
// [num_blocks, num_kv_heads, block_size, head_dim].
template <typename Cache>
__device__ int64_t CacheRow(const Args<Cache>& a, const int32_t* table, int64_t kv_head,
                            int64_t pos) {
  const int32_t block = table[pos / a.block_size];
  if (block < 0 || block >= a.num_blocks) return -1;
  return ((int64_t{block} * a.num_kv_heads + kv_head) * a.block_size + pos % a.block_size) *
         a.head_dim;
}

// Block (t, y, z), kDecodeThreads threads: query token t; KV head y / head_chunks and the query
// heads [h0, h0 + heads) of its group (chunk y % head_chunks); context partition z, positions
// [z * kPartitionSize, (z + 1) * kPartitionSize) cut to the token's visible range [first,
// position]. Shared memory holds the chunk's scaled q rows, one score (then weight) per (head,
// position) and each position's cache row. Phases, each closed by a barrier:
//   1. every thread: q rows and cache rows, strided over the block;
//   2. warp w: positions w, w + 4, ...: lane l reads K dims l, l + 32, ... once, then one
//      warp-wide dot product per head;
//   3. warp w: heads w, w + 4, ...: the partition's max, weights and their sum;
//   4. thread i: dims i and i + 128 of every head's weighted V sum, each V row read once.
// One partition: the block writes out (zeros when the range is empty: padding). Several: it
// writes its state to the workspace, or nothing when the range is empty (CombineKernel computes
// the same ranges and reads only the written partitions).
template <typename Cache>
__global__ void __launch_bounds__(kDecodeThreads)
    DecodeKernel(Args<Cache> a, int64_t num_partitions, float* workspace, DecodeWorkspace ws) {
  __shared__ float q_s[kHeadsPerBlock * kMaxHeadDim];
  __shared__ float score_s[kHeadsPerBlock * kPartition];
  __shared__ int64_t row_s[kPartition];
  __shared__ float max_s[kHeadsPerBlock];
  __shared__ float sum_s[kHeadsPerBlock];

  const int64_t t = blockIdx.x;
  const int64_t kv_head = blockIdx.y / a.head_chunks;
  const int64_t chunk = blockIdx.y % a.head_chunks;
  const int64_t partition = blockIdx.z;
  const int64_t h0 = kv_head * a.group + chunk * a.heads_per_block;
  const int heads = static_cast<int>(min(a.heads_per_block, a.group - chunk * a.heads_per_block));
  const int64_t dim = a.head_dim;
  const int tid = threadIdx.x;
  const int warp = tid / kWarpSize;
  const int lane = tid % kWarpSize;
  float* const out = a.out + (t * a.num_heads + h0) * dim;  // the chunk's heads are adjacent

  const QueryToken token =
      LocateToken(a.query_start_loc, a.seq_lens, a.num_seqs, a.sliding_window, t);
  const int64_t begin = max(token.first, partition * kPartitionSize);
  const int64_t end = min(token.position + 1, (partition + 1) * kPartitionSize);
  if (begin >= end) {
    if (num_partitions == 1) {
      for (int64_t i = tid; i < heads * dim; i += blockDim.x) out[i] = 0.0f;
    }
    return;
  }
  const int n = static_cast<int>(end - begin);
  const int32_t* table = a.block_tables + token.seq * a.max_blocks_per_seq;

  // 1. The chunk's q rows, scaled, and the partition's cache rows.
  const float* q = a.q + t * a.q_stride + h0 * dim;
  for (int64_t i = tid; i < heads * dim; i += blockDim.x) q_s[i] = q[i] * a.scale;
  for (int c = tid; c < n; c += blockDim.x) row_s[c] = CacheRow(a, table, kv_head, begin + c);
  __syncthreads();

  // 2. Scores: warp per position, lane l over dims l + 32k.
  for (int c = warp; c < n; c += kDecodeWarps) {
    const int64_t row = row_s[c];
    if (row < 0) {
      if (lane < heads) score_s[lane * kPartition + c] = -INFINITY;
      continue;
    }
    float k[kDimsPerLane];
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int64_t i = lane + j * kWarpSize;
      k[j] = i < dim ? Cache::Load(a.key_cache + row + i) : 0.0f;
    }
    for (int g = 0; g < heads; ++g) {
      float partial = 0.0f;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) {
        const int64_t i = lane + j * kWarpSize;
        if (i < dim) partial += q_s[g * dim + i] * k[j];
      }
      const float score = WarpSum(partial);
      if (lane == 0) score_s[g * kPartition + c] = SoftCap(score, a.logit_softcap);
    }
  }
  __syncthreads();

  // 3. Per head: the max, the weights (in place of the scores) and their sum.
  for (int g = warp; g < heads; g += kDecodeWarps) {
    float* s = score_s + g * kPartition;
    float m = -INFINITY;
    for (int c = lane; c < n; c += kWarpSize) m = fmaxf(m, s[c]);
    m = WarpMax(m);
    float sum = 0.0f;
    for (int c = lane; c < n; c += kWarpSize) {
      s[c] = Weight(s[c], m);
      sum += s[c];
    }
    sum = WarpSum(sum);
    if (lane == 0) {
      max_s[g] = m;
      sum_s[g] = sum;
    }
  }
  __syncthreads();

  // 4. The weighted V sums: thread tid owns dims tid + 128k of every head of the chunk.
  float acc[kHeadsPerBlock][kDimsPerDecodeThread] = {};
  for (int c = 0; c < n; ++c) {
    const int64_t row = row_s[c];
    if (row < 0) continue;
#pragma unroll
    for (int j = 0; j < kDimsPerDecodeThread; ++j) {
      const int64_t i = tid + j * kDecodeThreads;
      if (i >= dim) continue;
      const float v = Cache::Load(a.value_cache + row + i);
#pragma unroll
      for (int g = 0; g < kHeadsPerBlock; ++g) {
        if (g < heads) acc[g][j] += score_s[g * kPartition + c] * v;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kHeadsPerBlock; ++g) {
    if (g >= heads) continue;
#pragma unroll
    for (int j = 0; j < kDimsPerDecodeThread; ++j) {
      const int64_t i = tid + j * kDecodeThreads;
      if (i >= dim) continue;
      if (num_partitions == 1) {
        out[g * dim + i] = sum_s[g] > 0.0f ? acc[g][j] / sum_s[g] : 0.0f;
      } else {
        const int64_t state = (t * a.num_heads + h0 + g) * num_partitions + partition;
        workspace[ws.acc_offset + state * dim + i] = acc[g][j];
      }
    }
  }
  if (num_partitions > 1 && tid < heads) {
    const int64_t state = (t * a.num_heads + h0 + tid) * num_partitions + partition;
    workspace[ws.max_offset + state] = max_s[tid];
    workspace[ws.sum_offset + state] = sum_s[tid];
  }
}

// Block (t, h), kCombineThreads threads: query token t, query head h; thread tid owns dims
// tid + 128k. Merges the partitions DecodeKernel wrote for the token, those meeting its visible
// range [first, position]: out = sum_z e^(m_z - M) acc_z / sum_z e^(m_z - M) l_z, M the largest
// m_z. Zeros when the range is empty (padding).
__global__ void __launch_bounds__(kCombineThreads)
    CombineKernel(float* out, const float* __restrict__ workspace, DecodeWorkspace ws,
                  const int32_t* __restrict__ query_start_loc, const int32_t* __restrict__ seq_lens,
                  int64_t num_seqs, int64_t num_heads, int64_t head_dim, int64_t num_partitions,
                  int64_t sliding_window) {
  const int64_t t = blockIdx.x;
  const int64_t h = blockIdx.y;
  const int tid = threadIdx.x;
  const QueryToken token = LocateToken(query_start_loc, seq_lens, num_seqs, sliding_window, t);
  int64_t first_partition = 0;
  int64_t last_partition = -1;  // none
  if (token.position >= token.first) {
    first_partition = token.first / kPartitionSize;
    last_partition = min(token.position / kPartitionSize, num_partitions - 1);
  }
  const int64_t state0 = (t * num_heads + h) * num_partitions;
  const float* maxes = workspace + ws.max_offset + state0;
  const float* sums = workspace + ws.sum_offset + state0;
  float global_max = -INFINITY;
  for (int64_t z = first_partition; z <= last_partition; ++z) {
    if (sums[z] > 0.0f) global_max = fmaxf(global_max, maxes[z]);
  }
  float total = 0.0f;
  float acc[kDimsPerCombineThread] = {};
  for (int64_t z = first_partition; z <= last_partition; ++z) {
    if (!(sums[z] > 0.0f)) continue;  // every position of the partition in a bad block
    const float weight = expf(maxes[z] - global_max);
    total += weight * sums[z];
    const float* partial = workspace + ws.acc_offset + (state0 + z) * head_dim;
#pragma unroll
    for (int j = 0; j < kDimsPerCombineThread; ++j) {
      const int64_t i = tid + j * kCombineThreads;
      if (i < head_dim) acc[j] += weight * partial[i];
    }
  }
  float* o = out + (t * num_heads + h) * head_dim;
#pragma unroll
  for (int j = 0; j < kDimsPerCombineThread; ++j) {
    const int64_t i = tid + j * kCombineThreads;
    if (i < head_dim) o[i] = total > 0.0f ? acc[j] / total : 0.0f;
  }
}

// Block (x, s, y), kPrefillThreads threads: sequence s; KV head y / head_chunks and the query
// heads [h0, h0 + heads) of its group; the sequence's query tiles x, x + gridDim.x, ... of
// tile_tokens tokens. Row r of a tile is its token r / heads and head h0 + r % heads (rows <=
// kPrefillRows). Warp w owns rows w + 8i (i < kRowsPerWarp) and keeps their online-softmax state
// in registers: the running max and sum (the same on every lane) and lane l's output dims
// l + 32k. Per tile of kKvTile context positions (only those some row of the query tile sees):
//   1. threads 0..31: the positions' cache rows; then every thread: their K and V rows into
//      shared memory, strided over the block (coalesced along head_dim);
//   2. each warp, for its rows: lane c scores position c (its K row against the row's q, both in
//      shared memory), masks it (causal, window, bad block), and the row's max, sum and
//      accumulator are updated; a row that sees none of the tile skips it;
//   3. each warp: acc += weight_c * V row c for c < kKvTile, the weights passed lane to lane.
// Dynamic shared memory: PrefillSharedLayout (kernels/cuda/paged_attention_plan.h).
template <typename Cache>
__global__ void __launch_bounds__(kPrefillThreads)
    PrefillKernel(Args<Cache> a, int64_t tile_tokens, int64_t k_row_stride,
                  PrefillSharedLayout layout) {
#ifdef PAGODA_CUDA_EMULATION
  int64_t* const shared = static_cast<int64_t*>(cuda_emulation::DynamicShared());
#else
  extern __shared__ int64_t shared[];  // int64 first: the cache rows
#endif
  int64_t* const row_s = shared;
  float* const q_s = reinterpret_cast<float*>(shared) + layout.q_offset;
  float* const k_s = reinterpret_cast<float*>(shared) + layout.k_offset;
  float* const v_s = reinterpret_cast<float*>(shared) + layout.v_offset;

  const int64_t seq = blockIdx.y;
  const int64_t kv_head = blockIdx.z / a.head_chunks;
  const int64_t chunk = blockIdx.z % a.head_chunks;
  const int64_t h0 = kv_head * a.group + chunk * a.heads_per_block;
  const int64_t heads = min(a.heads_per_block, a.group - chunk * a.heads_per_block);
  const int64_t rows = tile_tokens * heads;
  const int64_t dim = a.head_dim;
  const int64_t window = a.sliding_window;
  const int tid = threadIdx.x;
  const int warp = tid / kWarpSize;
  const int lane = tid % kWarpSize;
  const int64_t q_begin = a.query_start_loc[seq];
  const int64_t q_len = a.query_start_loc[seq + 1] - q_begin;
  const int64_t seq_len = a.seq_lens[seq];
  const int32_t* table = a.block_tables + seq * a.max_blocks_per_seq;

  for (int64_t tile = blockIdx.x; tile * tile_tokens < q_len; tile += gridDim.x) {
    const int64_t tile_first = tile * tile_tokens;  // within the sequence's queries
    const int64_t tile_count = min(tile_tokens, q_len - tile_first);
    const int64_t tile_pos = seq_len - q_len + tile_first;  // the tile's first token's position

    __syncthreads();  // the previous tile's rows are no longer read
    // The tile's q rows, scaled; zeros past its tokens (rows beyond `rows` included).
    for (int64_t i = tid; i < kPrefillRows * dim; i += blockDim.x) {
      const int64_t r = i / dim;
      const int64_t token = r / heads;
      const int64_t head = h0 + r % heads;
      q_s[i] =
          r < rows && token < tile_count
              ? a.q[(q_begin + tile_first + token) * a.q_stride + head * dim + i % dim] * a.scale
              : 0.0f;
    }

    // The warp's rows: row rr = warp + kPrefillWarps * i, its token's position and first
    // visible position; inactive rows (past the tile) are skipped warp-wide.
    bool active[kRowsPerWarp];
    int64_t row_pos[kRowsPerWarp];
    int64_t row_first[kRowsPerWarp];
    float m[kRowsPerWarp];
    float l[kRowsPerWarp];
    float acc[kRowsPerWarp][kDimsPerLane];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int64_t r = warp + kPrefillWarps * i;
      active[i] = r < rows && r / heads < tile_count;
      row_pos[i] = tile_pos + r / heads;
      row_first[i] = window > 0 ? max(int64_t{0}, row_pos[i] - window + 1) : int64_t{0};
      m[i] = -INFINITY;
      l[i] = 0.0f;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) acc[i][j] = 0.0f;
    }

    // The context any row of the tile sees: [kv_begin, kv_end). Tiles outside it are never
    // loaded (before every row's window, or after the last row's position).
    const int64_t kv_end = tile_pos + tile_count;
    const int64_t kv_begin = window > 0 ? max(int64_t{0}, tile_pos - window + 1) : int64_t{0};
    for (int64_t c0 = kv_begin; c0 < kv_end; c0 += kKvTile) {
      const int n = static_cast<int>(min(kKvTile, kv_end - c0));
      __syncthreads();  // q_s written; the previous K/V tile no longer read
      // 1. The positions' cache rows, then their K and V rows.
      if (tid < n) row_s[tid] = CacheRow(a, table, kv_head, c0 + tid);
      __syncthreads();
      for (int64_t i = tid; i < n * dim; i += blockDim.x) {
        const int64_t c = i / dim;
        const int64_t d = i % dim;
        const int64_t row = row_s[c];
        k_s[c * k_row_stride + d] = row >= 0 ? Cache::Load(a.key_cache + row + d) : 0.0f;
        v_s[c * dim + d] = row >= 0 ? Cache::Load(a.value_cache + row + d) : 0.0f;
      }
      __syncthreads();

      // 2. Lane c scores position c0 + c for each of the warp's rows (rows of K past n hold an
      // earlier tile's values or nothing: their scores are masked below).
      float score[kRowsPerWarp] = {};
      for (int64_t d = 0; d < dim; ++d) {
        const float k = k_s[lane * k_row_stride + d];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          score[i] += q_s[(warp + kPrefillWarps * i) * dim + d] * k;
        }
      }
      const int64_t pos = c0 + lane;
      const bool in_tile = lane < n && row_s[lane < n ? lane : 0] >= 0;
      float weight[kRowsPerWarp];
      bool sees_tile[kRowsPerWarp];  // warp-uniform: the row has a weight > 0 in this K/V tile
      bool any_row = false;
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        weight[i] = 0.0f;
        sees_tile[i] = false;
        // Warp-uniform: a row past the tile, or one whose window misses the whole K/V tile.
        if (!active[i] || row_pos[i] < c0 || row_first[i] >= c0 + n) continue;
        const bool visible = in_tile && pos >= row_first[i] && pos <= row_pos[i];
        const float s = visible ? SoftCap(score[i], a.logit_softcap) : -INFINITY;
        const float tile_max = WarpMax(s);
        if (tile_max == -INFINITY) continue;  // every visible position in a bad block
        const float new_max = fmaxf(m[i], tile_max);
        const float correction = expf(m[i] - new_max);  // 0 on the row's first tile
        weight[i] = Weight(s, new_max);
        l[i] = l[i] * correction + WarpSum(weight[i]);
#pragma unroll
        for (int j = 0; j < kDimsPerLane; ++j) acc[i][j] *= correction;
        m[i] = new_max;
        sees_tile[i] = true;
        any_row = true;
      }
      if (!any_row) continue;  // warp-uniform; the next K/V tile starts with a barrier

      // 3. acc += weight of position c * V row c for the rows that see the tile, each V element
      // read once for all of them.
      for (int c = 0; c < n; ++c) {
        float w[kRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          w[i] = sees_tile[i] ? __shfl_sync(kFullMask, weight[i], c) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < kDimsPerLane; ++j) {
          const int64_t d = lane + j * kWarpSize;
          if (d >= dim) continue;
          const float v = v_s[c * dim + d];
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) {
            if (sees_tile[i]) acc[i][j] += w[i] * v;
          }
        }
      }
    }

    // The tile's rows, normalized (zeros for a row that saw nothing: padding).
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      if (!active[i]) continue;
      const int64_t r = warp + kPrefillWarps * i;
      float* o = a.out + ((q_begin + tile_first + r / heads) * a.num_heads + h0 + r % heads) * dim;
      const float inv_sum = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) {
        const int64_t d = lane + j * kWarpSize;
        if (d < dim) o[d] = acc[i][j] * inv_sum;
      }
    }
  }
}

// The kernels' arguments from the params and the plan (host code).
template <typename Cache>
Args<Cache> MakeArgs(const PagedAttentionParams& p, const PagedAttentionPlan& plan) {
  return {p.out,
          p.q,
          static_cast<const typename Cache::Element*>(p.key_cache),
          static_cast<const typename Cache::Element*>(p.value_cache),
          p.block_tables,
          p.query_start_loc,
          p.seq_lens,
          p.num_seqs,
          p.num_heads,
          p.head_dim,
          p.num_kv_heads,
          p.block_size,
          p.num_blocks,
          p.max_blocks_per_seq,
          p.q_stride,
          p.scale,
          p.sliding_window,
          p.logit_softcap,
          plan.group,
          plan.heads_per_block,
          plan.head_chunks};
}

}  // namespace
}  // namespace pagoda::kernels::cuda::internal
