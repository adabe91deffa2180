// The two inner loops of paged attention for one query row against a chunk of cached K/V rows,
// picked once per process for the CPU at hand (AVX2+FMA intrinsics on x86-64 where available,
// portable loops elsewhere).
//
//   const internal::AttentionRowOps& ops = internal::BestAttentionRowOps();
//   ops.scores(q_row, k_rows, n, head_dim, s);   // s[c] = q . k_rows[c]
//   ops.accumulate(s, v_rows, n, head_dim, acc);  // acc += sum_c s[c] * v_rows[c]
//
// The group form does the same for all query rows of one GQA group at once, straight from the
// cache in its own dtype (AVX-512 only; null elsewhere, where the row form runs on widened rows):
// each K or V vector loaded (and widened from bfloat16 in registers) is used by every row.
//
//   if (const internal::AttentionGroupOps* group = internal::BestAttentionGroupOps()) {
//     group->scores(q_rows, rows, k_rows, /*bf16=*/true, n, head_dim, s, s_stride);
//     group->softmax(s, s_stride, rows, /*first=*/0, n, softcap, head_dim, max, sum, acc);
//     group->accumulate(s, s_stride, rows, v_rows, /*bf16=*/true, n, head_dim, acc);
//   }
#pragma once

#include <cstdint>

namespace pagoda::kernels::internal {

struct AttentionRowOps {
  // s[c] = dot(q, k[c]) for c < n; q and each k[c] hold dim floats.
  void (*scores)(const float* q, const float* const* k, int64_t n, int64_t dim, float* s);
  // acc[d] += sum_{c < n} p[c] * v[c][d] for d < dim.
  void (*accumulate)(const float* p, const float* const* v, int64_t n, int64_t dim, float* acc);
  const char* name;
};

/// The fastest implementation this CPU supports.
const AttentionRowOps& BestAttentionRowOps();

struct AttentionGroupOps {
  // s[r * s_stride + c] = dot(q + r * dim, k[c]) for r < rows, c < n. k[c] holds dim floats, or
  // dim bfloat16 values (bf16), widened exactly.
  void (*scores)(const float* q, int64_t rows, const void* const* k, bool bf16, int64_t n,
                 int64_t dim, float* s, int64_t s_stride);
  // The same scores from keys stored transposed (kv_cache_write.h's TransposedKeyOffset): 16
  // positions at a time, `runs` runs of them. Dimension d of position l < 16 of run j is element
  // d * d_stride + l at k[j] (fp32, or bfloat16 widened exactly); s[r * s_stride + 16 * j + l] is
  // its score, bit for bit what `scores` gives for the same key as a row (the same per-lane
  // chains and the same tree of lane sums, with positions in lanes: no reduction per score).
  void (*scores_transposed)(const float* q, int64_t rows, const void* const* k, bool bf16,
                            int64_t runs, int64_t dim, int64_t d_stride, float* s,
                            int64_t s_stride);
  // acc[r * dim + d] += sum_{c < n} p[r * p_stride + c] * v[c][d] for r < rows, d < dim, the
  // terms added in order of c (one fused multiply-add each, as the row form's AVX2 version).
  void (*accumulate)(const float* p, int64_t p_stride, int64_t rows, const void* const* v,
                     bool bf16, int64_t n, int64_t dim, float* acc);
  // The online-softmax step of rows r < rows over the scores s[r * s_stride + c], c in
  // [first, valid) (valid <= kGroupSoftmaxPositions; the other entries are not read): the scores
  // soft-capped where softcap > 0, the running max[r] and sum[r] updated, acc[r * dim ..] rescaled
  // when the max grows, and the scores turned into weights in place (e^(s - max), 0 below e^-87).
  // Entries [0, first) and [valid, kGroupSoftmaxPositions) of each row are overwritten with 0.
  void (*softmax)(float* s, int64_t s_stride, int64_t rows, int64_t first, int64_t valid,
                  float softcap, int64_t dim, float* max, float* sum, float* acc);
  const char* name;
};

/// Positions the group form's softmax takes at once (paged attention's chunk).
inline constexpr int64_t kGroupSoftmaxPositions = 32;
/// Positions of one run of scores_transposed: one vector of them.
inline constexpr int64_t kTransposedKeyRun = 16;

/// The group form on this CPU, or null where it has none (no AVX-512, or PAGODA_CPU_ISA chose a
/// narrower ISA: cpu_isa.h). A row's results are the same operations in the same order whatever
/// `rows` is and wherever the row sits among them, and a bfloat16 row gives what the fp32 row of
/// its widened values gives: the batch invariance paged attention keeps.
const AttentionGroupOps* BestAttentionGroupOps();

/// The portable implementation (also the reference the vector versions are tested against).
const AttentionRowOps& PortableAttentionRowOps();

}  // namespace pagoda::kernels::internal
