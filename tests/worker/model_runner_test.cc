#include "worker/model_runner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/paged_attention.h"
#include "worker/model_weights.h"
#include "worker/models/registry.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig() {
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
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = false;
  return c;
}

// A layer's weights as plain fp32 vectors (dequantized), for the reference.
struct DenseLayer {
  std::vector<float> input_layernorm, qkv_proj, qkv_bias, o_proj, o_bias, post_attention_layernorm,
      gate_up_proj, down_proj;
};

DenseLayer Dense(const LayerWeights& w) {
  return {TensorToFloats(w.input_layernorm), w.qkv_proj.ToFloats(),
          TensorToFloats(w.qkv_bias),        w.o_proj.ToFloats(),
          TensorToFloats(w.o_bias),          TensorToFloats(w.post_attention_layernorm),
          w.gate_up_proj.ToFloats(),         w.down_proj.ToFloats()};
}

// A plain dense forward pass over the whole sequence: the logits at every position.
std::vector<float> ReferenceLogits(const ModelConfig& c, const ModelWeights& w,
                                   const std::vector<int32_t>& ids) {
  const int64_t n = ids.size(), d = c.hidden_size, hd = c.head_dim, nh = c.num_attention_heads,
                nkv = c.num_key_value_heads, inter = c.intermediate_size;
  const int64_t qkv_w = c.q_size() + 2 * c.kv_size();
  auto matvec = [](const std::vector<float>& m, const float* x, int64_t rows, int64_t cols,
                   const std::vector<float>* bias) {
    std::vector<float> y(rows);
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias && !bias->empty() ? (*bias)[r] : 0.0;
      for (int64_t k = 0; k < cols; ++k) acc += double(m[r * cols + k]) * x[k];
      y[r] = float(acc);
    }
    return y;
  };
  auto rms = [&](const float* x, const std::vector<float>& g) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(x[i]) * x[i];
    const double inv = 1.0 / std::sqrt(ss / d + c.rms_norm_eps);
    std::vector<float> y(d);
    for (int64_t i = 0; i < d; ++i) y[i] = float(x[i] * inv * g[i]);
    return y;
  };
  auto rope = [&](float* v, int64_t pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double freq = std::pow(c.rope_theta, -2.0 * i / hd);
      const double cs = std::cos(pos * freq), sn = std::sin(pos * freq);
      const double a = v[i], b = v[i + hd / 2];
      v[i] = float(a * cs - b * sn);
      v[i + hd / 2] = float(b * cs + a * sn);
    }
  };
  const std::vector<float> embed = TensorToFloats(w.embed_tokens);
  std::vector<std::vector<float>> x(n);
  for (int64_t t = 0; t < n; ++t) {
    x[t].assign(embed.begin() + ids[t] * d, embed.begin() + (ids[t] + 1) * d);
  }
  for (const LayerWeights& layer : w.layers) {
    const DenseLayer L = Dense(layer);
    std::vector<std::vector<float>> qkv(n);
    for (int64_t t = 0; t < n; ++t) {
      qkv[t] =
          matvec(L.qkv_proj, rms(x[t].data(), L.input_layernorm).data(), qkv_w, d, &L.qkv_bias);
      for (int64_t h = 0; h < nh; ++h) rope(&qkv[t][h * hd], t);
      for (int64_t h = 0; h < nkv; ++h) rope(&qkv[t][c.q_size() + h * hd], t);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> attn(c.q_size());
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t kvh = h / (nh / nkv);
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i)
            dot += double(qkv[t][h * hd + i]) * qkv[j][c.q_size() + kvh * hd + i];
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& v : s) sum += (v = std::exp(v - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int64_t j = 0; j <= t; ++j)
            acc += s[j] / sum * qkv[j][c.q_size() + c.kv_size() + kvh * hd + i];
          attn[h * hd + i] = float(acc);
        }
      }
      const std::vector<float> o = matvec(L.o_proj, attn.data(), d, c.q_size(), &L.o_bias);
      for (int64_t i = 0; i < d; ++i) x[t][i] += o[i];
      const std::vector<float> gu =
          matvec(L.gate_up_proj, rms(x[t].data(), L.post_attention_layernorm).data(), 2 * inter, d,
                 nullptr);
      std::vector<float> act(inter);
      for (int64_t i = 0; i < inter; ++i) act[i] = gu[i] / (1 + std::exp(-gu[i])) * gu[inter + i];
      const std::vector<float> down = matvec(L.down_proj, act.data(), d, inter, nullptr);
      for (int64_t i = 0; i < d; ++i) x[t][i] += down[i];
    }
  }
  const std::vector<float> head = TensorToFloats(w.lm_head_or_embedding());
  const std::vector<float> norm = TensorToFloats(w.norm);
  std::vector<float> logits;
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<float> l =
        matvec(head, rms(x[t].data(), norm).data(), c.vocab_size, d, nullptr);
    logits.insert(logits.end(), l.begin(), l.end());
  }
  return logits;
}

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

void ExpectRowNear(const float* actual, const float* expected, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(actual[i], expected[i], 2e-4 * (1 + std::abs(expected[i]))) << "at " << i;
  }
}

class ModelRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TinyConfig();
    weights_ = DummyModelWeights(config_, /*seed=*/3);
    auto runner = ModelRunner::Create(config_, weights_, {.num_blocks = 64, .block_size = 4});
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(*runner);
  }
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<ModelRunner> runner_;
};

TEST_F(ModelRunnerTest, PrefillMatchesDenseReference) {
  const std::vector<int32_t> ids = RandomIds(11, config_.vocab_size, 1);
  const std::vector<int32_t> blocks = {7, 2, 30};  // shuffled physical blocks
  const SequenceInput input{.token_ids = ids, .block_table = blocks};
  auto logits = runner_->Execute({&input, 1});
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ((*logits)->num_rows, 1);
  const std::vector<float> ref = ReferenceLogits(config_, weights_, ids);
  ExpectRowNear((*logits)->row(0), ref.data() + 10 * config_.vocab_size, config_.vocab_size);
}

TEST_F(ModelRunnerTest, ChunkedPrefillAndDecodesMatchReferenceAtEveryStep) {
  const std::vector<int32_t> ids = RandomIds(14, config_.vocab_size, 2);
  const std::vector<int32_t> blocks = {9, 1, 40, 3};
  const std::vector<float> ref = ReferenceLogits(config_, weights_, ids);
  // Chunks of 5 and 3 tokens, then one token at a time.
  int64_t done = 0;
  for (int64_t chunk : {5, 3, 1, 1, 1, 1, 1, 1}) {
    const SequenceInput input{.token_ids = absl::MakeConstSpan(ids).subspan(done, chunk),
                              .num_computed_tokens = done,
                              .block_table = blocks};
    auto logits = runner_->Execute({&input, 1});
    ASSERT_TRUE(logits.ok()) << logits.status();
    done += chunk;
    ExpectRowNear((*logits)->row(0), ref.data() + (done - 1) * config_.vocab_size,
                  config_.vocab_size);
  }
}

TEST_F(ModelRunnerTest, MixedBatchEqualsEachSequenceAlone) {
  const std::vector<int32_t> a = RandomIds(9, config_.vocab_size, 3);
  const std::vector<int32_t> b = RandomIds(6, config_.vocab_size, 4);
  const std::vector<int32_t> blocks_a = {5, 6, 11}, blocks_b = {20, 0};
  // Put a's first 8 tokens in the cache, then step: a decodes its 9th while b prefills.
  const SequenceInput warm{
      .token_ids = absl::MakeConstSpan(a).first(8), .block_table = blocks_a, .sample = false};
  ASSERT_TRUE(runner_->Execute({&warm, 1}).ok());
  const std::vector<SequenceInput> batch = {{.token_ids = absl::MakeConstSpan(a).subspan(8),
                                             .num_computed_tokens = 8,
                                             .block_table = blocks_a},
                                            {.token_ids = b, .block_table = blocks_b}};
  auto logits = runner_->Execute(batch);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ((*logits)->num_rows, 2);
  const std::vector<float> ref_a = ReferenceLogits(config_, weights_, a);
  const std::vector<float> ref_b = ReferenceLogits(config_, weights_, b);
  ExpectRowNear((*logits)->row(0), ref_a.data() + 8 * config_.vocab_size, config_.vocab_size);
  ExpectRowNear((*logits)->row(1), ref_b.data() + 5 * config_.vocab_size, config_.vocab_size);
}

TEST_F(ModelRunnerTest, OnlySamplingSequencesGetLogits) {
  const std::vector<int32_t> a = RandomIds(3, config_.vocab_size, 5);
  const std::vector<int32_t> blocks_a = {1}, blocks_b = {2};
  const std::vector<SequenceInput> batch = {
      {.token_ids = a, .block_table = blocks_a, .sample = false},
      {.token_ids = a, .block_table = blocks_b, .sample = true}};
  auto logits = runner_->Execute(batch);
  ASSERT_TRUE(logits.ok());
  ASSERT_EQ((*logits)->num_rows, 1);
  EXPECT_EQ((*logits)->seq_index[0], 1);
}

// ExecuteValidated is Execute without the batch check (its caller validated the batch): the
// same logits, with the check left to ValidateBatch.
TEST_F(ModelRunnerTest, ExecuteValidatedMatchesTheReferenceLikeExecute) {
  const std::vector<int32_t> ids = RandomIds(11, config_.vocab_size, 6);
  const std::vector<int32_t> blocks = {12, 4, 33};
  const SequenceInput input{.token_ids = ids, .block_table = blocks};
  ASSERT_TRUE(runner_->ValidateBatch({&input, 1}).ok());
  auto logits = runner_->ExecuteValidated({&input, 1});
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ((*logits)->num_rows, 1);
  const std::vector<float> ref = ReferenceLogits(config_, weights_, ids);
  ExpectRowNear((*logits)->row(0), ref.data() + 10 * config_.vocab_size, config_.vocab_size);

  const std::vector<int32_t> bad_block = {12, 64, 33};
  const SequenceInput bad{.token_ids = ids, .block_table = bad_block};
  EXPECT_THAT(std::string(runner_->ValidateBatch({&bad, 1}).message()),
              HasSubstr("block 64 outside [0, 64)"));
}

TEST_F(ModelRunnerTest, RejectsBadBatches) {
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  const std::vector<int32_t> one_block = {0}, bad_block = {0, 64};
  const std::vector<int32_t> bad_id = {1, 97};
  SequenceInput input{.token_ids = ids, .block_table = one_block};
  EXPECT_THAT(std::string(runner_->Execute({&input, 1}).status().message()),
              HasSubstr("block table holds 1 blocks"));
  input.block_table = bad_block;
  EXPECT_THAT(std::string(runner_->Execute({&input, 1}).status().message()),
              HasSubstr("block 64 outside [0, 64)"));
  input = {.token_ids = bad_id, .block_table = one_block};
  EXPECT_THAT(std::string(runner_->Execute({&input, 1}).status().message()),
              HasSubstr("token id 97 outside the vocabulary"));
  const std::vector<int32_t> many_blocks(40, 1);
  input = {.token_ids = ids, .num_computed_tokens = 126, .block_table = many_blocks};
  EXPECT_THAT(std::string(runner_->Execute({&input, 1}).status().message()),
              HasSubstr("model supports 128 positions"));
}

// CUDA graphs are the device's: a CPU runner refuses to capture and keeps running eagerly.
TEST_F(ModelRunnerTest, CudaGraphsAreRefusedOnTheCpu) {
  const absl::Status status = runner_->CaptureCudaGraphs(std::vector<int64_t>{1, 2, 4});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("CUDA graphs need a ModelRunner on the CUDA"));
  EXPECT_TRUE(runner_->cuda_graph_sizes().empty());
  const std::vector<int32_t> ids = {5};
  const std::vector<int32_t> blocks = {3};
  const std::vector<SequenceInput> batch = {{.token_ids = ids, .block_table = blocks}};
  ASSERT_TRUE(runner_->Execute(batch).ok());
  EXPECT_EQ(runner_->cuda_graph_replays(), 0);
}

// A CUDA runner where there is no CUDA (this build without it, or no device): a clear
// FailedPrecondition naming the cause, before any weight moves (ASan in CI checks that nothing
// leaks on the way out).
TEST(ModelRunnerDevice, CudaWithoutADeviceIsFailedPreconditionNamingTheCause) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  const ModelConfig config = TinyConfig();
  auto runner = ModelRunner::Create(config, DummyModelWeights(config, /*seed=*/3),
                                    {.num_blocks = 8, .block_size = 4, .device = Device::kCuda});
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kFailedPrecondition) << runner.status();
  EXPECT_THAT(std::string(runner.status().message()),
              HasSubstr(kernels::cuda::BuiltWithCuda() ? "needs a CUDA device, and none is visible"
                                                       : "needs a build with CUDA"));
}

// A KV cache asked of the device without one: FailedPrecondition, not a crash.
TEST(ModelRunnerDevice, KvCacheOnCudaWithoutADeviceIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  auto cache = KvCache::Create({.num_layers = 2,
                                .num_blocks = 4,
                                .block_size = 4,
                                .num_kv_heads = 1,
                                .head_dim = 8,
                                .device = Device::kCuda});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kFailedPrecondition) << cache.status();
}

// A CPU runner's cache takes the key layout its attention prefers (transposed on AVX-512 with
// blocks of 16, rows with blocks of 4), and a swap between caches of two key layouts is refused:
// the same bytes would be read in another order.
TEST(ModelRunnerKvCache, KeysTakeTheAttentionsLayoutAndSwapsKeepIt) {
  const ModelConfig config = TinyConfig();
  for (const int64_t block_size : {4, 16}) {
    auto runner = ModelRunner::Create(config, DummyModelWeights(config, /*seed=*/3),
                                      {.num_blocks = 8, .block_size = block_size});
    ASSERT_TRUE(runner.ok()) << runner.status();
    EXPECT_EQ((*runner)->kv_cache().shape().keys_transposed,
              kernels::PrefersTransposedKeys(Device::kCpu, block_size));
  }
  KvCacheShape shape{
      .num_layers = 2, .num_blocks = 4, .block_size = 16, .num_kv_heads = 1, .head_dim = 8};
  auto rows = KvCache::Create(shape);
  shape.keys_transposed = true;
  auto transposed = KvCache::Create(shape);
  ASSERT_TRUE(rows.ok() && transposed.ok());
  const std::vector<std::pair<int32_t, int32_t>> pairs = {{1, 2}};
  const absl::Status s = KvCache::CopyBlocksAcross(*rows, *transposed, pairs);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("key layout"));
  auto twin = KvCache::Create(shape);
  ASSERT_TRUE(twin.ok());
  EXPECT_TRUE(KvCache::CopyBlocksAcross(*transposed, *twin, pairs).ok());
}

// The architectures without a device path are refused by name, before anything moves (asked of
// the registry's definitions directly, so this runs without a device).
TEST(ModelRunnerDevice, FeaturesWithoutADevicePathAreNamed) {
  ModelConfig moe = TinyConfig();
  moe.architecture = "Qwen3MoeForCausalLM";
  moe.num_experts = 4;
  moe.num_experts_per_tok = 2;
  moe.moe_intermediate_size = 16;
  auto arch = FindModelArchitecture(moe.architecture);
  ASSERT_TRUE(arch.ok()) << arch.status();
  EXPECT_TRUE((*arch)->CheckDevice(moe, Device::kCpu).ok());
  absl::Status s = (*arch)->CheckDevice(moe, Device::kCuda);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), HasSubstr("mixture-of-experts"));

  ModelConfig partial = TinyConfig();
  partial.rotary_dim = 4;
  s = (*arch)->CheckDevice(partial, Device::kCuda);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), HasSubstr("partial rotary"));
  EXPECT_TRUE((*arch)->CheckDevice(TinyConfig(), Device::kCuda).ok());
}

}  // namespace
}  // namespace pagoda
