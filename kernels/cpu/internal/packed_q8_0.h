// Q8_0 weights repacked once, at load, for the AVX-512 GEMM of quantized_dot.h, which otherwise
// transposes every block of 16 weight rows as it reads it (128-bit loads and two rounds of
// permutes, plus a gather of the 16 float16 scales) before its eight vpdpbusd: at one activation
// row that shuffling is most of the kernel's work. Packed, a block of 16 rows is read as it is
// used: eight 64-byte vectors and one 32-byte vector of scales. The bytes are the file's, moved;
// the packed GEMM (packed_gemm.h) does the same arithmetic in the same order as the unpacked one,
// so both give the same bits (gemm_test checks it), and the batch invariance of quantized_dot.h
// holds.
//
// Layout: rows in groups of 16 (the last group padded with zero rows). A group is
//   quants  [num_blocks][8][16][4] bytes: vector g of block b, lane r = quants 4g .. 4g + 3 of
//           row r in block b, each plus 128 (xor 0x80: unsigned, as vpdpbusd multiplies them);
//   scales  [num_blocks][16] float16: the rows' block scales, then zero padding to 64 bytes;
// and groups follow each other, each PackedQ8_0GroupBytes long (a multiple of 64).
//
//   std::vector<uint8_t> packed(PackedQ8_0Bytes(n, k / 32));
//   PackQ8_0(w, n, k / 32, packed.data());
#pragma once

#include <cstdint>

namespace pagoda::kernels::internal {

inline constexpr int64_t kPackedQ8_0Rows = 16;  // weight rows per group (one AVX-512 vector)
inline constexpr int64_t kPackedQ8_0BlockQuantBytes = 16 * 32;
inline constexpr int64_t kPackedQ8_0BlockScaleBytes = 16 * 2;

/// Bytes of one group's scales, padded so that groups stay 64-byte aligned.
inline int64_t PackedQ8_0ScaleBytes(int64_t num_blocks) {
  return (num_blocks * kPackedQ8_0BlockScaleBytes + 63) / 64 * 64;
}
inline int64_t PackedQ8_0GroupBytes(int64_t num_blocks) {
  return num_blocks * kPackedQ8_0BlockQuantBytes + PackedQ8_0ScaleBytes(num_blocks);
}
/// Bytes of n rows of num_blocks Q8_0 blocks, packed.
inline int64_t PackedQ8_0Bytes(int64_t n, int64_t num_blocks) {
  return (n + kPackedQ8_0Rows - 1) / kPackedQ8_0Rows * PackedQ8_0GroupBytes(num_blocks);
}

/// Packs n rows of num_blocks Q8_0 blocks (34 bytes each, rows back to back) at w into
/// PackedQ8_0Bytes(n, num_blocks) bytes at out (64-byte aligned). Portable C++, threaded over
/// the groups.
void PackQ8_0(const uint8_t* w, int64_t n, int64_t num_blocks, uint8_t* out);

}  // namespace pagoda::kernels::internal
