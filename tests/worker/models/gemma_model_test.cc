// Gemma 2 and Gemma 3 end to end: tiny random models of odd sizes (written by
// tests/data/make_gemma_model_fixtures.py at test time: GQA 3 and 1, head_dim != hidden / heads, a
// sliding window of 4 under a 9-token prompt plus 6 decode steps, small soft-caps that bite,
// query_pre_attn_scalar != head_dim, Gemma 3's q/k norms, local RoPE base and linear scaling of
// the global layers) as Hugging Face directories and as GGUF files the way llama.cpp's converter
// writes them (norms stored as 1 + w) must give the greedy tokens and logits of the float64
// reference of transformers' forward, on one rank and on two tensor-parallel ranks; the GGUF
// metadata must give the config.json's hyper-parameters.
#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/file_util.h"
#include "common/kv_cache_groups.h"
#include "common/model_source.h"
#include "common/step/step.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_config.h"
#include "engine/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/serve_cluster.h"
#include "tests/testing/model_harness.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/worker_runtime.h"

namespace pagoda {
namespace {

using testing::Generation;
using testing::RunModel;
using testing::RunModelSharded;
using testing::RunRanks;

std::string FixtureDir() { return PAGODA_GEMMA_MODEL_FIXTURE_DIR; }

struct Expected {
  std::vector<int32_t> prompt;
  std::vector<int32_t> greedy;
  std::vector<std::vector<float>> logits;  // [steps][vocab]
  std::vector<bool> sliding_layers;
};

// The reference a model file shares with its twins: "gemma3" for gemma3_hf and gemma3.gguf.
std::string ReferenceName(const std::string& path) {
  return path.substr(0, path.find_first_of("_."));
}

Expected LoadExpected(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFileToString(FixtureDir() + "/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status() << " (run through ctest: gemma_model_fixtures writes it)";
  if (!text.ok()) return {};
  const nlohmann::json j = nlohmann::json::parse(*text);
  return {j["prompt"], j["greedy"], j["logits"], j["sliding_layers"]};
}

// The model files and the reference they share: NAME_hf/ and NAME.gguf (where GGUF can hold it).
struct Case {
  std::string reference;
  std::string path_suffix;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.reference << c.path_suffix; }

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.reference + info.param.path_suffix;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// fp32 activations and accumulation against the float64 reference; every greedy step has a
// top-two margin of at least 0.05, so the tokens must be exactly the reference's.
void ExpectReference(const Generation& gen, const Expected& expected, const std::string& what) {
  ASSERT_EQ(gen.tokens.size(), 1u) << what;
  EXPECT_EQ(gen.tokens[0], expected.greedy) << what;
  ASSERT_EQ(gen.logits[0].size(), expected.logits.size()) << what;
  float max_diff = 0;
  for (size_t step = 0; step < expected.logits.size(); ++step) {
    ASSERT_EQ(gen.logits[0][step].size(), expected.logits[step].size()) << what;
    for (size_t i = 0; i < expected.logits[step].size(); ++i) {
      const float want = expected.logits[step][i];
      const float got = gen.logits[0][step][i];
      max_diff = std::max(max_diff, std::abs(got - want));
      ASSERT_NEAR(got, want, 1e-4 + 1e-4 * std::abs(want))
          << what << " step " << step << " token " << i;
    }
  }
  ::testing::Test::RecordProperty("max_abs_logit_diff", absl::StrCat(max_diff));
}

class GemmaModel : public ::testing::TestWithParam<Case> {
 protected:
  std::string Path() const {
    return FixtureDir() + "/" + GetParam().reference + GetParam().path_suffix;
  }
};

TEST_P(GemmaModel, GreedyTokensAndLogitsEqualTheFloat64Reference) {
  const Expected expected = LoadExpected(GetParam().reference);
  ASSERT_FALSE(expected.greedy.empty());
  const int64_t steps = static_cast<int64_t>(expected.greedy.size());
  ExpectReference(RunModel(Path(), {expected.prompt}, steps), expected, Path());
}

// Tensor parallel size 2: Gemma 2's 6 query heads over 2 KV heads give each rank 3 + 1, Gemma 3's
// 4 + 4 give 2 + 2; the (1 + w) norm weights whole on each. The ranks' partial sums only reorder
// fp32 additions: the same tolerance.
TEST_P(GemmaModel, TwoTensorParallelRanksGiveTheFloat64Reference) {
  const Expected expected = LoadExpected(GetParam().reference);
  ASSERT_FALSE(expected.greedy.empty());
  const int64_t steps = static_cast<int64_t>(expected.greedy.size());
  ExpectReference(RunModelSharded(Path(), {expected.prompt}, steps, 2), expected, Path());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GemmaModel,
                         ::testing::Values(Case{"gemma2", "_hf"}, Case{"gemma2", ".gguf"},
                                           Case{"gemma2_scalar", "_hf"}, Case{"gemma3", "_hf"},
                                           Case{"gemma3", ".gguf"}),
                         CaseName);

// The window across steps, blocks and a batch: the prompt prefilled in chunks of 3, 4 and 2
// tokens (the window of 4 reaches back into earlier chunks) in 4-token cache blocks, beside
// another sequence's prefill and decodes in the same steps, then decoded on the reference's
// greedy tokens: every logit row the reference's.
TEST(GemmaSchedule, ChunkedPrefillInABatchGivesTheReference) {
  constexpr int64_t kBlockSize = 4;
  for (const std::string path : {"gemma2_hf", "gemma3.gguf"}) {
    SCOPED_TRACE(path);
    const Expected expected = LoadExpected(ReferenceName(path));
    ASSERT_FALSE(expected.greedy.empty());
    absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/" + path);
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model);
    ASSERT_TRUE(weights.ok()) << weights.status();
    absl::StatusOr<std::unique_ptr<ModelRunner>> runner = ModelRunner::Create(
        model->config(), std::move(*weights), {.num_blocks = 32, .block_size = kBlockSize});
    ASSERT_TRUE(runner.ok()) << runner.status();
    std::vector<int32_t> mine = expected.prompt;
    mine.insert(mine.end(), expected.greedy.begin(), expected.greedy.end());
    std::vector<int32_t> other = {5, 6, 7, 8, 9, 10, 11};
    const std::vector<int32_t> mine_blocks = {0, 1, 2, 3, 4}, other_blocks = {10, 11, 12, 13};
    std::vector<std::vector<float>> got;  // my logit rows from the prompt's last token on
    int64_t done = 0, other_done = 0;
    const int64_t prompt = static_cast<int64_t>(expected.prompt.size());
    for (const int64_t chunk : {int64_t{3}, int64_t{4}, int64_t{2}, int64_t{1}, int64_t{1},
                                int64_t{1}, int64_t{1}, int64_t{1}}) {
      const int64_t other_len = other_done == 0 ? static_cast<int64_t>(other.size()) : 1;
      const std::vector<SequenceInput> batch = {
          {.token_ids = absl::MakeConstSpan(other).subspan(other_done, other_len),
           .num_computed_tokens = other_done,
           .block_table = other_blocks},
          {.token_ids = absl::MakeConstSpan(mine).subspan(done, chunk),
           .num_computed_tokens = done,
           .block_table = mine_blocks}};
      absl::StatusOr<StepLogits*> logits = (*runner)->Execute(batch);
      ASSERT_TRUE(logits.ok()) << logits.status();
      ASSERT_EQ((*logits)->num_rows, 2);
      const float* other_row = (*logits)->row(0);
      other_done += other_len;
      other.push_back(static_cast<int32_t>(
          std::max_element(other_row, other_row + (*logits)->vocab_size) - other_row));
      done += chunk;
      if (done >= prompt)
        got.emplace_back((*logits)->row(1), (*logits)->row(1) + (*logits)->vocab_size);
    }
    ASSERT_EQ(got.size(), expected.logits.size());
    for (size_t step = 0; step < got.size(); ++step) {
      for (size_t i = 0; i < got[step].size(); ++i) {
        const float want = expected.logits[step][i];
        ASSERT_NEAR(got[step][i], want, 1e-4 + 1e-4 * std::abs(want))
            << "step " << step << " token " << i;
      }
    }
  }
}

// KV cache groups (common/kv_cache_groups.h): the local and global layers keep separate block
// tables in one pool, and each step the local groups' entries wholly before the window of the
// step's first query read kFreedBlockId, as the engine frees them. The prompt is prefilled in
// chunks beside another sequence, then decoded on the reference's tokens: every logit row is the
// reference's, though the local layers hold only the window's blocks, on one rank and on two.
TEST(GemmaSchedule, KvCacheGroupsWithLocalBlocksFreedGiveTheReference) {
  constexpr int64_t kBlockSize = 4;
  for (const std::string path : {"gemma2_hf", "gemma3.gguf"}) {
    SCOPED_TRACE(path);
    const Expected expected = LoadExpected(ReferenceName(path));
    ASSERT_FALSE(expected.greedy.empty());
    absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/" + path);
    ASSERT_TRUE(model.ok()) << model.status();
    const ModelConfig& config = model->config();
    const KvCacheGroups groups = KvCacheGroupsFor(config, /*with_draft=*/false);
    ASSERT_GT(groups.num_groups(), 1);
    // One rank, and two tensor-parallel ranks (each holding its KV heads of every group).
    for (const int32_t tp_size : {1, 2}) {
      SCOPED_TRACE(absl::StrCat("tensor parallel size ", tp_size));
      RunRanks(tp_size, [&](const TensorParallelShard& shard, Communicator* communicator) {
        absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model, shard);
        ASSERT_TRUE(weights.ok()) << weights.status();
        const int num_groups = groups.num_groups();
        absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
            ModelRunner::Create(config, std::move(*weights),
                                {.num_blocks = 16 * num_groups,
                                 .block_size = kBlockSize,
                                 .shard = shard,
                                 .communicator = communicator,
                                 .kv_groups = groups});
        ASSERT_TRUE(runner.ok()) << runner.status();
        EXPECT_EQ((*runner)->kv_cache().shape().num_layers, groups.num_slots);
        std::vector<int32_t> mine = expected.prompt;
        mine.insert(mine.end(), expected.greedy.begin(), expected.greedy.end());
        std::vector<int32_t> other = {5, 6, 7, 8, 9, 10, 11};
        // Group g of a sequence owns blocks [16 g + base, 16 g + base + 5): no two groups share
        // one.
        auto tables_of = [&](int32_t base) {
          std::vector<std::vector<int32_t>> tables(num_groups);
          for (int g = 0; g < num_groups; ++g) {
            for (int32_t i = 0; i < 5; ++i) tables[g].push_back(16 * g + base + i);
          }
          return tables;
        };
        std::vector<std::vector<int32_t>> mine_tables = tables_of(0), other_tables = tables_of(8);
        // What the engine does before a step that computes from `done`: frees the local entries.
        int64_t num_freed = 0;
        auto free_behind = [&](std::vector<std::vector<int32_t>>& tables, int64_t done) {
          for (int g = 0; g < num_groups; ++g) {
            if (groups.windows[g] == 0) continue;
            const int64_t end = std::max<int64_t>(0, done - groups.windows[g] + 1) / kBlockSize;
            for (int64_t b = 0; b < end; ++b) {
              if (tables[g][b] != kFreedBlockId) ++num_freed;
              tables[g][b] = kFreedBlockId;
            }
          }
        };
        auto input = [&](const std::vector<int32_t>& tokens, int64_t done, int64_t n,
                         const std::vector<std::vector<int32_t>>& tables) {
          SequenceInput in{.token_ids = absl::MakeConstSpan(tokens).subspan(done, n),
                           .num_computed_tokens = done,
                           .block_table = tables[0]};
          for (int g = 1; g < num_groups; ++g) in.more_block_tables.push_back(tables[g]);
          return in;
        };
        std::vector<std::vector<float>> got;
        int64_t done = 0, other_done = 0;
        const int64_t prompt = static_cast<int64_t>(expected.prompt.size());
        for (const int64_t chunk : {int64_t{3}, int64_t{4}, int64_t{2}, int64_t{1}, int64_t{1},
                                    int64_t{1}, int64_t{1}, int64_t{1}}) {
          const int64_t other_len = other_done == 0 ? static_cast<int64_t>(other.size()) : 1;
          free_behind(mine_tables, done);
          free_behind(other_tables, other_done);
          const std::vector<SequenceInput> batch = {
              input(other, other_done, other_len, other_tables),
              input(mine, done, chunk, mine_tables)};
          absl::StatusOr<StepLogits*> logits = (*runner)->Execute(batch);
          ASSERT_TRUE(logits.ok()) << logits.status();
          ASSERT_EQ((*logits)->num_rows, 2);
          const float* other_row = (*logits)->row(0);
          other_done += other_len;
          other.push_back(static_cast<int32_t>(
              std::max_element(other_row, other_row + (*logits)->vocab_size) - other_row));
          done += chunk;
          if (done >= prompt)
            got.emplace_back((*logits)->row(1), (*logits)->row(1) + (*logits)->vocab_size);
        }
        EXPECT_GT(num_freed, 0);
        ASSERT_EQ(got.size(), expected.logits.size());
        for (size_t step = 0; step < got.size(); ++step) {
          for (size_t i = 0; i < got[step].size(); ++i) {
            const float want = expected.logits[step][i];
            ASSERT_NEAR(got[step][i], want, 1e-4 + 1e-4 * std::abs(want))
                << "step " << step << " token " << i;
          }
        }
        // A batch without a table for every group is refused.
        SequenceInput short_of_tables = input(mine, 0, 1, mine_tables);
        short_of_tables.more_block_tables.pop_back();
        EXPECT_EQ((*runner)->Execute({short_of_tables}).status().code(),
                  absl::StatusCode::kInvalidArgument);
      });
    }
  }
}

// Through the engine: the Scheduler's KVCacheManager keeps a table per KV cache group and frees
// the local groups' blocks behind the window, an InProcessExecutor runs the plans (its StepRunner
// applies every group's tables and deltas). The greedy tokens are the float64 reference's, and at
// the last step the local groups hold only the blocks the window still sees while the global ones
// hold every block. A second request with the same prompt hits the prefix cache in every group.
TEST(GemmaEngine, KvCacheGroupsFreeLocalBlocksAndKeepTheReference) {
  constexpr int64_t kBlockSize = 4;
  for (const std::string path : {"gemma2_hf", "gemma3.gguf"}) {
    SCOPED_TRACE(path);
    const Expected expected = LoadExpected(ReferenceName(path));
    ASSERT_FALSE(expected.greedy.empty());
    absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/" + path);
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model);
    ASSERT_TRUE(weights.ok()) << weights.status();
    constexpr int64_t kNumBlocks = 64;
    absl::StatusOr<std::unique_ptr<InProcessExecutor>> executor =
        InProcessExecutor::Create(model->config(), std::move(*weights),
                                  {.num_device_blocks = kNumBlocks, .block_size = kBlockSize});
    ASSERT_TRUE(executor.ok()) << executor.status();
    const ExecutorInfo& info = (*executor)->info();
    ASSERT_GT(info.kv_group_windows.size(), 1u);
    EXPECT_EQ(info.sliding_window, 0);
    const EngineConfig config{
        .max_num_seqs = 4, .max_num_batched_tokens = 4, .enable_prefix_caching = true};
    ASSERT_TRUE(config.Validate(info).ok()) << config.Validate(info).message();
    Scheduler scheduler(config, info, {});
    const int32_t steps = static_cast<int32_t>(expected.greedy.size());
    for (const std::string id : {"a", "b"}) {
      EngineRequest request{.request_id = id, .prompt_token_ids = expected.prompt};
      request.params.temperature = 0;
      request.params.max_tokens = steps;
      request.params.ignore_eos = true;
      ASSERT_TRUE(scheduler.AddRequest(std::move(request)).ok());
      std::vector<int32_t> tokens;
      int64_t last_used = 0;
      for (int guard = 0; guard < 100 && scheduler.HasUnfinishedRequests(); ++guard) {
        std::optional<ScheduledStep> step = scheduler.Schedule();
        ASSERT_TRUE(step.has_value());
        ASSERT_TRUE(scheduler.kv_cache().CheckInvariants().ok());
        // (A last plan may only release the finished sequence.)
        if (!step->plan.new_sequences.empty() || !step->plan.cached_sequences.empty()) {
          last_used = kNumBlocks - scheduler.kv_cache().NumFreeBlocks();
        }
        absl::StatusOr<StepResult> result = (*executor)->Submit(std::move(step->plan)).get();
        ASSERT_TRUE(result.ok()) << result.status();
        for (const SequenceUpdate& u : scheduler.ApplyResult(*result)) {
          tokens.insert(tokens.end(), u.new_token_ids.begin(), u.new_token_ids.end());
        }
      }
      EXPECT_EQ(tokens, expected.greedy) << "request " << id;
      // The last step computed position p: a local group has freed the blocks wholly before
      // p - window + 1; request b shares a's cached prompt blocks, which a had given back.
      const int64_t p = static_cast<int64_t>(expected.prompt.size()) + steps - 2;
      const int64_t num_blocks = (p + 1 + kBlockSize - 1) / kBlockSize;
      int64_t held = 0;
      for (int64_t window : info.kv_group_windows) {
        held += num_blocks - (window == 0 ? 0 : std::max<int64_t>(0, p - window + 1) / kBlockSize);
      }
      EXPECT_LT(held, static_cast<int64_t>(info.kv_group_windows.size()) * num_blocks);
      EXPECT_EQ(last_used, held) << "request " << id;
    }
    EXPECT_GT(scheduler.kv_cache().prefix_cache_hits(), 0);
    EXPECT_EQ(scheduler.kv_cache().NumFreeBlocks(), kNumBlocks);
  }
}

// The GGUF metadata (as the converter writes it, read as llama.cpp reads it) gives the config
// of the Hugging Face twin: which layers slide (transformers' rule, recorded by the fixture
// script), the window, soft-caps, RoPE bases and scaling, the activation and the q/k norms.
// KV cache groups are the default wherever a KV cache is sized and built: a block holds K layers,
// so a budget holds num_layers / K times the blocks it would hold for every layer; a draft model
// turns the groups off (and adds its own layers).
TEST(GemmaKvBudget, ABlockOfGroupsHoldsKLayersAndTheWorkerReportsTheGroups) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/gemma3.gguf");
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& config = model->config();
  const KvCacheGroups groups = KvCacheGroupsFor(config, /*with_draft=*/false);
  ASSERT_GT(groups.num_groups(), 1);
  ASSERT_LT(groups.num_slots, config.num_hidden_layers);
  EXPECT_EQ(KvCacheGroupsFor(config, /*with_draft=*/true).num_groups(), 0);
  constexpr int64_t kBlockSize = 4;
  const int64_t layer_bytes = 2 * kBlockSize * config.num_key_value_heads * config.head_dim * 4;
  constexpr int64_t kBudget = int64_t{3} << 20;
  const int64_t blocks = InProcessExecutor::NumBlocksForBudget(config, kBlockSize, kBudget);
  EXPECT_EQ(blocks, kBudget / (layer_bytes * groups.num_slots));
  EXPECT_EQ(
      InProcessExecutor::NumBlocksForBudget(config, kBlockSize, kBudget, {}, DType::kF32, &config),
      kBudget / (layer_bytes * 2 * config.num_hidden_layers));

  // A served worker plans the same groups, sizes its cache for them and reports their windows.
  WorkerRuntime runtime({});
  absl::StatusOr<WorkerInitResult> init =
      runtime.Init({.generation = 1,
                    .model_dir = FixtureDir() + "/gemma3.gguf",
                    .block_size = static_cast<int32_t>(kBlockSize),
                    .kv_cache_memory_bytes = kBudget});
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(init->num_device_blocks, blocks);
  EXPECT_EQ(init->kv_group_windows, groups.windows);
  EXPECT_LE(init->kv_cache_bytes, kBudget);
  EXPECT_GT(init->kv_cache_bytes, kBudget - layer_bytes * groups.num_slots);
}

// Served: `pagoda serve` at TP 2 plans the groups in each worker, sends their windows to the
// router in the Init reply, and the plans carry every group's tables over the wire; the greedy
// tokens are the float64 reference's.
TEST(GemmaServed, KvCacheGroupsOverTwoRanksGiveTheReference) {
  const Expected expected = LoadExpected("gemma3");
  ASSERT_FALSE(expected.greedy.empty());
  auto cluster = testing::ServeCluster::Start({.replicas = 1,
                                               .tp = 2,
                                               .model_dir = FixtureDir() + "/gemma3.gguf",
                                               .extra_args = {"--block-size", "4"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int round = 0; round < 2; ++round) {  // the second one hits the prefix cache
    v1::GenerateRequest request;
    request.mutable_token_ids()->mutable_ids()->Add(expected.prompt.begin(), expected.prompt.end());
    request.mutable_sampling()->set_temperature(0);
    request.mutable_sampling()->set_max_tokens(static_cast<int32_t>(expected.greedy.size()));
    request.mutable_sampling()->set_ignore_eos(true);
    grpc::ClientContext context;
    v1::CompleteResponse response;
    const grpc::Status status = (*cluster)->stub().Complete(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << (*cluster)->LogTails();
    ASSERT_EQ(response.completions_size(), 1);
    const auto& ids = response.completions(0).token_ids();
    EXPECT_THAT(std::vector<int32_t>(ids.begin(), ids.end()),
                ::testing::ElementsAreArray(expected.greedy))
        << "round " << round;
  }
}

TEST(GemmaConfig, GgufMetadataGivesTheHuggingFaceConfig) {
  for (const std::string name : {"gemma2", "gemma3"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<ModelSource> gguf = ModelSource::Open(FixtureDir() + "/" + name + ".gguf");
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    absl::StatusOr<ModelSource> hf = ModelSource::Open(FixtureDir() + "/" + name + "_hf");
    ASSERT_TRUE(hf.ok()) << hf.status();
    const ModelConfig& g = gguf->config();
    const ModelConfig& h = hf->config();
    const Expected expected = LoadExpected(name);
    EXPECT_EQ(g.architecture, h.architecture);
    EXPECT_EQ(g.architecture, name == "gemma2" ? "Gemma2ForCausalLM" : "Gemma3ForCausalLM");
    EXPECT_EQ(g.sliding_window, 4);
    EXPECT_EQ(h.sliding_window, 4);
    EXPECT_EQ(g.sliding_layers, expected.sliding_layers);
    EXPECT_EQ(h.sliding_layers, expected.sliding_layers);
    EXPECT_EQ(g.hidden_act, MlpActivation::kGeluTanh);
    EXPECT_EQ(h.hidden_act, MlpActivation::kGeluTanh);
    EXPECT_EQ(g.qk_norm, name == "gemma3");
    EXPECT_EQ(h.qk_norm, name == "gemma3");
    EXPECT_TRUE(g.tie_word_embeddings && h.tie_word_embeddings);
    EXPECT_EQ(g.head_dim, h.head_dim);
    EXPECT_EQ(g.query_pre_attn_scalar, h.query_pre_attn_scalar);
    EXPECT_EQ(g.attn_logit_softcap, h.attn_logit_softcap);
    EXPECT_EQ(g.final_logit_softcap, h.final_logit_softcap);
    EXPECT_EQ(g.rope_theta, h.rope_theta);
    EXPECT_EQ(g.rope_local_theta > 0 ? g.rope_local_theta : g.rope_theta,
              h.rope_local_theta > 0 ? h.rope_local_theta : h.rope_theta);
    EXPECT_EQ(g.rope_linear_factor, h.rope_linear_factor);
    EXPECT_EQ(g.bos_token_id, 2);
    // The file's SentencePiece vocabulary: BOS added, no space prefix, <end_of_turn> stops.
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = gguf->LoadTokenizer();
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    // (With a space prefix "\n" would be "\u2581" "\n", both in the vocabulary.)
    EXPECT_THAT((*tokenizer)->Encode("\n", true),
                ::testing::ElementsAre(2, *(*tokenizer)->TokenToId("\n")));
    EXPECT_THAT(EosTokenIds(g.eos_token_ids, **tokenizer),
                ::testing::ElementsAre(1, *(*tokenizer)->TokenToId("<end_of_turn>")));
  }
}

// Metadata llama.cpp's converter would not write, refused naming the key.
TEST(GemmaConfig, MalformedGgufMetadataNamesTheKey) {
  const struct {
    std::string file;
    absl::StatusCode code;
    std::vector<std::string> parts;
  } cases[] = {
      {"gemma2_window_too_large",
       absl::StatusCode::kInvalidArgument,
       {"gemma2.attention.sliding_window", "(129)", "gemma2.context_length (128)"}},
      {"gemma2_bad_pattern",
       absl::StatusCode::kInvalidArgument,
       {"gemma2.attention.sliding_window_pattern", "4 booleans"}},
      {"gemma3_yarn", absl::StatusCode::kUnimplemented, {"gemma3.rope.scaling.type", "yarn"}},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/" + c.file + ".gguf");
    ASSERT_FALSE(model.ok()) << c.file;
    EXPECT_EQ(model.status().code(), c.code) << model.status();
    for (const std::string& part : c.parts) {
      EXPECT_THAT(std::string(model.status().message()), ::testing::HasSubstr(part)) << c.file;
    }
  }
}

}  // namespace
}  // namespace pagoda
