#include "common/formats/gguf_model_config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

// absl::StrCat takes absl::string_view, which is not std::string_view in the packaged abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct GgufArchitecture {
  std::string_view gguf_name;
  std::string_view hf_name;
  bool interleaved_rope;  // Q/K rows permuted by the converter for GGML's adjacent-pair RoPE
};
constexpr GgufArchitecture kArchitectures[] = {
    {"llama", "LlamaForCausalLM", true},
    {"qwen2", "Qwen2ForCausalLM", false},
    {"qwen3", "Qwen3ForCausalLM", false},  // not permuted either: the converter's Qwen2Model
    {"phi3", "Phi3ForCausalLM", false},    // nor Phi3MiniModel's fused attn_qkv (NEOX RoPE)
    {"qwen3moe", "Qwen3MoeForCausalLM", false},
    {"gemma2", "Gemma2ForCausalLM", false},  // GGML runs Gemma with NEOX (rotate-half) RoPE
    {"gemma3", "Gemma3ForCausalLM", false},
};

const GgufArchitecture* FindArchitecture(const GgufFile& file) {
  const GgufValue* arch = file.FindMetadata("general.architecture");
  if (arch == nullptr || arch->type != GgufType::kString) return nullptr;
  for (const GgufArchitecture& a : kArchitectures) {
    if (arch->string == a.gguf_name) return &a;
  }
  return nullptr;
}

// Bounds on sizes that later allocations multiply out (the same as ModelConfig::FromJson's).
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxLayers = 100000;
constexpr int64_t kMaxHeads = int64_t{1} << 20;

// Typed reads of one architecture's keys; errors name the file and the key.
class KeyReader {
 public:
  KeyReader(const GgufFile& file, std::string_view arch) : file_(file), arch_(arch) {}

  std::string Key(std::string_view suffix) const {
    return absl::StrCat(Av(arch_), ".", Av(suffix));
  }

  absl::Status Error(std::string_view key, std::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_.source(), ": metadata key \"", Av(key), "\" ", Av(problem)));
  }
  absl::Status Unsupported(std::string_view key, std::string_view problem) const {
    return absl::UnimplementedError(
        absl::StrCat(file_.source(), ": metadata key \"", Av(key), "\" ", Av(problem)));
  }

  // An unsigned integer in [1, max]; `fallback` when absent (NotFound when there is none).
  absl::StatusOr<int64_t> PositiveInt(const std::string& key, int64_t max,
                                      std::optional<int64_t> fallback = std::nullopt) const {
    const GgufValue* value = file_.FindMetadata(key);
    if (value == nullptr && fallback) return *fallback;
    if (value != nullptr && value->type == GgufType::kArray) {
      return Unsupported(key, "is an array: per-layer values are not supported");
    }
    ASSIGN_OR_RETURN(uint64_t v, file_.GetU64(key));
    if (v == 0 || v > static_cast<uint64_t>(max)) {
      return Error(key, absl::StrCat("is ", v, ", expected 1 to ", max));
    }
    return static_cast<int64_t>(v);
  }
  absl::StatusOr<double> PositiveFloat(const std::string& key,
                                       std::optional<double> fallback = std::nullopt) const {
    if (file_.FindMetadata(key) == nullptr && fallback) return *fallback;
    ASSIGN_OR_RETURN(float v, file_.GetF32(key));
    if (!std::isfinite(v) || v <= 0) return Error(key, absl::StrCat("is ", v, ", not positive"));
    return v;
  }
  // A token id below `vocab_size`, or nullopt when absent.
  absl::StatusOr<std::optional<int64_t>> TokenId(const std::string& key, int64_t vocab_size) const {
    if (file_.FindMetadata(key) == nullptr) return std::optional<int64_t>();
    ASSIGN_OR_RETURN(uint32_t id, file_.GetU32(key));
    if (id >= vocab_size) {
      return Error(key, absl::StrCat("is ", id, ", outside the vocabulary of ", vocab_size));
    }
    return std::optional<int64_t>(id);
  }

 private:
  const GgufFile& file_;
  std::string_view arch_;
};

// llama.cpp's converter: the divisor of each rotary frequency under Llama 3 scaling.
std::vector<double> Llama3Divisors(const Llama3RopeScaling& s, double base, int64_t head_dim) {
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  std::vector<double> out;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = 1.0 / std::pow(base, static_cast<double>(2 * i) / head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_freq_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_freq_wavelen) {
      out.push_back(s.factor);
    } else {
      const double smooth =
          (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out.push_back(1.0 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

bool Reproduces(const Llama3RopeScaling& s, std::span<const float> divisors, double base,
                int64_t head_dim) {
  if (!(s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor)) return false;
  const std::vector<double> expected = Llama3Divisors(s, base, head_dim);
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::fabs(expected[i] - divisors[i]) > 1e-4 * std::max(1.0, std::fabs(expected[i]))) {
      return false;
    }
  }
  return true;
}

// Llama 3 scaling from rope_freqs.weight. The divisors only depend on original_context/low and
// original_context/high, so with the original context fixed, low and high follow from a line
// fit of the smoothly scaled band: smooth = (original_context / wavelen - low) / (high - low).
absl::StatusOr<Llama3RopeScaling> Llama3ScalingFromTensor(const GgufFile& file,
                                                          const GgufTensor& tensor, double base,
                                                          int64_t head_dim,
                                                          int64_t original_context) {
  const std::string where = absl::StrCat(file.source(), ": tensor \"", Av(tensor.name), "\"");
  if (tensor.dtype != DType::kF32 || tensor.shape.size() != 1 || tensor.shape[0] != head_dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": expected ", head_dim / 2, " float32 RoPE frequency divisors (head_dim / 2)"));
  }
  std::vector<float> divisors(static_cast<size_t>(head_dim / 2));
  std::memcpy(divisors.data(), tensor.data.data(), divisors.size() * sizeof(float));
  for (float d : divisors) {
    if (!std::isfinite(d) || d < 1.0f) {
      return absl::UnimplementedError(absl::StrCat(where, ": RoPE frequency divisor ", d,
                                                   " is not Llama 3 scaling (finite, >= 1)"));
    }
  }
  Llama3RopeScaling scaling;
  scaling.factor = *std::max_element(divisors.begin(), divisors.end());
  if (scaling.factor == 1.0) return Llama3RopeScaling{};  // all ones: no scaling
  scaling.original_max_position_embeddings = original_context;

  std::vector<Llama3RopeScaling> candidates;
  // Least squares x = low + smooth * (high - low) over the divisors strictly between the bands.
  double n = 0, sum_s = 0, sum_x = 0, sum_ss = 0, sum_sx = 0;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double d = divisors[i];
    if (d <= 1.0 + 1e-6 || d >= scaling.factor * (1.0 - 1e-6)) continue;
    const double smooth = (1.0 / d - 1.0 / scaling.factor) / (1.0 - 1.0 / scaling.factor);
    const double freq = 1.0 / std::pow(base, static_cast<double>(2 * i) / head_dim);
    const double x = original_context * freq / (2 * std::numbers::pi);
    n += 1;
    sum_s += smooth;
    sum_x += x;
    sum_ss += smooth * smooth;
    sum_sx += smooth * x;
  }
  if (n >= 2 && n * sum_ss - sum_s * sum_s > 0) {
    const double slope = (n * sum_sx - sum_s * sum_x) / (n * sum_ss - sum_s * sum_s);
    Llama3RopeScaling fit = scaling;
    fit.low_freq_factor = (sum_x - slope * sum_s) / n;
    fit.high_freq_factor = fit.low_freq_factor + slope;
    candidates.push_back(fit);
  }
  candidates.push_back(scaling);  // Meta's values (low 1, high 4): the struct's defaults
  for (const Llama3RopeScaling& candidate : candidates) {
    if (Reproduces(candidate, divisors, base, head_dim)) return candidate;
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": per-frequency RoPE divisors that are not Llama 3 scaling (factor ",
                   scaling.factor, ") are not supported"));
}

DType DTypeOfFileType(const GgufFile& file) {
  const GgufValue* file_type = file.FindMetadata("general.file_type");
  if (file_type == nullptr || !file_type->AsUnsigned()) return DType::kF32;
  switch (*file_type->AsUnsigned()) {
    case 1:
      return DType::kF16;
    case 32:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}

// One of Phi-3's LongRoPE factor tensors: [rotary_dim / 2] positive float32 values.
absl::StatusOr<std::vector<double>> ReadRopeFactors(const GgufFile& file, const GgufTensor& tensor,
                                                    int64_t rotary_dim) {
  if (tensor.dtype != DType::kF32 || tensor.shape.size() != 1 ||
      tensor.shape[0] != rotary_dim / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.source(), ": tensor \"", Av(tensor.name), "\" must hold ", rotary_dim / 2,
                     " float32 LongRoPE factors (rope.dimension_count / 2)"));
  }
  std::vector<float> values(static_cast<size_t>(rotary_dim / 2));
  std::memcpy(values.data(), tensor.data.data(), values.size() * sizeof(float));
  std::vector<double> factors;
  for (float v : values) {
    if (!std::isfinite(v) || v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(file.source(), ": tensor \"", Av(tensor.name),
                                                     "\" holds ", v,
                                                     "; LongRoPE factors must be positive"));
    }
    factors.push_back(v);
  }
  return factors;
}

// llama.cpp's converter (Phi3MiniModel) writes LongRoPE as the tensors rope_factors_long/short
// and the keys rope.scaling.original_context_length and rope.scaling.attn_factor.
absl::Status ReadPhi3LongRope(const GgufFile& file, const KeyReader& keys, ModelConfig& out) {
  const GgufTensor* long_factors = file.FindTensor("rope_factors_long.weight");
  const GgufTensor* short_factors = file.FindTensor("rope_factors_short.weight");
  if (long_factors == nullptr && short_factors == nullptr) return absl::OkStatus();
  if (long_factors == nullptr || short_factors == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.source(), ": tensor \"",
        long_factors == nullptr ? "rope_factors_long.weight" : "rope_factors_short.weight",
        "\" is missing (LongRoPE needs both factor tensors)"));
  }
  LongRopeScaling& longrope = out.longrope;
  ASSIGN_OR_RETURN(longrope.long_factor, ReadRopeFactors(file, *long_factors, out.rotated_dims()));
  ASSIGN_OR_RETURN(longrope.short_factor,
                   ReadRopeFactors(file, *short_factors, out.rotated_dims()));
  ASSIGN_OR_RETURN(longrope.original_max_position_embeddings,
                   keys.PositiveInt(keys.Key("rope.scaling.original_context_length"), kMaxDim));
  const double scale = static_cast<double>(out.max_position_embeddings) /
                       static_cast<double>(longrope.original_max_position_embeddings);
  const double computed =
      scale <= 1.0
          ? 1.0
          : std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(
                                                  longrope.original_max_position_embeddings)));
  ASSIGN_OR_RETURN(longrope.attention_factor,
                   keys.PositiveFloat(keys.Key("rope.scaling.attn_factor"), computed));
  return absl::OkStatus();
}

// The mixture of experts as llama.cpp's converter writes it: {arch}.expert_count (Mixtral's
// num_local_experts, Qwen3-MoE's num_experts), expert_used_count (num_experts_per_tok) and, for
// qwen3moe, expert_feed_forward_length (moe_intermediate_size; a `llama` file's experts are its
// feed_forward_length wide: Mixtral). The converter writes neither Qwen3-MoE's norm_topk_prob
// nor its dense layers: llama.cpp's qwen3moe graph renormalises the top k and makes every layer
// sparse, and so does this config, unless {arch}.expert_weights_norm says otherwise.
absl::Status ReadExperts(const GgufFile& file, const KeyReader& keys, std::string_view arch,
                         ModelConfig& out) {
  const std::string count_key = keys.Key("expert_count");
  const bool moe_arch = arch == "qwen3moe";
  if (file.FindMetadata(count_key) == nullptr) {
    if (moe_arch) return keys.Error(count_key, "is required for a qwen3moe file");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(uint64_t experts, file.GetU64(count_key));
  if (experts == 0) {
    if (moe_arch) return keys.Error(count_key, "is 0: a qwen3moe file needs experts");
    return absl::OkStatus();
  }
  if (arch != "llama" && !moe_arch) {
    return keys.Unsupported(
        count_key, absl::StrCat("is set: mixture-of-experts is not supported for ", Av(arch),
                                " (supported: llama, qwen3moe)"));
  }
  ASSIGN_OR_RETURN(out.num_experts, keys.PositiveInt(count_key, 65536));
  const std::string used_key = keys.Key("expert_used_count");
  ASSIGN_OR_RETURN(out.num_experts_per_tok, keys.PositiveInt(used_key, out.num_experts));
  out.moe_intermediate_size = out.intermediate_size;
  if (moe_arch || file.FindMetadata(keys.Key("expert_feed_forward_length")) != nullptr) {
    ASSIGN_OR_RETURN(out.moe_intermediate_size,
                     keys.PositiveInt(keys.Key("expert_feed_forward_length"), kMaxDim));
  }
  out.norm_topk_prob = true;
  if (const std::string key = keys.Key("expert_weights_norm"); file.FindMetadata(key) != nullptr) {
    ASSIGN_OR_RETURN(out.norm_topk_prob, file.GetBool(key));
  }
  if (arch == "llama") out.architecture = "MixtralForCausalLM";
  return absl::OkStatus();
}

// Gemma 2 / 3 as llama.cpp reads what its converter writes (src/models/gemma2.cpp, gemma3.cpp):
//   - norm weights are stored as 1 + w (the converter adds the one), so they are plain RMSNorm
//     weights here; GELU-tanh MLP; Gemma 3's q/k norms (attn_{q,k}_norm);
//   - {arch}.attn_logit_softcapping / final_logit_softcapping: Gemma 2 defaults 50 / 30 when
//     absent; Gemma 3 has no attention soft-cap and its final one only when the key is set;
//   - {arch}.attention.sliding_window: Gemma 2 always slides (4096 when absent); Gemma 3 only
//     when the key is there and positive. Which layers: {arch}.attention.sliding_window_pattern,
//     an array of bools (one per layer) or a period n (layer i slides iff i % n < n - 1), else
//     the period 2 (Gemma 2) or 6 (Gemma 3);
//   - {arch}.rope.freq_base_swa: the sliding layers' RoPE base (Gemma 2: rope.freq_base; Gemma 3:
//     10000 when absent); Gemma 3's rope.scaling.factor (or rope.scale_linear): linear scaling of
//     its global layers only (the type, when given, must be linear or none);
//   - the attention scale is not in the file: llama.cpp takes 1/sqrt(hidden / heads) for the 27B
//     models (46 layers for Gemma 2, 62 for Gemma 3; their query_pre_attn_scalar) and
//     1/sqrt(head_dim) otherwise.
absl::Status ReadGemma(const GgufFile& file, const KeyReader& keys, bool gemma3, ModelConfig& out) {
  out.hidden_act = MlpActivation::kGeluTanh;
  out.qk_norm = gemma3;  // blk.N.attn_{q,k}_norm, required by the weight plan
  const bool is_27b = out.num_hidden_layers == (gemma3 ? 62 : 46);
  out.query_pre_attn_scalar = is_27b
                                  ? static_cast<double>(out.hidden_size / out.num_attention_heads)
                                  : static_cast<double>(out.head_dim);
  ASSIGN_OR_RETURN(out.final_logit_softcap,
                   keys.PositiveFloat(keys.Key("final_logit_softcapping"),
                                      gemma3 ? std::optional<double>(0.0) : 30.0));
  if (!gemma3) {
    ASSIGN_OR_RETURN(out.attn_logit_softcap,
                     keys.PositiveFloat(keys.Key("attn_logit_softcapping"), 50.0));
  }
  ASSIGN_OR_RETURN(out.rope_local_theta, keys.PositiveFloat(keys.Key("rope.freq_base_swa"),
                                                            gemma3 ? 10000.0 : out.rope_theta));
  if (gemma3) {
    // llama.cpp: the type defaults to linear, and the factor (rope.scaling.factor, else the old
    // rope.scale_linear) scales the positions of the global layers whatever "none" says.
    const std::string type_key = keys.Key("rope.scaling.type");
    if (file.FindMetadata(type_key) != nullptr) {
      ASSIGN_OR_RETURN(std::string_view type, file.GetString(type_key));
      if (type != "linear" && type != "none") {
        return keys.Unsupported(
            type_key, absl::StrCat("is \"", Av(type), "\": only linear scaling is supported"));
      }
    }
    for (const char* suffix : {"rope.scaling.factor", "rope.scale_linear"}) {
      const std::string factor_key = keys.Key(suffix);
      if (file.FindMetadata(factor_key) == nullptr) continue;
      ASSIGN_OR_RETURN(out.rope_linear_factor, keys.PositiveFloat(factor_key));
      if (out.rope_linear_factor == 1.0) out.rope_linear_factor = 0.0;
      break;
    }
  }

  const std::string window_key = keys.Key("attention.sliding_window");
  int64_t window = gemma3 ? 0 : 4096;
  if (file.FindMetadata(window_key) != nullptr) {
    ASSIGN_OR_RETURN(uint64_t w, file.GetU64(window_key));
    window = static_cast<int64_t>(std::min<uint64_t>(w, kMaxDim + 1));
  }
  if (window <= 0) return absl::OkStatus();
  if (window > out.max_position_embeddings) {
    return keys.Error(window_key,
                      absl::StrCat("(", window, ") exceeds ", keys.Key("context_length"), " (",
                                   out.max_position_embeddings, ")"));
  }
  out.sliding_window = window;
  const int64_t layers = out.num_hidden_layers;
  out.sliding_layers.assign(static_cast<size_t>(layers), false);
  const std::string pattern_key = keys.Key("attention.sliding_window_pattern");
  const GgufValue* pattern_value = file.FindMetadata(pattern_key);
  if (pattern_value != nullptr && pattern_value->type == GgufType::kArray) {
    const std::vector<GgufValue> flags = pattern_value->Elements();
    if (pattern_value->element_type != GgufType::kBool ||
        static_cast<int64_t>(flags.size()) != layers) {
      return keys.Error(pattern_key,
                        absl::StrCat("must be a number or ", layers, " booleans (one per layer)"));
    }
    for (int64_t i = 0; i < layers; ++i) {
      out.sliding_layers[static_cast<size_t>(i)] = flags[static_cast<size_t>(i)].bits != 0;
    }
    return absl::OkStatus();
  }
  uint64_t period = gemma3 ? 6 : 2;
  if (pattern_value != nullptr) {
    ASSIGN_OR_RETURN(period, file.GetU64(pattern_key));
  }
  // llama.cpp's set_swa_pattern: period 0 makes every layer slide.
  for (int64_t i = 0; i < layers; ++i) {
    const uint64_t u = static_cast<uint64_t>(i);
    out.sliding_layers[static_cast<size_t>(i)] = period == 0 || u % period < period - 1;
  }
  return absl::OkStatus();
}

}  // namespace

bool GgufRopeIsInterleaved(const GgufFile& file) {
  const GgufArchitecture* arch = FindArchitecture(file);
  return arch != nullptr && arch->interleaved_rope;
}

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file) {
  const std::string& src = file.source();
  ASSIGN_OR_RETURN(std::string_view arch_name, file.GetString("general.architecture"));
  const GgufArchitecture* arch = FindArchitecture(file);
  if (arch == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(src, ": metadata key \"general.architecture\" is \"", Av(arch_name),
                     "\", which is not supported (supported: llama, qwen2, qwen3, qwen3moe, phi3, "
                     "gemma2, gemma3)"));
  }
  const KeyReader keys(file, arch->gguf_name);
  ModelConfig out;
  out.architecture = std::string(arch->hf_name);

  ASSIGN_OR_RETURN(out.max_position_embeddings,
                   keys.PositiveInt(keys.Key("context_length"), kMaxDim));
  ASSIGN_OR_RETURN(out.hidden_size, keys.PositiveInt(keys.Key("embedding_length"), kMaxDim));
  ASSIGN_OR_RETURN(out.num_hidden_layers, keys.PositiveInt(keys.Key("block_count"), kMaxLayers));
  ASSIGN_OR_RETURN(out.intermediate_size,
                   keys.PositiveInt(keys.Key("feed_forward_length"), kMaxDim));
  const std::string heads_key = keys.Key("attention.head_count");
  const std::string kv_heads_key = keys.Key("attention.head_count_kv");
  ASSIGN_OR_RETURN(out.num_attention_heads, keys.PositiveInt(heads_key, kMaxHeads));
  ASSIGN_OR_RETURN(out.num_key_value_heads,
                   keys.PositiveInt(kv_heads_key, kMaxHeads, out.num_attention_heads));
  if (out.num_attention_heads % out.num_key_value_heads != 0) {
    return keys.Error(kv_heads_key, absl::StrCat("(", out.num_key_value_heads, ") must divide ",
                                                 heads_key, " (", out.num_attention_heads, ")"));
  }

  const std::string key_length = keys.Key("attention.key_length");
  if (file.FindMetadata(key_length) != nullptr) {
    ASSIGN_OR_RETURN(out.head_dim, keys.PositiveInt(key_length, kMaxHeads));
  } else if (out.hidden_size % out.num_attention_heads != 0) {
    return keys.Error(heads_key,
                      absl::StrCat("(", out.num_attention_heads, ") must divide ",
                                   keys.Key("embedding_length"), " (", out.hidden_size, ")"));
  } else {
    out.head_dim = out.hidden_size / out.num_attention_heads;
  }
  if (out.head_dim % 2 != 0) {
    return keys.Error(key_length, absl::StrCat("(head_dim ", out.head_dim, ") must be even"));
  }
  const std::string value_length = keys.Key("attention.value_length");
  ASSIGN_OR_RETURN(int64_t v_dim, keys.PositiveInt(value_length, kMaxHeads, out.head_dim));
  if (v_dim != out.head_dim) {
    return keys.Unsupported(value_length, absl::StrCat("(", v_dim, ") differs from head_dim (",
                                                       out.head_dim, "): not supported"));
  }
  const bool is_phi3 = arch->gguf_name == "phi3";
  const std::string rope_dims = keys.Key("rope.dimension_count");
  ASSIGN_OR_RETURN(int64_t rotary_dim, keys.PositiveInt(rope_dims, kMaxHeads, out.head_dim));
  if (rotary_dim != out.head_dim && !is_phi3) {
    return keys.Unsupported(rope_dims,
                            absl::StrCat("(", rotary_dim, ") differs from head_dim (", out.head_dim,
                                         "): partial rotary is only supported for phi3"));
  }
  if (rotary_dim > out.head_dim || rotary_dim % 2 != 0) {
    return keys.Error(
        rope_dims,
        absl::StrCat("(", rotary_dim, ") must be even and at most head_dim (", out.head_dim, ")"));
  }
  out.rotary_dim = rotary_dim < out.head_dim ? rotary_dim : 0;

  ASSIGN_OR_RETURN(out.rms_norm_eps,
                   keys.PositiveFloat(keys.Key("attention.layer_norm_rms_epsilon")));
  ASSIGN_OR_RETURN(out.rope_theta, keys.PositiveFloat(keys.Key("rope.freq_base"), 10000.0));

  // RoPE scaling: none, linear by 1 (the same), or Llama 3 divisors in rope_freqs.weight; Gemma 3
  // also linear (of its global layers, ReadGemma).
  const std::string scaling_type = keys.Key("rope.scaling.type");
  const std::string scaling_factor = keys.Key("rope.scaling.factor");
  if (file.FindMetadata(scaling_type) != nullptr && arch->gguf_name != "gemma3") {
    ASSIGN_OR_RETURN(std::string_view type, file.GetString(scaling_type));
    double factor = 1.0;
    if (file.FindMetadata(scaling_factor) != nullptr) {
      ASSIGN_OR_RETURN(factor, file.GetF64(scaling_factor));
    }
    if (type != "none" && !(type == "linear" && factor == 1.0)) {
      return keys.Unsupported(scaling_type,
                              absl::StrCat("is \"", Av(type), "\" (factor ", factor,
                                           "): only Llama 3 scaling (rope_freqs.weight) is "
                                           "supported"));
    }
  }
  if (const std::string key = keys.Key("rope.scale_linear");
      file.FindMetadata(key) != nullptr && arch->gguf_name != "gemma3") {
    ASSIGN_OR_RETURN(double factor, file.GetF64(key));
    if (factor != 1.0) return keys.Unsupported(key, "is not 1: linear scaling is not supported");
  }
  if (const GgufTensor* rope_freqs = file.FindTensor("rope_freqs.weight")) {
    if (!arch->interleaved_rope) {
      return absl::UnimplementedError(absl::StrCat(
          src,
          ": tensor \"rope_freqs.weight\" (RoPE frequency divisors) is only supported for "
          "llama"));
    }
    ASSIGN_OR_RETURN(
        int64_t original_context,
        keys.PositiveInt(keys.Key("rope.scaling.original_context_length"), kMaxDim, int64_t{8192}));
    ASSIGN_OR_RETURN(out.rope_scaling, Llama3ScalingFromTensor(file, *rope_freqs, out.rope_theta,
                                                               out.head_dim, original_context));
  }

  if (is_phi3) {
    RETURN_IF_ERROR(ReadPhi3LongRope(file, keys, out));
    // The converter writes the window always, 0 for none (Phi-4-mini); Phi-3-mini-4k has 2047,
    // every layer. A window that reaches the context changes nothing and is dropped.
    const std::string window_key = keys.Key("attention.sliding_window");
    if (file.FindMetadata(window_key) != nullptr) {
      ASSIGN_OR_RETURN(const uint64_t window, file.GetU64(window_key));
      if (window > 0 && window < static_cast<uint64_t>(out.max_position_embeddings)) {
        out.sliding_window = static_cast<int64_t>(window);
      }
    }
  } else {
    for (const char* name : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
      if (file.FindTensor(name) != nullptr) {
        return absl::UnimplementedError(absl::StrCat(
            src, ": tensor \"", name, "\" (LongRoPE factors) is only supported for phi3"));
      }
    }
  }

  // Vocabulary: the tokenizer's token list, else {arch}.vocab_size, else token_embd's rows.
  const GgufTensor* embed = file.FindTensor("token_embd.weight");
  if (file.FindMetadata("tokenizer.ggml.tokens") != nullptr) {
    ASSIGN_OR_RETURN(std::vector<std::string_view> tokens,
                     file.GetStringArray("tokenizer.ggml.tokens"));
    if (tokens.empty() || static_cast<int64_t>(tokens.size()) > kMaxDim) {
      return keys.Error("tokenizer.ggml.tokens",
                        absl::StrCat("holds ", tokens.size(), " tokens, expected 1 to ", kMaxDim));
    }
    out.vocab_size = static_cast<int64_t>(tokens.size());
  } else if (file.FindMetadata(keys.Key("vocab_size")) != nullptr) {
    ASSIGN_OR_RETURN(out.vocab_size, keys.PositiveInt(keys.Key("vocab_size"), kMaxDim));
  } else if (embed != nullptr && !embed->shape.empty() && embed->shape[0] > 0) {
    out.vocab_size = embed->shape[0];
  } else {
    return absl::NotFoundError(absl::StrCat(
        src, ": no vocabulary size: neither metadata key \"tokenizer.ggml.tokens\" nor \"",
        keys.Key("vocab_size"), "\" nor a tensor \"token_embd.weight\""));
  }
  if (embed != nullptr && (embed->shape.size() != 2 || embed->shape[0] != out.vocab_size ||
                           embed->shape[1] != out.hidden_size)) {
    std::vector<std::string> dims;
    for (int64_t d : embed->shape) dims.push_back(absl::StrCat(d));
    return absl::InvalidArgumentError(
        absl::StrCat(src, ": tensor \"token_embd.weight\" has shape [", absl::StrJoin(dims, ", "),
                     "], expected [vocab ", out.vocab_size, ", ", keys.Key("embedding_length"), " ",
                     out.hidden_size, "]"));
  }
  out.tie_word_embeddings = file.FindTensor("output.weight") == nullptr;

  ASSIGN_OR_RETURN(std::optional<int64_t> bos,
                   keys.TokenId("tokenizer.ggml.bos_token_id", out.vocab_size));
  out.bos_token_id = bos.value_or(-1);
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                          "tokenizer.ggml.eom_token_id"}) {
    ASSIGN_OR_RETURN(std::optional<int64_t> id, keys.TokenId(key, out.vocab_size));
    if (id && std::find(out.eos_token_ids.begin(), out.eos_token_ids.end(), *id) ==
                  out.eos_token_ids.end()) {
      out.eos_token_ids.push_back(*id);
    }
  }

  if (arch->gguf_name == "qwen2") {
    out.attention_bias = true;  // q/k/v biases, no o_proj bias, as in Hugging Face's Qwen2
    out.o_proj_bias = false;
  } else {
    out.attention_bias = file.FindTensor("blk.0.attn_q.bias") != nullptr;
    out.o_proj_bias = file.FindTensor("blk.0.attn_output.bias") != nullptr;
  }
  // Qwen3's per-head q/k RMSNorm: the weights are blk.N.attn_{q,k}_norm.weight, required by the
  // weight plan (a file without them fails to load naming the tensor).
  out.qk_norm = arch->gguf_name == "qwen3" || arch->gguf_name == "qwen3moe";
  out.fused_projections = is_phi3;  // blk.N.attn_qkv and the [gate; up] blk.N.ffn_up
  RETURN_IF_ERROR(ReadExperts(file, keys, arch->gguf_name, out));
  out.torch_dtype = DTypeOfFileType(file);
  if (arch->gguf_name == "gemma2" || arch->gguf_name == "gemma3") {
    RETURN_IF_ERROR(ReadGemma(file, keys, arch->gguf_name == "gemma3", out));
  }

  int64_t qkv_rows = 0, count = 0;
  const bool implausible =
      __builtin_mul_overflow(out.num_attention_heads + 2 * out.num_key_value_heads, out.head_dim,
                             &qkv_rows) ||
      __builtin_mul_overflow(qkv_rows, out.hidden_size, &count) || count > (int64_t{1} << 40) ||
      out.vocab_size * out.hidden_size > (int64_t{1} << 40) ||
      out.intermediate_size * out.hidden_size > (int64_t{1} << 39) ||
      out.num_experts * out.moe_intermediate_size * out.hidden_size > (int64_t{1} << 42);
  if (implausible) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": model sizes are implausibly large"));
  }
  return out;
}

}  // namespace pagoda
