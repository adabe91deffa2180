// Sampling's vocabulary-sized loops on the device: one block of kThreads per selected row, each
// thread striding over the row, block-wide reductions for maxima, sums and the best (id, value).
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_math.cuh"
#include "kernels/cuda/internal/device_scratch.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

using internal::kWarpSize;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;
constexpr unsigned int kMaxGridY = 65535;

// Upload slots: each twin uses distinct ones for the arrays of one call.
enum Slot {
  kRowsSlot,
  kSettingSlot,
  kSetting2Slot,
  kSetting3Slot,
  kOffsetsSlot,
  kIdsSlot,
  kOffsets2Slot,
  kIds2Slot,
  kNumSlots
};

// Copies `count` host values into this thread's buffer `slot` (grown as needed) and returns the
// device copy; null for a null or empty array. The copy is ordered after the work queued before on
// the current stream, so a kernel of an earlier call has finished reading the buffer.
template <typename T>
absl::StatusOr<const T*> Upload(Slot slot, const T* host, int64_t count) {
  if (host == nullptr || count <= 0) return static_cast<const T*>(nullptr);
  thread_local std::array<internal::DeviceScratch, kNumSlots> buffers;
  const int64_t bytes = count * static_cast<int64_t>(sizeof(T));
  ASSIGN_OR_RETURN(void* buffer, buffers[slot].Get(bytes));
  RETURN_IF_ERROR(CopyBytes(buffer, host, bytes));
  return static_cast<const T*>(buffer);
}

// The batch row that block `i` works on.
__device__ __forceinline__ int64_t RowOf(const int32_t* rows, int64_t i) {
  return rows != nullptr ? rows[i] : i;
}

// (token id, value), ordered as the CPU's Better: larger value first, lower id on ties.
struct Scored {
  float value;
  int32_t id;
};

__device__ __forceinline__ bool Better(const Scored& a, const Scored& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct BestOp {
  __device__ Scored operator()(const Scored& a, const Scored& b) const {
    return Better(b, a) ? b : a;
  }
};

__device__ __forceinline__ float Shuffle(float v, int offset) {
  return __shfl_xor_sync(0xffffffffu, v, offset);
}
__device__ __forceinline__ double Shuffle(double v, int offset) {
  return __shfl_xor_sync(0xffffffffu, v, offset);
}
__device__ __forceinline__ Scored Shuffle(const Scored& v, int offset) {
  return {__shfl_xor_sync(0xffffffffu, v.value, offset),
          __shfl_xor_sync(0xffffffffu, v.id, offset)};
}

// `op` over the block's values (blockDim.x == kThreads), returned to every thread. `identity`
// fills the unused lanes of the last round. Safe to call repeatedly in one kernel.
template <typename T, typename Op>
__device__ T BlockReduce(T value, Op op, T identity) {
  __shared__ T partial[kWarps];
  __shared__ T result;
  __syncthreads();  // a previous call's readers of `result` are done
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = op(value, Shuffle(value, offset));
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    T v = lane < kWarps ? partial[lane] : identity;
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, Shuffle(v, offset));
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

__global__ void SanitizeKernel(float* logits, float* row_max, const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  float* x = logits + s * v;
  float max_value = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float value = isnan(x[j]) ? -INFINITY : fminf(x[j], FLT_MAX);
    x[j] = value;
    max_value = fmaxf(max_value, value);
  }
  max_value = BlockReduce(max_value, MaxOp(), -INFINITY);
  if (threadIdx.x == 0) row_max[s] = max_value;
}

// Block i writes row i of logprobs from batch row RowOf(rows, i).
__global__ void LogSoftmaxKernel(const float* logits, const float* row_max, float* logprobs,
                                 const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  const float* x = logits + s * v;
  float* out = logprobs + static_cast<int64_t>(blockIdx.x) * v;
  const float max_value = row_max[s];
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) sum += expf(x[j] - max_value);
  const double log_sum = log(BlockReduce(sum, SumOp(), 0.0));
  // (x - max) first, as on the CPU: at x == max == FLT_MAX, adding log(sum) to max would be lost.
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    out[j] = static_cast<float>(static_cast<double>(x[j] - max_value) - log_sum);
  }
}

// k rounds, each the best entry strictly after the previous one in Better's order.
__global__ void TopKKernel(const float* values, const int32_t* k, int64_t max_k, int32_t* top_ids,
                           float* top_values, const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  const float* x = values + s * v;
  const int64_t count = min(static_cast<int64_t>(k[s]), v);
  const Scored none{-INFINITY, INT32_MAX};  // worse than any entry
  bool first = true;
  Scored previous = none;
  for (int64_t t = 0; t < count; ++t) {
    Scored best = none;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
      const Scored entry{x[j], static_cast<int32_t>(j)};
      if (!first && !Better(previous, entry)) continue;
      if (Better(entry, best)) best = entry;
    }
    previous = BlockReduce(best, BestOp(), none);
    first = false;
    if (threadIdx.x == 0) {
      top_ids[s * max_k + t] = previous.id;
      top_values[s * max_k + t] = previous.value;
    }
  }
}

__global__ void MaskKernel(float* logits, const int64_t* offsets, const int32_t* ids,
                           const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  float* x = logits + s * v;
  for (int64_t j = offsets[s] + threadIdx.x; j < offsets[s + 1]; j += blockDim.x) {
    const int32_t id = ids[j];
    if (id >= 0 && id < v) x[id] = -INFINITY;
  }
}

// Grid (num_rows, column chunks): bitmask row blockIdx.x belongs to batch row RowOf(rows, it).
__global__ void BitmaskKernel(float* logits, const uint32_t* bitmask, int64_t words,
                              const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  float* x = logits + s * v;
  const uint32_t* mask = bitmask + static_cast<int64_t>(blockIdx.x) * words;
  const int64_t stride = static_cast<int64_t>(gridDim.y) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; j < v;
       j += stride) {
    const bool allowed = j < words * 32 && ((mask[j >> 5] >> (j & 31)) & 1u) != 0;
    if (!allowed) x[j] = -INFINITY;
  }
}

__global__ void ArgmaxKernel(const float* logits, int32_t* token_ids, const int32_t* rows,
                             int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  const float* x = logits + s * v;
  const Scored none{-INFINITY, INT32_MAX};
  Scored best = none;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const Scored entry{x[j], static_cast<int32_t>(j)};
    if (Better(entry, best)) best = entry;
  }
  best = BlockReduce(best, BestOp(), none);
  // A row of -inf only: id 0, as the CPU's first index of the maximum.
  if (threadIdx.x == 0) token_ids[s] = best.id == INT32_MAX ? 0 : best.id;
}

__global__ void SoftmaxWeightsKernel(float* logits, const float* temperature, const float* min_p,
                                     float* row_max, const int32_t* rows, int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  float* x = logits + s * v;
  float max_value = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) max_value = fmaxf(max_value, x[j]);
  max_value = BlockReduce(max_value, MaxOp(), -INFINITY);
  if (threadIdx.x == 0) row_max[s] = max_value;
  const float t = temperature[s];
  const float min_weight = min_p[s];
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    // A row without a finite logit: (-inf) - (-inf) is NaN; its weights are all 0.
    const float weight = max_value == -INFINITY ? 0.0f : expf((x[j] - max_value) / t);
    x[j] = weight < min_weight ? 0.0f : weight;
  }
}

// Penalties: per selected row, the counts of its output ids (low 30 bits) and whether an id
// appears in its prompt or output (kSeen), built with atomics in `marks` (row i of a zeroed
// [num_rows, v] scratch); then every marked id gets the CPU twin's float operations in its order:
// the repetition penalty once, then the frequency term, then the presence term.
constexpr int32_t kSeen = 1 << 30;
constexpr int32_t kCountMask = kSeen - 1;

__global__ void PenaltiesKernel(float* logits, const float* repetition, const float* frequency,
                                const float* presence, const int64_t* prompt_offsets,
                                const int32_t* prompt_ids, const int64_t* output_offsets,
                                const int32_t* output_ids, int32_t* marks, const int32_t* rows,
                                int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  float* x = logits + s * v;
  int32_t* mark = marks + static_cast<int64_t>(blockIdx.x) * v;
  const float penalty = repetition[s];
  const bool repeat = penalty != 1.0f;
  const bool additive = frequency[s] != 0.0f || presence[s] != 0.0f;
  if (!repeat && !additive) return;
  // Ids outside the vocabulary are skipped (the dispatch point checked them unless the caller
  // promised): nothing is written outside the row.
  for (int64_t j = output_offsets[s] + threadIdx.x; j < output_offsets[s + 1]; j += blockDim.x) {
    const int32_t id = output_ids[j];
    if (id < 0 || id >= v) continue;
    atomicAdd(&mark[id], 1);
    if (repeat) atomicOr(&mark[id], kSeen);
  }
  if (repeat) {
    for (int64_t j = prompt_offsets[s] + threadIdx.x; j < prompt_offsets[s + 1]; j += blockDim.x) {
      const int32_t id = prompt_ids[j];
      if (id >= 0 && id < v) atomicOr(&mark[id], kSeen);
    }
  }
  __syncthreads();
  for (int64_t id = threadIdx.x; id < v; id += blockDim.x) {
    const int32_t m = mark[id];
    if (m == 0) continue;
    float value = x[id];
    if ((m & kSeen) != 0) value = value > 0.0f ? value / penalty : value * penalty;
    const int32_t count = m & kCountMask;
    if (additive && count > 0) {
      value -= frequency[s] * static_cast<float>(count);
      value -= presence[s];
    }
    x[id] = value;
  }
}

// The draw (top_k, then top_p, then an inverse CDF at `uniform`) over one row per block. Weights
// are >= 0, so their bit patterns order like their values: a radix select on those keys, a byte
// at a time from the top, finds each filter's cut without sorting. A cut keeps the entries with
// key > cut.key, and those with key == cut.key up to id cut.last_id (lowest ids first, the CPU's
// order on ties). The inverse CDF then walks the kept weights in ascending id order (the CPU
// walks them heaviest first after a filter: the same distribution, another map from uniform to
// token), each thread over a contiguous chunk of ids.
struct Cut {
  bool all;
  uint32_t key;
  int64_t last_id;
};

__device__ __forceinline__ bool Keeps(const Cut& cut, uint32_t key, int64_t id) {
  return cut.all || key > cut.key || (key == cut.key && id <= cut.last_id);
}

__device__ __forceinline__ uint32_t KeyOf(float weight) { return __float_as_uint(weight); }

// This thread's contiguous chunk of [0, v).
__device__ __forceinline__ void Chunk(int64_t v, int64_t* begin, int64_t* end) {
  const int64_t size = (v + blockDim.x - 1) / blockDim.x;
  *begin = min(static_cast<int64_t>(threadIdx.x) * size, v);
  *end = min(*begin + size, v);
}

// Exclusive prefix sums of each thread's `value` in thread order (one thread adds them up).
template <typename T>
__device__ T ExclusiveScan(T value) {
  __shared__ T values[kThreads];
  __syncthreads();
  values[threadIdx.x] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    T running = 0;
    for (int t = 0; t < kThreads; ++t) {
      const T here = values[t];
      values[t] = running;
      running += here;
    }
  }
  __syncthreads();
  return values[threadIdx.x];
}

// The key of the `rank`-th (1-based) heaviest entry kept by `outer`, by radix select, and how
// many entries with exactly that key it takes to reach `rank` (written to *remaining).
__device__ uint32_t SelectKey(const float* w, int64_t v, const Cut& outer, int64_t rank,
                              int64_t* remaining) {
  __shared__ unsigned long long histogram[256];
  __shared__ uint32_t shared_prefix;
  __shared__ int64_t shared_remaining;
  uint32_t prefix = 0, mask = 0;
  int64_t left = rank;
  for (int shift = 24; shift >= 0; shift -= 8) {
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    for (int64_t id = threadIdx.x; id < v; id += blockDim.x) {
      const uint32_t key = KeyOf(w[id]);
      if ((key & mask) == prefix && Keeps(outer, key, id)) {
        atomicAdd(&histogram[(key >> shift) & 255u], 1ull);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      int digit = 0;
      for (int b = 255; b >= 0; --b) {
        if (above + static_cast<int64_t>(histogram[b]) >= left) {
          digit = b;
          break;
        }
        above += static_cast<int64_t>(histogram[b]);
      }
      shared_prefix = prefix | (static_cast<uint32_t>(digit) << shift);
      shared_remaining = left - above;
    }
    __syncthreads();
    prefix = shared_prefix;
    left = shared_remaining;
    mask |= 255u << shift;
  }
  *remaining = left;
  return prefix;
}

// The id of the `count`-th (1-based, ascending ids) entry kept by `outer` whose key is `key`.
__device__ int64_t NthIdWithKey(const float* w, int64_t v, const Cut& outer, uint32_t key,
                                int64_t count) {
  __shared__ int64_t found;
  int64_t begin, end;
  Chunk(v, &begin, &end);
  int64_t mine = 0;
  for (int64_t id = begin; id < end; ++id) {
    mine += KeyOf(w[id]) == key && Keeps(outer, key, id);
  }
  const int64_t before = ExclusiveScan(mine);
  if (threadIdx.x == 0) found = v - 1;
  __syncthreads();
  if (before < count && count <= before + mine) {
    int64_t seen = before;
    for (int64_t id = begin; id < end; ++id) {
      if (KeyOf(w[id]) == key && Keeps(outer, key, id) && ++seen == count) {
        found = id;
        break;
      }
    }
  }
  __syncthreads();
  return found;
}

// The k heaviest entries (ties: lowest ids).
__device__ Cut TopKCut(const float* w, int64_t v, int64_t k) {
  const Cut all{true, 0, 0};
  int64_t remaining = 0;
  const uint32_t key = SelectKey(w, v, all, k, &remaining);
  return {false, key, NthIdWithKey(w, v, all, key, remaining)};
}

// Of the entries `outer` keeps, the smallest heaviest-first prefix whose weight reaches top_p of
// theirs: a radix descent on the keys with each byte's weight per bin.
__device__ Cut TopPCut(const float* w, int64_t v, const Cut& outer, float top_p) {
  __shared__ double mass[256];
  __shared__ uint32_t shared_prefix;
  __shared__ double shared_left;
  __shared__ bool shared_all;
  double total = 0.0;
  for (int64_t id = threadIdx.x; id < v; id += blockDim.x) {
    if (Keeps(outer, KeyOf(w[id]), id)) total += w[id];
  }
  total = BlockReduce(total, SumOp(), 0.0);
  uint32_t prefix = 0, mask = 0;
  double left = static_cast<double>(top_p) * total;
  for (int shift = 24; shift >= 0; shift -= 8) {
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x) mass[b] = 0.0;
    __syncthreads();
    for (int64_t id = threadIdx.x; id < v; id += blockDim.x) {
      const uint32_t key = KeyOf(w[id]);
      if ((key & mask) == prefix && Keeps(outer, key, id)) {
        atomicAdd(&mass[(key >> shift) & 255u], static_cast<double>(w[id]));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double above = 0.0;
      int digit = -1;
      for (int b = 255; b >= 0; --b) {
        if (above + mass[b] >= left) {
          digit = b;
          break;
        }
        above += mass[b];
      }
      // Rounding left the target past everything: keep all of `outer`, as the CPU does.
      shared_all = digit < 0;
      shared_prefix = prefix | (static_cast<uint32_t>(digit < 0 ? 0 : digit) << shift);
      shared_left = left - above;
    }
    __syncthreads();
    if (shared_all) return outer;
    prefix = shared_prefix;
    left = shared_left;
    mask |= 255u << shift;
  }
  // Among the entries of key `prefix` (equal weights), ascending ids: the first whose running
  // weight reaches what is left.
  const float weight = __uint_as_float(prefix);
  const int64_t count =
      weight > 0.0f ? static_cast<int64_t>(ceil(left / static_cast<double>(weight))) : 1;
  return {false, prefix, NthIdWithKey(w, v, outer, prefix, count < 1 ? 1 : count)};
}

__global__ void DrawKernel(const float* weights, const int32_t* top_k, const float* top_p,
                           const double* uniform, int32_t* token_ids, const int32_t* rows,
                           int64_t v) {
  const int64_t s = RowOf(rows, blockIdx.x);
  const float* w = weights + s * v;
  const Cut all{true, 0, 0};
  const bool by_k = top_k[s] > 0 && top_k[s] < v;
  const Cut k_cut = by_k ? TopKCut(w, v, top_k[s]) : all;
  const Cut p_cut = top_p[s] < 1.0f ? TopPCut(w, v, k_cut, top_p[s]) : k_cut;
  // p_cut lies inside k_cut: top_p only ever cuts deeper into the kept entries.
  int64_t begin, end;
  Chunk(v, &begin, &end);
  double mine = 0.0;
  int64_t last_positive = -1;
  for (int64_t id = begin; id < end; ++id) {
    const uint32_t key = KeyOf(w[id]);
    if (w[id] > 0.0f && Keeps(p_cut, key, id) && Keeps(k_cut, key, id)) {
      mine += w[id];
      last_positive = id;
    }
  }
  const double before = ExclusiveScan(mine);
  __shared__ double total;
  __shared__ unsigned long long first;  // the drawn id, if a chunk found it
  __shared__ unsigned long long last;   // 1 + the last positive kept id (0: none)
  if (threadIdx.x == kThreads - 1) total = before + mine;
  if (threadIdx.x == 0) {
    first = ~0ull;
    last = 0;
  }
  __syncthreads();
  if (last_positive >= 0) atomicMax(&last, static_cast<unsigned long long>(last_positive) + 1);
  // The chunk where the running weight passes the threshold: its own running sum, from 0 in the
  // order `mine` was summed, ends at exactly `mine`, so the walk below finds the entry.
  const double left = uniform[s] * total - before;
  if (left >= 0.0 && left < mine) {
    double running = 0.0;
    for (int64_t id = begin; id < end; ++id) {
      const uint32_t key = KeyOf(w[id]);
      if (!(w[id] > 0.0f && Keeps(p_cut, key, id) && Keeps(k_cut, key, id))) continue;
      running += w[id];
      if (running > left) {
        atomicMin(&first, static_cast<unsigned long long>(id));
        break;
      }
    }
  }
  __syncthreads();
  // Rounding left the threshold past the end: the last positive kept entry, as on the CPU.
  if (threadIdx.x == 0) {
    token_ids[s] = static_cast<int32_t>(first != ~0ull ? first : last - 1);
  }
}

unsigned int Blocks(const SamplingRows& b) { return static_cast<unsigned int>(b.num_rows); }

absl::StatusOr<const int32_t*> Rows(const SamplingRows& b) {
  return Upload(kRowsSlot, b.rows, b.num_rows);
}

}  // namespace

absl::Status SanitizeLogits(const SanitizeLogitsParams& p) {
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  SanitizeKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(p.logits, p.row_max, rows,
                                                                    p.batch.vocab_size);
  return internal::LaunchStatus("sanitize_logits");
}

absl::Status LogSoftmax(const LogSoftmaxParams& p) {
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  LogSoftmaxKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(
      p.logits, p.row_max, p.logprobs, rows, p.batch.vocab_size);
  return internal::LaunchStatus("log_softmax");
}

absl::Status TopK(const TopKParams& p) {
  if (p.max_k == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  ASSIGN_OR_RETURN(const int32_t* k, Upload(kSettingSlot, p.k, p.batch.num_seqs));
  TopKKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(
      p.values, k, p.max_k, p.top_ids, p.top_values, rows, p.batch.vocab_size);
  return internal::LaunchStatus("top_k");
}

absl::Status MaskTokens(const MaskTokensParams& p) {
  const int64_t num_ids = p.offsets[p.batch.num_seqs];
  if (num_ids == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  ASSIGN_OR_RETURN(const int64_t* offsets, Upload(kOffsetsSlot, p.offsets, p.batch.num_seqs + 1));
  ASSIGN_OR_RETURN(const int32_t* ids, Upload(kIdsSlot, p.token_ids, num_ids));
  MaskKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(p.logits, offsets, ids, rows,
                                                                p.batch.vocab_size);
  return internal::LaunchStatus("mask_tokens");
}

absl::Status ApplyTokenBitmask(const TokenBitmaskParams& p) {
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  ASSIGN_OR_RETURN(const uint32_t* bitmask,
                   Upload(kSettingSlot, p.bitmask, p.batch.num_rows * p.bitmask_words));
  const dim3 grid(Blocks(p.batch),
                  static_cast<unsigned int>(std::min<int64_t>(
                      internal::BlocksFor(p.batch.vocab_size, kThreads), kMaxGridY)));
  BitmaskKernel<<<grid, kThreads, 0, CurrentStream()>>>(p.logits, bitmask, p.bitmask_words, rows,
                                                        p.batch.vocab_size);
  return internal::LaunchStatus("token_bitmask");
}

absl::Status Argmax(const ArgmaxParams& p) {
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  ArgmaxKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(p.logits, p.token_ids, rows,
                                                                  p.batch.vocab_size);
  return internal::LaunchStatus("argmax");
}

absl::Status SoftmaxWeights(const SoftmaxWeightsParams& p) {
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(p.batch));
  ASSIGN_OR_RETURN(const float* temperature, Upload(kSettingSlot, p.temperature, p.batch.num_seqs));
  ASSIGN_OR_RETURN(const float* min_p, Upload(kSetting2Slot, p.min_p, p.batch.num_seqs));
  SoftmaxWeightsKernel<<<Blocks(p.batch), kThreads, 0, CurrentStream()>>>(
      p.logits, temperature, min_p, p.row_max, rows, p.batch.vocab_size);
  return internal::LaunchStatus("softmax_weights");
}

absl::Status ApplyPenalties(const PenaltiesParams& p) {
  const SamplingRows& b = p.batch;
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(b));
  ASSIGN_OR_RETURN(const float* repetition, Upload(kSettingSlot, p.repetition_penalty, b.num_seqs));
  ASSIGN_OR_RETURN(const float* frequency, Upload(kSetting2Slot, p.frequency_penalty, b.num_seqs));
  ASSIGN_OR_RETURN(const float* presence, Upload(kSetting3Slot, p.presence_penalty, b.num_seqs));
  ASSIGN_OR_RETURN(const int64_t* prompt_offsets,
                   Upload(kOffsetsSlot, p.prompt_offsets, b.num_seqs + 1));
  ASSIGN_OR_RETURN(const int32_t* prompt_ids,
                   Upload(kIdsSlot, p.prompt_token_ids, p.prompt_offsets[b.num_seqs]));
  ASSIGN_OR_RETURN(const int64_t* output_offsets,
                   Upload(kOffsets2Slot, p.output_offsets, b.num_seqs + 1));
  ASSIGN_OR_RETURN(const int32_t* output_ids,
                   Upload(kIds2Slot, p.output_token_ids, p.output_offsets[b.num_seqs]));
  // The marks: [num_rows, vocab_size] int32, this thread's buffer, zeroed in stream order.
  thread_local internal::DeviceScratch scratch;
  const int64_t bytes = b.num_rows * b.vocab_size * static_cast<int64_t>(sizeof(int32_t));
  ASSIGN_OR_RETURN(void* marks, scratch.Get(bytes));
  RETURN_IF_ERROR(
      internal::CudaStatus(cudaMemsetAsync(marks, 0, bytes, CurrentStream()), "penalties"));
  PenaltiesKernel<<<Blocks(b), kThreads, 0, CurrentStream()>>>(
      p.logits, repetition, frequency, presence, prompt_offsets, prompt_ids, output_offsets,
      output_ids, static_cast<int32_t*>(marks), rows, b.vocab_size);
  return internal::LaunchStatus("penalties");
}

absl::Status SampleFromWeights(const SampleFromWeightsParams& p) {
  const SamplingRows& b = p.batch;
  ASSIGN_OR_RETURN(const int32_t* rows, Rows(b));
  ASSIGN_OR_RETURN(const int32_t* top_k, Upload(kSettingSlot, p.top_k, b.num_seqs));
  ASSIGN_OR_RETURN(const float* top_p, Upload(kSetting2Slot, p.top_p, b.num_seqs));
  ASSIGN_OR_RETURN(const double* uniform, Upload(kSetting3Slot, p.uniform, b.num_seqs));
  DrawKernel<<<Blocks(b), kThreads, 0, CurrentStream()>>>(p.weights, top_k, top_p, uniform,
                                                          p.token_ids, rows, b.vocab_size);
  return internal::LaunchStatus("sample_from_weights");
}

}  // namespace pagoda::kernels::cuda
