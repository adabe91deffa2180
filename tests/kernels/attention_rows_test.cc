#include "kernels/cpu/internal/attention_rows.h"

#include <cmath>
#include <random>
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

}  // namespace
}  // namespace pagoda::kernels::internal
