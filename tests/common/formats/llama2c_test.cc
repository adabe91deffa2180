#include "common/formats/llama2c.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/formats/safetensors.h"
#include "common/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kStories = std::string(PAGODA_SHARED_DIR) + "/models/stories260K/stories260K.bin";

class ConvertLlama2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/pagoda_conv_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

// The values of a typed weight, dequantized.
std::vector<float> F(const Tensor& t) { return TensorToFloats(t); }
std::vector<float> F(const LinearWeight& w) { return w.ToFloats(); }

std::vector<float> FloatsAt(const std::string& bytes, int64_t float_offset, int64_t count) {
  std::vector<float> out(count);
  std::memcpy(out.data(), bytes.data() + 28 + 4 * float_offset, 4 * count);
  return out;
}

std::vector<float> TensorValues(const SafetensorsCheckpoint& checkpoint, const std::string& name) {
  const TensorInfo* info = checkpoint.Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return {};
  std::vector<float> out(info->num_elements());
  EXPECT_TRUE(ConvertToFloat(*info, out).ok());
  return out;
}

// y = W x for W [rows, cols] row-major.
std::vector<float> MatVec(const std::vector<float>& w, const std::vector<float>& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  std::vector<float> y(rows, 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (size_t c = 0; c < cols; ++c) sum += static_cast<double>(w[r * cols + c]) * x[c];
    y[r] = static_cast<float>(sum);
  }
  return y;
}

// RoPE at `pos` on every head of `v`: interleaved pairs (2i, 2i+1) as in llama2.c, or
// rotate-half pairs (i, i + hs/2) as in Hugging Face; both use frequency theta^(-2i/hs).
std::vector<double> Rope(const std::vector<float>& v, int64_t hs, int pos, bool interleaved) {
  std::vector<double> out(v.begin(), v.end());
  for (size_t head = 0; head < v.size() / hs; ++head) {
    for (int64_t i = 0; i < hs / 2; ++i) {
      const double angle = pos * std::pow(10000.0, -2.0 * i / hs);
      const size_t a = head * hs + (interleaved ? 2 * i : i);
      const size_t b = head * hs + (interleaved ? 2 * i + 1 : i + hs / 2);
      const double x = out[a], y = out[b];
      out[a] = x * std::cos(angle) - y * std::sin(angle);
      out[b] = x * std::sin(angle) + y * std::cos(angle);
    }
  }
  return out;
}

TEST_F(ConvertLlama2cTest, ConvertsStories260K) {
  ASSERT_TRUE(ConvertLlama2cCheckpoint(kStories, dir_).ok());
  auto config = ModelConfig::FromDirectory(dir_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->hidden_size, 64);
  EXPECT_EQ(config->intermediate_size, 172);
  EXPECT_EQ(config->num_hidden_layers, 5);
  EXPECT_EQ(config->num_attention_heads, 8);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 8);
  EXPECT_EQ(config->vocab_size, 512);
  EXPECT_EQ(config->max_position_embeddings, 512);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(config->torch_dtype, DType::kF32);

  auto weights = LoadModelWeights(*config, dir_);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(weights->lm_head.empty());

  // Unpermuted tensors are copied verbatim (offsets in floats after the 28-byte header).
  auto raw = ReadFileToString(kStories);
  ASSERT_TRUE(raw.ok());
  const int64_t dim = 64, hidden = 172, layers = 5, kv_dim = 32, vocab = 512;
  const int64_t embed_at = 0, rms_att_at = vocab * dim, wq_at = rms_att_at + layers * dim;
  const int64_t wk_at = wq_at + layers * dim * dim, wv_at = wk_at + layers * kv_dim * dim;
  const int64_t wo_at = wv_at + layers * kv_dim * dim, rms_ffn_at = wo_at + layers * dim * dim;
  const int64_t w1_at = rms_ffn_at + layers * dim, w2_at = w1_at + layers * hidden * dim;
  const int64_t w3_at = w2_at + layers * dim * hidden, final_at = w3_at + layers * hidden * dim;
  EXPECT_EQ(F(weights->embed_tokens), FloatsAt(*raw, embed_at, vocab * dim));
  EXPECT_EQ(F(weights->norm), FloatsAt(*raw, final_at, dim));
  const int64_t l = 3;
  const LayerWeights& layer = weights->layers[l];
  EXPECT_EQ(F(layer.input_layernorm), FloatsAt(*raw, rms_att_at + l * dim, dim));
  EXPECT_EQ(F(layer.post_attention_layernorm), FloatsAt(*raw, rms_ffn_at + l * dim, dim));
  EXPECT_EQ(F(layer.o_proj), FloatsAt(*raw, wo_at + l * dim * dim, dim * dim));
  EXPECT_EQ(F(layer.down_proj), FloatsAt(*raw, w2_at + l * dim * hidden, dim * hidden));
  std::vector<float> gate_up = FloatsAt(*raw, w1_at + l * hidden * dim, hidden * dim);
  const std::vector<float> w3 = FloatsAt(*raw, w3_at + l * hidden * dim, hidden * dim);
  gate_up.insert(gate_up.end(), w3.begin(), w3.end());
  EXPECT_EQ(F(layer.gate_up_proj), gate_up);
  const std::vector<float> wv = FloatsAt(*raw, wv_at + l * kv_dim * dim, kv_dim * dim);
  const std::vector<float> qkv = F(layer.qkv_proj);
  EXPECT_TRUE(std::equal(wv.begin(), wv.end(), qkv.end() - kv_dim * dim));

  // Rotate-half RoPE on the permuted wq/wk gives the permuted result of interleaved RoPE on the
  // originals, so every attention score q.k is unchanged.
  auto checkpoint = SafetensorsCheckpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const std::string p = absl::StrCat("model.layers.", l, ".self_attn.");
  const std::vector<float> wq_hf = TensorValues(**checkpoint, p + "q_proj.weight");
  const std::vector<float> wk_hf = TensorValues(**checkpoint, p + "k_proj.weight");
  const std::vector<float> wq = FloatsAt(*raw, wq_at + l * dim * dim, dim * dim);
  const std::vector<float> wk = FloatsAt(*raw, wk_at + l * kv_dim * dim, kv_dim * dim);
  EXPECT_NE(wq_hf, wq);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::vector<float> x(dim), y(dim);
  for (float& v : x) v = normal(rng);
  for (float& v : y) v = normal(rng);
  const int64_t hs = 8;
  const int q_pos = 37, k_pos = 11;
  const std::vector<double> q_ref = Rope(MatVec(wq, x), hs, q_pos, /*interleaved=*/true);
  const std::vector<double> q_hf = Rope(MatVec(wq_hf, x), hs, q_pos, /*interleaved=*/false);
  const std::vector<double> k_ref = Rope(MatVec(wk, y), hs, k_pos, /*interleaved=*/true);
  const std::vector<double> k_hf = Rope(MatVec(wk_hf, y), hs, k_pos, /*interleaved=*/false);
  for (int64_t head = 0; head < dim / hs; ++head) {
    for (int64_t i = 0; i < hs / 2; ++i) {
      EXPECT_NEAR(q_hf[head * hs + i], q_ref[head * hs + 2 * i], 1e-5);
      EXPECT_NEAR(q_hf[head * hs + hs / 2 + i], q_ref[head * hs + 2 * i + 1], 1e-5);
    }
    const int64_t kv_head = head / 2;  // 8 query heads share 4 KV heads
    double score_ref = 0, score_hf = 0;
    for (int64_t d = 0; d < hs; ++d) {
      score_ref += q_ref[head * hs + d] * k_ref[kv_head * hs + d];
      score_hf += q_hf[head * hs + d] * k_hf[kv_head * hs + d];
    }
    EXPECT_NEAR(score_hf, score_ref, 1e-4) << "head " << head;
  }
}

// Writes a small synthetic llama2.c checkpoint whose float k holds k * 0.001.
std::string WriteCheckpoint(const std::string& path, std::vector<int32_t> header,
                            int64_t num_floats) {
  std::string bytes(reinterpret_cast<const char*>(header.data()), 4 * header.size());
  for (int64_t k = 0; k < num_floats; ++k) {
    const float v = static_cast<float>(k) * 0.001f;
    bytes.append(reinterpret_cast<const char*>(&v), 4);
  }
  EXPECT_TRUE(WriteStringToFile(path, bytes).ok());
  return path;
}

TEST_F(ConvertLlama2cTest, NegativeVocabMeansAnUntiedClassifier) {
  // dim 8, hidden 12, 1 layer, 2 heads (hs 4), 1 KV head, vocab 10 (untied), seq_len 4.
  const int64_t floats = 10 * 8 + 8 + 64 + 2 * 32 + 64 + 8 + 3 * 96 + 8 + 2 * 4 * 2 + 10 * 8;
  const std::string path = WriteCheckpoint(dir_ + "/untied.bin", {8, 12, 1, 2, 1, -10, 4}, floats);
  const std::string out = dir_ + "/out/nested";
  ASSERT_TRUE(ConvertLlama2cCheckpoint(path, out).ok());
  auto config = ModelConfig::FromDirectory(out);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->vocab_size, 10);
  EXPECT_EQ(config->num_key_value_heads, 1);
  auto weights = LoadModelWeights(*config, out);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const std::vector<float> lm_head = F(weights->lm_head);
  ASSERT_EQ(lm_head.size(), 80u);
  EXPECT_FLOAT_EQ(lm_head[0], (floats - 80) * 0.001f);
  EXPECT_FLOAT_EQ(lm_head[79], (floats - 1) * 0.001f);
  // k_proj of one head of size 4: rows (0, 2, 1, 3) of the original.
  const int64_t wk_at = 80 + 8 + 64;
  const std::vector<float> qkv = F(weights->layers[0].qkv_proj);
  for (int64_t new_row = 0; new_row < 4; ++new_row) {
    const int64_t old_row = (new_row < 2) ? 2 * new_row : 2 * (new_row - 2) + 1;
    EXPECT_FLOAT_EQ(qkv[(8 + new_row) * 8], (wk_at + old_row * 8) * 0.001f) << new_row;
  }
}

TEST_F(ConvertLlama2cTest, TruncatedCheckpointIsDataLoss) {
  auto raw = ReadFileToString(kStories);
  ASSERT_TRUE(raw.ok());
  const std::string path = dir_ + "/truncated.bin";
  ASSERT_TRUE(WriteStringToFile(path, raw->substr(0, raw->size() - 4)).ok());
  const absl::Status status = ConvertLlama2cCheckpoint(path, dir_ + "/out");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
  EXPECT_THAT(std::string(status.message()), HasSubstr("truncated"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("1056536 bytes"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/out/model.safetensors"));

  ASSERT_TRUE(WriteStringToFile(path, raw->substr(0, 10)).ok());
  EXPECT_EQ(ConvertLlama2cCheckpoint(path, dir_ + "/out").code(), absl::StatusCode::kDataLoss);
}

TEST_F(ConvertLlama2cTest, RejectsImplausibleHeaders) {
  struct Case {
    std::vector<int32_t> header;
    std::string substring;
  };
  const std::vector<Case> cases = {
      {{0, 12, 1, 2, 1, 10, 4}, "dim"},
      {{8, 12, -1, 2, 1, 10, 4}, "n_layers"},
      {{8, 12, 1, 2, 1, 10, 1 << 30}, "seq_len"},
      {{8, 12, 1, 3, 1, 10, 4}, "heads"},  // 8 does not split into 3 heads
      {{8, 12, 1, 8, 1, 10, 4}, "even"},   // head size 1
      {{8, 12, 1, 2, 3, 10, 4}, "n_kv_heads"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteCheckpoint(dir_ + "/bad.bin", c.header, 1000);
    const absl::Status status = ConvertLlama2cCheckpoint(path, dir_ + "/out");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.substring));
    EXPECT_THAT(std::string(status.message()), HasSubstr(path));
  }
  const absl::Status missing = ConvertLlama2cCheckpoint(dir_ + "/missing.bin", dir_ + "/out");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pagoda
