#include "engine/sequence_registry.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pagoda {
namespace {

EngineRequest MakeRequest(const std::string& id, int32_t priority = 0) {
  return EngineRequest{.request_id = id, .prompt_token_ids = {1, 2, 3}, .priority = priority};
}

std::vector<std::string> Ids(const std::deque<Sequence*>& seqs) {
  std::vector<std::string> ids;
  for (const Sequence* seq : seqs) ids.push_back(seq->seq_id);
  return ids;
}

TEST(SequenceRegistry, QueuesKeepArrivalOrderUnderFcfs) {
  SequenceRegistry registry(SchedulingPolicy::kFcfs);
  Request* late = nullptr;
  for (const char* id : {"a", "b", "c"}) {
    Request* req = registry.AddRequest(MakeRequest(id, /*priority=*/id[0] == 'c' ? -5 : 0));
    if (id[0] == 'b') late = req;
    registry.InsertWaiting(registry.NewSequence(req, 0, req->request.prompt_token_ids));
  }
  // Preempted and re-queued: it goes back to its arrival place, not to the tail.
  Sequence* b = registry.FindSequence("b#0");
  registry.RemoveFromQueue(b);
  registry.InsertWaiting(b);
  EXPECT_EQ(Ids(registry.waiting()), (std::vector<std::string>{"a#0", "b#0", "c#0"}));
  EXPECT_EQ(registry.FindRequest("b"), late);
  EXPECT_EQ(registry.num_unstarted_requests(), 3);
}

TEST(SequenceRegistry, PriorityPolicyServesLowerValuesFirst) {
  SequenceRegistry registry(SchedulingPolicy::kPriority);
  for (const auto& [id, priority] :
       std::vector<std::pair<std::string, int32_t>>{{"a", 1}, {"b", 0}, {"c", 1}, {"d", -2}}) {
    Request* req = registry.AddRequest(MakeRequest(id, priority));
    registry.InsertWaiting(registry.NewSequence(req, 0, req->request.prompt_token_ids));
  }
  EXPECT_EQ(Ids(registry.waiting()), (std::vector<std::string>{"d#0", "b#0", "a#0", "c#0"}));
}

TEST(SequenceRegistry, SamplesGetTheirOwnSeedsAndHandles) {
  SequenceRegistry registry(SchedulingPolicy::kFcfs);
  EngineRequest request = MakeRequest("r");
  request.seed = 42;
  Request* req = registry.AddRequest(std::move(request));
  Sequence* s0 = registry.NewSequence(req, 0, {1, 2, 3});
  Sequence* s1 = registry.NewSequence(req, 1, {1, 2, 3});
  EXPECT_EQ(s0->seed, 42u);  // sample 0 draws what a plain request draws
  EXPECT_NE(s1->seed, 42u);
  EXPECT_NE(s0->handle, s1->handle);
  EXPECT_EQ(s1->seq_id, "r#1");
  EXPECT_EQ(req->num_unfinished, 2);
}

TEST(SequenceRegistry, ARequestIsRetiredOnlyOnceReleasedAndNotInFlight) {
  SequenceRegistry registry(SchedulingPolicy::kFcfs);
  Request* req = registry.AddRequest(MakeRequest("r"));
  Sequence* seq = registry.NewSequence(req, 0, {1, 2, 3});
  registry.InsertRunning(seq);
  EXPECT_TRUE(registry.MarkStarted(req));
  EXPECT_FALSE(registry.MarkStarted(req));
  EXPECT_EQ(registry.num_unstarted_requests(), 0);

  registry.Finish(seq, FinishReason::kStop, 7);
  EXPECT_TRUE(registry.running().empty());
  EXPECT_EQ(seq->stop_token_id, 7);
  EXPECT_EQ(req->num_unfinished, 0);
  registry.Finish(seq, FinishReason::kAbort, std::nullopt);  // no-op once finished
  EXPECT_EQ(seq->finish_reason, FinishReason::kStop);

  req->num_in_flight_refs = 1;
  std::vector<Sequence*> finished = registry.TakeFinished();
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_TRUE(registry.TakeFinished().empty());
  registry.MaybeRetire(req);
  EXPECT_FALSE(registry.empty()) << "not released yet";
  seq->released = true;
  registry.MaybeRetire(req);
  EXPECT_FALSE(registry.empty()) << "an in-flight plan still names it";
  req->num_in_flight_refs = 0;
  registry.MaybeRetire(req);
  EXPECT_TRUE(registry.empty());
  EXPECT_EQ(registry.FindRequest("r"), nullptr);
  EXPECT_EQ(registry.FindSequence("r#0"), nullptr);
}

TEST(SequenceRegistry, RetiringAnOldRequestKeepsTheIdsANewerOneTook) {
  SequenceRegistry registry(SchedulingPolicy::kFcfs);
  Request* old_req = registry.AddRequest(MakeRequest("r"));
  Sequence* old_seq = registry.NewSequence(old_req, 0, {1});
  registry.Finish(old_seq, FinishReason::kAbort, std::nullopt);
  Request* new_req = registry.AddRequest(MakeRequest("r"));
  Sequence* new_seq = registry.NewSequence(new_req, 0, {1});
  registry.TakeFinished();
  old_seq->released = true;
  registry.MaybeRetire(old_req);
  EXPECT_EQ(registry.FindRequest("r"), new_req);
  EXPECT_EQ(registry.FindSequence("r#0"), new_seq);
  EXPECT_FALSE(registry.empty());
}

}  // namespace
}  // namespace pagoda
