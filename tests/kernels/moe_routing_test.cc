#include "kernels/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

// The routing of a whole batch, and the buffers its outputs go to.
struct Routed {
  std::vector<float> weights;
  std::vector<int32_t> experts;
  std::vector<int64_t> offsets;
  std::vector<int32_t> sorted_tokens;
  std::vector<int32_t> token_rows;
};

Routed Route(const std::vector<float>& logits, int64_t tokens, int64_t experts, int64_t k,
             bool renormalize) {
  Routed r;
  r.weights.resize(tokens * k);
  r.experts.resize(tokens * k);
  r.offsets.resize(experts + 1, -1);
  r.sorted_tokens.resize(tokens * k);
  r.token_rows.resize(tokens * k);
  const absl::Status status = MoeRoute({.router_logits = logits.data(),
                                        .num_tokens = tokens,
                                        .num_experts = experts,
                                        .top_k = k,
                                        .renormalize = renormalize,
                                        .topk_weights = r.weights.data(),
                                        .topk_experts = r.experts.data(),
                                        .expert_offsets = r.offsets.data(),
                                        .sorted_tokens = r.sorted_tokens.data(),
                                        .token_rows = r.token_rows.data()});
  EXPECT_TRUE(status.ok()) << status;
  return r;
}

// Against a float64 softmax and a full sort per token; then the grouping's invariants: every
// (token, choice) pair appears once, in its expert's block, blocks in expert order, tokens
// ascending within a block.
void CheckRouting(int64_t tokens, int64_t experts, int64_t k, bool renormalize, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(tokens * experts);
  for (float& x : logits) x = normal(rng);
  const Routed r = Route(logits, tokens, experts, k, renormalize);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> p(experts);
    double max = -INFINITY, sum = 0;
    for (int64_t e = 0; e < experts; ++e) max = std::max<double>(max, logits[t * experts + e]);
    for (int64_t e = 0; e < experts; ++e) sum += p[e] = std::exp(logits[t * experts + e] - max);
    std::vector<int32_t> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double chosen = 0;
    for (int64_t j = 0; j < k; ++j) chosen += p[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      ASSERT_EQ(r.experts[t * k + j], order[j]) << "token " << t << " choice " << j;
      const double want = p[order[j]] / (renormalize ? chosen : sum);
      ASSERT_NEAR(r.weights[t * k + j], want, 1e-6) << "token " << t << " choice " << j;
    }
  }
  ASSERT_EQ(r.offsets[0], 0);
  ASSERT_EQ(r.offsets[experts], tokens * k);
  std::vector<int> seen(tokens * k, 0);
  for (int64_t e = 0; e < experts; ++e) {
    ASSERT_LE(r.offsets[e], r.offsets[e + 1]);
    for (int64_t row = r.offsets[e]; row < r.offsets[e + 1]; ++row) {
      if (row > r.offsets[e]) {
        ASSERT_LT(r.sorted_tokens[row - 1], r.sorted_tokens[row]);
      }
    }
  }
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t row = r.token_rows[t * k + j];
      ASSERT_GE(row, 0);
      ASSERT_LT(row, tokens * k);
      ++seen[row];
      EXPECT_EQ(r.sorted_tokens[row], t);
      const int32_t e = r.experts[t * k + j];
      EXPECT_GE(row, r.offsets[e]);
      EXPECT_LT(row, r.offsets[e + 1]);
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), tokens * k);
}

TEST(MoeRoute, MatchesASoftmaxAndSortPerTokenAndGroupsByExpert) {
  CheckRouting(13, 6, 2, /*renormalize=*/false, 1);
  CheckRouting(13, 6, 2, /*renormalize=*/true, 2);
  CheckRouting(1, 7, 7, /*renormalize=*/true, 3);  // every expert chosen: weights are the softmax
}

TEST(MoeRoute, ManyTokensTakeTheThreadedPathToo) { CheckRouting(700, 64, 4, true, 4); }

TEST(MoeRoute, UnevenRoutingLeavesExpertsWithNoRows) {
  // Every token prefers experts 3 then 1 (and 0 third): experts 0, 2 and 4 get no rows.
  const int64_t tokens = 5, experts = 5;
  std::vector<float> logits(tokens * experts, 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    logits[t * experts + 3] = 4.0f + t;
    logits[t * experts + 1] = 2.0f;
    logits[t * experts + 0] = 1.0f;
  }
  const Routed r = Route(logits, tokens, experts, 2, true);
  EXPECT_EQ(r.offsets, (std::vector<int64_t>{0, 0, 5, 5, 10, 10}));
  for (int64_t t = 0; t < tokens; ++t) {
    EXPECT_EQ(r.experts[t * 2], 3);
    EXPECT_EQ(r.experts[t * 2 + 1], 1);
    EXPECT_NEAR(r.weights[t * 2] + r.weights[t * 2 + 1], 1.0f, 1e-6);
    EXPECT_EQ(r.token_rows[t * 2], 5 + t);  // expert 3's block
    EXPECT_EQ(r.token_rows[t * 2 + 1], t);  // expert 1's block
  }
}

TEST(MoeGatherAndCombine, MoveRowsAndSumTheWeightedChoices) {
  const int64_t tokens = 4, width = 3, k = 2, rows = tokens * k;
  std::vector<float> input(tokens * width);
  std::iota(input.begin(), input.end(), 0.0f);
  const std::vector<int32_t> sorted_tokens = {2, 0, 3, 1, 1, 0, 2, 3};
  std::vector<float> gathered(rows * width);
  ASSERT_TRUE(MoeGather({.input = input.data(),
                         .rows = sorted_tokens.data(),
                         .output = gathered.data(),
                         .num_tokens = tokens,
                         .num_rows = rows,
                         .width = width})
                  .ok());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < width; ++i) {
      EXPECT_EQ(gathered[r * width + i], input[sorted_tokens[r] * width + i]);
    }
  }
  // token t's choices are the rows holding it; weights 0.75 / 0.25.
  const std::vector<int32_t> token_rows = {1, 5, 3, 4, 0, 6, 2, 7};
  const std::vector<float> weights = {0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f};
  std::vector<float> out(tokens * width, -1.0f);
  ASSERT_TRUE(MoeCombine({.expert_out = gathered.data(),
                          .topk_weights = weights.data(),
                          .token_rows = token_rows.data(),
                          .output = out.data(),
                          .num_tokens = tokens,
                          .top_k = k,
                          .num_rows = rows,
                          .width = width})
                  .ok());
  // Both choices of a token gathered its own row: the weighted sum is the row again.
  for (int64_t i = 0; i < tokens * width; ++i) EXPECT_FLOAT_EQ(out[i], input[i]);
}

// Expert parallelism: expert_out holds only grouped rows [3, 6); a token's choices outside add
// nothing, and a token with none of them gets zeros (whatever the output held).
TEST(MoeGatherAndCombine, CombinesOnlyTheRowsARankHolds) {
  const int64_t tokens = 4, width = 3, k = 2, begin = 3, rows = 3;
  std::vector<float> expert_out(rows * width);
  std::iota(expert_out.begin(), expert_out.end(), 1.0f);
  const std::vector<int32_t> token_rows = {1, 5, 3, 4, 0, 6, 2, 7};
  const std::vector<float> weights = {0.75f, 0.25f, 0.5f, 0.125f, 0.75f, 0.25f, 0.75f, 0.25f};
  std::vector<float> out(tokens * width, -1.0f);
  ASSERT_TRUE(MoeCombine({.expert_out = expert_out.data(),
                          .topk_weights = weights.data(),
                          .token_rows = token_rows.data(),
                          .output = out.data(),
                          .num_tokens = tokens,
                          .top_k = k,
                          .num_rows = rows,
                          .width = width,
                          .row_begin = begin})
                  .ok());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < width; ++i) {
      float want = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t row = token_rows[t * k + j];
        if (row >= begin && row < begin + rows) {
          want += weights[t * k + j] * expert_out[(row - begin) * width + i];
        }
      }
      EXPECT_FLOAT_EQ(out[t * width + i], want) << "token " << t << " column " << i;
    }
  }
  // Token 2 (rows 0 and 6) and token 3 (rows 2 and 7) chose none of these rows.
  EXPECT_EQ(out[2 * width], 0.0f);
  EXPECT_EQ(out[3 * width], 0.0f);
  // A block reaching past the num_tokens * top_k grouped rows is refused.
  const absl::Status past = MoeCombine({.expert_out = expert_out.data(),
                                        .topk_weights = weights.data(),
                                        .token_rows = token_rows.data(),
                                        .output = out.data(),
                                        .num_tokens = tokens,
                                        .top_k = k,
                                        .num_rows = rows,
                                        .width = width,
                                        .row_begin = 6});
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(past.message()), HasSubstr("row_begin=6"));
}

TEST(MoeRouting, RejectsBadParams) {
  float logits[6] = {};
  float weights[6];
  int32_t ids[6], rows[6], sorted[6];
  int64_t offsets[4];
  MoeRouteParams p{.router_logits = logits,
                   .num_tokens = 2,
                   .num_experts = 3,
                   .top_k = 4,
                   .topk_weights = weights,
                   .topk_experts = ids,
                   .expert_offsets = offsets,
                   .sorted_tokens = sorted,
                   .token_rows = rows};
  absl::Status s = MoeRoute(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("top_k=4"));
  p.top_k = 0;
  EXPECT_FALSE(MoeRoute(p).ok());
  p.top_k = 2;
  p.token_rows = nullptr;
  EXPECT_THAT(std::string(MoeRoute(p).message()), HasSubstr("null"));

  const int32_t bad[2] = {0, 5};
  float out[6];
  s = MoeGather(
      {.input = logits, .rows = bad, .output = out, .num_tokens = 2, .num_rows = 2, .width = 3});
  EXPECT_THAT(std::string(s.message()), HasSubstr("rows[1] = 5"));
  s = MoeCombine({.expert_out = logits,
                  .topk_weights = weights,
                  .token_rows = bad,
                  .output = out,
                  .num_tokens = 2,
                  .top_k = 1,
                  .num_rows = 2,
                  .width = 3});
  EXPECT_THAT(std::string(s.message()), HasSubstr("token_rows[1] = 5"));
}

}  // namespace
}  // namespace pagoda::kernels
