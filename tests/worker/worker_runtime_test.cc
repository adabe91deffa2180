// Checks the WorkerRuntime without gRPC, on the real stories260K model: what Init builds and how
// it refuses a bad config, greedy generation through ordered plans against golden_greedy.jsonl,
// the router's plan order (a plan waits for the ones numbered before it, and fails the worker
// when one never arrives — driven by a FakeClock, not by sleeping), generations, failure and
// recovery by a new Init, Shutdown, and two tensor-parallel ranks meeting through rank 0's
// bootstrap store in this process (and refusing each other when they shard experts differently).
#include "worker/worker_runtime.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/stories260k.h"
#include "worker/worker_metrics.h"

namespace pagoda {
namespace {

using ::testing::ElementsAreArray;
using testing::FakeClock;
using testing::GoldenCase;
using ::testing::HasSubstr;
using testing::Stories260KDir;

constexpr int32_t kBlockSize = 4;

WorkerInitConfig Config(uint64_t generation, int32_t rank = 0, int32_t size = 1) {
  return {.generation = generation,
          .replica = "replica-0",
          .model_dir = Stories260KDir(),
          .tp_rank = rank,
          .tp_size = size,
          .rank0_address = size > 1 ? "in-process" : "",
          .block_size = kBlockSize,
          .num_device_blocks = 256};
}

// The golden prompt as a new sequence with blocks for every token it will hold.
StepPlan Prefill(const GoldenCase& golden, const std::string& id = "a") {
  SamplingParams params;
  params.temperature = 0;
  params.ignore_eos = true;
  params.max_tokens = static_cast<int32_t>(golden.greedy_ids.size());
  const int64_t num_prompt = static_cast<int64_t>(golden.prompt_ids.size());
  const int64_t num_blocks = (num_prompt + params.max_tokens + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> blocks;
  for (int32_t b = 0; b < num_blocks; ++b) blocks.push_back(b);
  return {.step_id = 1,
          .new_sequences = {{.seq_id = id,
                             .token_ids = golden.prompt_ids,
                             .num_prompt_tokens = num_prompt,
                             .num_scheduled_tokens = num_prompt,
                             .block_ids = blocks,
                             .sampling_params = params}}};
}

// Every remaining token of the golden continuation in one multi-step plan.
StepPlan DecodeRest(const GoldenCase& golden, const std::string& id = "a") {
  return {.step_id = 2,
          .cached_sequences = {{.seq_id = id, .num_scheduled_tokens = 1}},
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

// Rank 1's view of rank 0's bootstrap store, in this process.
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

class WorkerRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    goldens_ = new std::vector<GoldenCase>(testing::LoadStories260KGoldens());
    ASSERT_FALSE(goldens_->empty()) << "goldens in " << testing::Stories260KSourceDir();
  }
  static void TearDownTestSuite() { delete goldens_; }

  const GoldenCase& golden() const { return goldens_->front(); }

  FakeClock clock_;
  WorkerMetrics metrics_;
  WorkerRuntime runtime_{
      {.order_timeout = absl::Seconds(60), .metrics = &metrics_, .clock = &clock_}};

  static std::vector<GoldenCase>* goldens_;
};

std::vector<GoldenCase>* WorkerRuntimeTest::goldens_ = nullptr;

TEST_F(WorkerRuntimeTest, InitReportsTheModelAndTheCapacity) {
  EXPECT_EQ(runtime_.Health().state, WorkerState::kUninitialized);
  absl::StatusOr<WorkerInitResult> init = runtime_.Init(Config(7));
  ASSERT_TRUE(init.ok()) << init.status();
  const absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(Stories260KDir());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(init->num_device_blocks, 256);
  EXPECT_EQ(init->num_host_blocks, 0);
  EXPECT_EQ(init->block_size, kBlockSize);
  EXPECT_EQ(init->max_model_len, config->max_position_embeddings);
  EXPECT_EQ(init->vocab_size, config->vocab_size);
  EXPECT_GT(init->weight_bytes, 0);
  EXPECT_EQ(init->communicator, "single");
  const WorkerHealth health = runtime_.Health();
  EXPECT_EQ(health.state, WorkerState::kReady);
  EXPECT_EQ(WorkerStateName(health.state), "READY");
  EXPECT_EQ(health.generation, 7u);
  EXPECT_EQ(health.tp_size, 1);
  EXPECT_EQ(health.next_sequence, 0u);
}

TEST_F(WorkerRuntimeTest, BadInitNamesTheFieldAndFailsTheWorker) {
  WorkerInitConfig config = Config(1);
  config.tp_size = 0;
  absl::StatusOr<WorkerInitResult> init = runtime_.Init(config);
  EXPECT_EQ(init.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(init.status().message(), "worker rank 0: tp_size must be >= 1, got 0");
  EXPECT_EQ(runtime_.Health().state, WorkerState::kFailed);
  EXPECT_EQ(runtime_.Health().error, "worker rank 0: tp_size must be >= 1, got 0");

  config = Config(2);
  config.load_format = "gguf";
  EXPECT_THAT(std::string(runtime_.Init(config).status().message()),
              HasSubstr("load_format must be 'safetensors' or 'dummy', got 'gguf'"));
  config = Config(3);
  config.model_dir = "/nonexistent";
  EXPECT_THAT(std::string(runtime_.Init(config).status().message()),
              HasSubstr("cannot load the model config from /nonexistent"));
  config = Config(4);
  config.communicator = "nccl";  // this runtime's device is the CPU
  const absl::Status nccl = runtime_.Init(config).status();
  EXPECT_EQ(nccl.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nccl.message()),
              HasSubstr("communicator 'nccl' cannot serve a worker on the cpu"));
}

// --draft-model-dir: the draft's path on this host replaces the router's, only when the router
// names a draft (its weights then count in the rank's bytes).
TEST_F(WorkerRuntimeTest, ADraftModelPathOverrideReplacesTheRoutersOnly) {
  const absl::StatusOr<WorkerInitResult> plain = runtime_.Init(Config(1));
  ASSERT_TRUE(plain.ok()) << plain.status();

  WorkerInitConfig config = Config(2);
  config.draft_model_dir = "/nonexistent/draft";
  EXPECT_THAT(std::string(runtime_.Init(config).status().message()),
              HasSubstr("cannot open the draft model"));

  WorkerRuntime overridden({.draft_model_dir = Stories260KDir(), .clock = &clock_});
  const absl::StatusOr<WorkerInitResult> with_draft = overridden.Init(config);
  ASSERT_TRUE(with_draft.ok()) << with_draft.status();
  EXPECT_GT(with_draft->weight_bytes, plain->weight_bytes);  // the draft's weights too
  const absl::StatusOr<WorkerInitResult> without = overridden.Init(Config(3));
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(without->weight_bytes, plain->weight_bytes);  // no draft named: none loaded
}

TEST_F(WorkerRuntimeTest, OrderedPlansGenerateTheGoldenContinuation) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  const std::vector<StepPlan> plans = {Prefill(golden()), DecodeRest(golden())};
  std::vector<AppliedStep> steps;
  for (uint64_t sequence = 0; sequence < plans.size(); ++sequence) {
    absl::StatusOr<AppliedStep> step =
        runtime_.Execute({.generation = 1, .sequence = sequence}, plans[sequence]);
    ASSERT_TRUE(step.ok()) << step.status();
    // The step is timed on the runtime's clock, which this test does not move.
    EXPECT_EQ(step->step_seconds, 0.0);
    steps.push_back(std::move(*step));
  }
  EXPECT_THAT(Tokens(steps), ElementsAreArray(golden().greedy_ids));
  EXPECT_EQ(runtime_.Health().next_sequence, 2u);
  EXPECT_EQ(runtime_.Health().num_sequences, 1);
  EXPECT_THAT(metrics_.Serialize(), HasSubstr("pagoda_worker:step_latency_seconds_count{rank=\"0\","
                                              "replica=\"replica-0\"} 2\n"));
}

// --dtype and --kv-cache-dtype on the worker: bfloat16 weights and KV cache take half the bytes
// (norms stay fp32), Init and the metrics report them, and the golden continuation holds.
TEST_F(WorkerRuntimeTest, WeightAndKvCacheTypesAreReportedAndKeepTheGolden) {
  absl::StatusOr<WorkerInitResult> f32 = runtime_.Init(Config(1));
  ASSERT_TRUE(f32.ok()) << f32.status();
  WorkerMetrics metrics;
  WorkerRuntime bf16({.weight_dtype = DType::kBF16,
                      .kv_cache_dtype = DType::kBF16,
                      .metrics = &metrics,
                      .clock = &clock_});
  absl::StatusOr<WorkerInitResult> init = bf16.Init(Config(1));
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(init->kv_cache_bytes, f32->kv_cache_bytes / 2);
  EXPECT_LT(init->weight_bytes, f32->weight_bytes * 6 / 10);
  EXPECT_GT(init->weight_bytes, f32->weight_bytes / 2);
  // stories260K: 5 layers, 4 KV heads of 8, 256 blocks of 4 tokens, K and V.
  EXPECT_EQ(f32->kv_cache_bytes, 256 * 4 * 5 * 2 * 4 * 8 * 4);
  EXPECT_THAT(
      metrics.Serialize(),
      HasSubstr(absl::StrCat("pagoda_worker:kv_cache_bytes{rank=\"0\",replica=\"replica-0\"} ",
                             init->kv_cache_bytes, "\n")));
  EXPECT_THAT(metrics.Serialize(),
              HasSubstr(absl::StrCat("pagoda_worker:model_weight_bytes{rank=\"0\","
                                     "replica=\"replica-0\"} ",
                                     init->weight_bytes, "\n")));
  const std::vector<StepPlan> plans = {Prefill(golden()), DecodeRest(golden())};
  std::vector<AppliedStep> steps;
  for (uint64_t sequence = 0; sequence < plans.size(); ++sequence) {
    absl::StatusOr<AppliedStep> step =
        bf16.Execute({.generation = 1, .sequence = sequence}, plans[sequence]);
    ASSERT_TRUE(step.ok()) << step.status();
    steps.push_back(std::move(*step));
  }
  EXPECT_THAT(Tokens(steps), ElementsAreArray(golden().greedy_ids));
}

// The model Init names may be a GGUF file: its config, weights (kept quantized) and vocabulary.
TEST_F(WorkerRuntimeTest, InitLoadsAGgufFile) {
  WorkerInitConfig config = Config(3);
  config.model_dir = std::string(PAGODA_GGUF_MODEL_FIXTURE_DIR) + "/llama_q8_0.gguf";
  absl::StatusOr<WorkerInitResult> init = runtime_.Init(config);
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(init->vocab_size, 96);
  EXPECT_EQ(init->max_model_len, 128);
  // Q8_0 keeps 34 bytes per 32 weights (twice that with the copy packed for AVX-512, which
  // weight_bytes counts): well below the fp32 size of the 2 x 1.25 M weights.
  EXPECT_LT(init->weight_bytes, 4 * 1'300'000);
  config.generation = 4;
  config.load_format = "dummy";  // dummy weights of the GGUF's config work too
  EXPECT_TRUE(runtime_.Init(config).ok());
}

TEST_F(WorkerRuntimeTest, APlanWaitsForThePlansNumberedBeforeIt) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  absl::StatusOr<AppliedStep> decode = absl::UnknownError("not run");
  std::thread early(
      [&] { decode = runtime_.Execute({.generation = 1, .sequence = 1}, DecodeRest(golden())); });
  ASSERT_TRUE(clock_.BlockUntilWaits(1));  // plan 1 waits for its turn
  absl::StatusOr<AppliedStep> prefill =
      runtime_.Execute({.generation = 1, .sequence = 0}, Prefill(golden()));
  early.join();
  ASSERT_TRUE(prefill.ok()) << prefill.status();
  ASSERT_TRUE(decode.ok()) << decode.status();
  EXPECT_THAT(Tokens({*prefill, *decode}), ElementsAreArray(golden().greedy_ids));
}

TEST_F(WorkerRuntimeTest, APlanThatNeverArrivesFailsTheWorkerAfterTheOrderTimeout) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  absl::StatusOr<AppliedStep> decode = absl::UnknownError("not run");
  std::thread waiting(
      [&] { decode = runtime_.Execute({.generation = 1, .sequence = 1}, DecodeRest(golden())); });
  ASSERT_TRUE(clock_.BlockUntilWaits(1));
  clock_.Advance(absl::Seconds(60));
  waiting.join();
  EXPECT_EQ(decode.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(decode.status().message()),
              HasSubstr("plan 0 never arrived (waited 1m with plan 1 queued)"));
  EXPECT_EQ(runtime_.Health().state, WorkerState::kFailed);
  absl::StatusOr<AppliedStep> late =
      runtime_.Execute({.generation = 1, .sequence = 0}, Prefill(golden()));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.status().message()),
              HasSubstr("worker rank 0 is not ready for generation 1 (generation 1, FAILED: plan 0 "
                        "never arrived"));
}

TEST_F(WorkerRuntimeTest, RefusesPlansOfAnotherGenerationOrAlreadyApplied) {
  ASSERT_TRUE(runtime_.Init(Config(5)).ok());
  EXPECT_EQ(runtime_.Execute({.generation = 4, .sequence = 0}, Prefill(golden())).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(runtime_.Execute({.generation = 5, .sequence = 0}, Prefill(golden())).ok());
  absl::StatusOr<AppliedStep> again =
      runtime_.Execute({.generation = 5, .sequence = 0}, Prefill(golden(), "b"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(again.status().message(), "plan 0 was already applied");
  EXPECT_EQ(runtime_.Health().state, WorkerState::kReady);
}

TEST_F(WorkerRuntimeTest, AFailedStepFailsTheWorkerUntilTheNextInit) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  // A plan that could not be decoded still takes its turn, and fails it.
  absl::StatusOr<AppliedStep> step = runtime_.Execute(
      {.generation = 1, .sequence = 0, .step_id = 9}, absl::InvalidArgumentError("bad wire"));
  EXPECT_EQ(step.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(step.status().message(), "worker rank 0: bad wire");
  WorkerHealth health = runtime_.Health();
  EXPECT_EQ(health.state, WorkerState::kFailed);
  EXPECT_EQ(health.error, "step 9: bad wire");
  EXPECT_EQ(health.next_sequence, 1u);
  EXPECT_EQ(runtime_.Execute({.generation = 1, .sequence = 1}, Prefill(golden())).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(runtime_.Init(Config(2)).ok());
  health = runtime_.Health();
  EXPECT_EQ(health.state, WorkerState::kReady);
  EXPECT_EQ(health.error, "");
  EXPECT_EQ(health.next_sequence, 0u);
  // A plan the step runner refuses fails the worker too: the ranks no longer agree.
  step = runtime_.Execute({.generation = 2, .sequence = 0, .step_id = 3}, DecodeRest(golden()));
  EXPECT_EQ(step.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(step.status().message()), HasSubstr("cached sequence a is unknown"));
  EXPECT_EQ(runtime_.Health().state, WorkerState::kFailed);
}

TEST_F(WorkerRuntimeTest, ShutdownDropsTheModelAndEndsTheGeneration) {
  ASSERT_TRUE(runtime_.Init(Config(3)).ok());
  ASSERT_TRUE(runtime_.Execute({.generation = 3, .sequence = 0}, Prefill(golden())).ok());
  runtime_.Shutdown();
  const WorkerHealth health = runtime_.Health();
  EXPECT_EQ(health.state, WorkerState::kUninitialized);
  EXPECT_EQ(health.generation, 4u);
  EXPECT_EQ(health.num_sequences, 0);
  EXPECT_EQ(
      runtime_.Execute({.generation = 3, .sequence = 1}, DecodeRest(golden())).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(WorkerRuntimeTest, TwoRanksMeetThroughRankZerosStoreAndAgree) {
  WorkerRuntime rank0({});
  WorkerRuntime rank1({.connect_store = [&rank0](const std::string& address, absl::Duration) {
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
  std::vector<absl::StatusOr<WorkerInitResult>> inits(2, absl::UnknownError("not run"));
  on_both([&](int32_t rank) { inits[rank] = ranks[rank]->Init(Config(1, rank, 2)); });
  for (const auto& init : inits) {
    ASSERT_TRUE(init.ok()) << init.status();
    EXPECT_EQ(init->communicator, "gloo");
  }
  std::vector<std::vector<AppliedStep>> steps(2);
  for (uint64_t sequence : {0, 1}) {
    const StepPlan plan = sequence == 0 ? Prefill(golden()) : DecodeRest(golden());
    std::vector<absl::StatusOr<AppliedStep>> results(2, absl::UnknownError("not run"));
    on_both([&](int32_t rank) {
      results[rank] = ranks[rank]->Execute({.generation = 1, .sequence = sequence}, plan);
    });
    for (int32_t rank = 0; rank < 2; ++rank) {
      ASSERT_TRUE(results[rank].ok()) << results[rank].status();
      steps[rank].push_back(std::move(*results[rank]));
    }
  }
  EXPECT_THAT(Tokens(steps[0]), ElementsAreArray(golden().greedy_ids));
  EXPECT_THAT(Tokens(steps[1]), ElementsAreArray(golden().greedy_ids));

  // Re-initialised (a peer restarted): rank 0's store keeps only the live generation's keys.
  const size_t keys_of_one_generation = rank0.bootstrap_store().size();
  ASSERT_GT(keys_of_one_generation, 0u);
  for (uint64_t generation : {2, 3}) {
    on_both([&](int32_t rank) { inits[rank] = ranks[rank]->Init(Config(generation, rank, 2)); });
    for (const auto& init : inits) ASSERT_TRUE(init.ok()) << init.status();
    EXPECT_EQ(rank0.bootstrap_store().size(), keys_of_one_generation);
  }
}

TEST(InMemoryRendezvousStore, ForgetsOnlyTheOlderGenerationsOfItsReplica) {
  InMemoryRendezvousStore store;
  for (const char* key :
       {"0/g7/gloo/rank_0", "0/g8/gloo/rank_0", "0/g9/gloo/rank_1", "1/g2/x", "0/gx/x", "other"}) {
    ASSERT_TRUE(store.Set(key, "v").ok());
  }
  store.ForgetGenerationsBefore("0", 9);
  EXPECT_EQ(store.size(), 4u);  // 0/g9 (a newer one stays too), replica 1's, and the unparsed
  EXPECT_TRUE(store.Get("0/g9/gloo/rank_1", absl::ZeroDuration()).ok());
  EXPECT_TRUE(store.Get("1/g2/x", absl::ZeroDuration()).ok());
  EXPECT_FALSE(store.Get("0/g8/gloo/rank_0", absl::ZeroDuration()).ok());
}

// --enable-expert-parallel is a flag of each pagoda-worker: ranks started differently would sum
// mismatched shards of the experts, so their Init fails, naming the flag.
TEST_F(WorkerRuntimeTest, RanksThatShardTheExpertsDifferentlyAreRefused) {
  const std::string dir = ::testing::TempDir() + "/pagoda_ep_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json",
                                R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 96,
                                    "hidden_size": 64, "intermediate_size": 32,
                                    "num_hidden_layers": 2, "num_attention_heads": 4,
                                    "num_key_value_heads": 2, "num_local_experts": 4,
                                    "num_experts_per_tok": 2})")
                  .ok());
  for (const bool agree : {false, true}) {
    WorkerRuntime rank0({.expert_parallel = true});
    WorkerRuntime rank1(
        {.expert_parallel = agree, .connect_store = [&rank0](const std::string&, absl::Duration) {
           return std::make_unique<ForwardingStore>(&rank0.bootstrap_store());
         }});
    std::vector<WorkerRuntime*> ranks = {&rank0, &rank1};
    std::vector<absl::StatusOr<WorkerInitResult>> inits(2, absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    for (int32_t rank = 0; rank < 2; ++rank) {
      threads.emplace_back([&, rank] {
        WorkerInitConfig config = Config(1, rank, 2);
        config.model_dir = dir;
        config.load_format = "dummy";
        inits[rank] = ranks[rank]->Init(config);
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (int32_t rank = 0; rank < 2; ++rank) {
      if (agree) {
        EXPECT_TRUE(inits[rank].ok()) << inits[rank].status();
        continue;
      }
      EXPECT_EQ(inits[rank].status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(inits[rank].status().message()),
                  HasSubstr(rank == 0 ? "rank 1 was started without --enable-expert-parallel"
                                      : "rank 0 was started with --enable-expert-parallel"));
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pagoda
