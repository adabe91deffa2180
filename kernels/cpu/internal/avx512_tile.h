// What the AVX-512 quantized GEMMs share: quantized_dot.cc's tiles (weights transposed as used)
// and packed_gemm.cc's (weights packed at load) put 16 weight rows in the lanes of a vector, fetch
// the next tile the same way and finish a tile the same way, so that both give the same bits.
// x86-64 with GCC or clang only: included inside those files' x86 sections; the functions carry
// the AVX-512 VNNI target of their callers, which call them only after CpuSupports said yes.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/internal/quantized_dot.h"

namespace pagoda::kernels::internal::avx512_tile {

constexpr int kLanes = 16;  // weight rows per vector

/// Part `part` of `parts` of [p, p + bytes) prefetched into L2, one call per step of the tile
/// being computed: a tile's weights are one contiguous range that software can fetch ahead,
/// where the loads read more short streams than the hardware prefetcher follows.
inline void PrefetchPart(const uint8_t* p, int64_t bytes, int64_t part, int64_t parts) {
  const int64_t lines = (bytes + 63) / 64;
  for (int64_t l = lines * part / parts; l < lines * (part + 1) / parts; ++l) {
    _mm_prefetch(reinterpret_cast<const char*>(p + l * 64), _MM_HINT_T1);
  }
}

/// The lanes of vector v (weight rows 16 v .. 16 v + 15) that are among a tile's `rows`.
__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))) inline __mmask16
ValidLanes(int64_t rows, int v) {
  const int64_t n = std::clamp<int64_t>(rows - int64_t{v} * kLanes, 0, kLanes);
  return static_cast<__mmask16>((1u << n) - 1u);
}

/// C[i0 + i, j0 + 16 v + l] = alpha acc[i][v][l] (+ beta C when beta != 0) for the tile's `rows`
/// weight rows: the last step of every tile.
template <int MR, int NV>
__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))) inline void StoreTile(
    const QuantizedGemmArgs& g, int64_t i0, int64_t j0, int64_t rows, const __m512 (&acc)[MR][NV]) {
  const __m512 alpha = _mm512_set1_ps(g.alpha);
  const __m512 beta = _mm512_set1_ps(g.beta);
  for (int i = 0; i < MR; ++i) {
    float* row = g.c + (i0 + i) * g.ldc + j0;
    for (int v = 0; v < NV; ++v) {
      const __mmask16 valid = ValidLanes(rows, v);
      __m512 value = _mm512_mul_ps(alpha, acc[i][v]);
      if (g.beta != 0.0f) {
        value = _mm512_add_ps(value,
                              _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(valid, row + v * kLanes)));
      }
      _mm512_mask_storeu_ps(row + v * kLanes, valid, value);
    }
  }
}

}  // namespace pagoda::kernels::internal::avx512_tile
