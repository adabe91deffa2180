#include "kernels/paged_attention.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dequantize.h"
#include "kernels/kv_cache_write.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct SeqSpec {
  int32_t q_len;
  int32_t seq_len;
};

struct Shape {
  int64_t num_heads;
  int64_t num_kv_heads;
  int64_t head_dim;
  int64_t block_size;
  int64_t q_stride_pad = 0;  // extra floats after each token's packed query heads
};

// A batch laid out in a paged cache: dense per-sequence K/V scattered into shuffled blocks, with
// every unused cache row, query pad and output poisoned with NaN so a stray read or a missed write
// shows up.
struct Batch {
  Shape shape;
  std::vector<SeqSpec> seqs;
  std::vector<std::vector<float>> dense_k, dense_v;  // per sequence [seq_len, num_kv_heads, dim]
  std::vector<float> q, out, key_cache, value_cache;
  std::vector<int32_t> block_tables, query_start_loc, seq_lens;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t sliding_window = 0;
  float logit_softcap = 0.0f;

  PagedAttentionParams Params() const {
    PagedAttentionParams p;
    p.out = const_cast<float*>(out.data());
    p.q = q.data();
    p.key_cache = key_cache.data();
    p.value_cache = value_cache.data();
    p.block_tables = block_tables.data();
    p.query_start_loc = query_start_loc.data();
    p.seq_lens = seq_lens.data();
    p.num_seqs = static_cast<int64_t>(seqs.size());
    p.num_tokens = query_start_loc.back();
    p.num_heads = shape.num_heads;
    p.num_kv_heads = shape.num_kv_heads;
    p.head_dim = shape.head_dim;
    p.block_size = shape.block_size;
    p.num_blocks = num_blocks;
    p.max_blocks_per_seq = max_blocks_per_seq;
    p.q_stride = shape.num_heads * shape.head_dim + shape.q_stride_pad;
    p.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
    p.sliding_window = sliding_window;
    p.logit_softcap = logit_softcap;
    return p;
  }
};

Batch MakeBatch(const Shape& shape, const std::vector<SeqSpec>& seqs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  Batch b;
  b.shape = shape;
  b.seqs = seqs;
  const int64_t row = shape.num_kv_heads * shape.head_dim;
  const int64_t bs = shape.block_size;
  int64_t blocks_needed = 0;
  b.query_start_loc.push_back(0);
  for (const SeqSpec& s : seqs) {
    const int64_t blocks = (s.seq_len + bs - 1) / bs;
    blocks_needed += blocks;
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, blocks + 1);
    b.query_start_loc.push_back(b.query_start_loc.back() + s.q_len);
    b.seq_lens.push_back(s.seq_len);
  }
  b.num_blocks = blocks_needed + 3;  // spare blocks stay NaN
  std::vector<int32_t> physical(static_cast<size_t>(b.num_blocks));
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), rng);
  b.key_cache.assign(static_cast<size_t>(b.num_blocks * bs * row), kNaN);
  b.value_cache.assign(b.key_cache.size(), kNaN);
  // Entries past a sequence's last block are garbage the kernel must not look at.
  b.block_tables.assign(seqs.size() * static_cast<size_t>(b.max_blocks_per_seq), 1 << 30);
  size_t next_block = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t len = seqs[s].seq_len;
    std::vector<float> k(static_cast<size_t>(len * row)), v(k.size());
    for (float& x : k) x = uniform(rng);
    for (float& x : v) x = uniform(rng);
    for (int64_t blk = 0; blk < (len + bs - 1) / bs; ++blk) {
      b.block_tables[s * b.max_blocks_per_seq + blk] = physical[next_block++];
    }
    for (int64_t pos = 0; pos < len; ++pos) {
      const int64_t slot = b.block_tables[s * b.max_blocks_per_seq + pos / bs] * bs + pos % bs;
      for (int64_t h = 0; h < shape.num_kv_heads; ++h) {
        const int64_t at = KvCacheOffset(slot, h, shape.num_kv_heads, shape.head_dim, bs);
        const int64_t from = pos * row + h * shape.head_dim;
        std::copy_n(k.begin() + from, shape.head_dim, b.key_cache.begin() + at);
        std::copy_n(v.begin() + from, shape.head_dim, b.value_cache.begin() + at);
      }
    }
    b.dense_k.push_back(std::move(k));
    b.dense_v.push_back(std::move(v));
  }
  const int64_t packed = shape.num_heads * shape.head_dim;
  const int64_t stride = packed + shape.q_stride_pad;
  const int64_t num_tokens = b.query_start_loc.back();
  b.q.assign(static_cast<size_t>(std::max<int64_t>(num_tokens, 1) * stride), kNaN);
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < packed; ++i) b.q[t * stride + i] = uniform(rng);
  }
  b.out.assign(static_cast<size_t>(std::max<int64_t>(num_tokens, 1) * packed), kNaN);
  return b;
}

// Plain softmax(q k^T * scale) v in double over the dense K/V of each sequence (over the window's
// positions, scores soft-capped, when the batch has them).
std::vector<double> DenseReference(const Batch& b) {
  const Shape& sh = b.shape;
  const int64_t dim = sh.head_dim;
  const int64_t group = sh.num_heads / sh.num_kv_heads;
  const int64_t stride = sh.num_heads * dim + sh.q_stride_pad;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  std::vector<double> out(static_cast<size_t>(b.query_start_loc.back() * sh.num_heads * dim));
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const SeqSpec& spec = b.seqs[s];
    for (int64_t j = 0; j < spec.q_len; ++j) {
      const int64_t token = b.query_start_loc[s] + j;
      const int64_t pos = spec.seq_len - spec.q_len + j;
      for (int64_t h = 0; h < sh.num_heads; ++h) {
        const int64_t kvh = h / group;
        const float* q = b.q.data() + token * stride + h * dim;
        const int64_t first =
            b.sliding_window > 0 ? std::max<int64_t>(0, pos - b.sliding_window + 1) : 0;
        std::vector<double> scores(static_cast<size_t>(pos + 1), 0.0);
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t p = first; p <= pos; ++p) {
          const float* k = b.dense_k[s].data() + (p * sh.num_kv_heads + kvh) * dim;
          double dot = 0.0;
          for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(q[d]) * k[d];
          scores[p] = dot * scale;
          if (b.logit_softcap > 0.0f) {
            scores[p] = b.logit_softcap * std::tanh(scores[p] / b.logit_softcap);
          }
          max_score = std::max(max_score, scores[p]);
        }
        double total = 0.0;
        for (int64_t p = first; p <= pos; ++p)
          total += (scores[p] = std::exp(scores[p] - max_score));
        double* o = out.data() + (token * sh.num_heads + h) * dim;
        for (int64_t p = first; p <= pos; ++p) {
          const float* v = b.dense_v[s].data() + (p * sh.num_kv_heads + kvh) * dim;
          for (int64_t d = 0; d < dim; ++d) o[d] += scores[p] / total * v[d];
        }
      }
    }
  }
  return out;
}

// |got - want| <= 1e-5 + 1e-5 * |want| for every output element (fp32 accumulation over at most a
// few hundred positions of O(1) values).
void ExpectMatchesReference(const Batch& b) {
  const std::vector<double> want = DenseReference(b);
  ASSERT_EQ(want.size(),
            static_cast<size_t>(b.query_start_loc.back() * b.shape.num_heads * b.shape.head_dim));
  int failures = 0;
  for (size_t i = 0; i < want.size() && failures < 5; ++i) {
    const double tol = 1e-5 + 1e-5 * std::abs(want[i]);
    if (!(std::abs(b.out[i] - want[i]) <= tol)) {
      ++failures;
      ADD_FAILURE() << "out[" << i << "] (token " << i / (b.shape.num_heads * b.shape.head_dim)
                    << ") = " << b.out[i] << ", want " << want[i];
    }
  }
}

// Decodes, a prefill chunk behind a cached prefix, full prefills (one longer than a query tile
// and a chunk of 32 positions), an idle sequence (q_len 0) and a long decode; lengths avoid
// multiples of the block sizes.
const std::vector<SeqSpec> kMixedBatch = {{1, 37}, {13, 50}, {21, 21}, {0, 9},
                                          {1, 1},  {40, 75}, {45, 45}, {1, 301}};

class PagedAttentionShapes
    : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(PagedAttentionShapes, MixedBatchMatchesDenseReference) {
  const auto [gqa_ratio, head_dim, block_size] = GetParam();
  const Shape shape{.num_heads = 2 * gqa_ratio,
                    .num_kv_heads = 2,
                    .head_dim = head_dim,
                    .block_size = block_size,
                    .q_stride_pad = 5};
  Batch b = MakeBatch(shape, kMixedBatch,
                      static_cast<uint32_t>(gqa_ratio * 1000 + head_dim * 10 + block_size));
  ASSERT_TRUE(PagedAttention(b.Params()).ok());
  ExpectMatchesReference(b);
}

INSTANTIATE_TEST_SUITE_P(GqaHeadDimBlockSize, PagedAttentionShapes,
                         ::testing::Combine(::testing::Values(1, 2, 4, 8),
                                            ::testing::Values(8, 16, 64, 80, 128),
                                            ::testing::Values(1, 8, 16, 32)),
                         [](const auto& info) {
                           return "gqa" + std::to_string(std::get<0>(info.param)) + "_dim" +
                                  std::to_string(std::get<1>(info.param)) + "_block" +
                                  std::to_string(std::get<2>(info.param));
                         });

// Thread counts change how work is shared, never a row's arithmetic (long contexts are split into
// pieces at fixed positions whatever the thread count).
TEST(PagedAttention, SameResultForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 4}) {
    SCOPED_TRACE(threads);
    omp_set_num_threads(threads);
    for (const std::vector<SeqSpec>& seqs : std::vector<std::vector<SeqSpec>>{
             {{1, 700}}, {{1, 129}, {1, 64}}, {{3, 500}}, kMixedBatch}) {
      Batch b = MakeBatch({.num_heads = 9, .num_kv_heads = 3, .head_dim = 64, .block_size = 16},
                          seqs, 7u + static_cast<uint32_t>(threads));
      ASSERT_TRUE(PagedAttention(b.Params()).ok());
      ExpectMatchesReference(b);
    }
  }
  omp_set_num_threads(saved);
}

// A sliding window limits each query to its last `window` positions, and soft-capping bends the
// scores, on every kind of row (decodes, chunks behind a prefix, prefills, contexts split into
// pieces). Block-table entries wholly before a sequence's first visible position then name a spare
// block full of NaN: the engine frees those blocks, so the kernel must not read them.
TEST(PagedAttention, ASlidingWindowAndSoftCappingMatchTheDenseReference) {
  std::vector<SeqSpec> seqs = kMixedBatch;
  seqs.push_back({1, 700});
  seqs.push_back({40, 600});
  for (int64_t window : {1, 5, 32, 100, 300, 1000}) {
    for (float softcap : {0.0f, 2.5f}) {
      SCOPED_TRACE(testing::Message() << "window " << window << ", softcap " << softcap);
      Batch b = MakeBatch({.num_heads = 6, .num_kv_heads = 2, .head_dim = 16, .block_size = 8},
                          seqs, 31u + static_cast<uint32_t>(window));
      b.sliding_window = window;
      b.logit_softcap = softcap;
      const PagedAttentionParams p = b.Params();
      int32_t spare = 0;  // a block no sequence uses: NaN throughout
      while (std::find(b.block_tables.begin(), b.block_tables.end(), spare) !=
             b.block_tables.end()) {
        ++spare;
      }
      int64_t hidden = 0;
      for (int64_t s = 0; s < p.num_seqs; ++s) {
        for (int64_t blk = 0; blk < p.FirstVisiblePosition(s) / p.block_size; ++blk) {
          b.block_tables[s * b.max_blocks_per_seq + blk] = spare;
          ++hidden;
        }
      }
      if (window <= 32) {
        EXPECT_GT(hidden, 0);
      }
      ASSERT_TRUE(PagedAttention(b.Params()).ok());
      ExpectMatchesReference(b);
    }
  }
}

TEST(PagedAttention, ABlockInsideTheWindowIsStillChecked) {
  Batch b =
      MakeBatch({.num_heads = 2, .num_kv_heads = 1, .head_dim = 8, .block_size = 4}, {{1, 40}}, 3);
  b.sliding_window = 6;  // position 39 sees 34..39: blocks 8 and 9
  b.block_tables[7] = -7;
  EXPECT_TRUE(PagedAttention(b.Params()).ok());
  b.block_tables[8] = -7;
  EXPECT_THAT(PagedAttention(b.Params()).message(), HasSubstr("block_tables[8]=-7"));
}

// Batch invariance: a token's attention output is bit for bit the same whether it is computed in
// its sequence's whole prefill, in a shorter chunk ending with it, alone as a decode, or beside
// other sequences in one batch; with one thread and with two, and at contexts that cross the
// fixed split positions (700) and that do not (200); with sliding windows that start inside a piece
// and that start before it.
TEST(PagedAttention, ATokensOutputDoesNotDependOnTheBatchShape) {
  const int saved = omp_get_max_threads();
  for (const auto& [len, window] : std::vector<std::pair<int32_t, int64_t>>{
           {200, 0}, {700, 0}, {700, 45}, {700, 300}, {200, 70}}) {
    SCOPED_TRACE(testing::Message() << "len " << len << ", window " << window);
    // Sequence 0 prefills its last 60 tokens; the others only share the batch.
    Batch b = MakeBatch({.num_heads = 9, .num_kv_heads = 3, .head_dim = 64, .block_size = 16},
                        {{60, len}, {1, 301}, {13, 50}, {1, 37}}, 17);
    b.sliding_window = window;
    const PagedAttentionParams all = b.Params();
    const int64_t row = all.num_heads * all.head_dim;
    // Runs sequence 0's last q_len tokens alone (or, with_others, with the whole batch) and
    // returns their outputs.
    auto last_tokens = [&](int32_t q_len, bool with_others) {
      std::vector<float> out(static_cast<size_t>(all.num_tokens * row), kNaN);
      PagedAttentionParams p = all;
      p.out = out.data();
      std::vector<int32_t> start_loc = {0, q_len};
      if (!with_others) {
        p.q = all.q + (60 - q_len) * all.q_stride;
        p.num_seqs = 1;
        p.num_tokens = q_len;
        p.query_start_loc = start_loc.data();
      } else {
        EXPECT_EQ(q_len, 60);
      }
      EXPECT_TRUE(PagedAttention(p).ok());
      return std::vector<float>(out.begin(), out.begin() + q_len * row);
    };
    for (int threads : {1, 2}) {
      SCOPED_TRACE(threads);
      omp_set_num_threads(threads);
      const std::vector<float> batch = last_tokens(60, true);
      // Every token of each run against the same token in the batch: tiles of other lengths
      // split the context's chunks between whole passes and token-by-token ones differently.
      for (int32_t q_len : {60, 37, 13, 8, 5, 1}) {
        const std::vector<float> alone = last_tokens(q_len, false);
        const int64_t offset = (60 - q_len) * row;
        for (int64_t i = 0; i < q_len * row; ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(alone[i]), std::bit_cast<uint32_t>(batch[offset + i]))
              << "q_len " << q_len << ", token " << i / row << ", element " << i % row;
        }
      }
    }
  }
  omp_set_num_threads(saved);
}

// A cache's values rounded to bfloat16 (Quantize's rounding, nearest even).
std::vector<uint16_t> Bf16Of(const std::vector<float>& cache) {
  const int64_t n = static_cast<int64_t>(cache.size());
  std::vector<uint16_t> out(n);
  EXPECT_TRUE(
      Quantize({.dtype = DType::kBF16, .src = cache.data(), .dst = out.data(), .num_elements = n})
          .ok());
  return out;
}

// A bfloat16 cache gives exactly what an fp32 cache holding the same (bf16-rounded) keys and
// values gives: rows are widened to fp32 as they are read. Checked on decodes, a chunked prefill
// and a long context split over threads.
TEST(PagedAttention, ABfloat16CacheEqualsAnFp32CacheOfTheRoundedValues) {
  for (const std::vector<SeqSpec>& seqs :
       std::vector<std::vector<SeqSpec>>{kMixedBatch, {{1, 700}}, {{37, 200}}}) {
    Batch b =
        MakeBatch({.num_heads = 9, .num_kv_heads = 3, .head_dim = 64, .block_size = 16}, seqs, 21);
    const int64_t n = static_cast<int64_t>(b.key_cache.size());
    const std::vector<uint16_t> keys = Bf16Of(b.key_cache);
    const std::vector<uint16_t> values = Bf16Of(b.value_cache);
    ASSERT_TRUE(Dequantize({.dtype = DType::kBF16,
                            .src = keys.data(),
                            .dst = b.key_cache.data(),
                            .num_elements = n})
                    .ok());
    ASSERT_TRUE(Dequantize({.dtype = DType::kBF16,
                            .src = values.data(),
                            .dst = b.value_cache.data(),
                            .num_elements = n})
                    .ok());
    ASSERT_TRUE(PagedAttention(b.Params()).ok());
    const std::vector<float> fp32_out = b.out;
    std::fill(b.out.begin(), b.out.end(), kNaN);
    PagedAttentionParams p = b.Params();
    p.key_cache = keys.data();
    p.value_cache = values.data();
    p.cache_dtype = DType::kBF16;
    ASSERT_TRUE(PagedAttention(p).ok());
    for (size_t i = 0; i < fp32_out.size(); ++i) {
      ASSERT_EQ(b.out[i], fp32_out[i]) << "at " << i;
    }
  }
}

// The key cache of a batch in the transposed layout (kv_cache_write.h's TransposedKeyOffset),
// from its row layout: every element moved, the NaN of unused rows too.
template <typename T>
std::vector<T> TransposeKeys(const std::vector<T>& rows, const Shape& s, int64_t num_blocks) {
  std::vector<T> out(rows.size());
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    for (int64_t h = 0; h < s.num_kv_heads; ++h) {
      for (int64_t r = 0; r < s.block_size; ++r) {
        for (int64_t d = 0; d < s.head_dim; ++d) {
          out[TransposedKeyOffset(blk, r, h, d, s.num_kv_heads, s.head_dim, s.block_size)] =
              rows[KvCacheRowOffset(blk, r, h, s.num_kv_heads, s.head_dim, s.block_size) + d];
        }
      }
    }
  }
  return out;
}

// p's attention (its key cache `keys`, rows) and that of the same cache with the keys stored
// transposed: the same bits. Writes b.out.
template <typename T>
void ExpectTransposedKeysGiveTheSameBits(Batch& b, PagedAttentionParams p,
                                         const std::vector<T>& keys, const char* cache) {
  ASSERT_TRUE(PagedAttention(p).ok());
  const std::vector<float> rows_out = b.out;
  const std::vector<T> transposed = TransposeKeys(keys, b.shape, b.num_blocks);
  std::fill(b.out.begin(), b.out.end(), kNaN);
  p.key_cache = transposed.data();
  p.keys_transposed = true;
  ASSERT_TRUE(PagedAttention(p).ok());
  for (size_t i = 0; i < rows_out.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(b.out[i]), std::bit_cast<uint32_t>(rows_out[i]))
        << cache << " at " << i;
  }
}

// Keys stored transposed give the row layout's results bit for bit (the same chains and tree of
// lane sums per score), for every path of the attention: decodes, chunks cut by the causal mask,
// long contexts split into pieces, windows, soft-capping, head_dim not a multiple of 16, bf16.
TEST(PagedAttention, TransposedKeysGiveTheRowsResultsBitForBit) {
  for (const int64_t block_size : {16, 32, 48}) {
    if (!PrefersTransposedKeys(Device::kCpu, block_size)) {
      GTEST_SKIP() << "this CPU's attention reads keys as rows (no AVX-512 group form)";
    }
    for (const int64_t head_dim : {40, 64, 80}) {
      for (const int64_t window : {0, 45}) {
        SCOPED_TRACE(::testing::Message() << "block_size " << block_size << " head_dim " << head_dim
                                          << " window " << window);
        const std::vector<SeqSpec> seqs = {{1, 37},  {13, 300}, {21, 21},
                                           {1, 700}, {40, 75},  {1, 1}};
        Batch b = MakeBatch({.num_heads = 9,
                             .num_kv_heads = 3,
                             .head_dim = head_dim,
                             .block_size = block_size,
                             .q_stride_pad = 3},
                            seqs, static_cast<uint32_t>(block_size + head_dim + window));
        b.sliding_window = window;
        b.logit_softcap = window > 0 ? 30.0f : 0.0f;
        ASSERT_NO_FATAL_FAILURE(
            ExpectTransposedKeysGiveTheSameBits(b, b.Params(), b.key_cache, "fp32"));
        // A bfloat16 cache: the same from its transposed keys.
        const std::vector<uint16_t> k16 = Bf16Of(b.key_cache);
        const std::vector<uint16_t> v16 = Bf16Of(b.value_cache);
        PagedAttentionParams p = b.Params();
        p.key_cache = k16.data();
        p.value_cache = v16.data();
        p.cache_dtype = DType::kBF16;
        ASSERT_NO_FATAL_FAILURE(ExpectTransposedKeysGiveTheSameBits(b, p, k16, "bf16"));
      }
    }
  }
}

TEST(PagedAttention, TransposedKeysNeedTheLayoutsReader) {
  Batch b =
      MakeBatch({.num_heads = 4, .num_kv_heads = 2, .head_dim = 16, .block_size = 8}, {{1, 9}}, 5);
  PagedAttentionParams p = b.Params();
  p.keys_transposed = true;  // block_size 8: no run of 16 positions fits a block
  EXPECT_THAT(PagedAttention(p).message(), HasSubstr("keys stored transposed"));
  EXPECT_FALSE(PrefersTransposedKeys(Device::kCuda, 16));
}

TEST(PagedAttention, EmptyBatchIsANoOp) {
  Batch b =
      MakeBatch({.num_heads = 4, .num_kv_heads = 2, .head_dim = 8, .block_size = 4}, {{0, 5}}, 3);
  EXPECT_TRUE(PagedAttention(b.Params()).ok());
  PagedAttentionParams p = b.Params();
  p.num_seqs = 0;
  p.num_tokens = 0;
  EXPECT_TRUE(PagedAttention(p).ok());
}

class PagedAttentionValidate : public ::testing::Test {
 protected:
  void ExpectInvalid(const PagedAttentionParams& p, const std::string& message) {
    const absl::Status status = PagedAttention(p);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message));
    EXPECT_THAT(std::string(status.message()), HasSubstr("paged_attention"));
  }

  Batch batch_ = MakeBatch({.num_heads = 4, .num_kv_heads = 2, .head_dim = 8, .block_size = 4},
                           {{1, 9}, {3, 6}}, 11);
};

TEST_F(PagedAttentionValidate, BlockIdOutOfRange) {
  batch_.block_tables[batch_.max_blocks_per_seq + 1] = static_cast<int32_t>(batch_.num_blocks);
  ExpectInvalid(batch_.Params(), "block_tables[1]");
  batch_.block_tables[batch_.max_blocks_per_seq + 1] = -1;
  ExpectInvalid(batch_.Params(), "outside [0, num_blocks=");
}

// Validate() stays O(num_seqs), cheap enough for every layer; the O(blocks) scan of the block
// ids is ValidateBlockIds(), which PagedAttention skips for a caller that checked them once.
TEST_F(PagedAttentionValidate, BlockIdsAreCheckedApartFromTheCheapValidate) {
  batch_.block_tables[batch_.max_blocks_per_seq + 1] = static_cast<int32_t>(batch_.num_blocks);
  const PagedAttentionParams p = batch_.Params();
  EXPECT_TRUE(p.Validate().ok());
  const absl::Status status = p.ValidateBlockIds();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_tables[1]"));
}

TEST(PagedAttention, BlockIdsCheckedByTheCallerGiveTheSameResult) {
  Batch b = MakeBatch({.num_heads = 4, .num_kv_heads = 2, .head_dim = 16, .block_size = 8},
                      kMixedBatch, 5);
  PagedAttentionParams p = b.Params();
  p.block_ids_checked = true;
  ASSERT_TRUE(PagedAttention(p).ok());
  ExpectMatchesReference(b);
}

TEST_F(PagedAttentionValidate, SeqLenBeyondBlockTable) {
  batch_.seq_lens[0] = static_cast<int32_t>(batch_.max_blocks_per_seq * 4 + 1);
  ExpectInvalid(batch_.Params(), "beyond its block table");
}

TEST_F(PagedAttentionValidate, QueryLongerThanContext) {
  batch_.seq_lens[1] = 2;
  ExpectInvalid(batch_.Params(), "q_len=3 > seq_len=2");
}

// max_query_len is a hint for the CUDA twin's plan; on the CPU a wrong one is caught.
TEST_F(PagedAttentionValidate, MaxQueryLenBoundsEveryQuery) {
  PagedAttentionParams p = batch_.Params();
  p.max_query_len = 3;
  EXPECT_TRUE(PagedAttention(p).ok());
  p.max_query_len = 2;
  ExpectInvalid(p, "q_len=3 > max_query_len=2");
  p.max_query_len = -1;
  ExpectInvalid(p, "max_query_len must be >= 0");
}

TEST_F(PagedAttentionValidate, BadShapesAndPointers) {
  PagedAttentionParams p = batch_.Params();
  p.num_kv_heads = 3;
  ExpectInvalid(p, "does not divide num_heads");
  p = batch_.Params();
  p.q_stride = p.num_heads * p.head_dim - 1;
  ExpectInvalid(p, "q_stride");
  p = batch_.Params();
  p.scale = 0.0f;
  ExpectInvalid(p, "scale");
  p = batch_.Params();
  p.num_tokens = 3;
  ExpectInvalid(p, "query_start_loc");
  p = batch_.Params();
  p.key_cache = nullptr;
  ExpectInvalid(p, "key_cache");
  p = batch_.Params();
  p.head_dim = 0;
  ExpectInvalid(p, "bad shape");
}

}  // namespace
}  // namespace pagoda::kernels
