// ModelRunner's CUDA graphs of decode batches (CaptureCudaGraphs) against the eager path — the
// path every step takes under --enforce-eager, which captures nothing — on the same weights:
// greedy decoding of batches of 1, 3, 8 and 17 sequences of different prompt lengths, a prefill
// step (eager on both) then decode steps (replayed on the graphed runner, whose metadata changes
// at every replay), on stories260K in fp32 and on a small Llama-shaped dummy model in bf16
// (weights and KV cache). The graphs are captured for 1, 2, 4, 8, 16 and 24 (DefaultCudaGraphSizes
// of 24):
//   - a batch whose size is a capture size (1, 8) runs the very kernels of the eager step with the
//     same arguments but one, so its logits are equal bit for bit: the block tables' row length
//     (max_blocks_per_seq), which the graphs fix at the model length's blocks and the eager step
//     takes from its batch. Paged attention's split-context decode cuts a context into
//     ceil(max_blocks_per_seq * block_size / 512) partitions; both models here serve at most 512
//     positions, so both paths take one partition (a longer model length would split the
//     graph's decode and not the eager one's: equal within rounding, not bit for bit);
//   - a padded batch (3 in the graph of 4, 17 in that of 24) runs GEMMs over more rows, which
//     cuBLAS may sum in another order: the same greedy tokens, logits within 1e-5 (fp32) or 1e-4
//     (bf16) relative, |graph - eager| <= tol * (1 + |eager|);
//   - a batch of 25, larger than any graph, runs eagerly: no replay, equal bit for bit.
// With two devices, 3 sequences at TP 2 (two ranks as threads over NCCL, the graphs capturing
// the all-reduces) on the fp32 dummy model, graphed against eager on each rank within 1e-5. Needs a
// CUDA device; skips without one (TP 2 without two). Besides: DeviceGraph alone (a capture on the
// legacy stream refused, a replay repeats the captured work, an allocation inside a capture is
// FailedPrecondition and leaves the stream usable) and the allocation marks the runner's
// recapture relies on. Not yet run on a GPU when written (no device was lent): see
// docs/performance.md.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/stream.h"
#include "kernels/elementwise.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/testing/model_harness.h"
#include "tests/testing/stories260k.h"
#include "worker/cuda_graph_plan.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/nccl_communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using kernels::testing::HasCudaDevice;
using testing::Generation;
using testing::GreedyBatch;
using ::testing::HasSubstr;
using testing::kHarnessBlockSize;

constexpr int64_t kSteps = 5;  // a prefill, then 4 decode steps

ModelConfig SmallLlama() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 301;
  c.hidden_size = 96;
  c.intermediate_size = 160;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 256;
  return c;
}

// n prompts of 2 to 30 tokens, different lengths side by side (never all of one token: the
// first step is a prefill, which runs eagerly).
std::vector<std::vector<int32_t>> Prompts(int64_t n, int64_t vocab) {
  std::vector<std::vector<int32_t>> prompts(n);
  for (int64_t s = 0; s < n; ++s) {
    const int64_t length = 2 + (s * 7) % 29;
    for (int64_t i = 0; i < length; ++i) {
      prompts[s].push_back(static_cast<int32_t>((s * 131 + i * 17 + 3) % vocab));
    }
  }
  return prompts;
}

int64_t BlocksFor(const std::vector<std::vector<int32_t>>& prompts) {
  int64_t max_len = 0;
  for (const auto& p : prompts) max_len = std::max<int64_t>(max_len, p.size() + kSteps);
  return static_cast<int64_t>(prompts.size()) *
         ((max_len + kHarnessBlockSize - 1) / kHarnessBlockSize);
}

std::unique_ptr<ModelRunner> MakeCudaRunner(const ModelConfig& config, const ModelWeights& weights,
                                            DType kv_dtype, int64_t num_blocks, bool graphs,
                                            const TensorParallelShard& shard = {},
                                            Communicator* comm = nullptr) {
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(config, weights,
                          {.num_blocks = num_blocks,
                           .block_size = kHarnessBlockSize,
                           .kv_cache_dtype = kv_dtype,
                           .shard = shard,
                           .communicator = comm,
                           .device = Device::kCuda});
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return nullptr;
  if (graphs) {
    const absl::Status status = (*runner)->CaptureCudaGraphs(DefaultCudaGraphSizes(24));
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ((*runner)->cuda_graph_sizes(), (std::vector<int64_t>{1, 2, 4, 8, 16, 24}));
  }
  return std::move(*runner);
}

// The graphed generation against the eager one: bit for bit when `exact`, else the same tokens
// and logits within `tolerance`.
void ExpectGraphMatchesEager(const Generation& graphed, const Generation& eager, bool exact,
                             float tolerance) {
  ASSERT_EQ(graphed.tokens, eager.tokens);
  ASSERT_EQ(graphed.logits.size(), eager.logits.size());
  for (size_t s = 0; s < eager.logits.size(); ++s) {
    ASSERT_EQ(graphed.logits[s].size(), eager.logits[s].size());
    for (size_t step = 0; step < eager.logits[s].size(); ++step) {
      SCOPED_TRACE(absl::StrCat("sequence ", s, " step ", step));
      if (exact) {
        kernels::testing::ExpectSameBits(graphed.logits[s][step], eager.logits[s][step]);
      } else {
        kernels::testing::ExpectClose(graphed.logits[s][step], eager.logits[s][step], tolerance);
      }
    }
  }
}

// Every batch size of the scenario on `config`/`weights`, graphed against eager.
void RunBatches(const ModelConfig& config, const ModelWeights& weights, DType kv_dtype,
                float tolerance) {
  for (const int64_t n : {1, 3, 8, 17, 25}) {
    SCOPED_TRACE(absl::StrCat(n, " sequences"));
    const std::vector<std::vector<int32_t>> prompts = Prompts(n, config.vocab_size);
    const int64_t blocks = BlocksFor(prompts);
    std::unique_ptr<ModelRunner> eager = MakeCudaRunner(config, weights, kv_dtype, blocks, false);
    std::unique_ptr<ModelRunner> graphed = MakeCudaRunner(config, weights, kv_dtype, blocks, true);
    ASSERT_NE(eager, nullptr);
    ASSERT_NE(graphed, nullptr);
    const Generation expected = GreedyBatch(*eager, prompts, kSteps);
    const Generation actual = GreedyBatch(*graphed, prompts, kSteps);
    EXPECT_EQ(eager->cuda_graph_replays(), 0);
    const bool fits = n <= 24;
    // Every decode step replays a graph; the prefill, and everything beyond 24, runs eagerly.
    EXPECT_EQ(graphed->cuda_graph_replays(), fits ? kSteps - 1 : 0);
    const bool exact = n == 1 || n == 8 || !fits;
    ExpectGraphMatchesEager(actual, expected, exact, tolerance);
  }
}

TEST(CudaGraphCuda, Stories260KFp32DecodeBatchesReplayTheEagerSteps) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const std::string& dir = testing::Stories260KDir();
  absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<ModelWeights> weights = LoadModelWeights(*config, dir, {}, {.dtype = DType::kF32});
  ASSERT_TRUE(weights.ok()) << weights.status();
  RunBatches(*config, *weights, DType::kF32, 1e-5f);
}

TEST(CudaGraphCuda, Bf16DecodeBatchesReplayTheEagerSteps) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const ModelConfig config = SmallLlama();
  const ModelWeights weights = DummyModelWeights(config, /*seed=*/5, {}, {.dtype = DType::kBF16});
  RunBatches(config, weights, DType::kBF16, 1e-4f);
}

// The KV cache replaced (as a worker does once it has sized it): the graphs are captured again
// over the new cache, and still replay the eager steps.
TEST(CudaGraphCuda, GraphsFollowAReallocatedKvCache) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const ModelConfig config = SmallLlama();
  const ModelWeights weights = DummyModelWeights(config, /*seed=*/5);
  const std::vector<std::vector<int32_t>> prompts = Prompts(8, config.vocab_size);
  std::unique_ptr<ModelRunner> eager =
      MakeCudaRunner(config, weights, DType::kF32, BlocksFor(prompts), false);
  std::unique_ptr<ModelRunner> graphed = MakeCudaRunner(config, weights, DType::kF32, 2, true);
  ASSERT_NE(eager, nullptr);
  ASSERT_NE(graphed, nullptr);
  ASSERT_TRUE(graphed->ReallocateKvCache(BlocksFor(prompts)).ok());
  EXPECT_EQ(graphed->cuda_graph_sizes().size(), 6u);
  ExpectGraphMatchesEager(GreedyBatch(*graphed, prompts, kSteps),
                          GreedyBatch(*eager, prompts, kSteps), true, 0.0f);
  EXPECT_EQ(graphed->cuda_graph_replays(), kSteps - 1);
}

// TP 2 over NCCL: each rank captures its own graphs, all-reduces included; graphed against
// eager at the same TP size, on both ranks.
TEST(CudaGraphCuda, TwoRanksOverNcclReplayTheEagerSteps) {
  if (kernels::cuda::DeviceCount() < 2) {
    GTEST_SKIP() << "needs two CUDA devices, found " << kernels::cuda::DeviceCount();
  }
  const ModelConfig config = SmallLlama();
  const std::vector<std::vector<int32_t>> prompts = Prompts(3, config.vocab_size);
  std::vector<Generation> results(4);  // [rank * 2 + graphed]
  InMemoryRendezvousStore store;
  std::vector<std::thread> ranks;
  for (int32_t rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      ASSERT_TRUE(kernels::cuda::SetDevice(rank).ok());
      absl::StatusOr<std::unique_ptr<Communicator>> comm =
          CreateNcclCommunicator({.rank = rank,
                                  .size = 2,
                                  .device = rank,
                                  .prefix = "graphs/",
                                  .timeout = absl::Seconds(120)},
                                 &store);
      ASSERT_TRUE(comm.ok()) << comm.status();
      const TensorParallelShard shard{.rank = rank, .size = 2};
      const ModelWeights weights = DummyModelWeights(config, /*seed=*/5, shard);
      for (const bool graphs : {false, true}) {
        std::unique_ptr<ModelRunner> runner = MakeCudaRunner(
            config, weights, DType::kF32, BlocksFor(prompts), graphs, shard, comm->get());
        ASSERT_NE(runner, nullptr);
        results[rank * 2 + graphs] = GreedyBatch(*runner, prompts, kSteps);
        EXPECT_EQ(runner->cuda_graph_replays(), graphs ? kSteps - 1 : 0);
      }
    });
  }
  for (std::thread& t : ranks) t.join();
  for (int rank = 0; rank < 2; ++rank) {
    SCOPED_TRACE(absl::StrCat("rank ", rank));
    ExpectGraphMatchesEager(results[rank * 2 + 1], results[rank * 2], false, 1e-5f);
  }
}

// kernels/cuda/graph.h on its own: a capture needs a stream of its own, replays what it captured,
// and refuses an allocation inside it without leaving the stream capturing.
TEST(DeviceGraph, CaptureNeedsAStreamOfItsOwn) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const absl::StatusOr<kernels::cuda::DeviceGraph> graph =
      kernels::cuda::DeviceGraph::Capture([] { return absl::OkStatus(); });
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kFailedPrecondition) << graph.status();
}

TEST(DeviceGraph, ReplaysWhatItCaptured) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  absl::StatusOr<kernels::cuda::Stream> stream = kernels::cuda::Stream::Create();
  ASSERT_TRUE(stream.ok()) << stream.status();
  const kernels::cuda::ScopedStream current(*stream);
  kernels::testing::DeviceArray<float> data(std::vector<float>{1.0f, -2.0f, 3.0f});
  const kernels::ScaleParams scale{
      .data = data.get(), .count = 3, .factor = 2.0f, .device = Device::kCuda};
  absl::StatusOr<kernels::cuda::DeviceGraph> graph =
      kernels::cuda::DeviceGraph::Capture([&] { return kernels::Scale(scale); });
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(data.Host(), (std::vector<float>{1.0f, -2.0f, 3.0f}));  // captured, not run
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(graph->Launch().ok());
  EXPECT_EQ(data.Host(), (std::vector<float>{8.0f, -16.0f, 24.0f}));
}

TEST(DeviceGraph, AnAllocationDuringACaptureIsAnErrorNotACrash) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  absl::StatusOr<kernels::cuda::Stream> stream = kernels::cuda::Stream::Create();
  ASSERT_TRUE(stream.ok()) << stream.status();
  const kernels::cuda::ScopedStream current(*stream);
  const absl::StatusOr<kernels::cuda::DeviceGraph> graph = kernels::cuda::DeviceGraph::Capture(
      [] { return kernels::cuda::AllocateZeroed(64).status(); });
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kFailedPrecondition) << graph.status();
  EXPECT_THAT(std::string(graph.status().message()), HasSubstr("during a CUDA graph capture"));
  EXPECT_FALSE(kernels::cuda::CapturingGraph());
  // The stream left capture mode: ordinary work runs on it.
  kernels::testing::DeviceArray<float> data(std::vector<float>{5.0f});
  EXPECT_EQ(data.Host(), std::vector<float>{5.0f});
}

// A mark answers for the capturable buffers that existed when it was taken, not for later ones
// nor for buffers allocated outside a ScopedCapturableWork.
TEST(AllocationMark, OnlyTheFreeOfAnOlderCapturableBufferCounts) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  absl::StatusOr<std::shared_ptr<void>> older, newer, elsewhere = kernels::cuda::AllocateZeroed(64);
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  {
    const kernels::cuda::ScopedCapturableWork capturable;
    older = kernels::cuda::AllocateZeroed(256);
  }
  ASSERT_TRUE(older.ok()) << older.status();
  kernels::cuda::AllocationMark mark = kernels::cuda::MarkAllocations();
  {
    const kernels::cuda::ScopedCapturableWork capturable;
    newer = kernels::cuda::AllocateZeroed(256);
  }
  ASSERT_TRUE(newer.ok()) << newer.status();
  newer->reset();
  elsewhere->reset();
  EXPECT_FALSE(kernels::cuda::FreedSince(mark));
  older->reset();
  EXPECT_TRUE(kernels::cuda::FreedSince(mark));
  EXPECT_TRUE(kernels::cuda::FreedSince(mark));  // stays true
}

}  // namespace
}  // namespace pagoda
