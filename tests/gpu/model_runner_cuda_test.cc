// A ModelRunner on the CUDA device against one on the CPU, on the same small dummy-weight models
// (the shapes of tests/worker's: Llama with GQA and q/k/v/o biases; Qwen3 with per-head q/k norms
// and an explicit head_dim; Gemma 2 with soft-caps, GELU and sliding layers over KV cache groups;
// Gemma 3 with q/k norms, a local RoPE base and linear scaling), over several steps that mix
// prefill chunks and decodes, with block tables that skip blocks and share a prefix block. Before
// the first step every KV cache slot is NaN (a read of a slot the step did not write poisons the
// logits), and before every step the host logits buffer is NaN (a row the device did not copy back
// shows). Bounds on the logits, |cuda - cpu| <= tol * (1 + |cpu|):
//   - F32 weights and KV cache: tol 1e-4 (fp32 throughout; cuBLAS and OpenBLAS sum in different
//     orders, expf against the CPU's exp: a few ulp per op over 3-4 layers);
//   - BF16 weights and KV cache: tol 3e-2 (the device GEMM rounds its activations to bf16, 2^-9
//     relative, where the CPU multiplies fp32 activations; logits are O(0.5)).
// Then KvCache::CopyBlocks on the device and a swap out to a host cache and back, and stories260K
// greedy in fp32 against golden_greedy.jsonl token for token. With two devices, the same scenario
// at TP 2 (two ranks as threads, one GPU each, over NCCL loaded at run time) against TP 1 on the
// device: both ranks' logits the same, and within the bounds above of TP 1's (the partial sums
// of the row-parallel projections are added in another order). Needs a CUDA device; the CUDA
// tests skip without one (the TP test without two), and the scenario itself runs CPU against CPU
// everywhere, at TP 2 over Gloo too (so that its batches and its TP comparison are known good
// where no device is).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/formats/safetensors.h"
#include "common/kv_cache_groups.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/device.h"
#include "kernels/kv_cache_write.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/testing/model_harness.h"
#include "tests/testing/stories260k.h"
#include "worker/gloo_communicator.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/nccl_communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using kernels::testing::HasCudaDevice;

constexpr int64_t kBlockSize = 4;
constexpr int64_t kNumBlocks = 96;

ModelConfig LlamaGqaBias() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 128;
  c.attention_bias = true;
  c.o_proj_bias = true;
  return c;
}

ModelConfig Qwen3QkNorm() {
  ModelConfig c;
  c.architecture = "Qwen3ForCausalLM";
  c.vocab_size = 101;
  c.hidden_size = 40;
  c.intermediate_size = 72;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;  // q_size 64 != hidden_size
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 128;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  return c;
}

ModelConfig Gemma2Sliding() {
  ModelConfig c;
  c.architecture = "Gemma2ForCausalLM";
  c.vocab_size = 89;
  c.hidden_size = 48;
  c.intermediate_size = 64;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = true;
  c.hidden_act = MlpActivation::kGeluTanh;
  c.query_pre_attn_scalar = 24.0;
  c.attn_logit_softcap = 50.0;
  c.final_logit_softcap = 30.0;
  c.sliding_window = 6;
  c.sliding_layers = {true, false, true, false};
  return c;
}

ModelConfig Gemma3Sliding() {
  ModelConfig c = Gemma2Sliding();
  c.architecture = "Gemma3ForCausalLM";
  c.attn_logit_softcap = 0.0;
  c.final_logit_softcap = 0.0;
  c.qk_norm = true;
  c.rope_theta = 1000000.0;
  c.rope_local_theta = 10000.0;
  c.rope_linear_factor = 2.0;
  c.sliding_layers = {true, true, false, true};
  return c;
}

struct Case {
  std::string name;
  ModelConfig config;
  DType dtype;  // weights and KV cache
  float tolerance;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const auto& [name, config] :
       std::vector<std::pair<std::string, ModelConfig>>{{"LlamaGqaBias", LlamaGqaBias()},
                                                        {"Qwen3QkNorm", Qwen3QkNorm()},
                                                        {"Gemma2Sliding", Gemma2Sliding()},
                                                        {"Gemma3Sliding", Gemma3Sliding()}}) {
    cases.push_back({name + "F32", config, DType::kF32, 1e-4f});
    cases.push_back({name + "Bf16", config, DType::kBF16, 3e-2f});
  }
  return cases;
}

// Every key and value slot of the cache NaN (on the host or the device).
void PoisonKvCache(KvCache& cache) {
  const KvCacheShape& shape = cache.shape();
  const int64_t elements = shape.num_blocks * shape.elements_per_block();
  std::vector<std::byte> bytes;
  if (shape.dtype == DType::kF32) {
    const std::vector<float> nan(elements, std::numeric_limits<float>::quiet_NaN());
    bytes.resize(elements * sizeof(float));
    std::memcpy(bytes.data(), nan.data(), bytes.size());
  } else {
    const std::vector<uint16_t> nan(elements,
                                    FloatToBFloat16(std::numeric_limits<float>::quiet_NaN()));
    bytes.resize(elements * sizeof(uint16_t));
    std::memcpy(bytes.data(), nan.data(), bytes.size());
  }
  for (int64_t slot = 0; slot < shape.num_layers; ++slot) {
    for (void* dst : {cache.key(slot), cache.value(slot)}) {
      if (shape.device == Device::kCpu) {
        std::memcpy(dst, bytes.data(), bytes.size());
      } else {
        ASSERT_TRUE(
            kernels::cuda::CopyBytes(dst, bytes.data(), static_cast<int64_t>(bytes.size())).ok());
      }
    }
  }
}

// A runner of `shard` (its slices of the same dummy weights) on `device`, its cache poisoned.
std::unique_ptr<ModelRunner> MakeRunnerOn(const ModelConfig& config, DType dtype, Device device,
                                          const TensorParallelShard& shard = {},
                                          Communicator* communicator = nullptr) {
  const ModelWeights weights = DummyModelWeights(config, /*seed=*/11, shard, {.dtype = dtype});
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(config, weights,
                          {.num_blocks = kNumBlocks,
                           .block_size = kBlockSize,
                           .kv_cache_dtype = dtype,
                           .shard = shard,
                           .communicator = communicator,
                           .kv_groups = KvCacheGroupsFor(config, /*with_draft=*/false),
                           .device = device});
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return nullptr;
  PoisonKvCache((*runner)->kv_cache());
  return std::move(*runner);
}

std::vector<int32_t> Ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

// One sequence of the scenario: its tokens so far, its group-0 table, and its tables for groups
// 1..G-1 (the group-0 ids shifted by 24 per group, so that no group shares a block with another).
struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<int32_t> table;
  std::vector<std::vector<int32_t>> more_tables;
  int64_t computed = 0;
};

void SetTables(Sequence& seq, std::vector<int32_t> table, int num_groups) {
  seq.table = std::move(table);
  seq.more_tables.clear();
  for (int g = 1; g < num_groups; ++g) {
    std::vector<int32_t> shifted = seq.table;
    for (int32_t& id : shifted) id = (id + 24 * g) % kNumBlocks;
    seq.more_tables.push_back(std::move(shifted));
  }
}

// The step over `active` sequences: each computes its new tokens [computed, computed + n).
std::vector<SequenceInput> Step(std::vector<Sequence*> active, std::vector<int64_t> new_tokens,
                                std::vector<int64_t> sampled) {
  std::vector<SequenceInput> batch;
  for (size_t i = 0; i < active.size(); ++i) {
    Sequence& s = *active[i];
    SequenceInput in{.token_ids = absl::MakeConstSpan(s.tokens).subspan(s.computed, new_tokens[i]),
                     .num_computed_tokens = s.computed,
                     .block_table = s.table,
                     .sample = sampled[i] > 0,
                     .num_sampled_tokens = std::max<int64_t>(sampled[i], 1)};
    for (const std::vector<int32_t>& t : s.more_tables) in.more_block_tables.push_back(t);
    batch.push_back(std::move(in));
  }
  return batch;
}

// Runs the same batch on both runners (the device's host logits poisoned first) and compares.
void RunAndCompare(ModelRunner& cpu, ModelRunner& other, absl::Span<const SequenceInput> batch,
                   float tolerance, const std::string& what) {
  SCOPED_TRACE(what);
  absl::StatusOr<StepLogits*> expected = cpu.Execute(batch);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::vector<float> want(
      (*expected)->values.begin(),
      (*expected)->values.begin() + (*expected)->num_rows * (*expected)->vocab_size);
  const std::vector<int32_t> want_rows = (*expected)->seq_index;
  absl::StatusOr<StepLogits*> actual = other.Execute(batch);
  ASSERT_TRUE(actual.ok()) << actual.status();
  ASSERT_EQ((*actual)->seq_index, want_rows);
  const std::vector<float> got(
      (*actual)->values.begin(),
      (*actual)->values.begin() + (*actual)->num_rows * (*actual)->vocab_size);
  kernels::testing::ExpectClose(got, want, tolerance);
  // Poisoned for the next step, whose rows must all be written again.
  std::fill((*actual)->values.begin(), (*actual)->values.end(),
            std::numeric_limits<float>::quiet_NaN());
}

// Runs one step of the scenario; `what` names it.
using StepFn = std::function<void(absl::Span<const SequenceInput> batch, const std::string& what)>;

// The scenario's steps over a model with `groups` KV cache groups, each handed to `step`.
void RunScenarioSteps(const ModelConfig& config, int groups, const StepFn& step) {
  const int64_t vocab = config.vocab_size;
  Sequence a, b, c, d;
  a.tokens = Ids(7, vocab, 1);
  SetTables(a, {9, 3}, groups);  // skips blocks: not 0, not in order
  c.tokens = Ids(11, vocab, 3);
  SetTables(c, {20, 21, 22}, groups);
  // Step 1: A's whole prompt (7 tokens), C's first chunk (5 tokens, not sampled).
  step(Step({&a, &c}, {7, 5}, {1, 0}), "step 1");
  a.computed = 7;
  c.computed = 5;
  // Step 2: A decodes; B shares A's first block (its first 4 tokens are A's, already cached there)
  // and prefills 5 more, sampling its last 2; C's second chunk (6 tokens).
  a.tokens.push_back(Ids(1, vocab, 10)[0]);
  b.tokens.assign(a.tokens.begin(), a.tokens.begin() + 4);
  for (const int32_t id : Ids(5, vocab, 2)) b.tokens.push_back(id);
  SetTables(b, {9, 14, 15}, groups);
  b.computed = 4;
  step(Step({&a, &b, &c}, {1, 5, 6}, {1, 2, 1}), "step 2");
  a.computed = 8;
  b.computed = 9;
  c.computed = 11;
  // Steps 3..8: decodes of A, B and C (their tables growing into new blocks), D joining at step 5
  // with a 3-token prompt in block 0.
  for (int number = 3; number <= 8; ++number) {
    std::vector<Sequence*> active = {&a, &b, &c};
    std::vector<int64_t> news = {1, 1, 1};
    if (number == 5) {
      d.tokens = Ids(3, vocab, 4);
      SetTables(d, {0}, groups);
    }
    if (number >= 5) {
      active.push_back(&d);
      news.push_back(number == 5 ? 3 : 1);
    }
    for (size_t i = 0; i < active.size(); ++i) {
      Sequence& s = *active[i];
      if (number != 5 || &s != &d)
        s.tokens.push_back(Ids(1, vocab, static_cast<uint32_t>(100 * number + i))[0]);
      const int64_t needed = (static_cast<int64_t>(s.tokens.size()) + kBlockSize - 1) / kBlockSize;
      std::vector<int32_t> table = s.table;
      while (static_cast<int64_t>(table.size()) < needed) {
        table.push_back(static_cast<int32_t>(40 + 4 * i + table.size()));
      }
      SetTables(s, table, groups);
    }
    step(Step(active, news, std::vector<int64_t>(active.size(), 1)),
         "step " + std::to_string(number));
    for (Sequence* s : active) s->computed = static_cast<int64_t>(s->tokens.size());
  }
}

// The scenario, `cpu` against `other` (a CUDA runner, or a second CPU runner where no device is).
void RunScenario(ModelRunner& cpu, ModelRunner& other, float tolerance) {
  RunScenarioSteps(cpu.config(), cpu.kv_groups().num_groups(),
                   [&](absl::Span<const SequenceInput> batch, const std::string& what) {
                     RunAndCompare(cpu, other, batch, tolerance, what);
                   });
}

// The scenario's logits on one runner, one [num_rows * vocab] block per step.
std::vector<std::vector<float>> ScenarioLogits(ModelRunner& runner) {
  std::vector<std::vector<float>> logits;
  RunScenarioSteps(runner.config(), runner.kv_groups().num_groups(),
                   [&](absl::Span<const SequenceInput> batch, const std::string& what) {
                     absl::StatusOr<StepLogits*> out = runner.Execute(batch);
                     ASSERT_TRUE(out.ok()) << what << ": " << out.status();
                     logits.emplace_back(
                         (*out)->values.begin(),
                         (*out)->values.begin() + (*out)->num_rows * (*out)->vocab_size);
                   });
  return logits;
}

class ModelRunnerCuda : public ::testing::TestWithParam<Case> {};

// The scenario on the CPU twice: the batches are valid and the harness compares; runs everywhere.
TEST_P(ModelRunnerCuda, ScenarioRunsCpuAgainstCpu) {
  const Case& c = GetParam();
  std::unique_ptr<ModelRunner> cpu = MakeRunnerOn(c.config, c.dtype, Device::kCpu);
  std::unique_ptr<ModelRunner> again = MakeRunnerOn(c.config, c.dtype, Device::kCpu);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(again, nullptr);
  RunScenario(*cpu, *again, 0.0f);
}

TEST_P(ModelRunnerCuda, MixedStepsMatchTheCpuRunner) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const Case& c = GetParam();
  std::unique_ptr<ModelRunner> cpu = MakeRunnerOn(c.config, c.dtype, Device::kCpu);
  std::unique_ptr<ModelRunner> cuda = MakeRunnerOn(c.config, c.dtype, Device::kCuda);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(cuda, nullptr);
  RunScenario(*cpu, *cuda, c.tolerance);
}

INSTANTIATE_TEST_SUITE_P(Models, ModelRunnerCuda, ::testing::ValuesIn(Cases()), CaseName);

// The bytes of `blocks` of every slot of a cache (keys then values), read to the host, the keys of
// a cache that stores them transposed (the CPU runner's: KvCacheShape::keys_transposed) put back
// in rows, so that the CUDA cache's blocks compare with them.
std::vector<float> CacheBlocks(const KvCache& cache, const std::vector<int32_t>& blocks) {
  const KvCacheShape& shape = cache.shape();
  const int64_t n = shape.elements_per_block();
  std::vector<float> out;
  for (int64_t slot = 0; slot < shape.num_layers; ++slot) {
    for (const void* base : {cache.key(slot), cache.value(slot)}) {
      for (const int32_t b : blocks) {
        std::vector<float> block(n);
        const auto* src = static_cast<const std::byte*>(base) + b * n * sizeof(float);
        if (shape.device == Device::kCpu) {
          std::memcpy(block.data(), src, n * sizeof(float));
        } else {
          EXPECT_TRUE(kernels::cuda::CopyBytes(block.data(), src, n * sizeof(float)).ok());
        }
        if (shape.keys_transposed && base == cache.key(slot)) {
          const std::vector<float> transposed = block;
          for (int64_t h = 0; h < shape.num_kv_heads; ++h) {
            for (int64_t r = 0; r < shape.block_size; ++r) {
              for (int64_t d = 0; d < shape.head_dim; ++d) {
                block[kernels::KvCacheRowOffset(0, r, h, shape.num_kv_heads, shape.head_dim,
                                                shape.block_size) +
                      d] =
                    transposed[kernels::TransposedKeyOffset(0, r, h, d, shape.num_kv_heads,
                                                            shape.head_dim, shape.block_size)];
              }
            }
          }
        }
        out.insert(out.end(), block.begin(), block.end());
      }
    }
  }
  return out;
}

// Copy-on-write within the device cache, and a swap out to a host cache and back into other
// device blocks: the device blocks equal the CPU runner's after the same copies, and a sequence
// reading the swapped-in blocks gets the CPU runner's logits.
TEST(ModelRunnerCudaKvCache, CopyBlocksAndSwapMatchTheCpuRunner) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const ModelConfig config = LlamaGqaBias();
  std::unique_ptr<ModelRunner> cpu = MakeRunnerOn(config, DType::kF32, Device::kCpu);
  std::unique_ptr<ModelRunner> cuda = MakeRunnerOn(config, DType::kF32, Device::kCuda);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(cuda, nullptr);
  const std::vector<int32_t> prompt = Ids(8, config.vocab_size, 5);
  const std::vector<int32_t> table = {9, 3};
  const SequenceInput first{.token_ids = prompt, .block_table = table};
  RunAndCompare(*cpu, *cuda, {&first, 1}, 1e-4f, "prefill");

  // Copy-on-write: blocks 9 and 3 into 30 and 31 on both.
  const std::vector<std::pair<int32_t, int32_t>> cow = {{9, 30}, {3, 31}};
  ASSERT_TRUE(cpu->kv_cache().CopyBlocks(cow).ok());
  ASSERT_TRUE(cuda->kv_cache().CopyBlocks(cow).ok());
  kernels::testing::ExpectClose(CacheBlocks(cuda->kv_cache(), {30, 31}),
                                CacheBlocks(cpu->kv_cache(), {9, 3}), 1e-4f);

  // Swap out to a host cache of the same shape, then back into blocks 50 and 51 of the device.
  KvCacheShape host_shape = cuda->kv_cache().shape();
  host_shape.device = Device::kCpu;
  host_shape.num_blocks = 4;
  absl::StatusOr<KvCache> host = KvCache::Create(host_shape);
  ASSERT_TRUE(host.ok()) << host.status();
  using Pairs = std::vector<std::pair<int32_t, int32_t>>;
  ASSERT_TRUE(KvCache::CopyBlocksAcross(cuda->kv_cache(), *host, Pairs{{9, 2}, {3, 0}}).ok());
  kernels::testing::ExpectClose(CacheBlocks(*host, {2, 0}), CacheBlocks(cpu->kv_cache(), {9, 3}),
                                1e-4f);
  ASSERT_TRUE(KvCache::CopyBlocksAcross(*host, cuda->kv_cache(), Pairs{{2, 50}, {0, 51}}).ok());
  ASSERT_TRUE(cpu->kv_cache().CopyBlocks(Pairs{{9, 50}, {3, 51}}).ok());
  // A block swap between caches of different shapes is refused.
  host_shape.head_dim *= 2;
  absl::StatusOr<KvCache> wrong = KvCache::Create(host_shape);
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(KvCache::CopyBlocksAcross(cuda->kv_cache(), *wrong, Pairs{{9, 0}}).code(),
            absl::StatusCode::kInvalidArgument);

  // Decode on the swapped-in blocks (the prompt's K/V there), on both runners.
  std::vector<int32_t> next = prompt;
  next.push_back(7);
  const std::vector<int32_t> swapped_table = {50, 51, 52};
  const SequenceInput decode{.token_ids = absl::MakeConstSpan(next).subspan(8),
                             .num_computed_tokens = 8,
                             .block_table = swapped_table};
  RunAndCompare(*cpu, *cuda, {&decode, 1}, 1e-4f, "decode on swapped-in blocks");
}

// The scenario's logits at TP 2 on `device`: ranks as threads (on CUDA GPU r over NCCL, on the
// CPU over Gloo); rank 0's, after checking that rank 1 got exactly the same.
std::vector<std::vector<float>> TwoRankLogits(const Case& c, Device device) {
  std::vector<std::vector<std::vector<float>>> per_rank(2);
  InMemoryRendezvousStore store;
  const std::string prefix =
      absl::StrCat("tp2-", c.name, "-", std::string(DeviceName(device)), "/");
  std::vector<std::thread> ranks;
  for (int32_t rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<Communicator>> comm;
      if (device == Device::kCuda) {
        ASSERT_TRUE(kernels::cuda::SetDevice(rank).ok());
        comm = CreateNcclCommunicator({.rank = rank,
                                       .size = 2,
                                       .device = rank,
                                       .prefix = prefix,
                                       .timeout = absl::Seconds(120)},
                                      &store);
      } else {
        comm = CreateGlooCommunicator(
            {.rank = rank, .size = 2, .prefix = prefix, .timeout = absl::Seconds(120)}, &store);
      }
      ASSERT_TRUE(comm.ok()) << comm.status();
      std::unique_ptr<ModelRunner> runner =
          MakeRunnerOn(c.config, c.dtype, device, {.rank = rank, .size = 2}, comm->get());
      ASSERT_NE(runner, nullptr);
      per_rank[rank] = ScenarioLogits(*runner);
    });
  }
  for (std::thread& t : ranks) t.join();
  EXPECT_EQ(per_rank[1], per_rank[0]) << "rank 1's logits differ from rank 0's";
  return per_rank[0];
}

void ExpectSameSteps(const std::vector<std::vector<float>>& actual,
                     const std::vector<std::vector<float>>& expected, float tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t step = 0; step < expected.size(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step + 1));
    kernels::testing::ExpectClose(actual[step], expected[step], tolerance);
  }
}

// TP 2 against TP 1 over the whole scenario: Llama (2 KV heads, one per rank; vocabulary 97,
// which 2 does not divide) and Qwen3 (q/k norms, head_dim 16), in F32 and BF16.
class ModelRunnerCudaTp : public ::testing::TestWithParam<Case> {};

// On the CPU over Gloo (the scenario's TP 2 is sound where no device is); runs everywhere.
TEST_P(ModelRunnerCudaTp, TwoRanksOverGlooMatchOneRankOnTheCpu) {
  const Case& c = GetParam();
  std::unique_ptr<ModelRunner> one = MakeRunnerOn(c.config, c.dtype, Device::kCpu);
  ASSERT_NE(one, nullptr);
  const std::vector<std::vector<float>> one_rank = ScenarioLogits(*one);
  ASSERT_EQ(one_rank.size(), 8u);
  ExpectSameSteps(TwoRankLogits(c, Device::kCpu), one_rank, 1e-4f);
}

// On GPUs 0 and 1 over NCCL, against TP 1 on GPU 0.
TEST_P(ModelRunnerCudaTp, TwoRanksOverNcclMatchOneRank) {
  if (kernels::cuda::DeviceCount() < 2) {
    GTEST_SKIP() << "needs two CUDA devices, found " << kernels::cuda::DeviceCount();
  }
  const Case& c = GetParam();
  ASSERT_TRUE(kernels::cuda::SetDevice(0).ok());
  std::vector<std::vector<float>> one_rank;
  {
    std::unique_ptr<ModelRunner> runner = MakeRunnerOn(c.config, c.dtype, Device::kCuda);
    ASSERT_NE(runner, nullptr);
    one_rank = ScenarioLogits(*runner);
  }
  ASSERT_EQ(one_rank.size(), 8u);
  ExpectSameSteps(TwoRankLogits(c, Device::kCuda), one_rank, c.tolerance);
}

std::vector<Case> TpCases() {
  std::vector<Case> cases;
  for (const Case& c : Cases()) {
    if (c.name.rfind("Llama", 0) == 0 || c.name.rfind("Qwen3", 0) == 0) cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, ModelRunnerCudaTp, ::testing::ValuesIn(TpCases()), CaseName);

// stories260K in fp32 on the device, greedy, gives golden_greedy.jsonl token for token.
TEST(ModelRunnerCudaGolden, Stories260KGreedyEqualsTheGolden) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const std::string& dir = testing::Stories260KDir();
  absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<testing::GoldenCase> goldens = testing::LoadStories260KGoldens();
  ASSERT_FALSE(goldens.empty());
  for (const testing::GoldenCase& golden : goldens) {
    SCOPED_TRACE(golden.prompt);
    absl::StatusOr<ModelWeights> weights =
        LoadModelWeights(*config, dir, {}, {.dtype = DType::kF32});
    ASSERT_TRUE(weights.ok()) << weights.status();
    const int64_t steps = static_cast<int64_t>(golden.greedy_ids.size());
    const int64_t blocks =
        (static_cast<int64_t>(golden.prompt_ids.size()) + steps + testing::kHarnessBlockSize - 1) /
        testing::kHarnessBlockSize;
    absl::StatusOr<std::unique_ptr<ModelRunner>> runner = ModelRunner::Create(
        *config, *std::move(weights),
        {.num_blocks = blocks, .block_size = testing::kHarnessBlockSize, .device = Device::kCuda});
    ASSERT_TRUE(runner.ok()) << runner.status();
    const testing::Generation out = testing::GreedyBatch(**runner, {golden.prompt_ids}, steps);
    ASSERT_EQ(out.tokens.size(), 1u);
    EXPECT_EQ(out.tokens[0], golden.greedy_ids);
  }
}

}  // namespace
}  // namespace pagoda
