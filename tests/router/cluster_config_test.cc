#include "router/cluster_config.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseReplicaFlags, SplitsEachReplicaIntoItsWorkersInRankOrder) {
  absl::StatusOr<std::vector<std::vector<std::string>>> replicas =
      ParseReplicaFlags({"10.0.0.1:50061,10.0.0.2:50061", "w-r1-0.pagoda:50061"});
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  EXPECT_THAT(*replicas, ElementsAre(ElementsAre("10.0.0.1:50061", "10.0.0.2:50061"),
                                     ElementsAre("w-r1-0.pagoda:50061")));
}

TEST(ParseReplicaFlags, ErrorsNameTheFlagAndTheValue) {
  const struct {
    std::vector<std::string> flags;
    std::string expected;
  } cases[] = {
      {{}, "--replica: at least one is needed"}, {{" , "}, "--replica: names no worker"},
      {{"host"}, "'host' is not host:port"},     {{"a:1,:80"}, "':80' is not host:port"},
      {{"a:"}, "'a:' is not host:port"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<std::vector<std::string>>> replicas = ParseReplicaFlags(c.flags);
    ASSERT_FALSE(replicas.ok()) << c.expected;
    EXPECT_EQ(replicas.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(replicas.status().message(), HasSubstr(c.expected));
  }
}

class MakeReplicaSetOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ServedModel> model =
        ServedModel::Load({.model_dir = testing::Stories260KDir(), .max_model_len = 256});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
  }

  ServedModel model_;
};

TEST_F(MakeReplicaSetOptionsTest, EveryReplicaGetsItsWorkersTheCacheSizingAndItsLabel) {
  ClusterConfig config{.replicas = {{"a:1", "b:2"}, {"c:3", "d:4"}},
                       .worker_model_dir = "/models/stories",
                       .load_format = "dummy",
                       .engine = {.max_num_seqs = 32, .enable_prefix_caching = true},
                       .cache = {.block_size = 32,
                                 .num_gpu_blocks_override = 100,
                                 .kv_cache_memory_bytes = 1 << 20,
                                 .swap_space_bytes = 1 << 21},
                       .max_queued_requests = 7,
                       .routing_policy = RoutingPolicy::kLeastLoaded,
                       .health_interval = absl::Milliseconds(200),
                       .init_timeout = absl::Seconds(30),
                       .step_timeout = absl::Seconds(3),
                       .failover_wait = absl::Seconds(9),
                       .admission_wait = absl::Seconds(4)};
  absl::StatusOr<ReplicaSetOptions> options = MakeReplicaSetOptions(config, model_, nullptr);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->scheduler.policy, RoutingPolicy::kLeastLoaded);
  EXPECT_EQ(options->scheduler.block_size, 32);  // routed hashes match the replicas' blocks
  EXPECT_EQ(options->failover_wait, absl::Seconds(9));
  EXPECT_EQ(options->admission_wait, absl::Seconds(4));
  ASSERT_EQ(options->replicas.size(), 2u);
  for (int32_t i = 0; i < 2; ++i) {
    const ReplicaOptions& replica = options->replicas[i];
    EXPECT_EQ(replica.index, i);
    EXPECT_EQ(replica.executor.worker_addresses, config.replicas[i]);
    EXPECT_EQ(replica.executor.init_timeout, absl::Seconds(30));
    EXPECT_EQ(replica.executor.step_timeout, absl::Seconds(3));
    EXPECT_EQ(replica.health_interval, absl::Milliseconds(200));
    EXPECT_EQ(replica.tokenizer, model_.tokenizer.get());
    EXPECT_EQ(replica.eos_token_ids, model_.eos_token_ids);
    // The engine: the flags' config, limited to the served context, with the queue bound.
    EXPECT_EQ(replica.engine.max_num_seqs, 32);
    EXPECT_TRUE(replica.engine.enable_prefix_caching);
    EXPECT_EQ(replica.engine.max_model_len, 256);
    EXPECT_EQ(replica.engine.max_waiting_requests, 7);
    // What every worker of the replica is told in Init.
    const internal::InitRequest& init = replica.executor.init;
    EXPECT_EQ(init.replica(), std::to_string(i));
    EXPECT_EQ(init.model_dir(), "/models/stories");
    EXPECT_EQ(init.load_format(), "dummy");
    EXPECT_EQ(init.block_size(), 32);
    EXPECT_EQ(init.num_device_blocks(), 100);
    EXPECT_EQ(init.kv_cache_memory_bytes(), 1 << 20);
    EXPECT_EQ(init.swap_space_bytes(), 1 << 21);
    EXPECT_EQ(init.max_model_len(), 256);
    // The engine's largest step: a CUDA worker profiles it before sizing its KV cache.
    EXPECT_EQ(init.max_num_batched_tokens(), config.engine.max_num_batched_tokens);
    EXPECT_EQ(init.max_num_seqs(), 32);
    EXPECT_THAT(init.extra_eos_token_ids(), ::testing::Contains(2));
  }
}

TEST_F(MakeReplicaSetOptionsTest, RejectsABlockSizeTheGlobalSchedulerCannotHash) {
  ClusterConfig config{.replicas = {{"a:1"}}, .cache = {.block_size = 0}};
  absl::StatusOr<ReplicaSetOptions> options = MakeReplicaSetOptions(config, model_, nullptr);
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MakeReplicaSetOptionsTest, RefusesATensorParallelSizeTheModelCannotBeSplitOver) {
  // stories260K: 8 heads, 4 KV heads, intermediate 172 -> TP 1, 2 or 4 (not 3, not 8).
  ClusterConfig config{.replicas = {{"a:1", "a:2"}, {"b:1", "b:2", "b:3"}}};
  absl::StatusOr<ReplicaSetOptions> options = MakeReplicaSetOptions(config, model_, nullptr);
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(options.status().message()),
              ::testing::AllOf(::testing::HasSubstr("--replica 1 has 3 workers"),
                               ::testing::HasSubstr("num_attention_heads (8)"),
                               ::testing::HasSubstr("sizes that work for this model: 1, 2, 4")));
}

TEST_F(MakeReplicaSetOptionsTest, ChecksAMixtureOfExpertsTheWayItsWorkersShardIt) {
  // 4 experts of width 6: TP 4 cannot slice the experts' 6 columns but can hold one expert each.
  ServedModel moe;
  moe.config = model_.config;
  moe.config.num_experts = 4;
  moe.config.num_experts_per_tok = 2;
  moe.config.moe_intermediate_size = 6;
  moe.config.num_attention_heads = 8;
  moe.config.num_key_value_heads = 4;
  moe.max_model_len = 256;
  ClusterConfig config{.replicas = {{"a:1", "a:2", "a:3", "a:4"}}};
  absl::StatusOr<ReplicaSetOptions> sliced = MakeReplicaSetOptions(config, moe, nullptr);
  EXPECT_EQ(sliced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sliced.status().message()), HasSubstr("moe_intermediate_size (6)"));
  config.expert_parallel = true;
  EXPECT_TRUE(MakeReplicaSetOptions(config, moe, nullptr).ok());
}

}  // namespace
}  // namespace pagoda
