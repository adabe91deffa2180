#include "common/model_config.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using json = nlohmann::json;

struct Architecture {
  const char* name;
  const char* model_type;
  int64_t default_max_position_embeddings;  // transformers' config class defaults
};
// One architecture per line:
// clang-format off
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", 2048},
    {"MistralForCausalLM", "mistral", 4096 * 32},
    {"Qwen2ForCausalLM", "qwen2", 32768},
    {"Qwen3ForCausalLM", "qwen3", 32768},
    {"Phi3ForCausalLM", "phi3", 4096},
    {"Qwen3MoeForCausalLM", "qwen3_moe", 32768},
    {"MixtralForCausalLM", "mixtral", 4096 * 32},
    {"Gemma2ForCausalLM", "gemma2", 8192},
    {"Gemma3ForCausalLM", "gemma3_text", 131072},
};
// clang-format on

std::string SupportedArchitectures() {
  std::vector<std::string> names;
  for (const Architecture& arch : kArchitectures) names.emplace_back(arch.name);
  return absl::StrJoin(names, ", ");
}

const Architecture* FindArchitecture(std::string_view name) {
  for (const Architecture& arch : kArchitectures) {
    if (name == arch.name) return &arch;
  }
  return nullptr;
}

// Reads typed fields of one JSON object; every error names the source and the field.
class FieldReader {
 public:
  FieldReader(const json& object, std::string source)
      : object_(object), source_(std::move(source)) {}

  absl::Status Error(std::string_view field, std::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": field \"", std::string(field), "\" ", std::string(problem)));
  }
  absl::Status TypeError(std::string_view field, std::string_view expected) const {
    return Error(field, absl::StrCat("must be ", std::string(expected), ", got ",
                                     object_.at(std::string(field)).dump()));
  }

  // nullptr when the field is missing or null.
  const json* Get(std::string_view field) const {
    auto it = object_.find(std::string(field));
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  static std::optional<int64_t> AsInt(const json& value) {
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() &&
          value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return std::nullopt;
      }
      return value.get<int64_t>();
    }
    if (value.is_number_float()) {  // 4096.0 is an integer to Python's loaders too
      const double v = value.get<double>();
      if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15) {
        return static_cast<int64_t>(v);
      }
    }
    return std::nullopt;
  }

  absl::StatusOr<std::optional<int64_t>> OptionalInt(std::string_view field) const {
    const json* value = Get(field);
    if (value == nullptr) return std::optional<int64_t>();
    std::optional<int64_t> v = AsInt(*value);
    if (!v) return TypeError(field, "an integer");
    return v;
  }
  absl::StatusOr<int64_t> PositiveInt(std::string_view field,
                                      std::optional<int64_t> fallback = std::nullopt) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, OptionalInt(field));
    if (!v) v = fallback;
    if (!v) return Error(field, "is required");
    if (*v <= 0) return Error(field, absl::StrCat("must be positive, got ", *v));
    return *v;
  }
  absl::StatusOr<double> PositiveDouble(std::string_view field, double fallback) const {
    const json* value = Get(field);
    if (value == nullptr) return fallback;
    if (!value->is_number()) return TypeError(field, "a number");
    const double v = value->get<double>();
    if (!std::isfinite(v) || v <= 0) return Error(field, absl::StrCat("must be positive, got ", v));
    return v;
  }
  absl::StatusOr<bool> Bool(std::string_view field, bool fallback) const {
    const json* value = Get(field);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) return TypeError(field, "true or false");
    return value->get<bool>();
  }
  const json& object() const { return object_; }
  const std::string& source() const { return source_; }

  absl::StatusOr<std::optional<std::string>> OptionalString(std::string_view field) const {
    const json* value = Get(field);
    if (value == nullptr) return std::optional<std::string>();
    if (!value->is_string()) return TypeError(field, "a string");
    return std::optional<std::string>(value->get<std::string>());
  }

 private:
  const json& object_;
  std::string source_;
};

// One list of LongRoPE factors, rotary_dim / 2 positive numbers.
absl::StatusOr<std::vector<double>> ParseFactors(const FieldReader& reader, std::string_view field,
                                                 int64_t rotary_dim) {
  const json* value = reader.Get(field);
  if (value == nullptr) return reader.Error(field, "is required for longrope");
  if (!value->is_array()) return reader.TypeError(field, "a list of numbers");
  if (static_cast<int64_t>(value->size()) != rotary_dim / 2) {
    return reader.Error(field, absl::StrCat("has ", value->size(),
                                            " values; expected rotary_dim / 2 = ", rotary_dim / 2,
                                            " (head_dim times partial_rotary_factor, halved)"));
  }
  std::vector<double> factors;
  for (const json& item : *value) {
    if (!item.is_number() || !std::isfinite(item.get<double>()) || item.get<double>() <= 0) {
      return reader.Error(field, absl::StrCat("must hold positive numbers, got ", item.dump()));
    }
    factors.push_back(item.get<double>());
  }
  return factors;
}

// Phi-3's LongRoPE, as transformers' _compute_longrope_parameters reads it: the ratio s of
// max_position_embeddings to original_max_position_embeddings gives the attention factor (an
// explicit attention_factor wins); rope_scaling's own "factor" is not used when the config has
// original_max_position_embeddings, which Phi3Config always has (default 4096).
absl::Status ParseLongRope(const FieldReader& reader, const FieldReader& top, ModelConfig& out) {
  LongRopeScaling& longrope = out.longrope;
  for (const auto& [key, unused] : reader.object().items()) {
    static constexpr std::string_view kKnown[] = {"type",
                                                  "rope_type",
                                                  "short_factor",
                                                  "long_factor",
                                                  "attention_factor",
                                                  "factor",
                                                  "original_max_position_embeddings"};
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return absl::UnimplementedError(
          absl::StrCat(reader.source(), ": field \"", key, "\" is not supported for longrope"));
    }
  }
  ASSIGN_OR_RETURN(longrope.short_factor, ParseFactors(reader, "short_factor", out.rotated_dims()));
  ASSIGN_OR_RETURN(longrope.long_factor, ParseFactors(reader, "long_factor", out.rotated_dims()));
  ASSIGN_OR_RETURN(longrope.original_max_position_embeddings,
                   top.PositiveInt("original_max_position_embeddings", 4096));
  const double scale = static_cast<double>(out.max_position_embeddings) /
                       static_cast<double>(longrope.original_max_position_embeddings);
  longrope.attention_factor =
      scale <= 1.0
          ? 1.0
          : std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(
                                                  longrope.original_max_position_embeddings)));
  ASSIGN_OR_RETURN(longrope.attention_factor,
                   reader.PositiveDouble("attention_factor", longrope.attention_factor));
  return absl::OkStatus();
}

// "rope_scaling": null, llama3, (Phi-3) longrope or (Gemma 3) linear; max_position_embeddings and
// rotary_dim must be parsed already.
absl::Status ParseRopeScaling(const json& config, const std::string& source, ModelConfig& out) {
  const auto it = config.find("rope_scaling");
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": field \"rope_scaling\" must be null or an object, got ", it->dump()));
  }
  const FieldReader reader(*it, absl::StrCat(source, ": rope_scaling"));
  ASSIGN_OR_RETURN(std::optional<std::string> rope_type, reader.OptionalString("rope_type"));
  if (!rope_type) {
    ASSIGN_OR_RETURN(rope_type, reader.OptionalString("type"));
  }
  if (!rope_type) return reader.Error("rope_type", "is required");
  if (*rope_type == "default") return absl::OkStatus();
  const bool is_phi3 = out.architecture == "Phi3ForCausalLM";
  // "su" is LongRoPE's first name (transformers' Phi3Config maps it to longrope).
  if (is_phi3 && (*rope_type == "longrope" || *rope_type == "su")) {
    return ParseLongRope(reader, FieldReader(config, source), out);
  }
  if (out.architecture == "Gemma2ForCausalLM") {
    return absl::UnimplementedError(absl::StrCat(source, ": rope_scaling type \"", *rope_type,
                                                 "\" is not supported: Gemma 2 takes no scaling"));
  }
  if (out.architecture == "Gemma3ForCausalLM") {  // its global layers' linear scaling
    if (*rope_type != "linear") {
      return absl::UnimplementedError(
          absl::StrCat(source, ": rope_scaling type \"", *rope_type,
                       "\" is not supported (supported for Gemma3ForCausalLM: linear)"));
    }
    ASSIGN_OR_RETURN(out.rope_linear_factor, reader.PositiveDouble("factor", 0.0));
    if (out.rope_linear_factor == 0.0) return reader.Error("factor", "is required");
    return absl::OkStatus();
  }
  if (*rope_type != "llama3" || is_phi3) {
    return absl::UnimplementedError(
        absl::StrCat(source, ": rope_scaling type \"", *rope_type, "\" is not supported (",
                     is_phi3 ? "supported for Phi3ForCausalLM: longrope, su"
                             : "supported: llama3; longrope for Phi3ForCausalLM",
                     ")"));
  }
  Llama3RopeScaling& scaling = out.rope_scaling;
  ASSIGN_OR_RETURN(scaling.factor, reader.PositiveDouble("factor", 0.0));
  if (scaling.factor == 0.0) return reader.Error("factor", "is required");
  ASSIGN_OR_RETURN(scaling.low_freq_factor, reader.PositiveDouble("low_freq_factor", 1.0));
  ASSIGN_OR_RETURN(scaling.high_freq_factor, reader.PositiveDouble("high_freq_factor", 4.0));
  if (scaling.high_freq_factor <= scaling.low_freq_factor) {
    return reader.Error("high_freq_factor", "must exceed low_freq_factor");
  }
  ASSIGN_OR_RETURN(scaling.original_max_position_embeddings,
                   reader.PositiveInt("original_max_position_embeddings", 8192));
  return absl::OkStatus();
}

// Gemma 2 / 3 (transformers' Gemma2Config, Gemma3TextConfig): activation, attention scale and
// soft-capping, which layers slide and by how much, the local RoPE base. Defaults are the config
// classes'.
absl::Status ParseGemma(const json& config, const FieldReader& reader, bool is_gemma3,
                        ModelConfig& out) {
  ASSIGN_OR_RETURN(std::optional<std::string> activation,
                   reader.OptionalString("hidden_activation"));
  if (activation && *activation != "gelu_pytorch_tanh") {
    return reader.Error("hidden_activation",
                        absl::StrCat("is \"", *activation,
                                     "\", which is not supported (supported: gelu_pytorch_tanh)"));
  }
  out.hidden_act = MlpActivation::kGeluTanh;
  ASSIGN_OR_RETURN(out.query_pre_attn_scalar, reader.PositiveDouble("query_pre_attn_scalar", 256));
  // A soft-cap is a positive number or null (none); absent: the config class's default.
  auto softcap = [&](const char* field, double fallback) -> absl::StatusOr<double> {
    if (config.contains(field) && config.at(field).is_null()) return 0.0;
    return reader.PositiveDouble(field, fallback);
  };
  ASSIGN_OR_RETURN(out.attn_logit_softcap,
                   softcap("attn_logit_softcapping", is_gemma3 ? 0.0 : 50.0));
  ASSIGN_OR_RETURN(out.final_logit_softcap,
                   softcap("final_logit_softcapping", is_gemma3 ? 0.0 : 30.0));
  ASSIGN_OR_RETURN(bool bidirectional, reader.Bool("use_bidirectional_attention", false));
  if (bidirectional) {
    return reader.Error("use_bidirectional_attention",
                        "is true: only causal attention is supported");
  }
  if (is_gemma3) {
    ASSIGN_OR_RETURN(out.rope_local_theta, reader.PositiveDouble("rope_local_base_freq", 10000.0));
  }

  // The window: 4096 when absent, none when null.
  ASSIGN_OR_RETURN(std::optional<int64_t> window, reader.OptionalInt("sliding_window"));
  if (!config.contains("sliding_window")) window = 4096;
  if (!window) return absl::OkStatus();
  if (*window <= 0)
    return reader.Error("sliding_window", absl::StrCat("must be positive, got ", *window));
  if (*window > out.max_position_embeddings) {
    return reader.Error("sliding_window",
                        absl::StrCat("(", *window, ") exceeds max_position_embeddings (",
                                     out.max_position_embeddings, ")"));
  }
  out.sliding_window = *window;

  // Which layers slide: layer_types when given; else Gemma 2 alternates (even layers slide) and
  // Gemma 3 has every sliding_window_pattern-th layer global: layer i slides iff (i + 1) % pattern.
  const int64_t layers = out.num_hidden_layers;
  out.sliding_layers.assign(static_cast<size_t>(layers), false);
  if (const json* types = reader.Get("layer_types")) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != layers) {
      return reader.Error("layer_types", absl::StrCat("must be a list of num_hidden_layers (",
                                                      layers, ") strings, got ", types->dump()));
    }
    for (int64_t i = 0; i < layers; ++i) {
      const json& type = (*types)[static_cast<size_t>(i)];
      if (type == "sliding_attention") {
        out.sliding_layers[static_cast<size_t>(i)] = true;
      } else if (type != "full_attention") {
        return reader.Error("layer_types",
                            absl::StrCat("entry ", i, " is ", type.dump(),
                                         "; supported: \"sliding_attention\", \"full_attention\""));
      }
    }
  } else {
    int64_t pattern = 2;
    if (is_gemma3) {
      ASSIGN_OR_RETURN(pattern, reader.PositiveInt("sliding_window_pattern", int64_t{6}));
    }
    for (int64_t i = 0; i < layers; ++i) {
      out.sliding_layers[static_cast<size_t>(i)] = (i + 1) % pattern != 0;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DType> ParseDType(const FieldReader& reader) {
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  const char* field = reader.Get("dtype") != nullptr ? "dtype" : "torch_dtype";
  ASSIGN_OR_RETURN(std::optional<std::string> name, reader.OptionalString(field));
  if (!name || *name == "float32") return DType::kF32;
  if (*name == "float16") return DType::kF16;
  if (*name == "bfloat16") return DType::kBF16;
  return reader.Error(field,
                      absl::StrCat("is \"", *name, "\"; supported: float32, float16, bfloat16"));
}

// Appends the ids of `reader`'s eos_token_id (an id or a list of them) that `ids` lacks.
absl::Status AddEosTokenIds(const FieldReader& reader, std::vector<int64_t>& ids) {
  const json* eos = reader.Get("eos_token_id");
  if (eos == nullptr) return absl::OkStatus();
  const std::vector<json> items =
      eos->is_array() ? eos->get<std::vector<json>>() : std::vector<json>{*eos};
  for (const json& item : items) {
    std::optional<int64_t> id = FieldReader::AsInt(item);
    if (!id || *id < 0) return reader.TypeError("eos_token_id", "a token id or a list of them");
    if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  }
  return absl::OkStatus();
}

// The mixture-of-experts fields of Qwen3-MoE and Mixtral, with transformers' defaults.
absl::Status ParseExperts(const FieldReader& reader, ModelConfig& out) {
  const bool mixtral = out.architecture == "MixtralForCausalLM";
  const char* experts_field = mixtral ? "num_local_experts" : "num_experts";
  ASSIGN_OR_RETURN(out.num_experts, reader.PositiveInt(experts_field, mixtral ? 8 : 128));
  ASSIGN_OR_RETURN(out.num_experts_per_tok,
                   reader.PositiveInt("num_experts_per_tok", mixtral ? 2 : 8));
  if (out.num_experts_per_tok > out.num_experts) {
    return reader.Error("num_experts_per_tok",
                        absl::StrCat("(", out.num_experts_per_tok, ") exceeds ", experts_field,
                                     " (", out.num_experts, ")"));
  }
  if (mixtral) {
    // Mixtral's experts are its MLPs (w1/w3/w2 of intermediate_size); its router always
    // renormalises the top k (MixtralSparseMoeBlock).
    out.moe_intermediate_size = out.intermediate_size;
    out.norm_topk_prob = true;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(out.moe_intermediate_size, reader.PositiveInt("moe_intermediate_size", 768));
  ASSIGN_OR_RETURN(out.norm_topk_prob, reader.Bool("norm_topk_prob", false));
  ASSIGN_OR_RETURN(out.decoder_sparse_step, reader.PositiveInt("decoder_sparse_step", 1));
  if (const json* layers = reader.Get("mlp_only_layers")) {
    if (!layers->is_array()) return reader.TypeError("mlp_only_layers", "a list of layer indices");
    for (const json& item : *layers) {
      std::optional<int64_t> layer = FieldReader::AsInt(item);
      if (!layer || *layer < 0 || *layer >= out.num_hidden_layers) {
        return reader.Error("mlp_only_layers",
                            absl::StrCat("holds ", item.dump(), ", not a layer index in [0, ",
                                         out.num_hidden_layers, ")"));
      }
      out.mlp_only_layers.push_back(*layer);
    }
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> shared,
                   reader.OptionalInt("shared_expert_intermediate_size"));
  if (shared && *shared > 0) {
    return reader.Error("shared_expert_intermediate_size",
                        "is set: shared experts are not supported");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> Parse(const json& config, const std::string& source) {
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  const FieldReader reader(config, source);
  ModelConfig out;

  const Architecture* arch = nullptr;
  if (const json* architectures = reader.Get("architectures")) {
    if (!architectures->is_array() || architectures->empty() || !(*architectures)[0].is_string()) {
      return reader.TypeError("architectures", "a non-empty list of strings");
    }
    out.architecture = (*architectures)[0].get<std::string>();
  } else {
    ASSIGN_OR_RETURN(std::optional<std::string> model_type, reader.OptionalString("model_type"));
    if (!model_type) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": neither \"architectures\" nor \"model_type\" is given"));
    }
    out.architecture = *model_type;
    for (const Architecture& a : kArchitectures) {
      if (*model_type == a.model_type) out.architecture = a.name;
    }
  }
  arch = FindArchitecture(out.architecture);
  if (out.architecture == "Phi3SmallForCausalLM") {
    return absl::UnimplementedError(absl::StrCat(
        source,
        ": architecture \"Phi3SmallForCausalLM\" (Phi-3-small: blocksparse attention, "
        "gegelu MLP) is not supported; Phi3ForCausalLM (Phi-3-mini/medium, Phi-3.5-mini, "
        "Phi-4-mini) is"));
  }
  if (arch == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": architecture \"", out.architecture,
                     "\" is not supported (supported: ", SupportedArchitectures(), ")"));
  }
  const bool is_llama = out.architecture == "LlamaForCausalLM";
  const bool is_qwen2 = out.architecture == "Qwen2ForCausalLM";
  const bool is_qwen3_moe = out.architecture == "Qwen3MoeForCausalLM";
  const bool is_qwen3 = out.architecture == "Qwen3ForCausalLM" || is_qwen3_moe;
  const bool is_mixtral = out.architecture == "MixtralForCausalLM";
  const bool is_phi3 = out.architecture == "Phi3ForCausalLM";
  const bool is_gemma2 = out.architecture == "Gemma2ForCausalLM";
  const bool is_gemma3 = out.architecture == "Gemma3ForCausalLM";
  const bool is_gemma = is_gemma2 || is_gemma3;

  ASSIGN_OR_RETURN(out.vocab_size, reader.PositiveInt("vocab_size"));
  ASSIGN_OR_RETURN(out.hidden_size, reader.PositiveInt("hidden_size"));
  ASSIGN_OR_RETURN(out.intermediate_size, reader.PositiveInt("intermediate_size"));
  ASSIGN_OR_RETURN(out.num_hidden_layers, reader.PositiveInt("num_hidden_layers"));
  ASSIGN_OR_RETURN(out.num_attention_heads, reader.PositiveInt("num_attention_heads"));
  ASSIGN_OR_RETURN(out.num_key_value_heads,
                   reader.PositiveInt("num_key_value_heads", out.num_attention_heads));
  if (out.num_attention_heads % out.num_key_value_heads != 0) {
    return reader.Error("num_key_value_heads", absl::StrCat("(", out.num_key_value_heads,
                                                            ") must divide num_attention_heads (",
                                                            out.num_attention_heads, ")"));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, reader.OptionalInt("head_dim"));
  if (!head_dim && is_gemma) head_dim = 256;  // transformers' Gemma configs default it
  if (head_dim) {
    if (*head_dim <= 0) return reader.Error("head_dim", "must be positive");
    out.head_dim = *head_dim;
  } else {
    if (out.hidden_size % out.num_attention_heads != 0) {
      return reader.Error("num_attention_heads",
                          absl::StrCat("(", out.num_attention_heads, ") must divide hidden_size (",
                                       out.hidden_size, ")"));
    }
    out.head_dim = out.hidden_size / out.num_attention_heads;
  }
  if (out.head_dim % 2 != 0) {
    return reader.Error("head_dim", absl::StrCat("must be even for RoPE, got ", out.head_dim));
  }
  // transformers: RoPE on the first int(head_dim * partial_rotary_factor) dims of each head.
  ASSIGN_OR_RETURN(const double partial_rotary_factor,
                   reader.PositiveDouble("partial_rotary_factor", 1.0));
  if (partial_rotary_factor > 1.0) {
    return reader.Error("partial_rotary_factor",
                        absl::StrCat("must be in (0, 1], got ", partial_rotary_factor));
  }
  const auto rotary_dim =
      static_cast<int64_t>(static_cast<double>(out.head_dim) * partial_rotary_factor);
  if (rotary_dim <= 0 || rotary_dim % 2 != 0) {
    return reader.Error("partial_rotary_factor",
                        absl::StrCat("(", partial_rotary_factor, ") times head_dim (", out.head_dim,
                                     ") gives ", rotary_dim, " rotary dims; they must be even"));
  }
  out.rotary_dim = rotary_dim < out.head_dim ? rotary_dim : 0;

  ASSIGN_OR_RETURN(std::optional<std::string> hidden_act, reader.OptionalString("hidden_act"));
  // Gemma reads hidden_activation instead (ParseGemma); its configs' hidden_act is unused.
  if (!is_gemma && hidden_act && *hidden_act != "silu") {
    return absl::UnimplementedError(absl::StrCat(source, ": hidden_act \"", *hidden_act,
                                                 "\" is not supported (supported: silu)"));
  }
  ASSIGN_OR_RETURN(out.rms_norm_eps, reader.PositiveDouble("rms_norm_eps", 1e-6));
  ASSIGN_OR_RETURN(out.rope_theta, reader.PositiveDouble("rope_theta", is_gemma3 ? 1e6 : 10000.0));
  ASSIGN_OR_RETURN(
      out.max_position_embeddings,
      reader.PositiveInt("max_position_embeddings", arch->default_max_position_embeddings));
  RETURN_IF_ERROR(ParseRopeScaling(config, source, out));
  ASSIGN_OR_RETURN(out.tie_word_embeddings, reader.Bool("tie_word_embeddings", is_gemma));

  if (is_qwen2) {
    out.attention_bias = true;
    out.o_proj_bias = false;
  } else if (is_llama || is_qwen3 || is_gemma) {
    // Qwen3's attention_bias, like Llama's, covers q/k/v and o_proj (transformers' Qwen3Attention).
    ASSIGN_OR_RETURN(out.attention_bias, reader.Bool("attention_bias", false));
    out.o_proj_bias = out.attention_bias;
  }
  if (is_llama) {
    ASSIGN_OR_RETURN(bool mlp_bias, reader.Bool("mlp_bias", false));
    if (mlp_bias) {
      return absl::UnimplementedError(absl::StrCat(source, ": mlp_bias true is not supported"));
    }
  }
  out.qk_norm = is_qwen3 || is_gemma3;
  out.fused_projections = is_phi3;  // Phi3Attention and Phi3MLP have no biases
  if (is_qwen3_moe || is_mixtral) RETURN_IF_ERROR(ParseExperts(reader, out));

  if (is_gemma) RETURN_IF_ERROR(ParseGemma(config, reader, is_gemma3, out));
  // Sliding-window attention: Mistral's window covers every layer; Qwen2/Qwen3 turn it on with
  // use_sliding_window for the layers from max_window_layers on (transformers' Qwen2Attention). A
  // window that reaches max_position_embeddings changes nothing and is dropped. (Gemma's: above.)
  bool sliding = !is_llama && !is_gemma;
  if (is_qwen2 || is_qwen3) {
    ASSIGN_OR_RETURN(sliding, reader.Bool("use_sliding_window", false));
  }
  if (sliding) {
    ASSIGN_OR_RETURN(std::optional<int64_t> window, reader.OptionalInt("sliding_window"));
    // transformers' Mistral/Qwen2 configs default the window to 4096 when the key is absent
    // (Phi3Config and MixtralConfig to none; Phi-3-mini-4k has 2047, every layer).
    if (config.find("sliding_window") == config.end() && !is_phi3 && !is_mixtral) window = 4096;
    if (window && *window <= 0) {
      return reader.Error("sliding_window", absl::StrCat("must be positive, got ", *window));
    }
    int64_t first_sliding_layer = 0;
    if (is_qwen2 || is_qwen3) {
      ASSIGN_OR_RETURN(std::optional<int64_t> max_window_layers,
                       reader.OptionalInt("max_window_layers"));
      if (max_window_layers && *max_window_layers < 0) {
        return reader.Error("max_window_layers", "must not be negative");
      }
      first_sliding_layer = max_window_layers.value_or(28);  // transformers' default
    }
    if (window && *window < out.max_position_embeddings &&
        first_sliding_layer < out.num_hidden_layers) {
      out.sliding_window = *window;
      if (first_sliding_layer > 0) {
        out.sliding_layers.assign(static_cast<size_t>(out.num_hidden_layers), false);
        for (int64_t i = first_sliding_layer; i < out.num_hidden_layers; ++i) {
          out.sliding_layers[static_cast<size_t>(i)] = true;
        }
      }
    }
  }

  ASSIGN_OR_RETURN(std::optional<int64_t> bos, reader.OptionalInt("bos_token_id"));
  out.bos_token_id = bos.value_or(-1);
  if (out.bos_token_id < -1) return reader.Error("bos_token_id", "must not be negative");
  RETURN_IF_ERROR(AddEosTokenIds(reader, out.eos_token_ids));
  ASSIGN_OR_RETURN(out.torch_dtype, ParseDType(reader));

  // Guard the element counts that later allocations multiply out.
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  int64_t qkv_rows = 0, count = 0;
  const bool implausible =
      out.vocab_size > kMaxDim || out.hidden_size > kMaxDim || out.intermediate_size > kMaxDim ||
      out.num_hidden_layers > 100000 || out.num_attention_heads > (1 << 20) ||
      out.head_dim > (1 << 20) ||
      __builtin_mul_overflow(out.num_attention_heads + 2 * out.num_key_value_heads, out.head_dim,
                             &qkv_rows) ||
      __builtin_mul_overflow(qkv_rows, out.hidden_size, &count) || count > (int64_t{1} << 40) ||
      out.vocab_size * out.hidden_size > (int64_t{1} << 40) ||
      out.intermediate_size * out.hidden_size > (int64_t{1} << 39) || out.num_experts > 65536 ||
      out.moe_intermediate_size > kMaxDim ||
      out.num_experts * out.moe_intermediate_size * out.hidden_size > (int64_t{1} << 42);
  if (implausible) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": model sizes are implausibly large"));
  }
  return out;
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(std::string_view json_text,
                                                  std::string_view source) {
  const std::string where(source);
  absl::StatusOr<json> parsed = ParseJson(json_text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", parsed.status().message()));
  }
  const json& config = *parsed;
  try {
    return Parse(config, where);
  } catch (const json::exception& e) {  // the typed reads above should make this unreachable
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.what()));
  }
}

absl::StatusOr<ModelConfig> ModelConfig::FromDirectory(const std::string& dir) {
  const std::string path = dir + "/config.json";
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ASSIGN_OR_RETURN(ModelConfig config, FromJson(text, path));
  // generation_config.json's eos_token_id, where transformers' generate() and vLLM stop too:
  // Phi-3's <|end|> (32007), Gemma's <end_of_turn> and Llama 3 instruct's <|eot_id|> are listed
  // only there.
  const std::string generation_path = dir + "/generation_config.json";
  absl::StatusOr<std::string> generation = ReadFileToString(generation_path);
  if (absl::IsNotFound(generation.status())) return config;
  RETURN_IF_ERROR(generation.status());
  absl::StatusOr<json> parsed = ParseJson(*generation);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(generation_path, ": ", parsed.status().message()));
  }
  if (!parsed->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(generation_path, ": not a JSON object"));
  }
  RETURN_IF_ERROR(AddEosTokenIds(FieldReader(*parsed, generation_path), config.eos_token_ids));
  return config;
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  return num_experts > 0 && (layer + 1) % decoder_sparse_step == 0 &&
         std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) == mlp_only_layers.end();
}

std::string ModelConfig::ToJson() const {
  const Architecture* arch = FindArchitecture(architecture);
  json config = {
      {"architectures", {architecture}},
      {"model_type", arch != nullptr ? arch->model_type : "llama"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"max_position_embeddings", max_position_embeddings},
      {"tie_word_embeddings", tie_word_embeddings},
      {"torch_dtype", std::string(DTypeName(torch_dtype))},
      {"initializer_range", 0.02},
      {"use_cache", true},
  };
  if (rotary_dim > 0) {
    config["partial_rotary_factor"] =
        static_cast<double>(rotary_dim) / static_cast<double>(head_dim);
  }
  if (longrope.enabled()) {
    config["rope_scaling"] = {{"type", "longrope"},
                              {"short_factor", longrope.short_factor},
                              {"long_factor", longrope.long_factor}};
    config["original_max_position_embeddings"] = longrope.original_max_position_embeddings;
  } else if (rope_scaling.factor > 0) {
    config["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", rope_scaling.factor},
        {"low_freq_factor", rope_scaling.low_freq_factor},
        {"high_freq_factor", rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  } else {
    config["rope_scaling"] = nullptr;
  }
  if (architecture == "LlamaForCausalLM") {
    config["attention_bias"] = attention_bias;
    config["mlp_bias"] = false;
  } else if (architecture == "MistralForCausalLM" || architecture == "Phi3ForCausalLM") {
    config["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
  } else if (architecture == "Qwen2ForCausalLM" || architecture == "Qwen3ForCausalLM" ||
             architecture == "Qwen3MoeForCausalLM") {
    if (architecture != "Qwen2ForCausalLM") config["attention_bias"] = attention_bias;
    config["use_sliding_window"] = sliding_window > 0;
    if (sliding_window > 0) {
      config["sliding_window"] = sliding_window;
      int64_t first_sliding_layer = 0;
      while (first_sliding_layer < num_hidden_layers && LayerWindow(first_sliding_layer) == 0) {
        ++first_sliding_layer;
      }
      config["max_window_layers"] = first_sliding_layer;
    }
  } else if (architecture == "Gemma2ForCausalLM" || architecture == "Gemma3ForCausalLM") {
    config.erase("hidden_act");
    config["hidden_activation"] = "gelu_pytorch_tanh";
    config["attention_bias"] = attention_bias;
    config["query_pre_attn_scalar"] = query_pre_attn_scalar;
    config["attn_logit_softcapping"] =
        attn_logit_softcap > 0 ? json(attn_logit_softcap) : json(nullptr);
    config["final_logit_softcapping"] =
        final_logit_softcap > 0 ? json(final_logit_softcap) : json(nullptr);
    config["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
    if (sliding_window > 0) {
      std::vector<std::string> types;
      for (int64_t i = 0; i < num_hidden_layers; ++i) {
        types.push_back(LayerWindow(i) > 0 ? "sliding_attention" : "full_attention");
      }
      config["layer_types"] = types;
    }
    if (architecture == "Gemma3ForCausalLM") {
      config["rope_local_base_freq"] = rope_local_theta > 0 ? rope_local_theta : rope_theta;
      if (rope_linear_factor > 0) {
        config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_linear_factor}};
      }
    }
  }
  if (architecture == "Qwen3MoeForCausalLM") {
    config["num_experts"] = num_experts;
    config["num_experts_per_tok"] = num_experts_per_tok;
    config["moe_intermediate_size"] = moe_intermediate_size;
    config["norm_topk_prob"] = norm_topk_prob;
    config["decoder_sparse_step"] = decoder_sparse_step;
    config["mlp_only_layers"] = mlp_only_layers;
  } else if (architecture == "MixtralForCausalLM") {
    config["num_local_experts"] = num_experts;
    config["num_experts_per_tok"] = num_experts_per_tok;
  }
  config["bos_token_id"] = bos_token_id >= 0 ? json(bos_token_id) : json(nullptr);
  if (eos_token_ids.empty()) {
    config["eos_token_id"] = nullptr;
  } else if (eos_token_ids.size() == 1) {
    config["eos_token_id"] = eos_token_ids[0];
  } else {
    config["eos_token_id"] = eos_token_ids;
  }
  return config.dump(2) + "\n";
}

namespace {

// The first field of `config` that `size` ranks cannot split, as a message; empty when none.
std::string TensorParallelMismatch(const ModelConfig& config, int64_t size, bool expert_parallel) {
  if (config.num_attention_heads % size != 0) {
    return absl::StrCat("num_attention_heads (", config.num_attention_heads,
                        ") is not divisible by the tensor parallel size ", size);
  }
  const int64_t kv_heads = config.num_key_value_heads;
  if (kv_heads <= 0 || (kv_heads % size != 0 && size % kv_heads != 0)) {
    return absl::StrCat("num_key_value_heads (", kv_heads,
                        ") is neither divisible by nor a divisor of the tensor parallel size ",
                        size);
  }
  if (config.intermediate_size % size != 0) {
    return absl::StrCat("intermediate_size (", config.intermediate_size,
                        ") is not divisible by the tensor parallel size ", size);
  }
  if (expert_parallel && config.num_experts > 0) {
    if (config.num_experts % size != 0) {
      return absl::StrCat("num_experts (", config.num_experts,
                          ") is not divisible by the tensor parallel size ", size,
                          " (expert parallelism gives each rank the same number of whole experts)");
    }
  } else if (config.moe_intermediate_size % size != 0) {
    return absl::StrCat("moe_intermediate_size (", config.moe_intermediate_size,
                        ") is not divisible by the tensor parallel size ", size);
  }
  return "";
}

}  // namespace

int64_t ModelConfig::LayerWindow(int64_t layer) const {
  if (sliding_window <= 0) return 0;
  if (sliding_layers.empty()) return sliding_window;
  return layer >= 0 && static_cast<size_t>(layer) < sliding_layers.size() &&
                 sliding_layers[static_cast<size_t>(layer)]
             ? sliding_window
             : 0;
}

int64_t ModelConfig::UniformSlidingWindow() const {
  if (sliding_window <= 0) return 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i) {
    if (LayerWindow(i) != sliding_window) return 0;
  }
  return sliding_window;
}

absl::Status CheckTensorParallelSize(const ModelConfig& config, int64_t size,
                                     bool expert_parallel) {
  if (size < 1 || size > kMaxTensorParallelSize) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallel size must be in [1, ",
                                                   kMaxTensorParallelSize, "], got ", size));
  }
  const std::string mismatch = TensorParallelMismatch(config, size, expert_parallel);
  if (mismatch.empty()) return absl::OkStatus();
  std::vector<std::string> working;
  for (int64_t t = 1; t <= kMaxTensorParallelSize; ++t) {
    if (TensorParallelMismatch(config, t, expert_parallel).empty()) {
      working.push_back(absl::StrCat(t));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      mismatch,
      "; tensor parallel sizes that work for this model: ", absl::StrJoin(working, ", ")));
}

}  // namespace pagoda
