// The two inner loops of paged attention for one query row against a chunk of cached K/V rows,
// picked once per process for the CPU at hand (AVX2+FMA intrinsics on x86-64 where available,
// portable loops elsewhere).
//
//   const internal::AttentionRowOps& ops = internal::BestAttentionRowOps();
//   ops.scores(q_row, k_rows, n, head_dim, s);   // s[c] = q . k_rows[c]
//   ops.accumulate(s, v_rows, n, head_dim, acc);  // acc += sum_c s[c] * v_rows[c]
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

/// The portable implementation (also the reference the vector versions are tested against).
const AttentionRowOps& PortableAttentionRowOps();

}  // namespace pagoda::kernels::internal
