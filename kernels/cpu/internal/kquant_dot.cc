#include "kernels/cpu/internal/kquant_dot.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/internal/half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PAGODA_KQUANT_X86 1
#include <immintrin.h>
// As in quantized_dot.cc: functions compiled for one ISA each, called only after CpuSupports.
#define PAGODA_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PAGODA_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define PAGODA_KQUANT_X86 0
#endif

namespace pagoda::kernels::internal {
namespace {

// Every kernel below walks a weight row super-block by super-block: Decode unpacks one
// super-block's quants and scales (once, whatever the number of activation rows), Accumulate
// adds its dot with the 8 Q8 blocks of one activation row into that row's accumulator. An
// activation row's accumulator sees the same operations in the same order whichever rows share
// the pass, so the GEMM is batch-invariant (Rows below).
constexpr int kSubBlocks = 8;  // 32-element sub-blocks (and Q8 blocks) per 256-element super-block
constexpr int kQ8 = kQ8BlockElements;

// An activation row as the scalar and AVX2 codecs read it: its Q8 blocks and, per block,
// d * sum (QuantizedGemmArgs::scaled_sums) for the mins term.
struct Q8Row {
  const Q8Block* blocks;
  const float* scaled_sums;
};

// The GGML K-quant layouts (block_formats.cc), as byte offsets; -1: no such field.
struct FormatQ4_K {
  static constexpr int kBytes = 144, kScales = 4, kQh = -1, kQs = 16;
};
struct FormatQ5_K {
  static constexpr int kBytes = 176, kScales = 4, kQh = 16, kQs = 48;
};
struct FormatQ6_K {
  static constexpr int kBytes = 210, kQl = 0, kQh = 128, kScales = 192, kD = 208;
};

// The 6-bit scales and mins of the 8 sub-blocks in a Q4_K/Q5_K 12-byte scale field: bytes 0..3
// hold scales 0..3, bytes 4..7 mins 0..3 (low 6 bits); sub-blocks 4..7 take their low 4 bits from
// bytes 8..11 (scale: low nibble, min: high nibble) and their top 2 bits from the top bits of
// bytes 0..3 (scales) and 4..7 (mins).
inline void ScalesAndMins(const uint8_t* q, int32_t* scales, int32_t* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = q[j] & 63;
    mins[j] = q[j + 4] & 63;
    scales[j + 4] = (q[j + 8] & 0x0F) | ((q[j] >> 6) << 4);
    mins[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
  }
}

// --- Portable path ---------------------------------------------------------------------------

// Q4_K / Q5_K: element l of sub-block j is the low (j even) or high (j odd) nibble of
// qs[32 (j / 2) + l], with Q5_K's fifth bit in bit j of qh[l]; weight = d sc_j q - dmin m_j.
template <typename F>
struct K4Scalar {
  static constexpr int kBlockBytes = F::kBytes;
  struct Weights {
    const uint8_t* block;
    float d, dmin;
    int32_t scales[kSubBlocks], mins[kSubBlocks];
  };
  struct Acc {
    float total = 0.0f;
  };
  using Row = Q8Row;
  static Acc Zero() { return {}; }
  static void Decode(const uint8_t* block, Weights* w) {
    w->block = block;
    w->d = HalfToFloat(LoadU16(block));
    w->dmin = HalfToFloat(LoadU16(block + 2));
    ScalesAndMins(block + F::kScales, w->scales, w->mins);
  }
  static void Accumulate(const Weights& w, const Row& row, int64_t sb, Acc* acc) {
    const Q8Block* a = row.blocks + sb * kSubBlocks;
    for (int j = 0; j < kSubBlocks; ++j) {
      const uint8_t* qs = w.block + F::kQs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int32_t sum = 0;
      for (int l = 0; l < kQ8; ++l) {
        int32_t q = (qs[l] >> shift) & 0x0F;
        if constexpr (F::kQh >= 0) q |= ((w.block[F::kQh + l] >> j) & 1) << 4;
        sum += q * a[j].qs[l];
      }
      acc->total += w.d * a[j].d * static_cast<float>(w.scales[j] * sum) -
                    w.dmin * a[j].d * static_cast<float>(w.mins[j] * a[j].sum);
    }
  }
  static float Finish(const Acc& acc) { return acc.total; }
};

// Q6_K: element 32 c + l of the super-block (c = 4 h + s) has its low 4 bits in
// ql[64 h + 32 (s % 2) + l] (low nibble for s < 2, high for s >= 2) and its high 2 bits in bits
// 2 s of qh[32 h + l]; weight = d sc_g (q - 32) with one int8 scale per 16 elements. The offset
// is applied in int32 (sum((q - 32) a)), so a 32-element block's two halves combine exactly:
// |sc (sum)| <= 128 * 16 * 32 * 127 per half, and both together stay below 2^24.
struct Q6KScalar {
  static constexpr int kBlockBytes = FormatQ6_K::kBytes;
  struct Weights {
    const uint8_t* block;
    float d;
  };
  struct Acc {
    float total = 0.0f;
  };
  using Row = Q8Row;
  static Acc Zero() { return {}; }
  static void Decode(const uint8_t* block, Weights* w) {
    w->block = block;
    w->d = HalfToFloat(LoadU16(block + FormatQ6_K::kD));
  }
  static void Accumulate(const Weights& w, const Row& row, int64_t sb, Acc* acc) {
    const Q8Block* a = row.blocks + sb * kSubBlocks;
    const auto* scales = reinterpret_cast<const int8_t*>(w.block + FormatQ6_K::kScales);
    for (int c = 0; c < kSubBlocks; ++c) {
      const int h = c / 4, s = c % 4;
      const uint8_t* ql = w.block + FormatQ6_K::kQl + 64 * h + 32 * (s % 2);
      const uint8_t* qh = w.block + FormatQ6_K::kQh + 32 * h;
      int32_t half_sums[2] = {0, 0};
      for (int l = 0; l < kQ8; ++l) {
        const int32_t q =
            (((ql[l] >> (4 * (s / 2))) & 0x0F) | (((qh[l] >> (2 * s)) & 3) << 4)) - 32;
        half_sums[l / 16] += q * a[c].qs[l];
      }
      const int32_t sum = scales[2 * c] * half_sums[0] + scales[2 * c + 1] * half_sums[1];
      acc->total += w.d * a[c].d * static_cast<float>(sum);
    }
  }
  static float Finish(const Acc& acc) { return acc.total; }
};

// One decoded weight row (w) against MR activation rows (a[i]), MR results into out.
template <typename Codec, int MR>
void RowsScalar(const typename Codec::Weights* w, const typename Codec::Row* a, int64_t num_super,
                float* out) {
  typename Codec::Acc acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    for (int i = 0; i < MR; ++i) Codec::Accumulate(w[sb], a[i], sb, &acc[i]);
  }
  for (int i = 0; i < MR; ++i) out[i] = Codec::Finish(acc[i]);
}

// A weight row's num_super super-blocks decoded into w.
template <typename Codec>
void DecodeScalar(const uint8_t* row, int64_t num_super, typename Codec::Weights* w) {
  for (int64_t sb = 0; sb < num_super; ++sb) Codec::Decode(row + sb * Codec::kBlockBytes, &w[sb]);
}

// One weight row against one activation row with each super-block decoded in registers: for
// m < kRowsPerPass, where a decoded row's trip through memory would not be repaid. The same
// operations as RowsScalar<Codec, 1> on DecodeScalar's output, so the same values.
template <typename Codec>
void FusedScalar(const uint8_t* row, const typename Codec::Row* a, int64_t num_super, float* out) {
  typename Codec::Acc acc = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    typename Codec::Weights w;
    Codec::Decode(row + sb * Codec::kBlockBytes, &w);
    Codec::Accumulate(w, *a, sb, &acc);
  }
  *out = Codec::Finish(acc);
}

#if PAGODA_KQUANT_X86

// --- AVX2 ------------------------------------------------------------------------------------

PAGODA_TARGET_AVX2 inline float HalfAt(const uint8_t* p) { return _cvtsh_ss(LoadU16(p)); }

PAGODA_TARGET_AVX2 inline __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

PAGODA_TARGET_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 16-bit lanes shifted right by a run-time count (the quants' bit fields).
PAGODA_TARGET_AVX2 inline __m256i ShiftRight16(__m256i v, int count) {
  return _mm256_srl_epi16(v, _mm_cvtsi32_si128(count));
}

// The 8 sub-blocks' 32 quants of a Q4_K/Q5_K super-block as bytes 0..15 or 0..31.
template <typename F>
PAGODA_TARGET_AVX2 inline void UnpackK4Avx2(const uint8_t* block, __m256i* q) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  [[maybe_unused]] __m256i high_bits;
  if constexpr (F::kQh >= 0) high_bits = Load256(block + F::kQh);
  for (int p = 0; p < kSubBlocks / 2; ++p) {
    const __m256i raw = Load256(block + F::kQs + 32 * p);
    __m256i lo = _mm256_and_si256(raw, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    if constexpr (F::kQh >= 0) {
      // Bit 2p of each qh byte is the fifth bit of sub-block 2p, bit 2p + 1 of the next one
      // (16-bit shifts: only bit 0 of each byte is kept, which no shift carries across bytes).
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(high_bits, one), 4));
      hi = _mm256_or_si256(
          hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 1), one), 4));
      high_bits = _mm256_srli_epi16(high_bits, 2);
    }
    q[2 * p] = lo;
    q[2 * p + 1] = hi;
  }
}

// The structs holding vectors say their alignment: this file is compiled for baseline x86-64,
// where GCC caps the alignment of the 256- and 512-bit vector types below what the AVX code
// assumes when it stores them (vmovdqa64), so vectors of these structs would be misaligned.
struct alignas(32) AccAvx2 {
  __m256 even, odd;  // two chains hide the FMA latency
  __m256 mins;       // sum over sub-blocks of dmin m_j * da_j sum_j(a)
};

PAGODA_TARGET_AVX2 inline AccAvx2 ZeroAvx2() {
  return {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
}

PAGODA_TARGET_AVX2 inline float FinishAvx2(const AccAvx2& acc) {
  return HorizontalSum(_mm256_add_ps(acc.even, acc.odd)) - HorizontalSum(acc.mins);
}

// vpmaddubsw pairs never saturate (q <= 63, |a| <= 127: 2 * 63 * 127 < 2^15), and vpmaddwd with
// the sub-block's integer scale as the multiplier gives sc * sum(q a) in exact int32 lanes.
template <typename F>
struct K4Avx2 {
  static constexpr int kBlockBytes = F::kBytes;
  struct alignas(32) Weights {
    __m256i q[kSubBlocks];
    __m256i scales[kSubBlocks];  // sc_j as 16 int16
    __m256 min_scales;           // dmin * m_j
    float d;
  };
  using Acc = AccAvx2;
  using Row = Q8Row;
  PAGODA_TARGET_AVX2 static Acc Zero() { return ZeroAvx2(); }
  PAGODA_TARGET_AVX2 static void Decode(const uint8_t* block, Weights* w) {
    UnpackK4Avx2<F>(block, w->q);
    int32_t scales[kSubBlocks], mins[kSubBlocks];
    ScalesAndMins(block + F::kScales, scales, mins);
    w->d = HalfAt(block);
    for (int j = 0; j < kSubBlocks; ++j) {
      w->scales[j] = _mm256_set1_epi16(static_cast<int16_t>(scales[j]));
    }
    w->min_scales = _mm256_mul_ps(
        _mm256_set1_ps(HalfAt(block + 2)),
        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mins))));
  }
  PAGODA_TARGET_AVX2 static void Accumulate(const Weights& w, const Row& row, int64_t sb,
                                            Acc* acc) {
    const Q8Block* a = row.blocks + sb * kSubBlocks;
    for (int j = 0; j < kSubBlocks; j += 2) {
      const __m256i s0 =
          _mm256_madd_epi16(_mm256_maddubs_epi16(w.q[j], Load256(a[j].qs)), w.scales[j]);
      const __m256i s1 = _mm256_madd_epi16(_mm256_maddubs_epi16(w.q[j + 1], Load256(a[j + 1].qs)),
                                           w.scales[j + 1]);
      acc->even = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(w.d * a[j].d), acc->even);
      acc->odd =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(w.d * a[j + 1].d), acc->odd);
    }
    acc->mins = _mm256_fmadd_ps(w.min_scales, _mm256_loadu_ps(row.scaled_sums + sb * kSubBlocks),
                                acc->mins);
  }
  PAGODA_TARGET_AVX2 static float Finish(const Acc& acc) { return FinishAvx2(acc); }
};

// The 32 quants of Q6_K block c (0..7) as bytes 0..63.
PAGODA_TARGET_AVX2 inline __m256i UnpackQ6KAvx2(const uint8_t* block, int c) {
  const int h = c / 4, s = c % 4;
  const __m256i ql = Load256(block + FormatQ6_K::kQl + 64 * h + 32 * (s % 2));
  const __m256i qh = Load256(block + FormatQ6_K::kQh + 32 * h);
  const __m256i low = _mm256_and_si256(ShiftRight16(ql, 4 * (s / 2)), _mm256_set1_epi8(0x0F));
  const __m256i high = _mm256_and_si256(ShiftRight16(qh, 2 * s), _mm256_set1_epi8(3));
  return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
}

// Q6_K: vpmaddubsw of q and of 32 with the activations, subtracted in int16 (|(q - 32) a| pairs
// <= 2 * 32 * 127), then vpmaddwd with [sc_2c x 8, sc_2c+1 x 8]: elements 0..15 of the block
// are the 16-bit lanes of the low 128 bits.
struct Q6KAvx2 {
  static constexpr int kBlockBytes = FormatQ6_K::kBytes;
  struct alignas(32) Weights {
    __m256i q[kSubBlocks];
    __m256i scales[kSubBlocks];
    float d;
  };
  using Acc = AccAvx2;
  using Row = Q8Row;
  PAGODA_TARGET_AVX2 static Acc Zero() { return ZeroAvx2(); }
  PAGODA_TARGET_AVX2 static void Decode(const uint8_t* block, Weights* w) {
    const auto* sc = reinterpret_cast<const int8_t*>(block + FormatQ6_K::kScales);
    for (int c = 0; c < kSubBlocks; ++c) {
      w->q[c] = UnpackQ6KAvx2(block, c);
      w->scales[c] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * c + 1]), _mm_set1_epi16(sc[2 * c]));
    }
    w->d = HalfAt(block + FormatQ6_K::kD);
  }
  PAGODA_TARGET_AVX2 static __m256i BlockSums(const Weights& w, const Q8Block& a, int c) {
    const __m256i x = Load256(a.qs);
    const __m256i centred = _mm256_sub_epi16(_mm256_maddubs_epi16(w.q[c], x),
                                             _mm256_maddubs_epi16(_mm256_set1_epi8(32), x));
    return _mm256_madd_epi16(centred, w.scales[c]);
  }
  PAGODA_TARGET_AVX2 static void Accumulate(const Weights& w, const Row& row, int64_t sb,
                                            Acc* acc) {
    const Q8Block* a = row.blocks + sb * kSubBlocks;
    for (int c = 0; c < kSubBlocks; c += 2) {
      acc->even = _mm256_fmadd_ps(_mm256_cvtepi32_ps(BlockSums(w, a[c], c)),
                                  _mm256_set1_ps(w.d * a[c].d), acc->even);
      acc->odd = _mm256_fmadd_ps(_mm256_cvtepi32_ps(BlockSums(w, a[c + 1], c + 1)),
                                 _mm256_set1_ps(w.d * a[c + 1].d), acc->odd);
    }
  }
  PAGODA_TARGET_AVX2 static float Finish(const Acc& acc) { return FinishAvx2(acc); }
};

template <typename Codec, int MR>
PAGODA_TARGET_AVX2 void RowsAvx2(const typename Codec::Weights* w, const typename Codec::Row* a,
                                 int64_t num_super, float* out) {
  typename Codec::Acc acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    for (int i = 0; i < MR; ++i) Codec::Accumulate(w[sb], a[i], sb, &acc[i]);
  }
  for (int i = 0; i < MR; ++i) out[i] = Codec::Finish(acc[i]);
}

// A weight row's num_super super-blocks decoded into w.
template <typename Codec>
PAGODA_TARGET_AVX2 void DecodeAvx2(const uint8_t* row, int64_t num_super,
                                   typename Codec::Weights* w) {
  for (int64_t sb = 0; sb < num_super; ++sb) Codec::Decode(row + sb * Codec::kBlockBytes, &w[sb]);
}

// One weight row against one activation row with each super-block decoded in registers: for
// m < kRowsPerPass, where a decoded row's trip through memory would not be repaid. The same
// operations as RowsAvx2<Codec, 1> on DecodeAvx2's output, so the same values.
template <typename Codec>
PAGODA_TARGET_AVX2 void FusedAvx2(const uint8_t* row, const typename Codec::Row* a,
                                  int64_t num_super, float* out) {
  typename Codec::Acc acc = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    typename Codec::Weights w;
    Codec::Decode(row + sb * Codec::kBlockBytes, &w);
    Codec::Accumulate(w, *a, sb, &acc);
  }
  *out = Codec::Finish(acc);
}

// --- AVX-512 VNNI ----------------------------------------------------------------------------

struct alignas(64) Vector64 {
  uint8_t bytes[64];
};

// An activation row packed once per GEMM call for the AVX-512 codecs, so that a pair of
// sub-blocks costs one load per operand: per pair of Q8 blocks p, their 64 quants (q), their
// scales as [d_2p x 8, d_2p+1 x 8] (scales), and for Q6_K -32 * (sum of each 4 quants) as the
// vpdpbusd start value that applies its offset (offsets); scaled_sums as Q8Row's.
struct PackedRow {
  const Vector64* q;
  const Vector64* scales;
  const Vector64* offsets;  // null where the codec has no offset
  const float* scaled_sums;
};

// The 512-bit vectors below are built with masked broadcasts from fully defined sources: GCC
// 12's _mm512_inserti64x4 and its kin start from an undefined vector that -Wuninitialized flags
// once inlined here.

// [low, high].
PAGODA_TARGET_AVX512 inline __m512i Concat(__m256i low, __m256i high) {
  return _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(low), 0xF0, high);
}

// Two blocks' activations in one register: a0's 32 bytes low, a1's high.
PAGODA_TARGET_AVX512 inline __m512i PairOfActivations(const Q8Block& a0, const Q8Block& a1) {
  return Concat(Load256(a0.qs), Load256(a1.qs));
}

// [lo x 8, hi x 8].
PAGODA_TARGET_AVX512 inline __m512 HalvesOf(float lo, float hi) {
  return _mm512_mask_broadcastss_ps(_mm512_set1_ps(lo), 0xFF00, _mm_set_ss(hi));
}

// Packs m rows of num_blocks Q8 blocks (QuantizedGemmArgs layout) into this thread's buffers.
template <bool kOffsets>
PAGODA_TARGET_AVX512 void PackRowsAvx512(const QuantizedGemmArgs& g, std::vector<PackedRow>* rows) {
  thread_local std::vector<Vector64> q, scales, offsets;
  const int64_t pairs = g.num_blocks / 2;
  const int64_t a_stride = Q8RowStride(g.num_blocks);
  const int64_t s_stride = ScaledSumsStride(g.num_blocks);
  const size_t size = static_cast<size_t>(g.m * pairs);
  if (q.size() < size) {
    q.resize(size);
    scales.resize(size);
    if (kOffsets) offsets.resize(size);
  }
  rows->resize(static_cast<size_t>(g.m));
  for (int64_t i = 0; i < g.m; ++i) {
    const Q8Block* a = g.a + i * a_stride;
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t at = i * pairs + p;
      const __m512i x = PairOfActivations(a[2 * p], a[2 * p + 1]);
      _mm512_store_si512(&q[at], x);
      _mm512_store_ps(&scales[at], HalvesOf(a[2 * p].d, a[2 * p + 1].d));
      if constexpr (kOffsets) {
        const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(32), x);
        _mm512_store_si512(&offsets[at], _mm512_sub_epi32(_mm512_setzero_si512(), sums));
      }
    }
    (*rows)[i] = {q.data() + i * pairs, scales.data() + i * pairs,
                  kOffsets ? offsets.data() + i * pairs : nullptr, g.scaled_sums + i * s_stride};
  }
}

struct alignas(64) AccAvx512 {
  __m512 even, odd;
  __m256 mins;
};

PAGODA_TARGET_AVX512 inline AccAvx512 ZeroAvx512() {
  return {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm256_setzero_ps()};
}

PAGODA_TARGET_AVX512 inline float FinishAvx512(const AccAvx512& acc) {
  // Halves added through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float halves[16];
  _mm512_store_ps(halves, _mm512_add_ps(acc.even, acc.odd));
  return HorizontalSum(_mm256_add_ps(_mm256_load_ps(halves), _mm256_load_ps(halves + 8))) -
         HorizontalSum(acc.mins);
}

// Q4_K / Q5_K: one vpdpbusd per pair of sub-blocks (lanes 0..7 the first, 8..15 the second);
// the sub-block scales join d in the float multiplier [d sc_2p x 8, d sc_2p+1 x 8].
template <typename F>
struct K4Avx512 {
  static constexpr int kBlockBytes = F::kBytes;
  static constexpr bool kOffsets = false;
  struct alignas(64) Weights {
    __m512i q[kSubBlocks / 2];
    __m512 scales[kSubBlocks / 2];
    __m256 min_scales;  // dmin * m_j
  };
  using Acc = AccAvx512;
  using Row = PackedRow;
  PAGODA_TARGET_AVX512 static Acc Zero() { return ZeroAvx512(); }
  PAGODA_TARGET_AVX512 static void Decode(const uint8_t* block, Weights* w) {
    __m256i q[kSubBlocks];
    UnpackK4Avx2<F>(block, q);
    int32_t scales[kSubBlocks], mins[kSubBlocks];
    ScalesAndMins(block + F::kScales, scales, mins);
    const float d = HalfAt(block);
    for (int p = 0; p < kSubBlocks / 2; ++p) {
      w->q[p] = Concat(q[2 * p], q[2 * p + 1]);
      w->scales[p] = HalvesOf(d * static_cast<float>(scales[2 * p]),
                              d * static_cast<float>(scales[2 * p + 1]));
    }
    w->min_scales = _mm256_mul_ps(
        _mm256_set1_ps(HalfAt(block + 2)),
        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mins))));
  }
  PAGODA_TARGET_AVX512 static void Accumulate(const Weights& w, const Row& row, int64_t sb,
                                              Acc* acc) {
    const int64_t first = sb * (kSubBlocks / 2);
    for (int p = 0; p < kSubBlocks / 2; ++p) {
      const __m512i sums =
          _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.q[p], _mm512_load_si512(&row.q[first + p]));
      const __m512 scale = _mm512_mul_ps(w.scales[p], _mm512_load_ps(&row.scales[first + p]));
      __m512& chain = p % 2 == 0 ? acc->even : acc->odd;
      chain = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, chain);
    }
    acc->mins = _mm256_fmadd_ps(w.min_scales, _mm256_loadu_ps(row.scaled_sums + sb * kSubBlocks),
                                acc->mins);
  }
  PAGODA_TARGET_AVX512 static float Finish(const Acc& acc) { return FinishAvx512(acc); }
};

// Q6_K: blocks c and c + 1 (c even: the same 128-element half h, s and s + 1) in one register:
// their low nibbles are the 64 bytes at ql[64 h] shifted alike, their high bits the same 32
// bytes of qh shifted by 2 s and 2 s + 2. vpdpbusd of q with the activations starts from the
// packed row's -32 * (sums of 4 activations), which applies the offset in exact int32; 4 int32
// lanes per 16-element scale group.
struct Q6KAvx512 {
  static constexpr int kBlockBytes = FormatQ6_K::kBytes;
  static constexpr bool kOffsets = true;
  struct alignas(64) Weights {
    __m512i q[kSubBlocks / 2];
    __m512 scales[kSubBlocks / 2];  // d sc_g, lanes 4 (g - 2c) .. 4 (g - 2c) + 3
  };
  using Acc = AccAvx512;
  using Row = PackedRow;
  PAGODA_TARGET_AVX512 static Acc Zero() { return ZeroAvx512(); }
  PAGODA_TARGET_AVX512 static void Decode(const uint8_t* block, Weights* w) {
    const float d = HalfAt(block + FormatQ6_K::kD);
    const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (int p = 0; p < kSubBlocks / 2; ++p) {
      const int h = p / 2, s = 2 * (p % 2);
      const __m512i ql = _mm512_loadu_si512(block + FormatQ6_K::kQl + 64 * h);
      const __m512i qh =
          _mm512_maskz_broadcast_i64x4(0xFF, Load256(block + FormatQ6_K::kQh + 32 * h));
      const __m512i low = _mm512_and_si512(_mm512_srl_epi16(ql, _mm_cvtsi32_si128(4 * (s / 2))),
                                           _mm512_set1_epi8(0x0F));
      const __m512i shifts = _mm512_mask_set1_epi16(_mm512_set1_epi16(static_cast<int16_t>(2 * s)),
                                                    0xFFFF0000u, static_cast<int16_t>(2 * s + 2));
      const __m512i high = _mm512_and_si512(_mm512_srlv_epi16(qh, shifts), _mm512_set1_epi8(3));
      w->q[p] = _mm512_or_si512(low, _mm512_slli_epi16(high, 4));
      int32_t four_scales;  // sc_4p .. sc_4p+3
      std::memcpy(&four_scales, block + FormatQ6_K::kScales + 4 * p, sizeof(four_scales));
      const __m512i sc =
          _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(four_scales), spread));
      w->scales[p] = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), _mm512_set1_ps(d));
    }
  }
  PAGODA_TARGET_AVX512 static void Accumulate(const Weights& w, const Row& row, int64_t sb,
                                              Acc* acc) {
    const int64_t first = sb * (kSubBlocks / 2);
    for (int p = 0; p < kSubBlocks / 2; ++p) {
      const __m512i sums = _mm512_dpbusd_epi32(_mm512_load_si512(&row.offsets[first + p]), w.q[p],
                                               _mm512_load_si512(&row.q[first + p]));
      const __m512 scale = _mm512_mul_ps(w.scales[p], _mm512_load_ps(&row.scales[first + p]));
      __m512& chain = p % 2 == 0 ? acc->even : acc->odd;
      chain = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, chain);
    }
  }
  PAGODA_TARGET_AVX512 static float Finish(const Acc& acc) { return FinishAvx512(acc); }
};

template <typename Codec, int MR>
PAGODA_TARGET_AVX512 void RowsAvx512(const typename Codec::Weights* w, const typename Codec::Row* a,
                                     int64_t num_super, float* out) {
  typename Codec::Acc acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    for (int i = 0; i < MR; ++i) Codec::Accumulate(w[sb], a[i], sb, &acc[i]);
  }
  for (int i = 0; i < MR; ++i) out[i] = Codec::Finish(acc[i]);
}

// A weight row's num_super super-blocks decoded into w.
template <typename Codec>
PAGODA_TARGET_AVX512 void DecodeAvx512(const uint8_t* row, int64_t num_super,
                                       typename Codec::Weights* w) {
  for (int64_t sb = 0; sb < num_super; ++sb) Codec::Decode(row + sb * Codec::kBlockBytes, &w[sb]);
}

// One weight row against one activation row with each super-block decoded in registers: for
// m < kRowsPerPass, where a decoded row's trip through memory would not be repaid. The same
// operations as RowsAvx512<Codec, 1> on DecodeAvx512's output, so the same values.
template <typename Codec>
PAGODA_TARGET_AVX512 void FusedAvx512(const uint8_t* row, const typename Codec::Row* a,
                                      int64_t num_super, float* out) {
  typename Codec::Acc acc = Codec::Zero();
  for (int64_t sb = 0; sb < num_super; ++sb) {
    typename Codec::Weights w;
    Codec::Decode(row + sb * Codec::kBlockBytes, &w);
    Codec::Accumulate(w, *a, sb, &acc);
  }
  *out = Codec::Finish(acc);
}

template <typename Codec>
void PrepareAvx512(const QuantizedGemmArgs& g, std::vector<PackedRow>* rows) {
  PackRowsAvx512<Codec::kOffsets>(g, rows);
}

#endif  // PAGODA_KQUANT_X86

void PrepareQ8Rows(const QuantizedGemmArgs& g, std::vector<Q8Row>* rows) {
  const int64_t a_stride = Q8RowStride(g.num_blocks);
  const int64_t s_stride = ScaledSumsStride(g.num_blocks);
  rows->resize(static_cast<size_t>(g.m));
  for (int64_t i = 0; i < g.m; ++i) {
    (*rows)[i] = {g.a + i * a_stride, g.scaled_sums + i * s_stride};
  }
}

constexpr int kRowsPerPass = 4;  // activation rows per pass over a decoded weight row

inline void StoreResult(const QuantizedGemmArgs& g, int64_t i, int64_t j, float value) {
  float* out = g.c + i * g.ldc + j;
  *out = g.beta == 0.0f ? g.alpha * value : g.alpha * value + g.beta * *out;
}

// One (format, ISA) path: Prepare views (or packs) the activation rows once per call; each weight
// row is decoded once into this thread's buffer (in L1) and read from there by every
// kRowsPerPass activation rows. An element's value is the same whether its row went through the
// 4-row or the 1-row kernel, and its row's view does not depend on the others: batch-invariant.
template <typename Codec,
          void (*Prepare)(const QuantizedGemmArgs&, std::vector<typename Codec::Row>*),
          void (*Fused)(const uint8_t*, const typename Codec::Row*, int64_t, float*),
          void (*DecodeRow)(const uint8_t*, int64_t, typename Codec::Weights*),
          void (*One)(const typename Codec::Weights*, const typename Codec::Row*, int64_t, float*),
          void (*Many)(const typename Codec::Weights*, const typename Codec::Row*, int64_t, float*)>
void Gemm(const QuantizedGemmArgs& g, int64_t j_begin, int64_t j_end) {
  thread_local std::vector<typename Codec::Row> rows;
  thread_local std::vector<typename Codec::Weights> weights;
  Prepare(g, &rows);
  const int64_t num_super = g.num_blocks / kSubBlocks;
  if (g.m < kRowsPerPass) {
    for (int64_t j = j_begin; j < j_end; ++j) {
      for (int64_t i = 0; i < g.m; ++i) {
        float out;
        Fused(g.w + j * g.row_bytes, rows.data() + i, num_super, &out);
        StoreResult(g, i, j, out);
      }
    }
    return;
  }
  weights.resize(static_cast<size_t>(num_super));
  for (int64_t j = j_begin; j < j_end; ++j) {
    DecodeRow(g.w + j * g.row_bytes, num_super, weights.data());
    int64_t i = 0;
    for (; i + kRowsPerPass <= g.m; i += kRowsPerPass) {
      float out[kRowsPerPass];
      Many(weights.data(), rows.data() + i, num_super, out);
      for (int r = 0; r < kRowsPerPass; ++r) StoreResult(g, i + r, j, out[r]);
    }
    for (; i < g.m; ++i) {
      float out;
      One(weights.data(), rows.data() + i, num_super, &out);
      StoreResult(g, i, j, out);
    }
  }
}

// The GEMM of one (format, ISA): Gemm with its codec's pieces.
#if PAGODA_KQUANT_X86
template <typename Codec>
constexpr QuantizedGemmFn kGemmAvx512 =
    Gemm<Codec, PrepareAvx512<Codec>, FusedAvx512<Codec>, DecodeAvx512<Codec>, RowsAvx512<Codec, 1>,
         RowsAvx512<Codec, kRowsPerPass>>;
template <typename Codec>
constexpr QuantizedGemmFn kGemmAvx2 =
    Gemm<Codec, PrepareQ8Rows, FusedAvx2<Codec>, DecodeAvx2<Codec>, RowsAvx2<Codec, 1>,
         RowsAvx2<Codec, kRowsPerPass>>;
#endif
template <typename Codec>
constexpr QuantizedGemmFn kGemmScalar =
    Gemm<Codec, PrepareQ8Rows, FusedScalar<Codec>, DecodeScalar<Codec>, RowsScalar<Codec, 1>,
         RowsScalar<Codec, kRowsPerPass>>;

// The dot product of one weight row with one activation row: the GEMM at m = n = 1.
template <QuantizedGemmFn GemmFn>
float Dot(const void* w, const Q8Block* a, int64_t num_blocks) {
  std::vector<float> scaled_sums(static_cast<size_t>(ScaledSumsStride(num_blocks)), 0.0f);
  for (int64_t b = 0; b < num_blocks; ++b) {
    scaled_sums[b] = a[b].d * static_cast<float>(a[b].sum);
  }
  float out = 0.0f;
  GemmFn({.w = static_cast<const uint8_t*>(w),
          .row_bytes = 0,
          .num_blocks = num_blocks,
          .a = a,
          .scaled_sums = scaled_sums.data(),
          .m = 1,
          .c = &out,
          .ldc = 1,
          .alpha = 1.0f,
          .beta = 0.0f},
         0, 1);
  return out;
}

template <typename Scalar, typename Avx2, typename Avx512>
QuantizedGemmFn PickGemm(CpuIsa isa) {
#if PAGODA_KQUANT_X86
  if (isa == CpuIsa::kAvx512) return kGemmAvx512<Avx512>;
  if (isa == CpuIsa::kAvx2) return kGemmAvx2<Avx2>;
#endif
  return isa == CpuIsa::kScalar ? kGemmScalar<Scalar> : nullptr;
}

template <typename Scalar, typename Avx2, typename Avx512>
QuantizedDotFn PickDot(CpuIsa isa) {
#if PAGODA_KQUANT_X86
  if (isa == CpuIsa::kAvx512) return Dot<kGemmAvx512<Avx512>>;
  if (isa == CpuIsa::kAvx2) return Dot<kGemmAvx2<Avx2>>;
#endif
  return isa == CpuIsa::kScalar ? Dot<kGemmScalar<Scalar>> : nullptr;
}

#if PAGODA_KQUANT_X86
#define PAGODA_KQUANT_CODECS(scalar, avx2, avx512) scalar, avx2, avx512
#else
// No SIMD codecs off x86: the scalar one stands in for them (never picked).
#define PAGODA_KQUANT_CODECS(scalar, avx2, avx512) scalar, scalar, scalar
#endif

}  // namespace

QuantizedDotFn KQuantDotFor(DType dtype, CpuIsa isa) {
  switch (dtype) {
    case DType::kQ4_K:
      return PickDot<PAGODA_KQUANT_CODECS(K4Scalar<FormatQ4_K>, K4Avx2<FormatQ4_K>,
                                          K4Avx512<FormatQ4_K>)>(isa);
    case DType::kQ5_K:
      return PickDot<PAGODA_KQUANT_CODECS(K4Scalar<FormatQ5_K>, K4Avx2<FormatQ5_K>,
                                          K4Avx512<FormatQ5_K>)>(isa);
    case DType::kQ6_K:
      return PickDot<PAGODA_KQUANT_CODECS(Q6KScalar, Q6KAvx2, Q6KAvx512)>(isa);
    default:
      return nullptr;
  }
}

QuantizedGemmFn KQuantGemmFor(DType dtype, CpuIsa isa) {
  switch (dtype) {
    case DType::kQ4_K:
      return PickGemm<PAGODA_KQUANT_CODECS(K4Scalar<FormatQ4_K>, K4Avx2<FormatQ4_K>,
                                           K4Avx512<FormatQ4_K>)>(isa);
    case DType::kQ5_K:
      return PickGemm<PAGODA_KQUANT_CODECS(K4Scalar<FormatQ5_K>, K4Avx2<FormatQ5_K>,
                                           K4Avx512<FormatQ5_K>)>(isa);
    case DType::kQ6_K:
      return PickGemm<PAGODA_KQUANT_CODECS(Q6KScalar, Q6KAvx2, Q6KAvx512)>(isa);
    default:
      return nullptr;
  }
}

}  // namespace pagoda::kernels::internal
