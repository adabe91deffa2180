#include "worker/model_weights.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/formats/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dequantize.h"

namespace pagoda {
namespace {

using ::testing::Each;
using ::testing::HasSubstr;

ModelConfig TinyConfig() {
  ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.vocab_size = 16;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 2;
  config.eos_token_ids = {2};
  return config;
}

// Exactly representable in F16 and BF16, different for every tensor and element.
float Value(int tensor, int64_t i) { return static_cast<float>((tensor * 31 + i) % 17 - 8) / 8; }

struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// The Hugging Face tensors of `config`, in checkpoint order, filled with Value().
std::vector<HfTensor> HfTensors(const ModelConfig& config) {
  const int64_t h = config.hidden_size, inter = config.intermediate_size;
  const int64_t q = config.q_size(), kv = config.kv_size();
  std::vector<HfTensor> tensors;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) values[i] = Value(static_cast<int>(tensors.size()), i);
    tensors.push_back({std::move(name), std::move(shape), std::move(values)});
  };
  add("model.embed_tokens.weight", {config.vocab_size, h});
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    if (config.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    add(p + "self_attn.o_proj.weight", {h, q});
    if (config.o_proj_bias) add(p + "self_attn.o_proj.bias", {h});
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {inter, h});
    add(p + "mlp.up_proj.weight", {inter, h});
    add(p + "mlp.down_proj.weight", {h, inter});
  }
  add("model.norm.weight", {h});
  if (!config.tie_word_embeddings) add("lm_head.weight", {config.vocab_size, h});
  return tensors;
}

const std::vector<float>& ValuesOf(const std::vector<HfTensor>& tensors, const std::string& name) {
  for (const HfTensor& t : tensors) {
    if (t.name == name) return t.values;
  }
  ADD_FAILURE() << "no tensor " << name;
  static const std::vector<float> kEmpty;
  return kEmpty;
}

// The values of a typed weight, dequantized.
std::vector<float> F(const Tensor& t) { return TensorToFloats(t); }
std::vector<float> F(const LinearWeight& w) { return w.ToFloats(); }

std::vector<float> Concat(const std::vector<const std::vector<float>*>& parts) {
  std::vector<float> out;
  for (const auto* part : parts) out.insert(out.end(), part->begin(), part->end());
  return out;
}

class ModelWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/pagoda_mw_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes config.json and the tensors into `num_shards` files (with an index when > 1).
  void Write(const ModelConfig& config, const std::vector<HfTensor>& tensors,
             SafetensorsDType dtype = SafetensorsDType::kF32, int num_shards = 1) {
    ASSERT_TRUE(WriteStringToFile(dir_ + "/config.json", config.ToJson()).ok());
    std::vector<std::vector<TensorToWrite>> shards(num_shards);
    std::string weight_map;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const size_t shard = i * num_shards / tensors.size();
      shards[shard].push_back({tensors[i].name, dtype, tensors[i].shape, tensors[i].values, {}});
      absl::StrAppend(&weight_map, weight_map.empty() ? "" : ",", "\"", tensors[i].name, "\": \"",
                      ShardName(shard, num_shards), "\"");
    }
    for (int s = 0; s < num_shards; ++s) {
      ASSERT_TRUE(WriteSafetensors(dir_ + "/" + ShardName(s, num_shards), shards[s]).ok());
    }
    if (num_shards > 1) {
      ASSERT_TRUE(WriteStringToFile(dir_ + "/model.safetensors.index.json",
                                    absl::StrCat("{\"weight_map\": {", weight_map, "}}"))
                      .ok());
    }
  }

  static std::string ShardName(size_t shard, int num_shards) {
    if (num_shards == 1) return "model.safetensors";
    return absl::StrCat("model-0000", shard + 1, "-of-0000", num_shards, ".safetensors");
  }

  absl::Status LoadError(const ModelConfig& config) {
    auto weights = LoadModelWeights(config, dir_);
    EXPECT_FALSE(weights.ok());
    return weights.ok() ? absl::OkStatus() : weights.status();
  }

  std::string dir_;
};

void ExpectFused(const ModelConfig& config, const std::vector<HfTensor>& tensors,
                 const ModelWeights& weights) {
  EXPECT_EQ(F(weights.embed_tokens), ValuesOf(tensors, "model.embed_tokens.weight"));
  EXPECT_EQ(F(weights.norm), ValuesOf(tensors, "model.norm.weight"));
  ASSERT_EQ(weights.layers.size(), static_cast<size_t>(config.num_hidden_layers));
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    auto v = [&](const std::string& name) { return &ValuesOf(tensors, p + name); };
    const LayerWeights& layer = weights.layers[l];
    EXPECT_EQ(F(layer.input_layernorm), *v("input_layernorm.weight"));
    EXPECT_EQ(F(layer.qkv_proj), Concat({v("self_attn.q_proj.weight"), v("self_attn.k_proj.weight"),
                                         v("self_attn.v_proj.weight")}));
    EXPECT_EQ(F(layer.o_proj), *v("self_attn.o_proj.weight"));
    EXPECT_EQ(F(layer.post_attention_layernorm), *v("post_attention_layernorm.weight"));
    EXPECT_EQ(F(layer.gate_up_proj), Concat({v("mlp.gate_proj.weight"), v("mlp.up_proj.weight")}));
    EXPECT_EQ(F(layer.down_proj), *v("mlp.down_proj.weight"));
    if (config.attention_bias) {
      EXPECT_EQ(F(layer.qkv_bias), Concat({v("self_attn.q_proj.bias"), v("self_attn.k_proj.bias"),
                                           v("self_attn.v_proj.bias")}));
    } else {
      EXPECT_TRUE(layer.qkv_bias.empty());
    }
    if (config.o_proj_bias) {
      EXPECT_EQ(F(layer.o_bias), *v("self_attn.o_proj.bias"));
    } else {
      EXPECT_TRUE(layer.o_bias.empty());
    }
  }
  if (config.tie_word_embeddings) {
    EXPECT_TRUE(weights.lm_head.empty());
    EXPECT_EQ(&weights.lm_head_or_embedding(), &weights.embed_tokens);
  } else {
    EXPECT_EQ(F(weights.lm_head), ValuesOf(tensors, "lm_head.weight"));
  }
}

TEST_F(ModelWeightsTest, LoadsAndFusesF32) {
  const ModelConfig config = TinyConfig();
  const std::vector<HfTensor> tensors = HfTensors(config);
  Write(config, tensors);
  auto weights = LoadModelWeights(config, dir_);
  ASSERT_TRUE(weights.ok()) << weights.status();
  ExpectFused(config, tensors, *weights);
  // Per layer: 2 norms (8) + qkv (8+4+4)*8 + o 8*8 + gate_up 24*8 + down 8*12; plus embed,
  // lm_head 16*8 each and the final norm 8.
  const int64_t per_layer = 2 * 8 + 16 * 8 + 64 + 24 * 8 + 96;
  EXPECT_EQ(weights->num_bytes(), 4 * (2 * per_layer + 2 * 128 + 8));
}

TEST_F(ModelWeightsTest, LoadsF16AndBF16WithBiasesFromShards) {
  ModelConfig config = TinyConfig();
  config.architecture = "Qwen2ForCausalLM";
  config.attention_bias = true;
  config.tie_word_embeddings = true;
  const std::vector<HfTensor> tensors = HfTensors(config);
  for (SafetensorsDType dtype : {SafetensorsDType::kF16, SafetensorsDType::kBF16}) {
    std::filesystem::remove(dir_ + "/model.safetensors");
    Write(config, tensors, dtype, /*num_shards=*/3);
    auto weights = LoadModelWeights(config, dir_);
    ASSERT_TRUE(weights.ok()) << weights.status();
    ExpectFused(config, tensors, *weights);
  }
}

// --dtype: projections, embeddings and the LM head are kept in the requested type (auto: the
// checkpoint's torch_dtype), norms and biases in fp32; a bfloat16 copy takes half the bytes.
TEST_F(ModelWeightsTest, KeepsTheRequestedTypeAndAutoFollowsTorchDType) {
  ModelConfig config = TinyConfig();
  config.attention_bias = true;
  const std::vector<HfTensor> tensors = HfTensors(config);
  Write(config, tensors, SafetensorsDType::kBF16);
  auto f32 = LoadModelWeights(config, dir_);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ(f32->layers[0].qkv_proj.parts[0].dtype(), DType::kF32);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    auto typed = LoadModelWeights(config, dir_, {}, {.dtype = dtype});
    ASSERT_TRUE(typed.ok()) << typed.status();
    ExpectFused(config, tensors, *typed);  // the values are exact in both 16-bit types
    const LayerWeights& layer = typed->layers[1];
    for (const LinearWeight* w :
         {&layer.qkv_proj, &layer.o_proj, &layer.gate_up_proj, &layer.down_proj}) {
      ASSERT_EQ(w->parts.size(), 1u);
      EXPECT_EQ(w->parts[0].dtype(), dtype);
    }
    EXPECT_EQ(typed->embed_tokens.dtype(), dtype);
    EXPECT_EQ(typed->lm_head.dtype(), dtype);
    EXPECT_EQ(layer.input_layernorm.dtype(), DType::kF32);
    EXPECT_EQ(layer.qkv_bias.dtype(), DType::kF32);
    // Everything but the 2 * 2 + 1 norms of 8 and the qkv biases (16 per layer) halves.
    const int64_t fp32_only = (5 * 8 + 2 * 16) * 4;
    EXPECT_EQ(typed->num_bytes() - fp32_only, (f32->num_bytes() - fp32_only) / 2);
  }
  config.torch_dtype = DType::kBF16;
  ASSERT_TRUE(WriteStringToFile(dir_ + "/config.json", config.ToJson()).ok());
  auto automatic = LoadModelWeights(config, dir_);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->layers[0].down_proj.parts[0].dtype(), DType::kBF16);
  EXPECT_EQ(automatic->embed_tokens.dtype(), DType::kBF16);
  const absl::Status quantized =
      LoadModelWeights(config, dir_, {}, {.dtype = DType::kQ8_0}).status();
  EXPECT_EQ(quantized.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(quantized.message()), HasSubstr("float32, float16 or bfloat16"));
}

TEST(DummyModelWeights, AreStoredInTheRequestedTypeAsRoundedFloat32Values) {
  const ModelConfig config = TinyConfig();
  const ModelWeights f32 = DummyModelWeights(config, 7);
  const ModelWeights bf16 = DummyModelWeights(config, 7, {}, {.dtype = DType::kBF16});
  EXPECT_EQ(bf16.layers[0].gate_up_proj.parts[0].dtype(), DType::kBF16);
  EXPECT_EQ(bf16.layers[0].input_layernorm.dtype(), DType::kF32);
  const std::vector<float> a = F(f32.layers[0].gate_up_proj), b = F(bf16.layers[0].gate_up_proj);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], std::abs(a[i]) / 128) << i;
}

// What the device gets of each weight type (CopyModelWeightsTo's per-tensor rule, on the host
// here): F32, F16 and BF16 bytes as they are; Q8_0 dequantized and rounded to nearest-even BF16,
// against the values Dequantize gives and safetensors' BF16 rounding.
TEST(DeviceWeightTensor, KeepsTheFloatTypesAndTurnsQuantizedBlocksIntoBf16) {
  std::vector<float> values(2 * 64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.37f * i) * 3.0f;
  for (const DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    absl::StatusOr<Tensor> stored = Tensor::Zeros(dtype, {2, 64});
    ASSERT_TRUE(stored.ok()) << stored.status();
    ASSERT_TRUE(kernels::Quantize({.dtype = dtype,
                                   .src = values.data(),
                                   .dst = stored->mutable_data(),
                                   .num_elements = 128})
                    .ok());
    absl::StatusOr<Tensor> on_device = DeviceWeightTensor(*stored, Device::kCpu);
    ASSERT_TRUE(on_device.ok()) << on_device.status();
    EXPECT_EQ(on_device->shape(), stored->shape());
    const std::vector<float> dequantized = TensorToFloats(*stored);
    if (dtype == DType::kQ8_0) {
      ASSERT_EQ(on_device->dtype(), DType::kBF16);
      const uint16_t* bits = on_device->data_as<uint16_t>();
      for (size_t i = 0; i < dequantized.size(); ++i) {
        EXPECT_EQ(bits[i], FloatToBFloat16(dequantized[i])) << i;
      }
    } else {
      ASSERT_EQ(on_device->dtype(), dtype);
      ASSERT_EQ(on_device->num_bytes(), stored->num_bytes());
      EXPECT_EQ(std::memcmp(on_device->data(), stored->data(), stored->num_bytes()), 0);
    }
  }
  absl::StatusOr<Tensor> empty = DeviceWeightTensor(Tensor(), Device::kCpu);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// CopyModelWeightsTo on the host shares every tensor's storage (nothing copied).
TEST(CopyModelWeightsTo, TheCpuSharesTheStorage) {
  ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.vocab_size = 32;
  config.hidden_size = 16;
  config.intermediate_size = 24;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 1;
  config.head_dim = 8;
  const ModelWeights weights = DummyModelWeights(config, /*seed=*/1);
  absl::StatusOr<ModelWeights> copy = CopyModelWeightsTo(weights, Device::kCpu);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->embed_tokens.data(), weights.embed_tokens.data());
  EXPECT_EQ(copy->layers[0].qkv_proj.parts[0].data(), weights.layers[0].qkv_proj.parts[0].data());
}

TEST_F(ModelWeightsTest, LlamaAttentionBiasIncludesOProj) {
  ModelConfig config = TinyConfig();
  config.attention_bias = true;
  config.o_proj_bias = true;
  const std::vector<HfTensor> tensors = HfTensors(config);
  Write(config, tensors, SafetensorsDType::kBF16);
  auto weights = LoadModelWeights(config, dir_);
  ASSERT_TRUE(weights.ok()) << weights.status();
  ExpectFused(config, tensors, *weights);
}

TEST_F(ModelWeightsTest, TiedModelIgnoresStrayLmHeadAndRotaryBuffers) {
  ModelConfig config = TinyConfig();
  config.tie_word_embeddings = true;
  std::vector<HfTensor> tensors = HfTensors(config);
  tensors.push_back({"lm_head.weight", {16, 8}, std::vector<float>(128, 3.0f)});
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {1}, {1.0f}});
  Write(config, tensors);
  auto weights = LoadModelWeights(config, dir_);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(weights->lm_head.empty());
  EXPECT_EQ(F(weights->embed_tokens), ValuesOf(tensors, "model.embed_tokens.weight"));
}

TEST_F(ModelWeightsTest, MissingTensorIsNamed) {
  const ModelConfig config = TinyConfig();
  std::vector<HfTensor> tensors = HfTensors(config);
  std::erase_if(tensors,
                [](const HfTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  Write(config, tensors);
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("model.layers.1.mlp.up_proj.weight"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(dir_));
}

TEST_F(ModelWeightsTest, UntiedModelNeedsLmHead) {
  ModelConfig config = TinyConfig();
  config.tie_word_embeddings = true;
  Write(config, HfTensors(config));
  config.tie_word_embeddings = false;
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("lm_head.weight"));
}

TEST_F(ModelWeightsTest, ShapeDisagreeingWithConfigNamesShardTensorAndShapes) {
  const ModelConfig config = TinyConfig();
  std::vector<HfTensor> tensors = HfTensors(config);
  for (HfTensor& t : tensors) {
    if (t.name == "model.layers.1.self_attn.k_proj.weight") {
      t.shape = {8, 8};  // as if num_key_value_heads were 4
      t.values.assign(64, 0.5f);
    }
  }
  Write(config, tensors, SafetensorsDType::kF32, /*num_shards=*/2);
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr(dir_ + "/model-00002-of-00002.safetensors"));
  EXPECT_THAT(message, HasSubstr("model.layers.1.self_attn.k_proj.weight"));
  EXPECT_THAT(message, HasSubstr("[8, 8]"));
  EXPECT_THAT(message, HasSubstr("[4, 8]"));
  EXPECT_THAT(message, HasSubstr("config.json"));
}

TEST_F(ModelWeightsTest, UnsupportedDTypeIsNamed) {
  const ModelConfig config = TinyConfig();
  Write(config, HfTensors(config));
  // Replace model.norm.weight by an I32 tensor of the right shape.
  std::vector<HfTensor> tensors = HfTensors(config);
  std::vector<TensorToWrite> to_write;
  const std::vector<int32_t> ints(8, 1);
  for (const HfTensor& t : tensors) {
    if (t.name == "model.norm.weight") {
      to_write.push_back({t.name,
                          SafetensorsDType::kI32,
                          t.shape,
                          {},
                          std::as_bytes(std::span<const int32_t>(ints))});
    } else {
      to_write.push_back({t.name, SafetensorsDType::kF32, t.shape, t.values, {}});
    }
  }
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model.safetensors", to_write).ok());
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("model.norm.weight"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("I32"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(dir_ + "/model.safetensors"));
}

TEST_F(ModelWeightsTest, UnexpectedTensorIsAnError) {
  const ModelConfig config = TinyConfig();
  std::vector<HfTensor> tensors = HfTensors(config);
  tensors.push_back({"model.layers.2.input_layernorm.weight", {8}, std::vector<float>(8, 1.0f)});
  Write(config, tensors);
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("model.layers.2.input_layernorm.weight"));
}

TEST_F(ModelWeightsTest, CorruptFileAndMissingCheckpointAreErrors) {
  const ModelConfig config = TinyConfig();
  EXPECT_EQ(LoadError(config).code(), absl::StatusCode::kNotFound);
  Write(config, HfTensors(config));
  const std::string path = dir_ + "/model.safetensors";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const absl::Status status = LoadError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST(DummyModelWeights, IsDeterministicAndShapedLikeTheConfig) {
  ModelConfig config = TinyConfig();
  config.attention_bias = true;
  config.o_proj_bias = true;
  config.intermediate_size = 70000;  // several PRNG chunks per matrix
  const ModelWeights a = DummyModelWeights(config, 7);
  const ModelWeights b = DummyModelWeights(config, 7);
  const ModelWeights c = DummyModelWeights(config, 8);
  EXPECT_EQ(F(a.embed_tokens), F(b.embed_tokens));
  EXPECT_EQ(F(a.layers[1].gate_up_proj), F(b.layers[1].gate_up_proj));
  EXPECT_NE(F(a.layers[1].gate_up_proj), F(c.layers[1].gate_up_proj));
  EXPECT_NE(F(a.layers[0].qkv_proj), F(a.layers[1].qkv_proj));

  ASSERT_EQ(a.layers.size(), 2u);
  EXPECT_EQ(F(a.embed_tokens).size(), 16u * 8);
  EXPECT_EQ(F(a.lm_head).size(), 16u * 8);
  EXPECT_EQ(F(a.norm).size(), 8u);
  EXPECT_THAT(F(a.norm), Each(1.0f));
  const LayerWeights& layer = a.layers[0];
  EXPECT_EQ(F(layer.qkv_proj).size(), 16u * 8);
  EXPECT_EQ(F(layer.qkv_bias).size(), 16u);
  EXPECT_EQ(F(layer.o_proj).size(), 8u * 8);
  EXPECT_EQ(F(layer.o_bias).size(), 8u);
  EXPECT_EQ(F(layer.gate_up_proj).size(), 2u * 70000 * 8);
  EXPECT_EQ(F(layer.down_proj).size(), 8u * 70000);
  EXPECT_THAT(F(layer.input_layernorm), Each(1.0f));
  EXPECT_THAT(F(layer.post_attention_layernorm), Each(1.0f));

  auto max_abs = [](const std::vector<float>& v) {
    float m = 0;
    for (float x : v) m = std::max(m, std::fabs(x));
    return m;
  };
  const float hidden_bound = 1.0f / std::sqrt(8.0f);
  EXPECT_LE(max_abs(F(layer.qkv_proj)), hidden_bound);
  EXPECT_LE(max_abs(F(layer.gate_up_proj)), hidden_bound);
  EXPECT_GT(max_abs(F(layer.gate_up_proj)), 0.9f * hidden_bound);
  EXPECT_LE(max_abs(F(layer.down_proj)), 1.0f / std::sqrt(70000.0f));
  EXPECT_LE(max_abs(F(a.embed_tokens)), 0.1f);
  EXPECT_GT(max_abs(F(a.embed_tokens)), 0.05f);
  double mean = 0;
  const std::vector<float> gate_up = F(layer.gate_up_proj);
  for (float x : gate_up) mean += x;
  mean /= static_cast<double>(gate_up.size());
  EXPECT_NEAR(mean, 0.0, 0.01 * hidden_bound);

  config.tie_word_embeddings = true;
  const ModelWeights tied = DummyModelWeights(config, 7);
  EXPECT_TRUE(tied.lm_head.empty());
  EXPECT_EQ(tied.num_bytes(), a.num_bytes() - 16 * 8 * 4);
}

}  // namespace
}  // namespace pagoda
