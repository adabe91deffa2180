// Paged-attention batches for the tests of the CUDA twin (tests/gpu/paged_attention_cuda_test.cc
// on a device, tests/kernels/cuda_paged_attention_emulated_test.cc on the CPU emulation): the
// sequences' K/V in shuffled blocks of an fp32 or bf16 cache with every unused row NaN, NaN in
// each query's pad float, padding entries (seq_len 0), and the CPU twin's output as the reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_cache_write.h"
#include "kernels/paged_attention.h"

namespace pagoda::kernels::attention_testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr uint16_t kBf16NaN = 0x7fc0;

struct Shape {
  DType cache_dtype;
  int64_t num_heads;
  int64_t num_kv_heads;
  int64_t head_dim;
  int64_t block_size;
  int64_t sliding_window = 0;
  float logit_softcap = 0.0f;
};

inline void PrintTo(const Shape& s, std::ostream* os) {
  *os << DTypeName(s.cache_dtype) << " heads=" << s.num_heads << "/" << s.num_kv_heads
      << " head_dim=" << s.head_dim << " block_size=" << s.block_size
      << " sliding_window=" << s.sliding_window << " logit_softcap=" << s.logit_softcap;
}

// (q_len, seq_len) of a sequence; {1, 0} is a padding entry.
struct Seq {
  int32_t q_len;
  int32_t seq_len;
};

// A batch on the host: what the device gets, and the CPU twin's copy of the metadata, in which
// each padding entry is a sequence over block 0 (the CPU refuses seq_len 0); its rows of the
// CPU's output are then replaced by the zeros the device must write.
struct Batch {
  Shape shape;
  std::vector<Seq> seqs;
  int64_t num_tokens = 0;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t q_stride = 0;
  int64_t max_query_len = 0;
  std::vector<float> q;
  std::vector<float> key_f32, value_f32;       // fp32 cache
  std::vector<uint16_t> key_bf16, value_bf16;  // bf16 cache
  std::vector<int32_t> block_tables, query_start_loc, seq_lens;
  std::vector<int32_t> cpu_block_tables, cpu_seq_lens;
  std::vector<bool> padding_token;  // [num_tokens]
};

/// `extra_table_blocks` widens every block table past the longest context (-1 entries), as a
/// CUDA graph's fixed width does. The device's table of a padding entry names a block outside
/// the cache: it must read none.
inline Batch MakeBatch(const Shape& shape, const std::vector<Seq>& seqs, uint32_t seed,
                       int64_t extra_table_blocks = 0) {
  Batch b;
  b.shape = shape;
  b.seqs = seqs;
  std::mt19937 rng(seed);
  const int64_t bs = shape.block_size;
  const int64_t row = shape.num_kv_heads * shape.head_dim;
  int64_t blocks_needed = 0;
  for (const Seq& s : seqs) {
    const int64_t blocks = (s.seq_len + bs - 1) / bs;
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, blocks);
    b.max_query_len = std::max<int64_t>(b.max_query_len, s.q_len);
    blocks_needed += blocks;
  }
  b.max_blocks_per_seq = std::max<int64_t>(1, b.max_blocks_per_seq) + extra_table_blocks;
  b.num_blocks = blocks_needed + 3;
  const int64_t num_seqs = static_cast<int64_t>(seqs.size());

  std::vector<int32_t> free_blocks(b.num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  b.block_tables.assign(num_seqs * b.max_blocks_per_seq, -1);
  b.query_start_loc = {0};
  const int64_t cache_elements = b.num_blocks * bs * row;
  const bool f32 = shape.cache_dtype == DType::kF32;
  if (f32) {
    b.key_f32.assign(cache_elements, kNaN);
    b.value_f32.assign(cache_elements, kNaN);
  } else {
    b.key_bf16.assign(cache_elements, kBf16NaN);
    b.value_bf16.assign(cache_elements, kBf16NaN);
  }
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::uniform_int_distribution<int> bf16_bits(0x3c00, 0x4040);  // about [0.008, 3]
  size_t next_block = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const Seq seq = seqs[s];
    b.query_start_loc.push_back(b.query_start_loc.back() + seq.q_len);
    b.seq_lens.push_back(seq.seq_len);
    for (int64_t blk = 0; blk * bs < seq.seq_len; ++blk) {
      b.block_tables[s * b.max_blocks_per_seq + blk] = free_blocks[next_block++];
    }
    for (int64_t p = 0; p < seq.seq_len; ++p) {
      const int64_t slot = int64_t{b.block_tables[s * b.max_blocks_per_seq + p / bs]} * bs + p % bs;
      for (int64_t i = 0; i < row; ++i) {
        const int64_t at =
            KvCacheOffset(slot, i / shape.head_dim, shape.num_kv_heads, shape.head_dim, bs) +
            i % shape.head_dim;
        if (f32) {
          b.key_f32[at] = uniform(rng);
          b.value_f32[at] = uniform(rng);
        } else {
          const uint16_t sign_k = rng() & 1 ? 0x8000 : 0, sign_v = rng() & 1 ? 0x8000 : 0;
          b.key_bf16[at] = static_cast<uint16_t>(bf16_bits(rng) | sign_k);
          b.value_bf16[at] = static_cast<uint16_t>(bf16_bits(rng) | sign_v);
        }
      }
    }
    for (int32_t j = 0; j < seq.q_len; ++j) b.padding_token.push_back(seq.seq_len == 0);
  }
  b.num_tokens = b.query_start_loc.back();
  b.q_stride = shape.num_heads * shape.head_dim + 1;  // one pad float per token
  std::uniform_real_distribution<float> q_uniform(-2.0f, 2.0f);
  b.q.resize(b.num_tokens * b.q_stride);
  for (float& x : b.q) x = q_uniform(rng);
  for (int64_t t = 0; t < b.num_tokens; ++t) b.q[t * b.q_stride + b.q_stride - 1] = kNaN;

  b.cpu_block_tables = b.block_tables;
  b.cpu_seq_lens = b.seq_lens;
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (seqs[s].seq_len != 0) continue;
    b.cpu_seq_lens[s] = seqs[s].q_len;  // positions [0, q_len) over block 0 (its values unused)
    for (int64_t blk = 0; blk * bs < seqs[s].q_len; ++blk) {
      b.cpu_block_tables[s * b.max_blocks_per_seq + blk] = 0;
    }
    b.block_tables[s * b.max_blocks_per_seq] = static_cast<int32_t>(b.num_blocks + 7);
  }
  return b;
}

/// The batch's scalars; the pointers are the caller's.
inline PagedAttentionParams BaseParams(const Batch& b) {
  const Shape& s = b.shape;
  PagedAttentionParams p;
  p.cache_dtype = s.cache_dtype;
  p.num_seqs = static_cast<int64_t>(b.seqs.size());
  p.num_tokens = b.num_tokens;
  p.num_heads = s.num_heads;
  p.num_kv_heads = s.num_kv_heads;
  p.head_dim = s.head_dim;
  p.block_size = s.block_size;
  p.num_blocks = b.num_blocks;
  p.max_blocks_per_seq = b.max_blocks_per_seq;
  p.q_stride = b.q_stride;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  p.sliding_window = s.sliding_window;
  p.logit_softcap = s.logit_softcap;
  return p;
}

/// The batch with host pointers (the device's metadata: padding entries with seq_len 0).
inline PagedAttentionParams HostParams(const Batch& b, float* out) {
  PagedAttentionParams p = BaseParams(b);
  p.out = out;
  p.q = b.q.data();
  const bool f32 = b.shape.cache_dtype == DType::kF32;
  p.key_cache = f32 ? static_cast<const void*>(b.key_f32.data()) : b.key_bf16.data();
  p.value_cache = f32 ? static_cast<const void*>(b.value_f32.data()) : b.value_bf16.data();
  p.block_tables = b.block_tables.data();
  p.query_start_loc = b.query_start_loc.data();
  p.seq_lens = b.seq_lens.data();
  return p;
}

/// The CPU twin's output [num_tokens, num_heads, head_dim], padding rows set to zeros.
inline std::vector<float> CpuReference(const Batch& b) {
  std::vector<float> out(b.num_tokens * b.shape.num_heads * b.shape.head_dim, kNaN);
  PagedAttentionParams p = HostParams(b, out.data());
  p.block_tables = b.cpu_block_tables.data();
  p.seq_lens = b.cpu_seq_lens.data();
  const absl::Status s = PagedAttention(p);
  EXPECT_TRUE(s.ok()) << s;
  const int64_t row = b.shape.num_heads * b.shape.head_dim;
  for (int64_t t = 0; t < b.num_tokens; ++t) {
    if (b.padding_token[t]) std::fill_n(out.begin() + t * row, row, 0.0f);
  }
  return out;
}

/// |actual - expected| <= tolerance * (1 + |expected|) everywhere; a NaN anywhere fails.
inline void ExpectClose(const std::vector<float>& actual, const std::vector<float>& expected,
                        float tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!(std::abs(actual[i] - expected[i]) <= tolerance * (1 + std::abs(expected[i])))) {
      ADD_FAILURE() << "element " << i << ": " << actual[i] << " vs " << expected[i]
                    << " (tolerance " << tolerance << " relative)";
      return;
    }
  }
}

}  // namespace pagoda::kernels::attention_testing
