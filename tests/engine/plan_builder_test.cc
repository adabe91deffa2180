#include "engine/plan_builder.h"

#include <memory>
#include <string>
#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/sequence_registry.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

class PlanBuilderTest : public ::testing::Test {
 protected:
  Sequence* NewSeq(const std::string& id, std::vector<int32_t> tokens) {
    Request* req =
        registry_.AddRequest(EngineRequest{.request_id = id, .prompt_token_ids = tokens});
    return registry_.NewSequence(req, 0, std::move(tokens));
  }

  KVCacheManager kv_{{.num_device_blocks = 16, .block_size = 4}};
  SequenceRegistry registry_{SchedulingPolicy::kFcfs};
  PlanBuilder plan_{&kv_};
};

TEST_F(PlanBuilderTest, SendsANewSequenceWholeAndThenOnlyItsDelta) {
  Sequence* seq = NewSeq("a", {1, 2, 3, 4, 5, 6});
  plan_.Begin(0);
  ASSERT_TRUE(kv_.AllocateSlots(seq->handle, 6));
  seq->num_computed_tokens = 6;
  plan_.Add(seq, 0, 6, 1, /*is_decode=*/false);
  ScheduledStep first = plan_.Finish();
  ASSERT_EQ(first.plan.new_sequences.size(), 1u);
  EXPECT_EQ(first.plan.new_sequences[0].block_ids.size(), 2u);
  EXPECT_EQ(first.plan.new_sequences[0].num_scheduled_tokens, 6);
  EXPECT_EQ(first.num_prefill_tokens, 6);
  EXPECT_EQ(first.started_request_ids.size(), 0u);
  ASSERT_EQ(plan_.samples().size(), 1u);
  EXPECT_EQ(plan_.samples()[0], std::make_pair(seq, int64_t{1}));
  EXPECT_TRUE(seq->on_workers);
  EXPECT_EQ(seq->num_pending_tokens, 1);

  seq->token_ids.push_back(7);
  seq->num_pending_tokens = 0;
  plan_.Begin(1);
  ASSERT_TRUE(kv_.AllocateSlots(seq->handle, 3));  // a 3-step decode plan crosses a block
  plan_.set_num_steps(3);
  plan_.Add(seq, 6, 1, 3, /*is_decode=*/true);
  ScheduledStep second = plan_.Finish();
  EXPECT_TRUE(second.plan.new_sequences.empty());
  ASSERT_EQ(second.plan.cached_sequences.size(), 1u);
  EXPECT_EQ(second.plan.cached_sequences[0].new_block_ids.size(), 1u);
  EXPECT_EQ(second.plan.num_steps, 3);
  EXPECT_EQ(second.num_decode_tokens, 1);
  EXPECT_EQ(second.sequences[0].is_prefill, false);
}

TEST_F(PlanBuilderTest, APlanWithAPrefillRunsOneStep) {
  Sequence* decoding = NewSeq("a", {1, 2, 3});
  Sequence* prefilling = NewSeq("b", {4, 5});
  plan_.Begin(0);
  plan_.set_num_steps(4);
  ASSERT_TRUE(kv_.AllocateSlots(decoding->handle, 3));
  plan_.Add(decoding, 0, 1, 4, /*is_decode=*/true);
  ASSERT_TRUE(kv_.AllocateSlots(prefilling->handle, 2));
  plan_.Add(prefilling, 0, 2, 1, /*is_decode=*/false);
  EXPECT_EQ(plan_.num_seqs(), 2);
  EXPECT_EQ(plan_.Finish().plan.num_steps, 1);
}

TEST_F(PlanBuilderTest, DropsOnlySequencesTheWorkersHold) {
  Sequence* sent = NewSeq("a", {1, 2});
  Sequence* unsent = NewSeq("b", {3, 4});
  sent->on_workers = true;
  plan_.Begin(0);
  plan_.DropFromWorkers(sent);
  plan_.DropFromWorkers(unsent);
  plan_.RecordPreemption(*sent);
  EXPECT_TRUE(plan_.preempted_any());
  const ScheduledStep step = plan_.Finish();
  EXPECT_EQ(step.plan.finished_seq_ids, std::vector<std::string>{"a#0"});
  EXPECT_EQ(step.preempted_seq_ids, std::vector<std::string>{"a#0"});
  EXPECT_FALSE(sent->on_workers);
}

TEST_F(PlanBuilderTest, BeginStartsAFreshPlan) {
  Sequence* seq = NewSeq("a", {1, 2});
  plan_.Begin(0);
  ASSERT_TRUE(kv_.AllocateSlots(seq->handle, 2));
  plan_.Add(seq, 0, 2, 1, false);
  plan_.RecordStart(*seq->request);
  EXPECT_EQ(plan_.Finish().started_request_ids, std::vector<std::string>{"a"});
  plan_.Begin(1);
  EXPECT_EQ(plan_.num_seqs(), 0);
  EXPECT_TRUE(plan_.samples().empty());
  const ScheduledStep empty = plan_.Finish();
  EXPECT_EQ(empty.plan.step_id, 1);
  EXPECT_TRUE(empty.sequences.empty());
  EXPECT_TRUE(empty.started_request_ids.empty());
}

}  // namespace
}  // namespace pagoda
