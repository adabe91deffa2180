#include "router/routing_score.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;

// The workload: a 384-token shared prefix and a 32-token suffix.
constexpr int64_t kPrompt = 416;
constexpr int64_t kPrefix = 384;

// 2000 tokens per second and no fixed cost per step, unless a test says otherwise.
ReplicaRoutingState Idle(int32_t index, int64_t cached_tokens = 0) {
  return ReplicaRoutingState{.index = index,
                             .step_token_budget = 4096,
                             .step_cost = {.fixed_s = 0, .per_token_s = 1 / 2000.0},
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

// Each step the request waits for costs its fixed part too, and the steps in flight come first:
// half of one (the request arrives, on average, halfway through it) and all the others.
TEST(RoutingScore, EstimateAddsTheFixedCostOfEachStepAndTheStepsInFlight) {
  ReplicaRoutingState state = Idle(0, kPrefix);
  state.step_cost.fixed_s = 0.1;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0.1 + 32.0 / 2000);
  state.queued_prefill_tokens = 8000;
  state.num_running_seqs = 10;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0.2 + (8000 + 10 * 2 + 32) / 2000.0);
  // Running decodes take their share of the step budget: 4086 prefill tokens a step here.
  state.queued_prefill_tokens = 4086 - 32;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0.1 + (4086 + 10) / 2000.0);
  state.queued_prefill_tokens = 4086 - 31;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0.2 + (4087 + 20) / 2000.0);
  // Two steps of 1000 tokens in flight: 0.2 + 0.5 s in all, less half of one (0.175 s).
  state = Idle(0, kPrefix);
  state.step_cost.fixed_s = 0.1;
  state.in_flight_steps = 2;
  state.in_flight_tokens = 1000;
  EXPECT_DOUBLE_EQ(EstimateTtftSeconds(kPrompt, state), 0.7 - 0.175 + 0.1 + 32.0 / 2000);
}

// A replica busy with a whole prefill looks idle in its queue (the step's tokens count as
// scheduled); what is in flight keeps it from collecting every request that shares its prefix.
TEST(RoutingScore, PrefixHolderWithStepsInFlightGivesWayPastTheSavedPrefill) {
  std::vector<ReplicaRoutingState> states = {Idle(0, kPrefix), Idle(1)};
  for (ReplicaRoutingState& state : states) state.step_cost.fixed_s = 0.1;
  states[0].num_running_seqs = 1;
  states[0].in_flight_steps = 1;
  states[0].in_flight_tokens = kPrompt + 1;
  // Half of 0.1 + 0.2085 s, then 0.1 + 0.0165 s: 0.27 s against 0.1 + 0.208 s.
  RoutingChoice choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 0);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
  // A second prefill step submitted behind it: 0.617 - 0.154 + 0.1165 = 0.579 s.
  states[0].in_flight_steps = 2;
  states[0].in_flight_tokens = 2 * (kPrompt + 1);
  choice = ChooseReplica(kPrompt, states);
  EXPECT_EQ(choice.candidate, 1);
  EXPECT_EQ(choice.reason, RoutingReason::kLoad);
  EXPECT_NEAR(choice.ttft_s[0], 0.617 - 0.15425 + 0.1165, 1e-12);
}

// A tiny model (stories260K on a CPU: steps of about 2 ms whatever their size, 20 us a token):
// right after a request finishes, its replica still has a step in flight. Half a step of
// difference is within what the score cannot know, so the cached prefix keeps the request.
TEST(RoutingScore, AStepInFlightIsNoReasonToLeaveThePrefixOnAnIdleCluster) {
  std::vector<ReplicaRoutingState> states = {Idle(0, 32), Idle(1)};
  for (ReplicaRoutingState& state : states)
    state.step_cost = {.fixed_s = 2e-3, .per_token_s = 2e-5};
  states[0].num_running_seqs = 1;
  states[0].in_flight_steps = 1;
  states[0].in_flight_tokens = 1;
  RoutingChoice choice = ChooseReplica(80, states);
  // 1.01 ms in flight + 2.98 ms against 3.6 ms: 0.39 ms slower, within the 1 ms slack.
  EXPECT_NEAR(choice.ttft_s[0], 3.99e-3, 1e-12);
  EXPECT_NEAR(choice.ttft_s[1], 3.6e-3, 1e-12);
  EXPECT_EQ(choice.candidate, 0);
  EXPECT_EQ(choice.reason, RoutingReason::kPrefixHit);
  // Two steps in flight: 6.01 ms, past the slack; the idle replica wins.
  states[0].in_flight_steps = 2;
  states[0].in_flight_tokens = 2;
  EXPECT_EQ(ChooseReplica(80, states).candidate, 1);
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
  states[1].step_cost.per_token_s = 1 / 4000.0;
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
  const double each = kPrompt / 2000.0;
  EXPECT_THAT(choice.ttft_s, ElementsAre(DoubleEq(each), DoubleEq(each), DoubleEq(each)));
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
