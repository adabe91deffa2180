#include "tests/testing/model_harness.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model_source.h"
#include "gtest/gtest.h"
#include "worker/gloo_communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda::testing {

Generation GreedyBatch(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts,
                       int64_t steps) {
  const int64_t n = static_cast<int64_t>(prompts.size());
  int64_t max_len = 0;
  for (const auto& p : prompts) max_len = std::max<int64_t>(max_len, p.size() + steps);
  const int64_t blocks_per_seq = (max_len + kHarnessBlockSize - 1) / kHarnessBlockSize;
  std::vector<std::vector<int32_t>> tables(n), seqs = prompts;
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t b = 0; b < blocks_per_seq; ++b) {
      tables[s].push_back(static_cast<int32_t>(s * blocks_per_seq + b));
    }
  }
  Generation out;
  out.tokens.resize(n);
  out.logits.resize(n);
  std::vector<int64_t> computed(n, 0);
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<SequenceInput> batch;
    for (int64_t s = 0; s < n; ++s) {
      batch.push_back({.token_ids = absl::MakeConstSpan(seqs[s]).subspan(computed[s]),
                       .num_computed_tokens = computed[s],
                       .block_table = tables[s]});
    }
    absl::StatusOr<StepLogits*> logits = runner.Execute(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return out;
    const int64_t vocab = (*logits)->vocab_size;
    for (int64_t s = 0; s < n; ++s) {
      const float* row = (*logits)->row(s);
      computed[s] = static_cast<int64_t>(seqs[s].size());
      const int32_t next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      out.logits[s].emplace_back(row, row + vocab);
      out.tokens[s].push_back(next);
      seqs[s].push_back(next);
    }
  }
  return out;
}

std::unique_ptr<ModelRunner> MakeRunner(const ModelConfig& config, ModelWeights weights,
                                        int64_t num_blocks, const TensorParallelShard& shard,
                                        Communicator* comm, int64_t max_positions) {
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(config, std::move(weights),
                          {.num_blocks = num_blocks,
                           .block_size = kHarnessBlockSize,
                           .max_positions = max_positions,
                           .shard = shard,
                           .communicator = comm});
  EXPECT_TRUE(runner.ok()) << runner.status();
  return runner.ok() ? std::move(*runner) : nullptr;
}

Generation RunModel(const std::string& path, const std::vector<std::vector<int32_t>>& prompts,
                    int64_t steps, int64_t max_positions) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(path);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (!weights.ok()) return {};
  std::unique_ptr<ModelRunner> runner =
      MakeRunner(model->config(), std::move(*weights), 256, {}, nullptr, max_positions);
  return runner == nullptr ? Generation{} : GreedyBatch(*runner, prompts, steps);
}

void RunRanks(int32_t size,
              const std::function<void(const TensorParallelShard&, Communicator*)>& body) {
  if (size == 1) {
    body({.rank = 0, .size = 1}, nullptr);
    return;
  }
  static std::atomic<int> next_group{0};
  const std::string prefix = absl::StrCat("model-harness-tp/", next_group++, "/");
  InMemoryRendezvousStore store;
  std::vector<std::thread> threads;
  for (int32_t rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(
          {.rank = rank, .size = size, .prefix = prefix, .timeout = absl::Seconds(120)}, &store);
      ASSERT_TRUE(comm.ok()) << comm.status();
      body({.rank = rank, .size = size}, comm->get());
    });
  }
  for (std::thread& t : threads) t.join();
}

Generation RunModelSharded(const std::string& path,
                           const std::vector<std::vector<int32_t>>& prompts, int64_t steps,
                           int32_t size, int64_t max_positions, bool expert_parallel) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(path);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  std::vector<Generation> per_rank(size);
  RunRanks(size, [&](TensorParallelShard shard, Communicator* comm) {
    shard.expert_parallel = expert_parallel;
    absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model, shard);
    ASSERT_TRUE(weights.ok()) << weights.status();
    std::unique_ptr<ModelRunner> runner =
        MakeRunner(model->config(), std::move(*weights), 256, shard, comm, max_positions);
    ASSERT_NE(runner, nullptr);
    per_rank[shard.rank] = GreedyBatch(*runner, prompts, steps);
  });
  for (int32_t rank = 1; rank < size; ++rank) {
    EXPECT_EQ(per_rank[rank].logits, per_rank[0].logits) << "rank " << rank << " differs";
  }
  return per_rank[0];
}

float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                 const std::vector<std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  float diff = 0;
  for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) {
    EXPECT_EQ(a[s].size(), b[s].size());
    for (size_t i = 0; i < std::min(a[s].size(), b[s].size()); ++i) {
      diff = std::max(diff, std::abs(a[s][i] - b[s][i]));
    }
  }
  return diff;
}

}  // namespace pagoda::testing
