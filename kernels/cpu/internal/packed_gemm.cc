#include "kernels/cpu/internal/packed_gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/internal/packed_q4.h"
#include "kernels/cpu/internal/packed_q8_0.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PAGODA_PACKED_X86 1
#include <immintrin.h>

#include "kernels/cpu/internal/avx512_tile.h"
// Compiled for AVX-512 VNNI alone, called only after CpuSupports said yes (quantized_dot.cc).
#define PAGODA_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define PAGODA_PACKED_X86 0
#endif

namespace pagoda::kernels::internal {
namespace {

static_assert(kPackedQ8_0Rows == kPackedGroupRows && kPackedQ4Rows == kPackedGroupRows);

#if PAGODA_PACKED_X86

constexpr int kQK = kQ8BlockElements;
using avx512_tile::kLanes;
using avx512_tile::PrefetchPart;
// The masked forms with all lanes: GCC 12 reports the unmasked ones' undefined pass-through
// operands as -Wuninitialized once inlined here.
constexpr __mmask16 kAll = 0xFFFF;
constexpr int kMaxTileRows = 4;  // activation rows per register tile
// kMaxTileRows + 1 .. kMaxDirectRows activation rows (a speculative verification step's k + 1)
// read the packed tile in passes of at most kMaxPassRows rows, split evenly.
constexpr int64_t kMaxDirectRows = 16;
constexpr int kMaxPassRows = 6;

// The packed layouts as the kernel reads them. Each block of a group is kQuantVectors 64-byte
// vectors of quants, then (in the group's scale area) the 16 rows' float16 d and, with kMin,
// their m. kOffset: what the stored-layout GEMM starts a block's int32 sum at, times -sum(a)
// (Q8_0's quants moved to q + 128; Q4_0's offset 8).
struct PackedQ8_0Format {
  static constexpr int kQuantVectors = 8;  // bytes: quant + 128 each
  static constexpr bool kNibbles = false;
  static constexpr bool kMin = false;
  static constexpr int32_t kOffset = 128;
  static constexpr int64_t kBlockQuantBytes = kPackedQ8_0BlockQuantBytes;
  static constexpr int64_t kBlockScaleBytes = kPackedQ8_0BlockScaleBytes;
  static int64_t GroupBytes(int64_t num_blocks) { return PackedQ8_0GroupBytes(num_blocks); }
};
template <bool kWithMin>
struct PackedQ4Format {
  static constexpr int kQuantVectors = 4;  // nibbles: quants 4g.. low, 16 + 4g.. high
  static constexpr bool kNibbles = true;
  static constexpr bool kMin = kWithMin;
  static constexpr int32_t kOffset = kWithMin ? 0 : 8;
  static constexpr int64_t kBlockQuantBytes = kPackedQ4BlockQuantBytes;
  static constexpr int64_t kBlockScaleBytes = PackedQ4BlockScaleBytes(kWithMin);
  static int64_t GroupBytes(int64_t num_blocks) { return PackedQ4GroupBytes(num_blocks, kWithMin); }
};

// A tile of packed Q4_x groups with its nibbles spread to bytes once, for the tiles of more than
// kMaxTileRows activation rows, which read a tile once per kMaxTileRows rows: quantized_dot.cc's
// unpacked tile, without its transposing loads. Groups of num_blocks blocks of 8 vectors of
// quants 4q .. 4q + 3 (as Q8_0's), then the blocks' float16 fields as packed.
template <typename P>
struct ExpandedFormat {
  static constexpr int kQuantVectors = 8;
  static constexpr bool kNibbles = false;
  static constexpr bool kMin = P::kMin;
  static constexpr int32_t kOffset = P::kOffset;
  static constexpr int64_t kBlockQuantBytes = kQK / 4 * 64;
  static constexpr int64_t kBlockScaleBytes = P::kBlockScaleBytes;
  static int64_t GroupBytes(int64_t num_blocks) {
    return num_blocks * (kBlockQuantBytes + kBlockScaleBytes);
  }
};

PAGODA_TARGET_AVX512 inline __m512i Broadcast4(const Q8Block& a, int first) {
  int32_t quads;
  std::memcpy(&quads, a.qs + first, sizeof(quads));
  return _mm512_set1_epi32(quads);
}

// Activation rows i0 .. i0 + MR - 1 against NV packed groups of 16 weight rows from row j0 on
// (`rows` of them real; the first group at `groups`): quantized_dot.cc's TileAvx512 operations in
// its order (the int32 sum from -offset sum(a) over the unsigned quants; one fma of it by dw da per
// block, then the min's fma by mw (da sum(a)) where the format has one; alpha and beta last) on
// vectors read as stored, so its results are TileAvx512's bit for bit. `next`: the next tile's
// bytes, fetched while this one runs.
template <typename P, int MR, int NV>
PAGODA_TARGET_AVX512 void PackedTile(const QuantizedGemmArgs& g, const uint8_t* groups, int64_t i0,
                                     int64_t j0, int64_t rows, const uint8_t* next,
                                     int64_t next_bytes) {
  const int64_t a_stride = Q8RowStride(g.num_blocks);
  const int64_t s_stride = ScaledSumsStride(g.num_blocks);
  const int64_t group_bytes = P::GroupBytes(g.num_blocks);
  const int64_t scales_offset = g.num_blocks * P::kBlockQuantBytes;
  const Q8Block* a[MR];
  [[maybe_unused]] const float* sums[MR];
  for (int i = 0; i < MR; ++i) {
    a[i] = g.a + (i0 + i) * a_stride;
    sums[i] = g.scaled_sums + (i0 + i) * s_stride;
  }
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < g.num_blocks; ++b) {
    if (next != nullptr) PrefetchPart(next, next_bytes, b, g.num_blocks);
    __m512i isum[MR][NV];
    for (int i = 0; i < MR; ++i) {
      __m512i init = _mm512_setzero_si512();
      if constexpr (P::kOffset != 0) init = _mm512_set1_epi32(-P::kOffset * a[i][b].sum);
      for (int v = 0; v < NV; ++v) isum[i][v] = init;
    }
    const uint8_t* block = groups + b * P::kBlockQuantBytes;
    for (int q = 0; q < P::kQuantVectors; ++q) {
      for (int v = 0; v < NV; ++v) {
        const __m512i raw = _mm512_loadu_si512(block + v * group_bytes + q * 64);
        if constexpr (P::kNibbles) {
          const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
          const __m512i low = _mm512_and_si512(raw, mask);
          const __m512i high = _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, raw, 4), mask);
          for (int i = 0; i < MR; ++i) {
            isum[i][v] = _mm512_dpbusd_epi32(isum[i][v], low, Broadcast4(a[i][b], 4 * q));
            isum[i][v] =
                _mm512_dpbusd_epi32(isum[i][v], high, Broadcast4(a[i][b], kQK / 2 + 4 * q));
          }
        } else {
          for (int i = 0; i < MR; ++i) {
            isum[i][v] = _mm512_dpbusd_epi32(isum[i][v], raw, Broadcast4(a[i][b], 4 * q));
          }
        }
      }
    }
    for (int v = 0; v < NV; ++v) {
      const uint8_t* fields = groups + v * group_bytes + scales_offset + b * P::kBlockScaleBytes;
      const __m512 ws =
          _mm512_maskz_cvtph_ps(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(fields)));
      [[maybe_unused]] __m512 wm;
      if constexpr (P::kMin) {
        wm = _mm512_maskz_cvtph_ps(
            kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(fields + 32)));
      }
      for (int i = 0; i < MR; ++i) {
        const __m512 scale = _mm512_mul_ps(ws, _mm512_set1_ps(a[i][b].d));
        acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][v]), scale, acc[i][v]);
        if constexpr (P::kMin) {
          acc[i][v] = _mm512_fmadd_ps(wm, _mm512_set1_ps(sums[i][b]), acc[i][v]);
        }
      }
    }
  }
  avx512_tile::StoreTile<MR, NV>(g, i0, j0, rows, acc);
}

template <typename P, int MR>
PAGODA_TARGET_AVX512 void PackedTileRows(const QuantizedGemmArgs& g, const uint8_t* groups,
                                         int64_t i0, int64_t j0, int64_t rows, int nv,
                                         const uint8_t* next, int64_t next_bytes) {
  switch (nv) {
    case 4:
      return PackedTile<P, MR, 4>(g, groups, i0, j0, rows, next, next_bytes);
    case 3:
      return PackedTile<P, MR, 3>(g, groups, i0, j0, rows, next, next_bytes);
    case 2:
      return PackedTile<P, MR, 2>(g, groups, i0, j0, rows, next, next_bytes);
    default:
      return PackedTile<P, MR, 1>(g, groups, i0, j0, rows, next, next_bytes);
  }
}

template <typename P>
PAGODA_TARGET_AVX512 void RunPackedTile(const QuantizedGemmArgs& g, const uint8_t* groups,
                                        int64_t i0, int mr, int64_t j0, int64_t rows,
                                        const uint8_t* next, int64_t next_bytes) {
  const int nv = static_cast<int>((rows + kLanes - 1) / kLanes);
  switch (mr) {
    case 4:
      return PackedTileRows<P, 4>(g, groups, i0, j0, rows, std::min(nv, 2), next, next_bytes);
    case 3:
      return PackedTileRows<P, 3>(g, groups, i0, j0, rows, std::min(nv, 2), next, next_bytes);
    case 2:
      return PackedTileRows<P, 2>(g, groups, i0, j0, rows, nv, next, next_bytes);
    default:
      return PackedTileRows<P, 1>(g, groups, i0, j0, rows, nv, next, next_bytes);
  }
}

// RunPackedTile with up to kMaxPassRows activation rows (the passes of PackedGemm's few-row path).
template <typename P>
PAGODA_TARGET_AVX512 void RunPassTile(const QuantizedGemmArgs& g, const uint8_t* groups, int64_t i0,
                                      int mr, int64_t j0, int64_t rows, const uint8_t* next,
                                      int64_t next_bytes) {
  static_assert(kMaxPassRows == 6, "RunPassTile has a case for each mr up to kMaxPassRows");
  // A pass's tile is 32 weight rows: one or two vectors, so only those forms are instantiated.
  const bool two = rows > kLanes;
  switch (mr) {
    case 6:
      return two ? PackedTile<P, 6, 2>(g, groups, i0, j0, rows, next, next_bytes)
                 : PackedTile<P, 6, 1>(g, groups, i0, j0, rows, next, next_bytes);
    case 5:
      return two ? PackedTile<P, 5, 2>(g, groups, i0, j0, rows, next, next_bytes)
                 : PackedTile<P, 5, 1>(g, groups, i0, j0, rows, next, next_bytes);
    default:
      return RunPackedTile<P>(g, groups, i0, mr, j0, rows, next, next_bytes);
  }
}

// `groups` packed Q4_x groups at `packed` spread into ExpandedFormat<P> at out.
template <typename P>
PAGODA_TARGET_AVX512 void ExpandGroups(const uint8_t* packed, int64_t groups, int64_t num_blocks,
                                       uint8_t* out) {
  const int64_t packed_bytes = P::GroupBytes(num_blocks);
  const int64_t expanded_bytes = ExpandedFormat<P>::GroupBytes(num_blocks);
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  for (int64_t v = 0; v < groups; ++v) {
    const uint8_t* src = packed + v * packed_bytes;
    uint8_t* dst = out + v * expanded_bytes;
    for (int64_t b = 0; b < num_blocks; ++b) {
      for (int q = 0; q < P::kQuantVectors; ++q) {
        const __m512i raw = _mm512_loadu_si512(src + b * P::kBlockQuantBytes + q * 64);
        uint8_t* block = dst + b * ExpandedFormat<P>::kBlockQuantBytes;
        _mm512_storeu_si512(block + q * 64, _mm512_and_si512(raw, mask));
        _mm512_storeu_si512(block + (q + P::kQuantVectors) * 64,
                            _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, raw, 4), mask));
      }
    }
    std::memcpy(dst + num_blocks * ExpandedFormat<P>::kBlockQuantBytes,
                src + num_blocks * P::kBlockQuantBytes,
                static_cast<size_t>(num_blocks * P::kBlockScaleBytes));
  }
}

// quantized_dot.cc's GemmAvx512 on packed weights: the same tiles (64 or 32 weight rows for
// m <= 4; 32 rows read in passes of a few rows for m <= kMaxDirectRows; 32 rows against L2-sized
// blocks of activation rows above, Q4_x's nibbles spread to bytes once per tile there), nothing
// transposed. j_begin is a multiple of 16 (a group's first row).
template <typename P>
PAGODA_TARGET_AVX512 void PackedGemm(const QuantizedGemmArgs& g, int64_t j_begin, int64_t j_end) {
  const int64_t group_bytes = P::GroupBytes(g.num_blocks);
  const auto at = [&](int64_t j) { return g.packed + j / kLanes * group_bytes; };
  const auto tile_bytes = [&](int64_t rows) { return (rows + kLanes - 1) / kLanes * group_bytes; };
  if (g.m <= kMaxTileRows) {
    const int mr = static_cast<int>(g.m);
    const int64_t tile_rows = (mr <= 2 ? 4 : 2) * kLanes;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += tile_rows) {
      const int64_t rows = std::min(tile_rows, j_end - j0);
      const int64_t next_rows = std::clamp<int64_t>(j_end - j0 - tile_rows, 0, tile_rows);
      RunPackedTile<P>(g, at(j0), 0, mr, j0, rows, at(j0 + rows), tile_bytes(next_rows));
    }
    return;
  }
  if (g.m <= kMaxDirectRows) {
    // A few rows more than a register tile (a verification step's): each tile of 32 weight rows is
    // read as packed by ceil(m / kMaxPassRows) passes of m split evenly (13 = 4 + 4 + 5), one
    // after the other while it is in L1: for Q8_0 three passes where tiles of kMaxTileRows made
    // four (4 + 4 + 4 + 1), for Q4_x without spreading the nibbles to bytes first, which would
    // save each pass its shift and masks but cost a store and a reload of twice the bytes and
    // measured slower (docs/performance.md, issue 19). Which rows share a pass changes no
    // element's operations.
    constexpr int64_t kTileRows = 2 * kLanes;
    const int64_t passes = (g.m + kMaxPassRows - 1) / kMaxPassRows;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kTileRows) {
      const int64_t rows = std::min(kTileRows, j_end - j0);
      const int64_t next_rows = std::clamp<int64_t>(j_end - j0 - kTileRows, 0, kTileRows);
      for (int64_t pass = 0; pass < passes; ++pass) {
        const int64_t i0 = g.m * pass / passes;
        const int mr = static_cast<int>(g.m * (pass + 1) / passes - i0);
        // The first pass over the tile reads it from memory: it fetches the next one.
        const bool first = pass == 0;
        RunPassTile<P>(g, at(j0), i0, mr, j0, rows, first ? at(j0 + rows) : nullptr,
                       first ? tile_bytes(next_rows) : 0);
      }
    }
    return;
  }
  constexpr int64_t kTileRows = 2 * kLanes;
  // Q4_x: the tile's nibbles spread into a buffer (this thread's, grown and then reused) once.
  thread_local std::vector<uint8_t> expanded;
  if constexpr (P::kNibbles) {
    const auto bytes = static_cast<size_t>(2 * ExpandedFormat<P>::GroupBytes(g.num_blocks));
    if (expanded.size() < bytes) expanded.resize(bytes);
  }
  const int64_t row_bytes_q8 = Q8RowStride(g.num_blocks) * static_cast<int64_t>(sizeof(Q8Block));
  const int64_t block_rows =
      std::max<int64_t>(kMaxTileRows, (128 << 10) / row_bytes_q8 / kMaxTileRows * kMaxTileRows);
  for (int64_t i_begin = 0; i_begin < g.m; i_begin += block_rows) {
    const int64_t i_end = std::min(g.m, i_begin + block_rows);
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kTileRows) {
      const int64_t rows = std::min(kTileRows, j_end - j0);
      const int64_t next_rows = std::clamp<int64_t>(j_end - j0 - kTileRows, 0, kTileRows);
      if constexpr (P::kNibbles) {
        ExpandGroups<P>(at(j0), (rows + kLanes - 1) / kLanes, g.num_blocks, expanded.data());
      }
      for (int64_t i0 = i_begin; i0 < i_end; i0 += kMaxTileRows) {
        const int mr = static_cast<int>(std::min<int64_t>(kMaxTileRows, i_end - i0));
        // The first pass over the tile reads it from memory: it fetches the next one.
        const bool first = i0 == i_begin;
        const uint8_t* next = first ? at(j0 + rows) : nullptr;
        const int64_t next_bytes = first ? tile_bytes(next_rows) : 0;
        if constexpr (P::kNibbles) {
          RunPackedTile<ExpandedFormat<P>>(g, expanded.data(), i0, mr, j0, rows, next, next_bytes);
        } else {
          RunPackedTile<P>(g, at(j0), i0, mr, j0, rows, next, next_bytes);
        }
      }
    }
  }
}

#endif  // PAGODA_PACKED_X86

}  // namespace

int64_t PackedWeightBytes(DType dtype, int64_t n, int64_t num_blocks) {
  switch (dtype) {
    case DType::kQ8_0:
      return PackedQ8_0Bytes(n, num_blocks);
    case DType::kQ4_0:
      return PackedQ4Bytes(n, num_blocks, /*with_min=*/false);
    case DType::kQ4_1:
      return PackedQ4Bytes(n, num_blocks, /*with_min=*/true);
    default:
      return 0;
  }
}

void PackWeights(const uint8_t* w, DType dtype, int64_t n, int64_t num_blocks, uint8_t* out) {
  switch (dtype) {
    case DType::kQ8_0:
      return PackQ8_0(w, n, num_blocks, out);
    case DType::kQ4_0:
      return PackQ4(w, n, num_blocks, /*with_min=*/false, out);
    case DType::kQ4_1:
      return PackQ4(w, n, num_blocks, /*with_min=*/true, out);
    default:
      return;
  }
}

QuantizedGemmFn PackedGemmAvx512For(DType dtype) {
#if PAGODA_PACKED_X86
  switch (dtype) {
    case DType::kQ8_0:
      return PackedGemm<PackedQ8_0Format>;
    case DType::kQ4_0:
      return PackedGemm<PackedQ4Format<false>>;
    case DType::kQ4_1:
      return PackedGemm<PackedQ4Format<true>>;
    default:
      return nullptr;
  }
#else
  (void)dtype;
  return nullptr;
#endif
}

}  // namespace pagoda::kernels::internal
