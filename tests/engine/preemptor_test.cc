#include "engine/preemptor.h"

#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/plan_builder.h"
#include "engine/sequence_registry.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

struct Parts {
  explicit Parts(int32_t num_host_blocks)
      : kv({.num_device_blocks = 8, .num_host_blocks = num_host_blocks, .block_size = 4}) {}

  // A running sequence with 6 computed tokens, known to the workers.
  Sequence* Running(const std::string& id) {
    Request* req = registry.AddRequest(EngineRequest{.request_id = id});
    Sequence* seq = registry.NewSequence(req, 0, {1, 2, 3, 4, 5, 6});
    EXPECT_TRUE(kv.AllocateSlots(seq->handle, 6));
    seq->num_computed_tokens = 6;
    seq->on_workers = true;
    registry.InsertRunning(seq);
    return seq;
  }

  KVCacheManager kv;
  SequenceRegistry registry{SchedulingPolicy::kFcfs};
  PlanBuilder plan{&kv};
};

TEST(Preemptor, RecomputeFreesTheBlocksAndRequeuesAsWaiting) {
  Parts p(/*num_host_blocks=*/0);
  Sequence* seq = p.Running("a");
  p.kv.TakeBlockCopies();  // the plan that allocated it was sent
  Preemptor preemptor(PreemptionMode::kRecompute, &p.registry, &p.kv);
  p.plan.Begin(1);
  preemptor.Preempt(seq, p.plan);
  EXPECT_EQ(seq->status, SequenceStatus::kWaiting);
  EXPECT_EQ(seq->num_computed_tokens, 0);
  EXPECT_FALSE(p.kv.Contains(seq->handle));
  EXPECT_EQ(p.kv.NumFreeBlocks(), 8);
  EXPECT_EQ(preemptor.num_preemptions(), 1);
  const ScheduledStep step = p.plan.Finish();
  EXPECT_EQ(step.preempted_seq_ids, std::vector<std::string>{"a#0"});
  EXPECT_EQ(step.plan.finished_seq_ids, std::vector<std::string>{"a#0"});
  EXPECT_TRUE(step.plan.swap_out.empty());
}

TEST(Preemptor, SwapMovesTheBlocksToTheHost) {
  Parts p(/*num_host_blocks=*/4);
  Sequence* seq = p.Running("a");
  p.kv.TakeBlockCopies();
  Preemptor preemptor(PreemptionMode::kSwap, &p.registry, &p.kv);
  p.plan.Begin(1);
  preemptor.Preempt(seq, p.plan);
  EXPECT_EQ(seq->status, SequenceStatus::kSwapped);
  EXPECT_EQ(p.registry.swapped(), std::vector<Sequence*>{seq});
  EXPECT_TRUE(p.kv.IsSwappedOut(seq->handle));
  EXPECT_EQ(p.plan.Finish().plan.swap_out.size(), 2u);
}

TEST(Preemptor, SwapFallsBackToRecomputeWithoutHostRoom) {
  Parts p(/*num_host_blocks=*/1);  // the sequence holds 2 blocks
  Sequence* seq = p.Running("a");
  p.kv.TakeBlockCopies();
  Preemptor preemptor(PreemptionMode::kSwap, &p.registry, &p.kv);
  p.plan.Begin(1);
  preemptor.Preempt(seq, p.plan);
  EXPECT_EQ(seq->status, SequenceStatus::kWaiting);
  EXPECT_TRUE(p.plan.Finish().plan.swap_out.empty());
}

}  // namespace
}  // namespace pagoda
