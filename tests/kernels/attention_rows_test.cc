#include "kernels/cpu/internal/attention_rows.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace pagoda::kernels::internal {
namespace {

// Both the portable loops and the CPU's best version (AVX2 here, when the CPU has it) against a
// double-precision reference, on row counts and head dims around every vector width.
void CheckOps(const AttentionRowOps& ops) {
  SCOPED_TRACE(ops.name);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t dim : {1, 7, 8, 9, 16, 24, 63, 64, 80, 96, 127, 128, 136}) {
    for (int64_t n : {1, 3, 7, 8, 9, 17, 32}) {
      SCOPED_TRACE(testing::Message() << "dim " << dim << " n " << n);
      std::vector<float> q(dim), p(n), acc(dim), rows(n * dim);
      for (float& x : q) x = uniform(rng);
      for (float& x : p) x = uniform(rng);
      for (float& x : acc) x = uniform(rng);
      for (float& x : rows) x = uniform(rng);
      std::vector<const float*> row_ptrs;
      // Rows in reverse order: the ops must follow the pointers, not assume a stride.
      for (int64_t c = 0; c < n; ++c) row_ptrs.push_back(rows.data() + (n - 1 - c) * dim);

      std::vector<float> s(n, std::nanf(""));
      ops.scores(q.data(), row_ptrs.data(), n, dim, s.data());
      for (int64_t c = 0; c < n; ++c) {
        double want = 0.0;
        for (int64_t d = 0; d < dim; ++d) want += double{q[d]} * row_ptrs[c][d];
        ASSERT_NEAR(s[c], want, 1e-5 + 1e-5 * std::abs(want)) << "score " << c;
      }

      std::vector<double> want(acc.begin(), acc.end());
      for (int64_t c = 0; c < n; ++c) {
        for (int64_t d = 0; d < dim; ++d) want[d] += double{p[c]} * row_ptrs[c][d];
      }
      ops.accumulate(p.data(), row_ptrs.data(), n, dim, acc.data());
      for (int64_t d = 0; d < dim; ++d) {
        ASSERT_NEAR(acc[d], want[d], 1e-5 + 1e-5 * std::abs(want[d])) << "acc " << d;
      }
    }
  }
}

TEST(AttentionRowOps, PortableMatchesReference) { CheckOps(PortableAttentionRowOps()); }

TEST(AttentionRowOps, BestMatchesReference) { CheckOps(BestAttentionRowOps()); }

// n random bfloat16 values (random floats' top halves) and the fp32 values they widen to.
void RandomBf16(int64_t n, std::mt19937& rng, std::vector<uint16_t>* half,
                std::vector<float>* widened) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  half->resize(n);
  widened->resize(n);
  for (int64_t i = 0; i < n; ++i) {
    (*half)[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(uniform(rng)) >> 16);
    const uint32_t w = static_cast<uint32_t>((*half)[i]) << 16;
    std::memcpy(&(*widened)[i], &w, sizeof(w));
  }
}

// The group form (where this CPU has one) against the double reference, with K/V rows in fp32 and
// in bfloat16. Each row's scores and accumulator are bit for bit what the same row gives alone
// (rows = 1) and what the fp32 rows of the widened bfloat16 values give: paged attention's batch
// invariance and its bf16-equals-fp32 guarantee rest on both.
TEST(AttentionGroupOps, MatchTheReferenceAloneOrInAGroupAndFromBfloat16) {
  const AttentionGroupOps* ops = BestAttentionGroupOps();
  if (ops == nullptr) GTEST_SKIP() << "no group form on this CPU (or PAGODA_CPU_ISA chose none)";
  SCOPED_TRACE(ops->name);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto bits = [](float x) { return std::bit_cast<uint32_t>(x); };
  for (int64_t dim : {1, 7, 16, 17, 63, 64, 80, 128, 136}) {
    for (int64_t n : {1, 3, 4, 5, 9, 32}) {
      for (int64_t rows : {1, 2, 3, 4, 5, 8}) {
        SCOPED_TRACE(testing::Message() << "dim " << dim << " n " << n << " rows " << rows);
        const int64_t stride = n + 3;
        std::vector<float> q(rows * dim), p(rows * stride), acc(rows * dim);
        for (float& x : q) x = uniform(rng);
        for (float& x : p) x = uniform(rng);
        for (float& x : acc) x = uniform(rng);
        // Cached rows as bfloat16 (random top halves) and as the fp32 values they widen to.
        std::vector<uint16_t> half;
        std::vector<float> widened;
        RandomBf16(n * dim, rng, &half, &widened);
        // Rows in reverse order: the ops follow the pointers.
        std::vector<const void*> half_rows, float_rows;
        for (int64_t c = 0; c < n; ++c) {
          half_rows.push_back(half.data() + (n - 1 - c) * dim);
          float_rows.push_back(widened.data() + (n - 1 - c) * dim);
        }
        std::vector<float> s_float(rows * stride, std::nanf("")), s_half = s_float;
        ops->scores(q.data(), rows, float_rows.data(), false, n, dim, s_float.data(), stride);
        ops->scores(q.data(), rows, half_rows.data(), true, n, dim, s_half.data(), stride);
        std::vector<float> acc_float = acc, acc_half = acc;
        ops->accumulate(p.data(), stride, rows, float_rows.data(), false, n, dim, acc_float.data());
        ops->accumulate(p.data(), stride, rows, half_rows.data(), true, n, dim, acc_half.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<float> s_alone(stride, std::nanf(""));
          ops->scores(q.data() + r * dim, 1, half_rows.data(), true, n, dim, s_alone.data(), 0);
          std::vector<float> acc_alone(acc.begin() + r * dim, acc.begin() + (r + 1) * dim);
          ops->accumulate(p.data() + r * stride, 0, 1, half_rows.data(), true, n, dim,
                          acc_alone.data());
          for (int64_t c = 0; c < n; ++c) {
            const float* k = widened.data() + (n - 1 - c) * dim;
            double want = 0.0;
            for (int64_t d = 0; d < dim; ++d) want += double{q[r * dim + d]} * k[d];
            const float got = s_half[r * stride + c];
            ASSERT_NEAR(got, want, 1e-5 + 1e-5 * std::abs(want)) << "row " << r << " score " << c;
            ASSERT_EQ(bits(got), bits(s_float[r * stride + c])) << "row " << r << " score " << c;
            ASSERT_EQ(bits(got), bits(s_alone[c])) << "row " << r << " score " << c;
          }
          EXPECT_TRUE(std::isnan(s_half[r * stride + n])) << "wrote past n";
          for (int64_t d = 0; d < dim; ++d) {
            double want = acc[r * dim + d];
            for (int64_t c = 0; c < n; ++c) {
              want += double{p[r * stride + c]} * widened[(n - 1 - c) * dim + d];
            }
            const float got = acc_half[r * dim + d];
            ASSERT_NEAR(got, want, 1e-5 + 1e-5 * std::abs(want)) << "row " << r << " acc " << d;
            ASSERT_EQ(bits(got), bits(acc_float[r * dim + d])) << "row " << r << " acc " << d;
            ASSERT_EQ(bits(got), bits(acc_alone[d])) << "row " << r << " acc " << d;
          }
        }
      }
    }
  }
}

// scores_transposed: from 16-position runs of keys stored by dimension (d_stride elements between
// dimensions, the runs anywhere), every score bit for bit what `scores` gives for the same key
// as a row, fp32 and bfloat16, alone or in a group: the transposed cache changes no result.
TEST(AttentionGroupOps, TransposedScoresAreTheRowScoresBitForBit) {
  const AttentionGroupOps* ops = BestAttentionGroupOps();
  if (ops == nullptr) GTEST_SKIP() << "no group form on this CPU (or PAGODA_CPU_ISA chose none)";
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto bits = [](float x) { return std::bit_cast<uint32_t>(x); };
  constexpr int64_t kRun = kTransposedKeyRun;
  for (int64_t dim : {1, 7, 16, 17, 40, 63, 64, 80, 128, 136}) {
    for (int64_t d_stride : {kRun, 3 * kRun}) {
      for (int64_t runs : {1, 2}) {
        for (int64_t rows : {1, 2, 3, 4, 5, 9}) {
          SCOPED_TRACE(testing::Message() << "dim " << dim << " d_stride " << d_stride << " runs "
                                          << runs << " rows " << rows);
          const int64_t n = runs * kRun;
          const int64_t stride = n + 5;
          std::vector<float> q(rows * dim);
          for (float& x : q) x = uniform(rng);
          // Key c as bfloat16 rows and as the fp32 values they widen to; the same keys by
          // dimension, run j at its own offset in a buffer of d_stride-wide lines.
          std::vector<uint16_t> half;
          std::vector<float> widened;
          RandomBf16(n * dim, rng, &half, &widened);
          const int64_t run_span = dim * d_stride + kRun;         // a run's elements, and a gap
          std::vector<uint16_t> half_t(runs * run_span, 0x7FC0);  // NaN elsewhere
          std::vector<float> float_t(half_t.size(), std::nanf(""));
          std::vector<const void*> half_rows, float_rows, half_runs, float_runs;
          for (int64_t j = 0; j < runs; ++j) {
            // Run j at (runs - 1 - j) * run_span + j: reversed, not aligned.
            const int64_t base = (runs - 1 - j) * run_span + j;
            half_runs.push_back(half_t.data() + base);
            float_runs.push_back(float_t.data() + base);
            for (int64_t l = 0; l < kRun; ++l) {
              const int64_t c = j * kRun + l;
              for (int64_t d = 0; d < dim; ++d) {
                half_t[base + d * d_stride + l] = half[c * dim + d];
                float_t[base + d * d_stride + l] = widened[c * dim + d];
              }
            }
          }
          for (int64_t c = 0; c < n; ++c) {
            half_rows.push_back(half.data() + c * dim);
            float_rows.push_back(widened.data() + c * dim);
          }
          std::vector<float> want(rows * stride, std::nanf("")), got_f = want, got_h = want;
          ops->scores(q.data(), rows, float_rows.data(), false, n, dim, want.data(), stride);
          ops->scores_transposed(q.data(), rows, float_runs.data(), false, runs, dim, d_stride,
                                 got_f.data(), stride);
          ops->scores_transposed(q.data(), rows, half_runs.data(), true, runs, dim, d_stride,
                                 got_h.data(), stride);
          for (int64_t r = 0; r < rows; ++r) {
            std::vector<float> alone(stride, std::nanf(""));
            ops->scores_transposed(q.data() + r * dim, 1, half_runs.data(), true, runs, dim,
                                   d_stride, alone.data(), 0);
            for (int64_t c = 0; c < n; ++c) {
              const float w = want[r * stride + c];
              ASSERT_EQ(bits(got_f[r * stride + c]), bits(w)) << "row " << r << " score " << c;
              ASSERT_EQ(bits(got_h[r * stride + c]), bits(w)) << "row " << r << " score " << c;
              ASSERT_EQ(bits(alone[c]), bits(w)) << "row " << r << " score " << c;
            }
            EXPECT_TRUE(std::isnan(got_f[r * stride + n])) << "wrote past the runs";
          }
        }
      }
    }
  }
}

// The group form's softmax step against a double reference: a row's max, sum, rescaled
// accumulator and weights are bit for bit what the row gives alone; the scores outside
// [first, valid) are not read (they hold NaN here) and become 0. The chunk's weights are summed by
// one fixed tree (the lanes' halves folded: 16 + 16, 8 + 8, 4 + 4, then 0 + 2, 1 + 3 and the two),
// whichever rows share the call (checked where the running sum is not rescaled, so that no
// rounding of the rescale enters it).
TEST(AttentionGroupOps, SoftmaxStepMatchesTheReferenceForAnyRangeAndRowCount) {
  const AttentionGroupOps* ops = BestAttentionGroupOps();
  if (ops == nullptr) GTEST_SKIP() << "no group form on this CPU (or PAGODA_CPU_ISA chose none)";
  constexpr int64_t kPositions = kGroupSoftmaxPositions;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
  auto bits = [](float x) { return std::bit_cast<uint32_t>(x); };
  const int64_t dim = 20;
  int tree_checks = 0;
  for (float softcap : {0.0f, 3.0f}) {
    for (auto [first, valid] : {std::pair<int64_t, int64_t>{0, 32},
                                {0, 1},
                                {0, 17},
                                {5, 16},
                                {15, 32},
                                {31, 32},
                                {3, 4}}) {
      for (int64_t rows : {1, 3, 5, 9}) {
        SCOPED_TRACE(testing::Message() << "softcap " << softcap << " range [" << first << ", "
                                        << valid << ") rows " << rows);
        const int64_t stride = kPositions + 2;
        std::vector<float> s(rows * stride, std::nanf("")), acc(rows * dim);
        std::vector<float> max(rows), sum(rows);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = first; c < valid; ++c) s[r * stride + c] = uniform(rng);
          for (int64_t d = 0; d < dim; ++d) acc[r * dim + d] = uniform(rng);
          // Row 0 starts a softmax (no running state); the others continue one whose max is
          // about that of their scores, so that some grow it and some do not.
          max[r] = r == 0 ? -std::numeric_limits<float>::infinity() : uniform(rng);
          sum[r] = r == 0 ? 0.0f : 1.0f + std::abs(uniform(rng));
        }
        std::fill(acc.begin(), acc.begin() + dim, 0.0f);  // row 0's: a softmax's start
        std::vector<float> s_all = s, acc_all = acc, max_all = max, sum_all = sum;
        ops->softmax(s_all.data(), stride, rows, first, valid, softcap, dim, max_all.data(),
                     sum_all.data(), acc_all.data());
        for (int64_t r = 0; r < rows; ++r) {
          // The row alone.
          std::vector<float> s_alone(s.begin() + r * stride, s.begin() + (r + 1) * stride);
          std::vector<float> acc_alone(acc.begin() + r * dim, acc.begin() + (r + 1) * dim);
          float max_alone = max[r], sum_alone = sum[r];
          ops->softmax(s_alone.data(), 0, 1, first, valid, softcap, dim, &max_alone, &sum_alone,
                       acc_alone.data());
          // The reference.
          double want_max = max[r];
          std::vector<double> capped(kPositions);
          for (int64_t c = first; c < valid; ++c) {
            const double x = s[r * stride + c];
            capped[c] = softcap > 0.0f ? softcap * std::tanh(x / softcap) : x;
            want_max = std::max(want_max, capped[c]);
          }
          const double rescale = std::exp(double{max[r]} - want_max);
          double want_sum = sum[r] * rescale;
          for (int64_t c = 0; c < kPositions; ++c) {
            const double want = c >= first && c < valid ? std::exp(capped[c] - want_max) : 0.0;
            want_sum += want;
            const float got = s_all[r * stride + c];
            ASSERT_NEAR(got, want, 1e-6 + 1e-5 * want) << "row " << r << " weight " << c;
            ASSERT_EQ(bits(got), bits(s_alone[c])) << "row " << r << " weight " << c;
          }
          EXPECT_TRUE(std::isnan(s_all[r * stride + kPositions])) << "wrote past the chunk";
          ASSERT_NEAR(max_all[r], want_max, 1e-6 * std::abs(want_max));
          ASSERT_NEAR(sum_all[r], want_sum, 1e-5 * want_sum);
          ASSERT_EQ(bits(max_all[r]), bits(max_alone));
          ASSERT_EQ(bits(sum_all[r]), bits(sum_alone));
          float tree[16];
          for (int i = 0; i < 16; ++i) tree[i] = s_all[r * stride + i] + s_all[r * stride + 16 + i];
          for (int half = 8; half >= 4; half /= 2) {
            for (int i = 0; i < half; ++i) tree[i] = tree[i] + tree[i + half];
          }
          const float chunk_sum = (tree[0] + tree[2]) + (tree[1] + tree[3]);
          if (max_all[r] == max[r] || r == 0) {  // row 0's running sum: 0
            ASSERT_EQ(bits(sum_all[r]), bits(sum[r] + chunk_sum)) << "row " << r;
            ++tree_checks;
          }
          for (int64_t d = 0; d < dim; ++d) {
            const double want = acc[r * dim + d] * rescale;
            ASSERT_NEAR(acc_all[r * dim + d], want, 1e-6 + 1e-5 * std::abs(want));
            ASSERT_EQ(bits(acc_all[r * dim + d]), bits(acc_alone[d]));
          }
        }
      }
    }
  }
  EXPECT_GT(tree_checks, 100) << "too few rows whose sum the tree check covered";
}

}  // namespace
}  // namespace pagoda::kernels::internal
