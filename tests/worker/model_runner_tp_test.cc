// Tensor parallelism end to end on the CPU: ranks as threads joined by Gloo on 127.0.0.1. A model
// split over 2 or 4 ranks must compute what the unsplit one computes (logits within float
// round-off, identical on every rank), generate the golden greedy tokens of stories260K, and load
// exactly its slices of the weights.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/formats/safetensors.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "common/step/executor.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/model_harness.h"
#include "tests/testing/stories260k.h"
#include "worker/communicator.h"
#include "worker/gloo_communicator.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/rendezvous_store.h"
#include "worker/step_runner.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

using testing::RunRanks;

using WeightsFactory = std::function<ModelWeights(const TensorParallelShard&)>;

std::unique_ptr<ModelRunner> MakeRunner(const ModelConfig& config, ModelWeights weights,
                                        const TensorParallelShard& shard, Communicator* comm,
                                        int64_t block_size, int64_t num_blocks) {
  auto runner = ModelRunner::Create(
      config, std::move(weights),
      {.num_blocks = num_blocks, .block_size = block_size, .shard = shard, .communicator = comm});
  EXPECT_TRUE(runner.ok()) << runner.status();
  return runner.ok() ? std::move(*runner) : nullptr;
}

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

// The logits of every step of a fixed schedule over three sequences (block size 4): A and C
// prefill, then A and C decode beside B's chunked prefill, then all three decode. Steps are
// flattened [num_rows, vocab] blocks.
std::vector<std::vector<float>> RunSchedule(ModelRunner& runner) {
  const int64_t vocab = runner.config().vocab_size;
  const std::vector<int32_t> a = RandomIds(14, vocab, 1), b = RandomIds(13, vocab, 2),
                             c = RandomIds(8, vocab, 3);
  const std::vector<int32_t> blocks_a = {7, 2, 30, 4}, blocks_b = {9, 1, 40, 3},
                             blocks_c = {11, 12};
  struct Part {
    const std::vector<int32_t>* ids;
    const std::vector<int32_t>* blocks;
    int64_t begin, count;
    bool sample;
  };
  const std::vector<std::vector<Part>> steps = {
      {{&a, &blocks_a, 0, 10, true}, {&c, &blocks_c, 0, 3, false}},
      {{&a, &blocks_a, 10, 1, true}, {&b, &blocks_b, 0, 6, false}, {&c, &blocks_c, 3, 1, true}},
      {{&b, &blocks_b, 6, 5, true}, {&a, &blocks_a, 11, 1, true}, {&c, &blocks_c, 4, 1, true}},
      {{&c, &blocks_c, 5, 1, true}, {&a, &blocks_a, 12, 1, true}, {&b, &blocks_b, 11, 1, true}},
  };
  std::vector<std::vector<float>> all_logits;
  for (const std::vector<Part>& parts : steps) {
    std::vector<SequenceInput> batch;
    for (const Part& p : parts) {
      batch.push_back({.token_ids = absl::MakeConstSpan(*p.ids).subspan(p.begin, p.count),
                       .num_computed_tokens = p.begin,
                       .block_table = *p.blocks,
                       .sample = p.sample});
    }
    absl::StatusOr<StepLogits*> logits = runner.Execute(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) break;
    EXPECT_EQ((*logits)->vocab_size, vocab);
    all_logits.emplace_back((*logits)->values.begin(),
                            (*logits)->values.begin() + (*logits)->num_rows * vocab);
  }
  return all_logits;
}

// Runs the schedule at `size` ranks; returns rank 0's logits after checking that every rank
// returned exactly the same.
std::vector<std::vector<float>> ScheduleLogits(const ModelConfig& config,
                                               const WeightsFactory& weights, int32_t size) {
  std::vector<std::vector<std::vector<float>>> per_rank(size);
  RunRanks(size, [&](const TensorParallelShard& shard, Communicator* comm) {
    std::unique_ptr<ModelRunner> runner =
        MakeRunner(config, weights(shard), shard, comm, /*block_size=*/4, /*num_blocks=*/64);
    ASSERT_NE(runner, nullptr);
    per_rank[shard.rank] = RunSchedule(*runner);
  });
  for (int32_t rank = 1; rank < size; ++rank) {
    EXPECT_EQ(per_rank[rank], per_rank[0]) << "rank " << rank << " of " << size << " differs";
  }
  return per_rank[0];
}

// Largest |a - b| over all steps (EXPECTs the same shapes).
float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                 const std::vector<std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  float diff = 0;
  for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) {
    EXPECT_EQ(a[s].size(), b[s].size()) << "step " << s;
    for (size_t i = 0; i < std::min(a[s].size(), b[s].size()); ++i) {
      diff = std::max(diff, std::abs(a[s][i] - b[s][i]));
    }
  }
  return diff;
}

void ExpectSameLogitsAtEverySize(const std::string& model, const ModelConfig& config,
                                 const WeightsFactory& weights) {
  const std::vector<std::vector<float>> reference = ScheduleLogits(config, weights, 1);
  ASSERT_EQ(reference.size(), 4u);
  for (int32_t size : {2, 4}) {
    const float diff = MaxAbsDiff(reference, ScheduleLogits(config, weights, size));
    ::testing::Test::RecordProperty(absl::StrCat(model, "_max_abs_logit_diff_tp", size),
                                    absl::StrCat(diff));
    EXPECT_LE(diff, 1e-4f) << model << " at TP " << size;
  }
}

// A GQA model whose 2 KV heads are fewer than 4 ranks, with q/k/v and o biases, an untied LM head
// and a vocabulary (97) that 2 and 4 do not divide.
ModelConfig GqaConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = false;
  c.attention_bias = true;
  c.o_proj_bias = true;
  return c;
}

// The values of a typed weight, dequantized.
std::vector<float> F(const Tensor& t) { return TensorToFloats(t); }
std::vector<float> F(const LinearWeight& w) { return w.ToFloats(); }

// An fp32 vector tensor (empty for no values) and an fp32 [rows, cols] matrix.
Tensor Vector(const std::vector<float>& v) {
  return v.empty() ? Tensor() : Tensor::FromFloats({static_cast<int64_t>(v.size())}, v);
}
LinearWeight Matrix(const std::vector<float>& v, int64_t cols) {
  return LinearWeight::FromFloats(static_cast<int64_t>(v.size()) / cols, cols, v);
}

// The slice of `full` that `shard` should hold, cut independently of the loader.
ModelWeights Slice(const ModelConfig& c, const ModelWeights& full,
                   const TensorParallelShard& shard) {
  const ShardLayout l = ComputeShardLayout(c, shard).value();
  const int64_t hidden = c.hidden_size, hd = c.head_dim, q = c.q_size(), kv = c.kv_size();
  const int64_t inter = c.intermediate_size;
  // Rows [begin, begin + n) of a [*, width] matrix (a vector when width is 1).
  auto rows = [](const std::vector<float>& m, int64_t width, int64_t begin, int64_t n) {
    return std::vector<float>(m.begin() + begin * width, m.begin() + (begin + n) * width);
  };
  auto cols = [](const std::vector<float>& m, int64_t width, int64_t begin, int64_t n) {
    std::vector<float> out;
    for (int64_t r = 0; r < static_cast<int64_t>(m.size()) / width; ++r) {
      out.insert(out.end(), m.begin() + r * width + begin, m.begin() + r * width + begin + n);
    }
    return out;
  };
  auto append = [](std::vector<float>& to, const std::vector<float>& from) {
    to.insert(to.end(), from.begin(), from.end());
  };
  ModelWeights s;
  s.embed_tokens = full.embed_tokens;
  s.norm = full.norm;
  for (const LayerWeights& f : full.layers) {
    LayerWeights& w = s.layers.emplace_back();
    w.input_layernorm = f.input_layernorm;
    w.post_attention_layernorm = f.post_attention_layernorm;
    for (int64_t width : {hidden, int64_t{1}}) {
      const std::vector<float> src = width == 1 ? F(f.qkv_bias) : F(f.qkv_proj);
      if (src.empty()) continue;
      std::vector<float> dst;
      append(dst, rows(src, width, l.head_begin * hd, l.q_size()));
      append(dst, rows(src, width, q + l.kv_head_begin * hd, l.kv_size()));
      append(dst, rows(src, width, q + kv + l.kv_head_begin * hd, l.kv_size()));
      if (width == 1) {
        w.qkv_bias = Vector(dst);
      } else {
        w.qkv_proj = Matrix(dst, hidden);
      }
    }
    w.o_proj = Matrix(cols(F(f.o_proj), q, l.head_begin * hd, l.q_size()), l.q_size());
    if (shard.rank == 0) w.o_bias = f.o_bias;
    const std::vector<float> gate_up = F(f.gate_up_proj);
    std::vector<float> local_gate_up =
        rows(gate_up, hidden, l.intermediate_begin, l.intermediate_size);
    append(local_gate_up, rows(gate_up, hidden, inter + l.intermediate_begin, l.intermediate_size));
    w.gate_up_proj = Matrix(local_gate_up, hidden);
    w.down_proj = Matrix(cols(F(f.down_proj), inter, l.intermediate_begin, l.intermediate_size),
                         l.intermediate_size);
  }
  if (shard.size > 1 || !c.tie_word_embeddings) {
    std::vector<float> head =
        rows(F(full.lm_head_or_embedding()), hidden, l.vocab_begin, l.vocab_valid_rows);
    head.resize(l.vocab_rows * hidden, 0.0f);  // padding rows
    s.lm_head = Tensor::FromFloats({l.vocab_rows, hidden}, head);
  }
  return s;
}

void ExpectSameWeights(const ModelWeights& actual, const ModelWeights& expected,
                       const std::string& what) {
  EXPECT_EQ(F(actual.embed_tokens), F(expected.embed_tokens)) << what;
  EXPECT_EQ(F(actual.norm), F(expected.norm)) << what;
  EXPECT_EQ(F(actual.lm_head), F(expected.lm_head)) << what;
  ASSERT_EQ(actual.layers.size(), expected.layers.size()) << what;
  for (size_t i = 0; i < actual.layers.size(); ++i) {
    const LayerWeights& a = actual.layers[i];
    const LayerWeights& e = expected.layers[i];
    EXPECT_EQ(F(a.input_layernorm), F(e.input_layernorm)) << what << " layer " << i;
    EXPECT_EQ(F(a.qkv_proj), F(e.qkv_proj)) << what << " layer " << i;
    EXPECT_EQ(F(a.qkv_bias), F(e.qkv_bias)) << what << " layer " << i;
    EXPECT_EQ(F(a.o_proj), F(e.o_proj)) << what << " layer " << i;
    EXPECT_EQ(F(a.o_bias), F(e.o_bias)) << what << " layer " << i;
    EXPECT_EQ(F(a.post_attention_layernorm), F(e.post_attention_layernorm))
        << what << " layer " << i;
    EXPECT_EQ(F(a.gate_up_proj), F(e.gate_up_proj)) << what << " layer " << i;
    EXPECT_EQ(F(a.down_proj), F(e.down_proj)) << what << " layer " << i;
  }
}

// Writes `weights` (unsharded) as a BF16 Hugging Face checkpoint of `config` in a new directory.
std::string WriteCheckpoint(const ModelConfig& config, const ModelWeights& weights) {
  const std::string dir = ::testing::TempDir() + "/pagoda_tp_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << config.ToJson();
  const int64_t hidden = config.hidden_size, q = config.q_size(), kv = config.kv_size();
  const int64_t inter = config.intermediate_size;
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> values;  // the fp32 values the tensors point into
  values.reserve(4 + 13 * config.num_hidden_layers);
  auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float> all,
                 int64_t offset) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    values.push_back(std::move(all));
    tensors.push_back({.name = std::move(name),
                       .dtype = SafetensorsDType::kBF16,
                       .shape = std::move(shape),
                       .values = std::span<const float>(values.back().data() + offset, n)});
  };
  add("model.embed_tokens.weight", {config.vocab_size, hidden}, F(weights.embed_tokens), 0);
  add("model.norm.weight", {hidden}, F(weights.norm), 0);
  add("lm_head.weight", {config.vocab_size, hidden}, F(weights.lm_head), 0);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const LayerWeights& w = weights.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {hidden}, F(w.input_layernorm), 0);
    add(p + "post_attention_layernorm.weight", {hidden}, F(w.post_attention_layernorm), 0);
    add(p + "self_attn.q_proj.weight", {q, hidden}, F(w.qkv_proj), 0);
    add(p + "self_attn.k_proj.weight", {kv, hidden}, F(w.qkv_proj), q * hidden);
    add(p + "self_attn.v_proj.weight", {kv, hidden}, F(w.qkv_proj), (q + kv) * hidden);
    add(p + "self_attn.q_proj.bias", {q}, F(w.qkv_bias), 0);
    add(p + "self_attn.k_proj.bias", {kv}, F(w.qkv_bias), q);
    add(p + "self_attn.v_proj.bias", {kv}, F(w.qkv_bias), q + kv);
    add(p + "self_attn.o_proj.weight", {hidden, q}, F(w.o_proj), 0);
    add(p + "self_attn.o_proj.bias", {hidden}, F(w.o_bias), 0);
    add(p + "mlp.gate_proj.weight", {inter, hidden}, F(w.gate_up_proj), 0);
    add(p + "mlp.up_proj.weight", {inter, hidden}, F(w.gate_up_proj), inter * hidden);
    add(p + "mlp.down_proj.weight", {hidden, inter}, F(w.down_proj), 0);
  }
  const absl::Status status = WriteSafetensors(dir + "/model.safetensors", tensors);
  EXPECT_TRUE(status.ok()) << status;
  return dir;
}

TEST(TensorParallelWeights, DummyShardIsTheSliceOfTheFullDummyWeights) {
  for (bool tied : {false, true}) {
    ModelConfig config = GqaConfig();
    config.tie_word_embeddings = tied;
    const ModelWeights full = DummyModelWeights(config, /*seed=*/5);
    ExpectSameWeights(DummyModelWeights(config, 5, {.rank = 0, .size = 1}), full, "TP 1");
    for (int32_t size : {2, 4}) {
      for (int32_t rank = 0; rank < size; ++rank) {
        const TensorParallelShard shard{.rank = rank, .size = size};
        ExpectSameWeights(DummyModelWeights(config, 5, shard), Slice(config, full, shard),
                          absl::StrCat(tied ? "tied" : "untied", " rank ", rank, " of ", size));
      }
    }
  }
}

TEST(TensorParallelWeights, ShardedLoadIsTheSliceOfTheFullLoad) {
  const ModelConfig written = GqaConfig();
  const std::string gqa_dir = WriteCheckpoint(written, DummyModelWeights(written, 9));
  for (const std::string& dir : {gqa_dir, testing::Stories260KDir()}) {
    absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<ModelWeights> full = LoadModelWeights(*config, dir);
    ASSERT_TRUE(full.ok()) << full.status();
    for (int32_t size : {2, 4}) {
      for (int32_t rank = 0; rank < size; ++rank) {
        const TensorParallelShard shard{.rank = rank, .size = size};
        absl::StatusOr<ModelWeights> sharded = LoadModelWeights(*config, dir, shard);
        ASSERT_TRUE(sharded.ok()) << sharded.status();
        ExpectSameWeights(*sharded, Slice(*config, *full, shard),
                          absl::StrCat(dir, " rank ", rank, " of ", size));
      }
    }
  }
  std::filesystem::remove_all(gqa_dir);
}

TEST(TensorParallelWeights, LoadRejectsAShardTheModelCannotBeSplitInto) {
  const absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(testing::Stories260KDir());
  ASSERT_TRUE(config.ok());
  const absl::Status status =
      LoadModelWeights(*config, testing::Stories260KDir(), {.rank = 0, .size = 3}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("num_attention_heads (8)"));
}

TEST(TensorParallelModelRunner, GqaModelWithFewerKvHeadsThanRanksMatchesTp1) {
  const ModelConfig config = GqaConfig();
  ExpectSameLogitsAtEverySize("gqa_dummy", config, [&](const TensorParallelShard& shard) {
    return DummyModelWeights(config, /*seed=*/3, shard);
  });
}

TEST(TensorParallelModelRunner, Stories260KMatchesTp1) {
  const absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(testing::Stories260KDir());
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectSameLogitsAtEverySize("stories260K", *config, [&](const TensorParallelShard& shard) {
    absl::StatusOr<ModelWeights> weights =
        LoadModelWeights(*config, testing::Stories260KDir(), shard);
    EXPECT_TRUE(weights.ok()) << weights.status();
    return weights.ok() ? std::move(*weights) : ModelWeights{};
  });
}

// One replica of `size` ranks in this process, driven as the router drives its workers: every plan
// goes to every rank's StepRunner (the ranks are threads joined by Gloo), and a step's result is
// rank 0's once every rank has sampled exactly the same tokens (an error naming the rank if not).
class TensorParallelExecutor final : public Executor {
 public:
  static absl::StatusOr<std::unique_ptr<TensorParallelExecutor>> Create(
      const ModelConfig& config, const std::string& dir, int32_t size, int64_t block_size,
      int64_t num_blocks, const std::vector<int32_t>& eos_token_ids) {
    std::unique_ptr<TensorParallelExecutor> executor(new TensorParallelExecutor(size));
    executor->info_ = {.num_device_blocks = num_blocks,
                       .block_size = block_size,
                       .max_model_len = config.max_position_embeddings,
                       .vocab_size = config.vocab_size};
    static std::atomic<int> next_group{0};
    const std::string prefix = absl::StrCat("tp-executor/", next_group++, "/");
    for (int32_t rank = 0; rank < size; ++rank) {
      executor->threads_.emplace_back([&, rank, e = executor.get()] {
        absl::Status status = e->BuildRank(config, dir, {.rank = rank, .size = size}, prefix,
                                           block_size, num_blocks, eos_token_ids);
        {
          absl::MutexLock lock(&e->mu_);
          e->results_[rank] = status.ok() ? absl::StatusOr<StepResult>(StepResult{}) : status;
          ++e->num_done_;
        }
        if (status.ok()) e->RankLoop(rank);
      });
    }
    absl::MutexLock lock(&executor->mu_);
    executor->mu_.Await(absl::Condition(executor.get(), &TensorParallelExecutor::AllDone));
    for (int32_t rank = 0; rank < size; ++rank) {
      if (!executor->results_[rank].ok()) return executor->results_[rank].status();
    }
    return executor;
  }

  ~TensorParallelExecutor() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }

  const ExecutorInfo& info() const override { return info_; }

  // Runs the plan on every rank before it returns.
  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override {
    std::promise<absl::StatusOr<StepResult>> promise;
    std::vector<absl::StatusOr<StepResult>> results;
    {
      absl::MutexLock lock(&mu_);
      plan_ = &plan;
      num_done_ = 0;
      ++num_plans_;
      mu_.Await(absl::Condition(this, &TensorParallelExecutor::AllDone));
      results = results_;
    }
    for (int32_t rank = 0; rank < size_; ++rank) {
      if (!results[rank].ok()) {
        promise.set_value(results[rank].status());
        return promise.get_future();
      }
    }
    for (int32_t rank = 1; rank < size_; ++rank) {
      const std::vector<SequenceOutput>& outputs = results[rank]->outputs;
      const std::vector<SequenceOutput>& expected = results[0]->outputs;
      bool same = outputs.size() == expected.size();
      for (size_t i = 0; same && i < outputs.size(); ++i) {
        same = outputs[i].seq_id == expected[i].seq_id &&
               outputs[i].token_ids == expected[i].token_ids;
      }
      if (!same) {
        promise.set_value(absl::InternalError(
            absl::StrCat("step ", plan.step_id, ": rank ", rank, " sampled other tokens")));
        return promise.get_future();
      }
    }
    promise.set_value(std::move(results[0]));
    return promise.get_future();
  }

 private:
  struct Rank {
    std::unique_ptr<Communicator> communicator;  // null for a group of one
    std::unique_ptr<StepRunner> steps;           // uses the communicator
  };

  explicit TensorParallelExecutor(int32_t size)
      : size_(size), ranks_(size), results_(size, absl::UnknownError("not run")) {}

  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_done_ == size_; }

  absl::Status BuildRank(const ModelConfig& config, const std::string& dir,
                         const TensorParallelShard& shard, const std::string& prefix,
                         int64_t block_size, int64_t num_blocks,
                         const std::vector<int32_t>& eos_token_ids) {
    Rank& rank = ranks_[shard.rank];
    if (shard.size > 1) {
      ASSIGN_OR_RETURN(rank.communicator, CreateGlooCommunicator({.rank = shard.rank,
                                                                  .size = shard.size,
                                                                  .prefix = prefix,
                                                                  .timeout = absl::Seconds(60)},
                                                                 &store_));
    }
    ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(config, dir, shard));
    ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                     ModelRunner::Create(config, std::move(weights),
                                         {.num_blocks = num_blocks,
                                          .block_size = block_size,
                                          .shard = shard,
                                          .communicator = rank.communicator.get()}));
    ASSIGN_OR_RETURN(rank.steps,
                     StepRunner::Create(std::move(runner), {.extra_eos_token_ids = eos_token_ids}));
    return absl::OkStatus();
  }

  // Applies every plan Submit() posts until the executor stops.
  void RankLoop(int32_t rank) {
    int64_t num_seen = 0;
    while (true) {
      const StepPlan* plan = nullptr;
      {
        absl::MutexLock lock(&mu_);
        auto posted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || num_plans_ > num_seen;
        };
        mu_.Await(absl::Condition(&posted));
        if (stopping_) return;
        num_seen = num_plans_;
        plan = plan_;
      }
      absl::StatusOr<StepResult> result = ranks_[rank].steps->Apply(*plan);
      absl::MutexLock lock(&mu_);
      results_[rank] = std::move(result);
      ++num_done_;
    }
  }

  const int32_t size_;
  ExecutorInfo info_;
  InMemoryRendezvousStore store_;
  std::vector<Rank> ranks_;  // ranks_[r] is touched only by threads_[r]

  absl::Mutex mu_;
  const StepPlan* plan_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t num_plans_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t num_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::StatusOr<StepResult>> results_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> threads_;  // last: they use everything above
};

TEST(TensorParallelModelRunner, Stories260KGreedyGenerationMatchesGoldenAtEverySize) {
  const std::string& dir = testing::Stories260KDir();
  const std::vector<testing::GoldenCase> goldens = testing::LoadStories260KGoldens();
  ASSERT_FALSE(goldens.empty());
  const absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<int32_t> eos = EosTokenIds(config->eos_token_ids, **tokenizer);
  std::vector<EngineRequest> requests;
  for (size_t i = 0; i < goldens.size(); ++i) {
    EngineRequest r{.request_id = absl::StrCat("g", i),
                    .prompt_token_ids = (*tokenizer)->Encode(goldens[i].prompt)};
    r.params.temperature = 0;
    r.params.max_tokens = static_cast<int32_t>(goldens[i].greedy_ids.size());
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  // One batch (static batching: whole prompts), and a 7-token budget (continuous batching) that
  // chunks every prompt beside the decodes.
  const EngineConfig one_batch{.scheduler = SchedulerKind::kStatic};
  const EngineConfig chunked{.max_num_seqs = 7, .max_num_batched_tokens = 7};
  for (int32_t size : {1, 2, 4}) {
    for (const EngineConfig& engine_config : {one_batch, chunked}) {
      const std::string what =
          absl::StrCat("TP ", size, " budget ", engine_config.max_num_batched_tokens);
      absl::StatusOr<std::unique_ptr<TensorParallelExecutor>> executor =
          TensorParallelExecutor::Create(*config, dir, size, /*block_size=*/16,
                                         /*num_blocks=*/64, eos);
      ASSERT_TRUE(executor.ok()) << what << ": " << executor.status();
      absl::StatusOr<std::unique_ptr<EngineLoop>> engine =
          EngineLoop::Create(engine_config, std::move(*executor), tokenizer->get(), eos);
      ASSERT_TRUE(engine.ok()) << what << ": " << engine.status();
      absl::StatusOr<std::vector<RequestOutput>> results = (*engine)->RunToCompletion(requests);
      ASSERT_TRUE(results.ok()) << what << ": " << results.status();
      ASSERT_EQ(results->size(), goldens.size()) << what;
      for (size_t i = 0; i < goldens.size(); ++i) {
        ASSERT_TRUE((*results)[i].error.empty()) << what << ": " << (*results)[i].error;
        EXPECT_EQ((*results)[i].outputs[0].token_ids, goldens[i].greedy_ids)
            << what << " prompt " << i;
      }
      EXPECT_EQ((*results)[0].outputs[0].text, goldens[0].greedy_text) << what;
    }
  }
}

// Reports a fixed place in a group without communicating: for ModelRunner's option checks.
class FakeCommunicator final : public Communicator {
 public:
  FakeCommunicator(int32_t rank, int32_t size) : rank_(rank), size_(size) {}
  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  std::string_view backend() const override { return "fake"; }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::OkStatus(); }
  absl::Status AllGather(const float*, int64_t, float*) override { return absl::OkStatus(); }

 private:
  int32_t rank_, size_;
};

TEST(TensorParallelModelRunner, CreateChecksTheShardTheCommunicatorAndTheWeights) {
  const ModelConfig config = GqaConfig();
  const TensorParallelShard shard{.rank = 1, .size = 2};
  auto create = [&](ModelWeights weights, const TensorParallelShard& s, Communicator* comm) {
    return ModelRunner::Create(config, std::move(weights),
                               {.num_blocks = 8, .block_size = 4, .shard = s, .communicator = comm})
        .status();
  };
  const ModelWeights half = DummyModelWeights(config, 1, shard);
  EXPECT_THAT(std::string(create(half, shard, nullptr).message()),
              HasSubstr("tensor parallel size 2 needs a communicator"));
  FakeCommunicator rank0(0, 2), rank1(1, 2);
  EXPECT_THAT(std::string(create(half, shard, &rank0).message()),
              HasSubstr("the communicator is rank 0 of 2 but the model shard is rank 1 of 2"));
  EXPECT_THAT(std::string(create(DummyModelWeights(config, 1), shard, &rank1).message()),
              HasSubstr("not those of tensor parallel rank 1 of 2"));
  EXPECT_THAT(std::string(create(half, {.rank = 0, .size = 3}, &rank1).message()),
              HasSubstr("num_attention_heads (8) is not divisible"));
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(config, half, {.num_blocks = 8, .shard = shard, .communicator = &rank1});
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->kv_cache().shape().num_kv_heads, 1);
  EXPECT_EQ((*runner)->layout().num_heads, 4);
}

TEST(TensorParallelModelRunner, KvBlockBudgetCountsOnlyTheLocalKvHeads) {
  const ModelConfig config = GqaConfig();  // 2 KV heads
  const int64_t budget = int64_t{1} << 24;
  const int64_t tp1 = InProcessExecutor::NumBlocksForBudget(config, 16, budget);
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config, 16, budget, {.rank = 0, .size = 1}), tp1);
  // One KV head per rank at TP 2, and still one (replicated) at TP 4.
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config, 16, budget, {.rank = 1, .size = 2}),
            2 * tp1);
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config, 16, budget, {.rank = 3, .size = 4}),
            2 * tp1);
  EXPECT_EQ(InProcessExecutor::NumBlocksForBudget(config, 16, budget, {.rank = 0, .size = 3}), 0);
}

}  // namespace
}  // namespace pagoda
