// Two CUDA worker ranks in one process, GPU 0 and GPU 1, through the whole worker path: Init picks
// the nccl communicator (NCCL loaded at run time, worker/internal/nccl.h), rank 1 reads the unique
// id from rank 0's bootstrap store, both ranks generate stories260K's greedy golden in fp32, and a
// second Init (a peer restarted) forms a new group. Needs two CUDA devices and skips without.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "tests/testing/stories260k.h"
#include "worker/worker_runtime.h"

namespace pagoda {
namespace {

using ::testing::ElementsAreArray;
using testing::GoldenCase;

constexpr int32_t kBlockSize = 4;

// Rank r > 0's view of rank 0's store (in pagoda-worker, a gRPC client of its Worker service).
class ForwardingStore final : public RendezvousStore {
 public:
  explicit ForwardingStore(RendezvousStore* rank0) : rank0_(rank0) {}
  absl::Status Set(const std::string& key, const std::string& value) override {
    return rank0_->Set(key, value);
  }
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override {
    return rank0_->Get(key, timeout);
  }

 private:
  RendezvousStore* const rank0_;
};

WorkerInitConfig Config(uint64_t generation, int32_t rank) {
  return {.generation = generation,
          .replica = "replica-cuda",
          .model_dir = testing::Stories260KDir(),
          .tp_rank = rank,
          .tp_size = 2,
          .rank0_address = "in-process",
          .block_size = kBlockSize,
          .num_device_blocks = 256,
          .timeout_ms = 120000};
}

StepPlan Prefill(const GoldenCase& golden) {
  SamplingParams params;
  params.temperature = 0;
  params.ignore_eos = true;
  params.max_tokens = static_cast<int32_t>(golden.greedy_ids.size());
  const int64_t num_prompt = static_cast<int64_t>(golden.prompt_ids.size());
  const int64_t num_blocks = (num_prompt + params.max_tokens + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> blocks;
  for (int32_t b = 0; b < num_blocks; ++b) blocks.push_back(b);
  return {.step_id = 1,
          .new_sequences = {{.seq_id = "a",
                             .token_ids = golden.prompt_ids,
                             .num_prompt_tokens = num_prompt,
                             .num_scheduled_tokens = num_prompt,
                             .block_ids = blocks,
                             .sampling_params = params}}};
}

StepPlan DecodeRest(const GoldenCase& golden) {
  return {.step_id = 2,
          .cached_sequences = {{.seq_id = "a", .num_scheduled_tokens = 1}},
          .num_steps = static_cast<int32_t>(golden.greedy_ids.size()) - 1};
}

std::vector<int32_t> Tokens(const std::vector<AppliedStep>& steps) {
  std::vector<int32_t> tokens;
  for (const AppliedStep& step : steps) {
    for (const SequenceOutput& out : step.result.outputs) {
      tokens.insert(tokens.end(), out.token_ids.begin(), out.token_ids.end());
    }
  }
  return tokens;
}

TEST(WorkerRuntimeCuda, TwoRanksOverNcclGenerateTheGolden) {
  if (kernels::cuda::DeviceCount() < 2) {
    GTEST_SKIP() << "needs two CUDA devices, found " << kernels::cuda::DeviceCount();
  }
  const std::vector<GoldenCase> goldens = testing::LoadStories260KGoldens();
  ASSERT_FALSE(goldens.empty());
  const GoldenCase& golden = goldens.front();
  WorkerRuntime rank0({.device = Device::kCuda, .cuda_device = 0, .weight_dtype = DType::kF32});
  WorkerRuntime rank1({.device = Device::kCuda,
                       .cuda_device = 1,
                       .weight_dtype = DType::kF32,
                       .connect_store = [&rank0](const std::string& address, absl::Duration) {
                         EXPECT_EQ(address, "in-process");
                         return std::make_unique<ForwardingStore>(&rank0.bootstrap_store());
                       }});
  std::vector<WorkerRuntime*> ranks = {&rank0, &rank1};
  // Each rank runs the same calls at once, as the router fans them out.
  auto on_both = [&](auto call) {
    std::vector<std::thread> threads;
    for (int32_t rank = 0; rank < 2; ++rank) threads.emplace_back([&, rank] { call(rank); });
    for (std::thread& thread : threads) thread.join();
  };
  for (uint64_t generation : {1, 2}) {
    SCOPED_TRACE("generation " + std::to_string(generation));
    std::vector<absl::StatusOr<WorkerInitResult>> inits(2, absl::UnknownError("not run"));
    on_both([&](int32_t rank) { inits[rank] = ranks[rank]->Init(Config(generation, rank)); });
    for (const auto& init : inits) {
      ASSERT_TRUE(init.ok()) << init.status();
      EXPECT_EQ(init->communicator, "nccl");
    }
    std::vector<std::vector<AppliedStep>> steps(2);
    for (uint64_t sequence : {0, 1}) {
      const StepPlan plan = sequence == 0 ? Prefill(golden) : DecodeRest(golden);
      std::vector<absl::StatusOr<AppliedStep>> results(2, absl::UnknownError("not run"));
      on_both([&](int32_t rank) {
        results[rank] =
            ranks[rank]->Execute({.generation = generation, .sequence = sequence}, plan);
      });
      for (int32_t rank = 0; rank < 2; ++rank) {
        ASSERT_TRUE(results[rank].ok()) << results[rank].status();
        steps[rank].push_back(std::move(*results[rank]));
      }
    }
    EXPECT_THAT(Tokens(steps[0]), ElementsAreArray(golden.greedy_ids));
    EXPECT_THAT(Tokens(steps[1]), ElementsAreArray(golden.greedy_ids));
  }
}

}  // namespace
}  // namespace pagoda
