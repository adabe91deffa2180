// Q4_0 and Q4_1 weights repacked once, at load, for the AVX-512 GEMM of quantized_dot.h, as
// packed_q8_0.h does for Q8_0: unpacked, that GEMM reads 20 (Q4_1) or 18 (Q4_0) bytes of each of
// 16 rows per block and transposes them (128-bit loads, two rounds of permutes, a gather of the
// scales) before its eight vpdpbusd. Packed, a block of 16 rows is four 64-byte vectors read as
// they are used: one AND gives the low nibbles (quants 4g .. 4g + 3 of every row), a shift and an
// AND the high ones (quants 16 + 4g ..), each one vpdpbusd operand; the rows' scales d (and, for
// Q4_1, mins m) are one 32-byte vector each. The nibbles and float16 fields are the file's,
// moved; the packed GEMM does the stored one's arithmetic in its order, so both give the same
// bits (gemm_test checks it) and the batch invariance of quantized_dot.h holds.
//
// Layout: rows in groups of 16 (the last group padded with zero rows). A group is
//   quants  [num_blocks][4][16][4] bytes: vector g of block b, lane r = bytes 4g .. 4g + 3 of the
//           qs field of row r's block b (quants 4g .. 4g + 3 in the low nibbles, 16 + 4g ..
//           16 + 4g + 3 in the high ones);
//   scales  [num_blocks][16] float16 d (Q4_0), or [num_blocks][2][16] float16 (Q4_1: the 16 rows'
//           d, then their m: one 64-byte line a block), then zero padding to 64 bytes;
// and groups follow each other, each PackedQ4GroupBytes long (a multiple of 64). The packed form
// takes the stored form's bytes (16 of quants and 2 or 4 of fields a row and block), up to the
// padding.
//
//   std::vector<uint8_t> packed(PackedQ4Bytes(n, k / 32, /*with_min=*/true));
//   PackQ4(w, n, k / 32, /*with_min=*/true, packed.data());  // Q4_1
#pragma once

#include <cstdint>

namespace pagoda::kernels::internal {

inline constexpr int64_t kPackedQ4Rows = 16;  // weight rows per group (one AVX-512 vector)
inline constexpr int64_t kPackedQ4BlockQuantBytes = 16 * 16;

/// Bytes of one block's float16 fields for a group: d (Q4_0), or d then m (Q4_1).
inline constexpr int64_t PackedQ4BlockScaleBytes(bool with_min) { return with_min ? 64 : 32; }
/// Bytes of one group's fields, padded so that groups stay 64-byte aligned.
inline int64_t PackedQ4ScaleBytes(int64_t num_blocks, bool with_min) {
  return (num_blocks * PackedQ4BlockScaleBytes(with_min) + 63) / 64 * 64;
}
inline int64_t PackedQ4GroupBytes(int64_t num_blocks, bool with_min) {
  return num_blocks * kPackedQ4BlockQuantBytes + PackedQ4ScaleBytes(num_blocks, with_min);
}
/// Bytes of n rows of num_blocks Q4_0 (with_min false) or Q4_1 (true) blocks, packed.
inline int64_t PackedQ4Bytes(int64_t n, int64_t num_blocks, bool with_min) {
  return (n + kPackedQ4Rows - 1) / kPackedQ4Rows * PackedQ4GroupBytes(num_blocks, with_min);
}

/// Packs n rows of num_blocks blocks at w (Q4_0: 18 bytes each, Q4_1 when with_min: 20; rows
/// back to back) into PackedQ4Bytes(n, num_blocks, with_min) bytes at out (64-byte aligned).
/// Portable C++, threaded over the groups.
void PackQ4(const uint8_t* w, int64_t n, int64_t num_blocks, bool with_min, uint8_t* out);

}  // namespace pagoda::kernels::internal
