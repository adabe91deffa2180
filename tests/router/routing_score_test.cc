#include "router/routing_score.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;

// The workload: a 384-token shared prefix and a 32-token suffix.
constexpr int64_t kPrompt = 416;
constexpr int64_t kPrefix = 384;

ReplicaRoutingState Idle(int32_t index, int64_t cached_tokens = 0) {
  return ReplicaRoutingState{.index = index,
                             .step_token_budget = 4096,
                             .tokens_per_s = 2000,
                             .cached_tokens = cached_tokens};
}

TEST(RoutingScore, EstimateIsQueuedPlusDecodesPerStepPlusUncachedOverTheRate) {
  ReplicaRoutingState state = Idle(0, kPrefix);
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 32.0 / 2000);
  state.queued_prefill_tokens = 8000;
  state.num_running_seqs = 10;
  // 8032 tokens to prefill in steps of 4096: 2 steps, each also decoding 10 sequences.
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), (8000 + 10 * 2 + 32) / 2000.0);
  // A cached count beyond the prompt (or below zero) is clamped.
  state = Idle(0, kPrompt + 100);
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0);
  state.cached_tokens = -5;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), kPrompt / 2000.0);
}

// The threshold: with equal rates, the holder of C cached tokens keeps the request while its
// extra work, queued prefill Q plus R running decodes per step, is at most C (a tie goes to the
// holder): Q + R * steps <= C. With the prompt, C = 384.
TEST(RoutingScore, LoadedPrefixHolderLosesToAnIdleReplicaPastTheSavedPrefill) {
  std::vector<ReplicaRoutingState> states = {Idle(0, kPrefix), Idle(1)};
  states[0].queued_prefill_tokens = kPrefix;
  RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 0);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
  EXPECT_DOUBLE_EQ(choice.ttft_s[0], choice.ttft_s[1]);

  states[0].queued_prefill_tokens = kPrefix + 1;
  choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 1);
  EXPECT_EQ(choice.reason, RoutingReason::kLoad);

  // Running decodes count too: 10 sequences over one step leave room for 374 queued tokens.
  states[0].num_running_seqs = 10;
  states[0].queued_prefill_tokens = kPrefix - 10;
  EXPECT_EQ(ChooseReplica(kPrompt, states).candidate, 0);
  states[0].queued_prefill_tokens = kPrefix - 9;
  EXPECT_EQ(ChooseReplica(kPrompt, states).candidate, 1);
}

TEST(RoutingScore, IdleClusterPicksThePrefixHolder) {
  std::vector<ReplicaRoutingState> states = {Idle(0, 16), Idle(1), Idle(2, kPrefix), Idle(3)};
  const RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 2);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
}

TEST(RoutingScore, WhenAllAreBusyTheOneSavingTheMostComputeWins) {
  std::vector<ReplicaRoutingState> states = {Idle(0, 64), Idle(1, kPrefix), Idle(2, 128)};
  for (ReplicaRoutingState& state : states) {
    state.queued_prefill_tokens = 20000;
    state.num_running_seqs = 200;
  }
  const RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 1);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
}

TEST(RoutingScore, FasterReplicaIsWorthMoreQueue) {
  // Replica 1 prefills twice as fast, so it may hold about twice the queue.
  std::vector<ReplicaRoutingState> states = {Idle(0), Idle(1)};
  states[0].queued_prefill_tokens = 400;
  states[1].queued_prefill_tokens = 1200;
  states[1].tokens_per_s = 4000;
  // 816 / 2000 s against 1616 / 4000 s.
  EXPECT_EQ(ChooseReplica(kPrompt, states).candidate, 1);
  states[1].queued_prefill_tokens = 1300;  // 1716 / 4000 s
  EXPECT_EQ(ChooseReplica(kPrompt, states).candidate, 0);
}

TEST(RoutingScore, EqualStatesTieBreakByCachedTokensThenLowestIndex) {
  // Given out of index order: the lowest index wins, wherever it stands.
  std::vector<ReplicaRoutingState> states = {Idle(3), Idle(1), Idle(2)};
  RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 1);
  EXPECT_EQ(choice.reason, RoutingReason::kLoad);
  EXPECT_THAT(choice.ttft_s, ElementsAre(kPrompt / 2000.0, kPrompt / 2000.0, kPrompt / 2000.0));
  // Equal estimates, one reusing more: replica 3 has 100 more queued and 100 more cached.
  states[0].cached_tokens = 200;
  states[0].queued_prefill_tokens = 100;
  states[1].cached_tokens = 100;
  states[2].cached_tokens = 100;
  choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 0);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
  // The same inputs, the same answer.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ChooseReplica(kPrompt, states).candidate, 0);
}

TEST(RoutingScore, ReasonIsLoadWhenTheHolderGivesWayAndOnlyChoiceAlone) {
  std::vector<ReplicaRoutingState> states = {Idle(0, kPrefix), Idle(1, 16), Idle(2)};
  states[0].queued_prefill_tokens = 5000;
  const RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 1);  // 400 uncached against 416: a partial hit, but not the best
  EXPECT_EQ(choice.reason, RoutingReason::kLoad);

  const std::vector<ReplicaRoutingState> one = {states[0]};
  EXPECT_EQ(ChooseReplica(kPrompt, one).reason, RoutingReason::kOnlyChoice);
  EXPECT_EQ(RoutingReasonName(RoutingReason::kPrefixHit), "prefix_hit");
  EXPECT_EQ(RoutingReasonName(RoutingReason::kOnlyChoice), "only_choice");
  EXPECT_EQ(RoutingReasonName(RoutingReason::kLoad), "load");
  EXPECT_EQ(RoutingReasonName(RoutingReason::kRoundRobin), "round_robin");
}

}  // namespace
}  // namespace pagoda
