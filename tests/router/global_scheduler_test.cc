#include "router/global_scheduler.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kBlockSize = 16;

// Each running request is one running sequence.
ReplicaSnapshot Ready(int64_t running = 0, int64_t waiting = 0, double kv_usage = 0) {
  return ReplicaSnapshot{.ready = true,
                         .num_running_requests = running,
                         .num_waiting_requests = waiting,
                         .kv_cache_usage = kv_usage,
                         .num_running_seqs = running};
}

void SetRunning(ReplicaSnapshot& replica, int64_t running) {
  replica.num_running_requests = running;
  replica.num_running_seqs = running;
}

// `num_prefix_blocks` full blocks determined by `prefix_id`, then `suffix_len` tokens determined
// by `suffix_id`.
std::vector<int32_t> Prompt(int32_t prefix_id, int64_t num_prefix_blocks, int32_t suffix_id,
                            int64_t suffix_len) {
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < num_prefix_blocks * kBlockSize; ++i) {
    tokens.push_back(1000 * prefix_id + static_cast<int32_t>(i));
  }
  for (int64_t i = 0; i < suffix_len; ++i) {
    tokens.push_back(-1000 * (suffix_id + 1) - static_cast<int32_t>(i));
  }
  return tokens;
}

GlobalSchedulerOptions Options(RoutingPolicy policy) {
  return GlobalSchedulerOptions{.policy = policy, .block_size = kBlockSize};
}

TEST(RoutingPolicy, ParsesItsNamesAndListsThemOnError) {
  for (RoutingPolicy policy :
       {RoutingPolicy::kRoundRobin, RoutingPolicy::kLeastLoaded, RoutingPolicy::kPrefixAware}) {
    absl::StatusOr<RoutingPolicy> parsed =
        ParseRoutingPolicy(std::string(RoutingPolicyName(policy)));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, policy);
  }
  absl::StatusOr<RoutingPolicy> bad = ParseRoutingPolicy("random");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("round_robin, least_loaded or prefix_aware"));
  EXPECT_THAT(bad.status().message(), HasSubstr("'random'"));
}

TEST(GlobalSchedulerOptions, ValidateNamesTheBadField) {
  EXPECT_TRUE(GlobalSchedulerOptions{}.Validate().ok());
  GlobalSchedulerOptions options;
  options.block_size = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("block_size"));
  options = {};
  options.default_tokens_per_s = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("default_tokens_per_s"));
  options = {};
  options.rate_ewma_weight = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("rate_ewma_weight"));
  options.rate_ewma_weight = 1.5;
  EXPECT_THAT(options.Validate().message(), HasSubstr("rate_ewma_weight"));
  options = {};
  options.max_routed_hashes_per_replica = -1;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GlobalScheduler, RoundRobinCyclesOverReadyReplicas) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kRoundRobin), 3);
  std::vector<ReplicaSnapshot> replicas = {Ready(), ReplicaSnapshot{}, Ready()};
  std::vector<int32_t> picks;
  for (int i = 0; i < 5; ++i) picks.push_back(*scheduler.Pick({1, 2, 3}, replicas));
  EXPECT_THAT(picks, ElementsAre(0, 2, 0, 2, 0));
  replicas[1].ready = true;
  picks.clear();
  for (int i = 0; i < 4; ++i) picks.push_back(*scheduler.Pick({1, 2, 3}, replicas));
  EXPECT_THAT(picks, ElementsAre(1, 2, 0, 1));
  EXPECT_EQ(scheduler.stats().routed_round_robin, 9);
}

TEST(GlobalScheduler, LeastLoadedPicksFewestRequestsThenLowestKvUsageThenIndex) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kLeastLoaded), 4);
  // Loads 5, 3, 3, 3: replicas 1-3 tie on load; 2 and 3 tie on usage too.
  std::vector<ReplicaSnapshot> replicas = {Ready(1, 4, 0.1), Ready(3, 0, 0.9), Ready(2, 1, 0.5),
                                           Ready(0, 3, 0.5)};
  EXPECT_EQ(*scheduler.Pick({1}, replicas), 2);
  replicas[2].kv_cache_usage = 0.6;
  EXPECT_EQ(*scheduler.Pick({1}, replicas), 3);
  replicas[0].num_waiting_requests = 0;  // load 1
  EXPECT_EQ(*scheduler.Pick({1}, replicas), 0);
  EXPECT_EQ(scheduler.stats().routed_by_load, 3);
}

TEST(GlobalScheduler, PrefixAwarePicksTheLongestCachedPrefix) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 3);
  const std::vector<int32_t> prompt = Prompt(7, 4, 0, 5);
  std::vector<ReplicaSnapshot> replicas = {Ready(0), Ready(2), Ready(1)};
  replicas[0].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 16; };
  replicas[1].cached_prefix_tokens = [&](absl::Span<const int32_t> tokens) {
    EXPECT_EQ(tokens.size(), prompt.size());
    return 48;
  };
  replicas[2].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 32; };
  EXPECT_EQ(*scheduler.Pick(prompt, replicas), 1);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 1);
  EXPECT_EQ(scheduler.NumRoutedHashes(1), 4);
  EXPECT_EQ(scheduler.NumRoutedHashes(0), 0);
}

TEST(GlobalScheduler, EqualPrefixesGoToTheLessLoadedReplica) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 3);
  std::vector<ReplicaSnapshot> replicas = {Ready(0), Ready(9), Ready(4)};
  replicas[1].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 32; };
  replicas[2].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 32; };
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 3, 0, 1), replicas), 2);
}

TEST(GlobalScheduler, ScoreIsTheLargerOfCachedAndRecentlyRoutedPrefix) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(), Ready()};
  // Replica 0 was sent a 3-block prefix (no match anywhere yet: routed by load, index 0).
  ASSERT_EQ(*scheduler.Pick(Prompt(1, 3, 0, 4), replicas), 0);
  // Replica 1's cache holds 2 blocks of it: the routed 3 blocks win.
  replicas[1].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 32; };
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 3, 1, 4), replicas), 0);
  // Now it holds 4: its cache wins.
  replicas[1].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 64; };
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 3, 2, 4), replicas), 1);
  EXPECT_EQ(scheduler.stats().routed_by_load, 1);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 2);
}

TEST(GlobalScheduler, BurstWithANewPrefixStaysOnOneReplica) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 4);
  // Replica 2 is the least loaded; nothing is cached anywhere and the snapshots do not change,
  // as when the burst arrives faster than the replicas' queues are read.
  std::vector<ReplicaSnapshot> replicas = {Ready(3), Ready(2), Ready(1), Ready(2)};
  for (ReplicaSnapshot& replica : replicas) {
    replica.cached_prefix_tokens = [](absl::Span<const int32_t>) { return 0; };
  }
  std::vector<int32_t> picks;
  for (int32_t i = 0; i < 8; ++i) picks.push_back(*scheduler.Pick(Prompt(5, 3, i, 7), replicas));
  EXPECT_THAT(picks, Each(2));
  EXPECT_EQ(scheduler.stats().routed_by_load, 1);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 7);
  EXPECT_EQ(scheduler.NumRoutedHashes(2), 3);  // the shared blocks, each remembered once
}

// Replaces the old load-guard tests (request-count thresholds): the holder now gives way by time.
TEST(GlobalScheduler, BurstSpillsOnceTheHoldersQueueOutweighsTheCachedPrefix) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(), Ready()};
  // 24 prefix blocks (384 tokens) and a 32-token suffix: 416 tokens, of which the next prompt
  // reuses the 384 of the prefix where the routed memory has it.
  std::vector<int32_t> picks;
  std::vector<RoutingReason> reasons;
  for (int32_t i = 0; i < 4; ++i) {
    absl::StatusOr<RoutingDecision> decision = scheduler.Decide(Prompt(5, 24, i, 32), replicas);
    ASSERT_TRUE(decision.ok()) << decision.status();
    picks.push_back(decision->replica);
    reasons.push_back(decision->reason);
    // The replica queues the whole prompt (its cache hit is known only once scheduled).
    replicas[decision->replica].queued_prefill_tokens += 416;
  }
  // 1st: nothing cached, both idle: index 0. 2nd: replica 0 would take 416 queued + 32 = 448
  // token-times, replica 1 416: it gives way, and now replica 1 holds the prefix too. 3rd: both
  // hold it; each has 416 queued, the tie goes to the lower index. 4th: replica 0 has 832.
  EXPECT_THAT(picks, ElementsAre(0, 1, 0, 1));
  EXPECT_THAT(reasons, ElementsAre(RoutingReason::kLoad, RoutingReason::kLoad,
                                   RoutingReason::kPrefixHit, RoutingReason::kPrefixHit));
}

TEST(GlobalScheduler, ALoadedPrefixHolderKeepsThePromptWhileItsQueueIsWithinTheHit) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(), Ready()};
  replicas[0].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 48; };
  const std::vector<int32_t> prompt = Prompt(1, 3, 0, 1);  // 49 tokens, 48 reusable on 0
  // Replica 0: queued + 1 against replica 1's 49: it keeps the prompt up to 48 queued (a tie
  // goes to the replica reusing more).
  replicas[0].queued_prefill_tokens = 48;
  EXPECT_EQ(*scheduler.Decide(prompt, replicas),
            (RoutingDecision{.replica = 0, .reason = RoutingReason::kPrefixHit}));
  replicas[0].queued_prefill_tokens = 49;
  EXPECT_EQ(*scheduler.Decide(prompt, replicas),
            (RoutingDecision{.replica = 1, .reason = RoutingReason::kLoad}));
  // When both are busy, the hit still decides: 49 + 1 against 49 + 49.
  replicas[1].queued_prefill_tokens = 49;
  EXPECT_EQ(*scheduler.Decide(prompt, replicas),
            (RoutingDecision{.replica = 0, .reason = RoutingReason::kPrefixHit}));
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 2);
  EXPECT_EQ(scheduler.stats().routed_by_load, 1);
}

TEST(GlobalScheduler, MeasuredStepCostsWeighTheQueues) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  // The default, nothing measured: 1/4096 s per token, no fixed cost.
  EXPECT_EQ(scheduler.MeasuredStepCost(0), (StepCost{.fixed_s = 0, .per_token_s = 1 / 4096.0}));
  scheduler.ObserveStep(1, 1000, 0, 1.0);
  scheduler.ObserveStep(1, 0, 0, 1.0);     // ignored: no tokens
  scheduler.ObserveStep(1, 1000, 0, 0);    // ignored: no time
  scheduler.ObserveStep(7, 1000, 0, 1.0);  // ignored: no such replica
  EXPECT_EQ(scheduler.MeasuredStepCost(1), (StepCost{.fixed_s = 0, .per_token_s = 1e-3}));
  EXPECT_EQ(scheduler.MeasuredStepCost(0), scheduler.MeasuredStepCost(1));  // the mean
  // Tokens and seconds average apart (weight 0.2): 0.8 * 1000 + 0.2 * 3000 tokens over
  // 0.8 * 1 + 0.2 * 1 seconds.
  scheduler.ObserveStep(1, 3000, 0, 1.0);
  EXPECT_DOUBLE_EQ(scheduler.MeasuredStepCost(1).per_token_s, 1 / 1400.0);
  scheduler.ObserveStep(0, 3990, 10, 1.0);  // prefill and decode tokens of one step
  EXPECT_DOUBLE_EQ(scheduler.MeasuredStepCost(0).per_token_s, 1 / 4000.0);
  // Same queue of 400 tokens, a 100-token prompt: 500 / 4000 s on replica 0 beats 500 / 1400 s.
  std::vector<ReplicaSnapshot> replicas = {Ready(), Ready()};
  replicas[0].queued_prefill_tokens = 400;
  replicas[1].queued_prefill_tokens = 400;
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 0, 0, 100), replicas), 0);
  // Past its worth: 1600 tokens at 4000/s (0.4 s) against 500 at 1400/s (0.36 s).
  replicas[0].queued_prefill_tokens = 1500;
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 0, 0, 100), replicas), 1);
}

// Decode-only steps measure the fixed cost: the line through (4 tokens, 0.104 s) and
// (1004 tokens, 1.104 s) is 0.1 s + 1 ms per token.
TEST(GlobalScheduler, DecodeStepsGiveTheFixedCostOfAStep) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 3);
  scheduler.ObserveStep(0, 0, 4, 0.104);
  // No prefill step yet: the cost per token is unknown, so the default holds.
  EXPECT_EQ(scheduler.MeasuredStepCost(0), (StepCost{.fixed_s = 0, .per_token_s = 1 / 4096.0}));
  scheduler.ObserveStep(0, 1000, 4, 1.104);
  StepCost cost = scheduler.MeasuredStepCost(0);
  EXPECT_NEAR(cost.fixed_s, 0.1, 1e-12);
  EXPECT_NEAR(cost.per_token_s, 1e-3, 1e-15);
  // Replica 1 measured nothing: the mean of the measured ones (replica 0 alone).
  EXPECT_EQ(scheduler.MeasuredStepCost(1), cost);
  // Steps too alike to tell a line apart (prefill < 2x decode tokens): prefill seconds per
  // token, no fixed cost.
  scheduler.ObserveStep(2, 0, 40, 0.14);
  scheduler.ObserveStep(2, 30, 40, 0.17);
  EXPECT_EQ(scheduler.MeasuredStepCost(2), (StepCost{.fixed_s = 0, .per_token_s = 0.17 / 70}));
  // Decode steps slower than the prefill line allows (a negative slope): the same fallback.
  scheduler.ObserveStep(2, 1000, 0, 0.01);
  for (int i = 0; i < 50; ++i) scheduler.ObserveStep(2, 2000, 0, 1.0);
  for (int i = 0; i < 50; ++i) scheduler.ObserveStep(2, 0, 40, 2.0);
  cost = scheduler.MeasuredStepCost(2);
  EXPECT_EQ(cost.fixed_s, 0);
  EXPECT_NEAR(cost.per_token_s, 1.0 / 2000, 1e-9);
  // The mean over replicas 0 and 2 for replica 1.
  EXPECT_NEAR(scheduler.MeasuredStepCost(1).fixed_s, 0.05, 1e-9);
}

// A replica in the middle of a long prefill looks idle in its queue (a scheduled step's
// tokens count as computed): the steps in flight keep the next request away from it.
TEST(GlobalScheduler, StepsInFlightCountAsWorkAhead) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  scheduler.ObserveStep(0, 0, 2, 0.102);
  scheduler.ObserveStep(0, 1000, 2, 1.102);  // 0.1 s + 1 ms per token, for both replicas
  std::vector<ReplicaSnapshot> replicas = {Ready(), Ready()};
  SetRunning(replicas[0], 1);
  replicas[0].num_in_flight_steps = 1;
  replicas[0].num_in_flight_tokens = 416;
  // Replica 0: half of its 0.516 s step, then 0.1 + 0.101 s; replica 1: 0.2 s. (Each prompt is
  // new, so no routed prefix counts.)
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 0, 1, 100), replicas), 1);
  replicas[0].num_in_flight_steps = 0;
  replicas[0].num_in_flight_tokens = 0;
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 0, 2, 100), replicas), 1);  // 0.201 s against 0.2 s
  SetRunning(replicas[0], 0);
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 0, 3, 100), replicas), 0);  // a tie: the lower index
}

TEST(GlobalScheduler, PromptShorterThanABlockRoutesByLoad) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 3);
  std::vector<ReplicaSnapshot> replicas = {Ready(5), Ready(2), Ready(7)};
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 0, 0, 10), replicas), 1);
  SetRunning(replicas[1], 9);
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 0, 0, 10), replicas), 0);
  EXPECT_EQ(scheduler.stats().routed_by_load, 2);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 0);
}

TEST(GlobalScheduler, LastTokenIsNeverCountedAsReusable) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(1), Ready(0)};
  // Exactly one block, sent to replica 1 by load: it will cache that block.
  const std::vector<int32_t> one_block = Prompt(3, 1, 0, 0);
  ASSERT_EQ(*scheduler.Pick(one_block, replicas), 1);
  SetRunning(replicas[1], 2);
  // A longer prompt starting with it reuses the block there.
  EXPECT_EQ(*scheduler.Pick(Prompt(3, 1, 0, 1), replicas), 1);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 1);
  // The same one-block prompt would recompute its last token, so it has no reusable block.
  EXPECT_EQ(*scheduler.Pick(one_block, replicas), 0);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 1);
  EXPECT_EQ(scheduler.stats().routed_by_load, 2);
}

TEST(GlobalScheduler, ResetForgetsTheReplicasRoutedPrefixes) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kPrefixAware), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(0), Ready(1)};
  ASSERT_EQ(*scheduler.Pick(Prompt(2, 3, 0, 3), replicas), 0);
  SetRunning(replicas[0], 2);
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 3, 1, 3), replicas), 0);  // by prefix
  scheduler.Reset(0);
  EXPECT_EQ(scheduler.NumRoutedHashes(0), 0);
  EXPECT_EQ(*scheduler.Pick(Prompt(2, 3, 2, 3), replicas), 1);  // by load
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 1);
  EXPECT_EQ(scheduler.stats().routed_by_load, 2);
  scheduler.Reset(-1);  // ignored
  scheduler.Reset(2);
}

TEST(GlobalScheduler, RoutedHashesAreBoundedWithPrefixesEvictedLast) {
  GlobalSchedulerOptions options = Options(RoutingPolicy::kPrefixAware);
  options.max_routed_hashes_per_replica = 4;
  GlobalScheduler scheduler(options, 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(0), Ready(1)};
  ASSERT_EQ(*scheduler.Pick(Prompt(1, 3, 0, 1), replicas), 0);
  ASSERT_EQ(*scheduler.Pick(Prompt(2, 3, 0, 1), replicas), 0);  // no match: by load
  EXPECT_EQ(scheduler.NumRoutedHashes(0), 4);
  // Prompt 1's blocks 2 and 3 were evicted; its first block was touched last and stays.
  SetRunning(replicas[0], 3);
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 1, 1, 1), replicas), 0);
  EXPECT_EQ(scheduler.stats().routed_by_prefix, 1);
}

TEST(GlobalScheduler, NoRoutedMemoryWhenTheBoundIsZero) {
  GlobalSchedulerOptions options = Options(RoutingPolicy::kPrefixAware);
  options.max_routed_hashes_per_replica = 0;
  GlobalScheduler scheduler(options, 2);
  std::vector<ReplicaSnapshot> replicas = {Ready(0), Ready(0)};
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 3, 0, 1), replicas), 0);
  SetRunning(replicas[0], 1);
  EXPECT_EQ(*scheduler.Pick(Prompt(1, 3, 1, 1), replicas), 1);
  EXPECT_EQ(scheduler.NumRoutedHashes(0), 0);
}

TEST(GlobalScheduler, UnavailableWhenNoReplicaIsReady) {
  for (RoutingPolicy policy :
       {RoutingPolicy::kRoundRobin, RoutingPolicy::kLeastLoaded, RoutingPolicy::kPrefixAware}) {
    GlobalScheduler scheduler(Options(policy), 2);
    std::vector<ReplicaSnapshot> replicas(2);
    EXPECT_EQ(scheduler.Pick({1, 2}, replicas).status().code(), absl::StatusCode::kUnavailable)
        << RoutingPolicyName(policy);
    replicas[1] = Ready();
    absl::StatusOr<int32_t> picked = scheduler.Pick({1, 2}, replicas, {1});
    EXPECT_EQ(picked.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(picked.status().message(), HasSubstr("1 excluded"));
  }
  GlobalScheduler none(Options(RoutingPolicy::kLeastLoaded), 0);
  EXPECT_EQ(none.Pick({1}, {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(GlobalScheduler, ExcludeSkipsTheFailedReplica) {
  std::vector<ReplicaSnapshot> replicas = {Ready(4), Ready(1), Ready(2)};
  GlobalScheduler least(Options(RoutingPolicy::kLeastLoaded), 3);
  EXPECT_EQ(*least.Pick({1}, replicas, {1}), 2);
  EXPECT_EQ(*least.Pick({1}, replicas, {1, 2}), 0);

  GlobalScheduler round_robin(Options(RoutingPolicy::kRoundRobin), 3);
  EXPECT_EQ(*round_robin.Pick({1}, replicas, {0}), 1);
  EXPECT_EQ(*round_robin.Pick({1}, replicas, {2}), 0);

  GlobalScheduler prefix(Options(RoutingPolicy::kPrefixAware), 3);
  replicas[0].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 48; };
  replicas[2].cached_prefix_tokens = [](absl::Span<const int32_t>) { return 32; };
  const std::vector<int32_t> prompt = Prompt(1, 3, 0, 1);
  EXPECT_EQ(*prefix.Pick(prompt, replicas), 0);
  EXPECT_EQ(*prefix.Pick(prompt, replicas, {0}), 2);  // the next longest prefix
  EXPECT_EQ(*prefix.Decide(prompt, replicas, {0, 1}),
            (RoutingDecision{.replica = 2, .reason = RoutingReason::kOnlyChoice}));
}

TEST(GlobalScheduler, WrongNumberOfSnapshotsIsInvalidArgument) {
  GlobalScheduler scheduler(Options(RoutingPolicy::kLeastLoaded), 2);
  std::vector<ReplicaSnapshot> replicas = {Ready()};
  EXPECT_EQ(scheduler.Pick({1}, replicas).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GlobalScheduler, ConcurrentPicksAndResets) {
  constexpr int32_t kReplicas = 4;
  constexpr int kThreads = 8;
  constexpr int kPicksPerThread = 300;
  GlobalSchedulerOptions options = Options(RoutingPolicy::kPrefixAware);
  options.max_routed_hashes_per_replica = 64;  // small, so eviction runs concurrently too
  GlobalScheduler scheduler(options, kReplicas);
  std::vector<ReplicaSnapshot> replicas;
  for (int32_t r = 0; r < kReplicas; ++r) {
    replicas.push_back(Ready(r, 0, 0.1 * r));
    replicas.back().cached_prefix_tokens = [r](absl::Span<const int32_t> tokens) {
      return static_cast<int64_t>(tokens.size()) % (r + 2) * kBlockSize;  // a pure function
    };
  }
  std::atomic<int> bad_picks = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPicksPerThread; ++i) {
        const std::vector<int32_t> prompt = Prompt((t + i) % 5, 1 + i % 6, t * 1000 + i, i % 9);
        absl::StatusOr<int32_t> picked = scheduler.Pick(prompt, replicas, {(t + i) % kReplicas});
        if (!picked.ok() || *picked < 0 || *picked >= kReplicas || *picked == (t + i) % kReplicas) {
          ++bad_picks;
        }
        if (i % 50 == 0) scheduler.Reset((t + i) % kReplicas);
        scheduler.ObserveStep(t % kReplicas, i % 3 == 0 ? 0 : 100 + i, 4, 0.01 + 0.001 * (i % 3));
        scheduler.NumRoutedHashes(t % kReplicas);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad_picks.load(), 0);
  const GlobalScheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.routed_by_prefix + stats.routed_by_load + stats.routed_only_choice,
            kThreads * kPicksPerThread);
  for (int32_t r = 0; r < kReplicas; ++r) EXPECT_LE(scheduler.NumRoutedHashes(r), 64);
}

}  // namespace
}  // namespace pagoda
