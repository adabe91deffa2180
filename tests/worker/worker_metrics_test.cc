// Checks WorkerMetrics (labels from Init, step observations, identity changes) and that the
// TimedCommunicator passes collectives through while counting their time.
#include "worker/worker_metrics.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(WorkerMetrics, ObservesNothingBeforeItsFirstInit) {
  WorkerMetrics metrics;
  metrics.ObserveStep(0.1, 10, 3, 5);
  metrics.AddCollectiveSeconds(1);
  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("rank=")));
}

TEST(WorkerMetrics, LabelsStepsWithReplicaAndRank) {
  WorkerMetrics metrics;
  metrics.SetIdentity("replica-1", 2);
  metrics.ObserveStep(0.003, 40, 7, 9);
  metrics.ObserveStep(0.2, 1, 8, 8);
  metrics.AddCollectiveSeconds(0.5);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE pagoda_worker:step_latency_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:step_latency_seconds_count{rank=\"2\","
                              "replica=\"replica-1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:step_latency_seconds_bucket{rank=\"2\","
                              "replica=\"replica-1\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:batch_tokens_bucket{rank=\"2\","
                              "replica=\"replica-1\",le=\"64\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:batch_tokens_sum{rank=\"2\","
                              "replica=\"replica-1\"} 41\n"));
  EXPECT_THAT(text,
              HasSubstr("pagoda_worker:kv_blocks_used{rank=\"2\",replica=\"replica-1\"} 8\n"));
  EXPECT_THAT(text,
              HasSubstr("pagoda_worker:kv_blocks_free{rank=\"2\",replica=\"replica-1\"} 8\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:all_reduce_seconds_total{rank=\"2\","
                              "replica=\"replica-1\"} 0.5\n"));
}

TEST(WorkerMetrics, ReportsWeightAndKvCacheBytesOfTheCurrentModel) {
  WorkerMetrics metrics;
  metrics.SetModelBytes(1, 2);  // no identity yet: nothing to label
  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("model_weight_bytes{")));
  metrics.SetIdentity("replica-0", 1);
  metrics.SetModelBytes(104857600, 25165824);
  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE pagoda_worker:model_weight_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:model_weight_bytes{rank=\"1\","
                              "replica=\"replica-0\"} 104857600\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:kv_cache_bytes{rank=\"1\","
                              "replica=\"replica-0\"} 25165824\n"));
  metrics.SetIdentity("replica-2", 0);
  text = metrics.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("model_weight_bytes{rank=\"1\"")));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:kv_cache_bytes{rank=\"0\","
                              "replica=\"replica-2\"} 0\n"));
}

TEST(WorkerMetrics, ReinitKeepsCountersAndDropsStaleGauges) {
  WorkerMetrics metrics;
  metrics.SetIdentity("replica-0", 0);
  metrics.ObserveStep(0.01, 4, 2, 6);
  metrics.SetIdentity("replica-0", 0);  // a new generation, same place
  metrics.ObserveStep(0.01, 4, 1, 7);
  std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("pagoda_worker:step_latency_seconds_count{rank=\"0\","
                              "replica=\"replica-0\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("pagoda_worker:kv_blocks_used{rank=\"0\",replica=\"replica-0\"} 1\n"));
  metrics.SetIdentity("replica-3", 1);  // the router re-purposed this worker
  text = metrics.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("pagoda_worker:kv_blocks_used{rank=\"0\"")));
  EXPECT_THAT(text,
              HasSubstr("pagoda_worker:kv_blocks_used{rank=\"1\",replica=\"replica-3\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("pagoda_worker:step_latency_seconds_count{rank=\"0\","
                              "replica=\"replica-0\"} 2\n"));
}

TEST(TimedCommunicator, PassesCollectivesThroughAndCountsTheirTime) {
  WorkerMetrics metrics;
  metrics.SetIdentity("replica-0", 0);
  TimedCommunicator comm(CreateSingleCommunicator(), &metrics);
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.backend(), "single");
  std::vector<float> data = {1, 2, 3};
  ASSERT_TRUE(comm.AllReduceSum(data.data(), 3).ok());
  EXPECT_EQ(data, (std::vector<float>{1, 2, 3}));
  std::vector<float> gathered(3);
  ASSERT_TRUE(comm.AllGather(data.data(), 3, gathered.data()).ok());
  EXPECT_EQ(gathered, data);
  EXPECT_THAT(
      metrics.Serialize(),
      HasSubstr("pagoda_worker:all_reduce_seconds_total{rank=\"0\",replica=\"replica-0\"}"));
  // Without metrics it is a plain pass-through.
  TimedCommunicator bare(CreateSingleCommunicator(), nullptr);
  EXPECT_TRUE(bare.AllReduceSum(data.data(), 3).ok());
}

}  // namespace
}  // namespace pagoda
