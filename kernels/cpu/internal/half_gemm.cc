#include "kernels/cpu/internal/half_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PAGODA_HALF_X86 1
#include <immintrin.h>
// Functions compiled for one ISA each, called only after CpuSupports said yes (no -march: the
// rest of the binary stays baseline x86-64); helpers inline into their callers.
#define PAGODA_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PAGODA_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))
#else
#define PAGODA_HALF_X86 0
#endif

namespace pagoda::kernels::internal {
namespace {

constexpr int kTileCols = 4;     // weight rows (output columns) per register tile
constexpr int kMaxTileRows = 4;  // activation rows per register tile, at most (AVX-512, scalar)
// fp32 activation rows per pass over a thread's weight rows: they stay in L2 while the weights
// stream past them once. A decode batch (up to 113 rows at SmolLM2's k = 576) is one pass.
constexpr int64_t kActivationBlockBytes = int64_t{256} << 10;

// How far ahead of the tile being read its weight stream is prefetched: at least this many bytes,
// in whole tiles. One tile ahead (4.6 KB at k = 576) left the F16 decode step waiting on memory:
// on one core of the EPYC VM (model_benchmark, SmolLM2 F16 at position 64, weights in huge pages,
// CPU time, a loaded host) 20.5-22.7 ms a step one tile ahead, 12.0-12.1 ms eight tiles ahead
// (37 KB at k = 576, 98 KB at k = 1536); later, under more load, 17.6-20.1 ms at 32 KiB,
// 16.8-17.2 ms at 64 KiB and 16.7-17.2 ms at 128 KiB. Into L2 (T1), not L1 (T0): a T0 prefetch
// holds one of the core's few L1 miss buffers until its line arrives, so fewer lines are in
// flight. SmolLM2 F16, two threads, position 64, quiet host, six interleaved rounds (stop 36):
// T0 83.5-102.4 tokens/s (median 96), T1 96.3-140.7 (106), T2 99.3-146.6 (108), no prefetch
// 60.5-62.8. The packed quantized kernels prefetch into L2 too.
constexpr int64_t kPrefetchAheadBytes = int64_t{64} << 10;

// One register tile: activation rows i0 .. i0 + mr - 1 against weight rows j0 .. j0 + nr - 1.
struct Tile {
  const float* a;                // A[i0, 0]; rows k floats apart
  const uint16_t* w[kTileCols];  // the weight rows; a short tile repeats its last real row
  int64_t k;
  float* c;  // C[i0, j0]; rows ldc floats apart
  int64_t ldc;
  int nr;  // real weight rows, 1 .. kTileCols
  float alpha;
  float beta;
};

// Bytes from a tile's first weight row to the tile whose rows it prefetches: kPrefetchAheadBytes
// rounded up to whole tiles of kTileCols rows of k 16-bit weights.
inline int64_t PrefetchAhead(int64_t k) {
  const int64_t tile_bytes = kTileCols * k * int64_t{sizeof(uint16_t)};
  return (kPrefetchAheadBytes + tile_bytes - 1) / tile_bytes * tile_bytes;
}

inline float Finish(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// sums[r * kTileCols + q] is the dot of activation row r with weight row q.
inline void StoreTile(const Tile& t, int mr, const float* sums) {
  for (int r = 0; r < mr; ++r) {
    float* out = t.c + r * t.ldc;
    for (int q = 0; q < t.nr; ++q) {
      out[q] = Finish(sums[r * kTileCols + q], t.alpha, t.beta, out + q);
    }
  }
}

template <bool kBf16>
inline float ToFloat(uint16_t h) {
  return kBf16 ? Bf16ToFloat(h) : HalfToFloat(h);
}

// The portable path: each element sums position s into lane s mod 8 (mul, then add: the file is
// built without contraction), then adds the lanes by the tree (l, l + 4), (l, l + 2), (l, l + 1).
constexpr int kScalarLanes = 8;

template <bool kBf16, int MR>
void TileScalar(const Tile& t) {
  float sums[kMaxTileRows * kTileCols] = {};
  for (int r = 0; r < MR; ++r) {
    const float* x = t.a + r * t.k;
    for (int q = 0; q < t.nr; ++q) {
      const uint16_t* w = t.w[q];
      float lanes[kScalarLanes] = {};
      for (int64_t s = 0; s < t.k; ++s) lanes[s % kScalarLanes] += x[s] * ToFloat<kBf16>(w[s]);
      for (int l = 0; l < 4; ++l) lanes[l] += lanes[l + 4];
      for (int l = 0; l < 2; ++l) lanes[l] += lanes[l + 2];
      sums[r * kTileCols + q] = lanes[0] + lanes[1];
    }
  }
  StoreTile(t, MR, sums);
}

#if PAGODA_HALF_X86

// --- AVX-512: 16 lanes, tiles of up to 4 x 4 -------------------------------------------------

template <bool kBf16>
PAGODA_TARGET_AVX512 inline __m512 Widen512(__m256i h) {
  if constexpr (kBf16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(h);
  }
}

// Sums the 16 lanes of each of v[0..15] by the tree (l, l + 8), (l, l + 4), (l, l + 2),
// (l, l + 1), the same additions for every v[p]: lane p of quarter s of the result is the sum of
// v[4 p + s].
// (GCC 12's _mm512_shuffle_f32x4 starts from _mm512_undefined_ps, which -Wuninitialized flags.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
PAGODA_TARGET_AVX512 inline __m512 Reduce16(const __m512 (&v)[16]) {
  __m512 u[8], w[4], x[2];
  for (int s = 0; s < 8; ++s) {  // (l, l + 8): v[2s] in the low half, v[2s + 1] in the high
    u[s] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * s], v[2 * s + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * s], v[2 * s + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int s = 0; s < 4; ++s) {  // (l, l + 4): quarter p holds v[4s + p]
    w[s] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  for (int s = 0; s < 2; ++s) {  // (l, l + 2): quarter p holds v[8s + p], v[8s + 4 + p]
    x[s] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * s], w[2 * s + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(w[2 * s], w[2 * s + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // (l, l + 1): quarter p holds v[p], v[4 + p], v[8 + p], v[12 + p].
  return _mm512_add_ps(_mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 1, 3, 1)));
}
#pragma GCC diagnostic pop

template <bool kBf16, int MR>
PAGODA_TARGET_AVX512 void TileAvx512(const Tile& t) {
  __m512 acc[MR][kTileCols];
  const float* x[MR];
  for (int r = 0; r < MR; ++r) {
    x[r] = t.a + r * t.k;
    for (int q = 0; q < kTileCols; ++q) acc[r][q] = _mm512_setzero_ps();
  }
  // The next tiles' weight rows follow this tile's in memory (8 k bytes each): each step
  // prefetches its share (128 bytes) of the tile PrefetchAhead bytes on. Four rows that each end
  // after k elements look like four short streams to the hardware prefetchers; this made the LM
  // head's decode GEMM 2x faster from memory on the EPYC VM (BM_HalfGemmPath at n = 49152).
  const char* next = reinterpret_cast<const char*>(t.w[0]) + PrefetchAhead(t.k);
  int64_t s = 0;
  for (; s + 16 <= t.k; s += 16) {
    _mm_prefetch(next + 8 * s, _MM_HINT_T1);
    _mm_prefetch(next + 8 * s + 64, _MM_HINT_T1);
    __m512 w[kTileCols];
    for (int q = 0; q < kTileCols; ++q) {
      w[q] = Widen512<kBf16>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.w[q] + s)));
    }
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_loadu_ps(x[r] + s);
      for (int q = 0; q < kTileCols; ++q) acc[r][q] = _mm512_fmadd_ps(xv, w[q], acc[r][q]);
    }
  }
  if (s < t.k) {  // the tail, zero-filled: its products in the missing lanes are +0
    const auto mask = static_cast<__mmask16>((1u << (t.k - s)) - 1u);
    __m512 w[kTileCols];
    for (int q = 0; q < kTileCols; ++q) {
      w[q] = Widen512<kBf16>(_mm256_maskz_loadu_epi16(mask, t.w[q] + s));
    }
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x[r] + s);
      for (int q = 0; q < kTileCols; ++q) acc[r][q] = _mm512_fmadd_ps(xv, w[q], acc[r][q]);
    }
  }
  // v[4 q + r] = acc[r][q], so that quarter r of the reduction is activation row r.
  __m512 v[16];
  for (int p = 0; p < 16; ++p) v[p] = _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < kTileCols; ++q) v[4 * q + r] = acc[r][q];
  }
  alignas(64) float sums[kMaxTileRows * kTileCols];
  _mm512_store_ps(sums, Reduce16(v));
  StoreTile(t, MR, sums);
}

// --- AVX2 + F16C: 8 lanes, tiles of up to 2 x 4 (16 vector registers) ------------------------

constexpr int kAvx2MaxTileRows = 2;

template <bool kBf16>
PAGODA_TARGET_AVX2 inline __m256 Widen256(__m128i h) {
  if constexpr (kBf16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(h);
  }
}

// Sums the 8 lanes of each of v[0..7] by the tree (l, l + 4), (l, l + 2), (l, l + 1); half h
// of the result holds the sums of v[h], v[2 + h], v[4 + h], v[6 + h].
PAGODA_TARGET_AVX2 inline __m256 Reduce8(const __m256 (&v)[8]) {
  __m256 u[4], w[2];
  for (int s = 0; s < 4; ++s) {  // (l, l + 4): half h holds v[2s + h]
    u[s] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * s], v[2 * s + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * s], v[2 * s + 1], 0x31));
  }
  for (int s = 0; s < 2; ++s) {  // (l, l + 2): half h holds v[4s + h], v[4s + 2 + h]
    w[s] = _mm256_add_ps(_mm256_shuffle_ps(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm256_add_ps(_mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

template <bool kBf16, int MR>
PAGODA_TARGET_AVX2 inline void StepAvx2(const uint16_t* const (&w)[kTileCols],
                                        const float* const (&x)[MR], int64_t s,
                                        __m256 (&acc)[MR][kTileCols]) {
  __m256 wv[kTileCols];
  for (int q = 0; q < kTileCols; ++q) {
    wv[q] = Widen256<kBf16>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[q] + s)));
  }
  for (int r = 0; r < MR; ++r) {
    const __m256 xv = _mm256_loadu_ps(x[r] + s);
    for (int q = 0; q < kTileCols; ++q) acc[r][q] = _mm256_fmadd_ps(xv, wv[q], acc[r][q]);
  }
}

template <bool kBf16, int MR>
PAGODA_TARGET_AVX2 void TileAvx2(const Tile& t) {
  __m256 acc[MR][kTileCols];
  const float* x[MR];
  for (int r = 0; r < MR; ++r) {
    x[r] = t.a + r * t.k;
    for (int q = 0; q < kTileCols; ++q) acc[r][q] = _mm256_setzero_ps();
  }
  // The weights PrefetchAhead bytes on, 64 bytes a step, as in TileAvx512.
  const char* next = reinterpret_cast<const char*>(t.w[0]) + PrefetchAhead(t.k);
  int64_t s = 0;
  for (; s + 8 <= t.k; s += 8) {
    _mm_prefetch(next + 8 * s, _MM_HINT_T1);
    StepAvx2<kBf16, MR>(t.w, x, s, acc);
  }
  if (s < t.k) {  // the tail through zero-padded copies: the missing lanes add +0
    const int64_t rest = t.k - s;
    uint16_t w_tail[kTileCols][8] = {};
    float x_tail[MR][8] = {};
    const uint16_t* w[kTileCols];
    const float* xt[MR];
    for (int q = 0; q < kTileCols; ++q) {
      std::memcpy(w_tail[q], t.w[q] + s, static_cast<size_t>(rest) * sizeof(uint16_t));
      w[q] = w_tail[q];
    }
    for (int r = 0; r < MR; ++r) {
      std::memcpy(x_tail[r], x[r] + s, static_cast<size_t>(rest) * sizeof(float));
      xt[r] = x_tail[r];
    }
    StepAvx2<kBf16, MR>(w, xt, 0, acc);
  }
  // v[2 q + r] = acc[r][q], so that half r of the reduction is activation row r.
  __m256 v[8];
  for (int p = 0; p < 8; ++p) v[p] = _mm256_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < kTileCols; ++q) v[2 * q + r] = acc[r][q];
  }
  alignas(32) float sums[kAvx2MaxTileRows * kTileCols];
  _mm256_store_ps(sums, Reduce8(v));
  StoreTile(t, MR, sums);
}

#endif  // PAGODA_HALF_X86

using TileFn = void (*)(const Tile& t);

// One ISA's tiles: tiles[mr - 1] computes mr activation rows, mr <= max_rows.
struct Kernel {
  int max_rows;
  TileFn tiles[kMaxTileRows];
};

template <bool kBf16>
Kernel KernelFor(CpuIsa isa) {
#if PAGODA_HALF_X86
  if (isa == CpuIsa::kAvx512) {
    return {
        4,
        {TileAvx512<kBf16, 1>, TileAvx512<kBf16, 2>, TileAvx512<kBf16, 3>, TileAvx512<kBf16, 4>}};
  }
  if (isa == CpuIsa::kAvx2) return {2, {TileAvx2<kBf16, 1>, TileAvx2<kBf16, 2>}};
#endif
  (void)isa;
  return {4,
          {TileScalar<kBf16, 1>, TileScalar<kBf16, 2>, TileScalar<kBf16, 3>, TileScalar<kBf16, 4>}};
}

// Weight rows [begin, end) against every activation row, a block of activation rows at a time.
void Range(const GemmParams& p, const Kernel& kernel, int64_t begin, int64_t end) {
  const auto* w = static_cast<const uint16_t*>(p.b);
  const int64_t ldc = p.row_stride();
  const int64_t step = kernel.max_rows;
  const int64_t block_rows =
      std::max(step, kActivationBlockBytes / (p.k * int64_t{sizeof(float)}) / step * step);
  for (int64_t i_begin = 0; i_begin < p.m; i_begin += block_rows) {
    const int64_t i_end = std::min(p.m, i_begin + block_rows);
    for (int64_t j0 = begin; j0 < end; j0 += kTileCols) {
      Tile t{.k = p.k, .ldc = ldc, .alpha = p.alpha, .beta = p.beta};
      t.nr = static_cast<int>(std::min<int64_t>(kTileCols, end - j0));
      for (int q = 0; q < kTileCols; ++q) t.w[q] = w + (j0 + std::min(q, t.nr - 1)) * p.k;
      for (int64_t i0 = i_begin; i0 < i_end; i0 += step) {
        t.a = p.a + i0 * p.k;
        t.c = p.c + i0 * ldc + j0;
        kernel.tiles[std::min(step, i_end - i0) - 1](t);
      }
    }
  }
}

}  // namespace

bool IsHalfDType(DType dtype) { return dtype == DType::kF16 || dtype == DType::kBF16; }

void HalfGemm(const GemmParams& p, CpuIsa isa) {
  const Kernel kernel = p.b_dtype == DType::kBF16 ? KernelFor<true>(isa) : KernelFor<false>(isa);
  // Which thread computes an element changes nothing in it, so the split may follow the work.
  const bool parallel = p.n * p.k * p.m >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
#pragma omp parallel if (parallel)
  {
    // Contiguous ranges (multiples of the tile's 4 rows) so each thread streams its own part of W.
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t groups = (p.n + kTileCols - 1) / kTileCols;
    const int64_t begin = std::min(p.n, groups * id / threads * kTileCols);
    const int64_t end = std::min(p.n, groups * (id + 1) / threads * kTileCols);
    Range(p, kernel, begin, end);
  }
}

}  // namespace pagoda::kernels::internal
