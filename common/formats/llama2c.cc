#include "common/formats/llama2c.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/formats/safetensors.h"
#include "common/status_macros.h"
#include "common/tokenizer/llama2c_tokenizer.h"

namespace pagoda {
namespace {

constexpr int64_t kHeaderBytes = 7 * sizeof(int32_t);
// Generous bounds that keep every size product below int64 overflow.
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxLayers = 4096;

absl::StatusOr<Llama2cHeader> ParseHeader(const std::string& path,
                                          std::span<const std::byte> bytes) {
  if (static_cast<int64_t>(bytes.size()) < kHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": ", bytes.size(), " bytes is too short for ",
                                            "the 28-byte llama2.c header"));
  }
  int32_t fields[7];
  std::memcpy(fields, bytes.data(), sizeof(fields));
  const char* const kNames[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                 "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    const int64_t value = i == 5 ? std::abs(static_cast<int64_t>(fields[i])) : fields[i];
    const int64_t limit = i == 2 ? kMaxLayers : kMaxDim;
    if (value <= 0 || value > limit) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": header field ", kNames[i], " = ",
                                                     fields[i], " is outside [1, ", limit,
                                                     "]; is this a llama2.c checkpoint?"));
    }
  }
  Llama2cHeader header;
  header.dim = fields[0];
  header.hidden_dim = fields[1];
  header.n_layers = fields[2];
  header.n_heads = fields[3];
  header.n_kv_heads = fields[4];
  header.vocab_size = std::abs(static_cast<int64_t>(fields[5]));
  header.shared_classifier = fields[5] > 0;
  header.seq_len = fields[6];
  if (header.dim % header.n_heads != 0 || header.head_size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": dim ", header.dim, " must split into ",
                                                   header.n_heads, " heads of even size"));
  }
  if (header.n_kv_heads > header.n_heads || header.n_heads % header.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": n_kv_heads ", header.n_kv_heads,
                                                   " must divide n_heads ", header.n_heads));
  }
  return header;
}

int64_t ExpectedFloats(const Llama2cHeader& h) {
  const int64_t dim = h.dim, kv_dim = h.kv_dim(), layers = h.n_layers;
  int64_t n = h.vocab_size * dim;                       // token_embedding
  n += layers * dim;                                    // rms_att
  n += layers * dim * dim + 2 * layers * kv_dim * dim;  // wq, wk, wv
  n += layers * dim * dim;                              // wo
  n += layers * dim;                                    // rms_ffn
  n += 3 * layers * h.hidden_dim * dim;                 // w1, w2, w3
  n += dim;                                             // rms_final
  n += h.seq_len * h.head_size();                       // freq_cis real + imag
  if (!h.shared_classifier) n += h.vocab_size * dim;    // wcls
  return n;
}

// Reorders the rows of each head from llama2.c's interleaved RoPE pairs (2i, 2i+1) to the
// rotate-half pairs (i, i + head_size/2): new row i = old row 2i, new row hs/2 + i = old 2i + 1.
// Both pairs rotate with frequency i, so rotate-half RoPE on the permuted projection gives the
// permuted result of interleaved RoPE on the original, and q.k is unchanged.
std::vector<std::byte> PermuteRotaryRows(std::span<const std::byte> rows, int64_t num_heads,
                                         int64_t head_size, int64_t row_floats) {
  const size_t row_bytes = static_cast<size_t>(row_floats) * sizeof(float);
  std::vector<std::byte> out(rows.size());
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < head_size / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t old_row = h * head_size + 2 * i + j;
        const int64_t new_row = h * head_size + j * (head_size / 2) + i;
        std::memcpy(out.data() + new_row * row_bytes, rows.data() + old_row * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

}  // namespace

ModelConfig Llama2cHeader::ToModelConfig() const {
  ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.vocab_size = vocab_size;
  config.hidden_size = dim;
  config.intermediate_size = hidden_dim;
  config.num_hidden_layers = n_layers;
  config.num_attention_heads = n_heads;
  config.num_key_value_heads = n_kv_heads;
  config.head_dim = head_size();
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.max_position_embeddings = seq_len;
  config.tie_word_embeddings = shared_classifier;
  config.bos_token_id = 1;
  config.eos_token_ids = {2};
  config.torch_dtype = DType::kF32;
  return config;
}

absl::StatusOr<Llama2cHeader> ReadLlama2cHeader(const std::string& checkpoint_path) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(checkpoint_path));
  ASSIGN_OR_RETURN(Llama2cHeader header, ParseHeader(checkpoint_path, file.bytes()));
  const int64_t expected_bytes = kHeaderBytes + ExpectedFloats(header) * 4;
  if (static_cast<int64_t>(file.size()) != expected_bytes) {
    return absl::DataLossError(
        absl::StrCat(checkpoint_path, ": file is ", file.size(), " bytes but its header (dim ",
                     header.dim, ", hidden_dim ", header.hidden_dim, ", n_layers ", header.n_layers,
                     ", n_heads ", header.n_heads, ", n_kv_heads ", header.n_kv_heads,
                     ", vocab_size ", header.shared_classifier ? "" : "-", header.vocab_size,
                     ", seq_len ", header.seq_len, ") implies ", expected_bytes,
                     " bytes; the file is truncated or not a llama2.c checkpoint"));
  }
  return header;
}

absl::Status ConvertLlama2cCheckpoint(const std::string& checkpoint_path,
                                      const std::string& out_dir) {
  ASSIGN_OR_RETURN(const Llama2cHeader header, ReadLlama2cHeader(checkpoint_path));
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(checkpoint_path));
  const int64_t file_floats = (static_cast<int64_t>(file.size()) - kHeaderBytes) / 4;
  if (file_floats != ExpectedFloats(header)) {  // the file changed since ReadLlama2cHeader
    return absl::DataLossError(absl::StrCat(checkpoint_path, ": file size changed while reading"));
  }
  const std::span<const std::byte> data = file.bytes().subspan(kHeaderBytes);

  // Walks the checkpoint's tensors in order; each call takes the next `floats` floats. The size
  // was validated, so running past the end (or stopping short) is a bug in this layout.
  size_t cursor = 0;
  bool overrun = false;
  auto take = [&](int64_t floats) {
    const size_t bytes = static_cast<size_t>(floats) * 4;
    if (bytes > data.size() - cursor) {
      overrun = true;
      return std::span<const std::byte>();
    }
    const std::span<const std::byte> span = data.subspan(cursor, bytes);
    cursor += bytes;
    return span;
  };
  const int64_t dim = header.dim, kv_dim = header.kv_dim(), hidden = header.hidden_dim;
  const int64_t layers = header.n_layers, hs = header.head_size();
  const auto embedding = take(header.vocab_size * dim);
  const auto rms_att = take(layers * dim);
  const auto wq = take(layers * dim * dim);
  const auto wk = take(layers * kv_dim * dim);
  const auto wv = take(layers * kv_dim * dim);
  const auto wo = take(layers * dim * dim);
  const auto rms_ffn = take(layers * dim);
  const auto w1 = take(layers * hidden * dim);
  const auto w2 = take(layers * dim * hidden);
  const auto w3 = take(layers * hidden * dim);
  const auto rms_final = take(dim);
  take(header.seq_len * hs / 2);  // freq_cis_real: recomputed from rope_theta at load time
  take(header.seq_len * hs / 2);  // freq_cis_imag
  const auto wcls =
      header.shared_classifier ? std::span<const std::byte>() : take(header.vocab_size * dim);
  if (overrun || cursor != data.size()) {
    return absl::InternalError(absl::StrCat(checkpoint_path, ": tensor layout does not match the ",
                                            "validated file size (converter bug)"));
  }

  // Permuted copies of wq/wk must outlive the TensorToWrite spans.
  std::vector<std::vector<std::byte>> permuted;
  permuted.reserve(2 * layers);
  std::vector<TensorToWrite> tensors;
  auto add = [&](std::string name, std::vector<int64_t> shape, std::span<const std::byte> bytes) {
    tensors.push_back({std::move(name), SafetensorsDType::kF32, std::move(shape), {}, bytes});
  };
  auto layer_slice = [](std::span<const std::byte> all, int64_t layer, int64_t floats) {
    return all.subspan(static_cast<size_t>(layer * floats) * 4, static_cast<size_t>(floats) * 4);
  };
  add("model.embed_tokens.weight", {header.vocab_size, dim}, embedding);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string prefix = absl::StrCat("model.layers.", l, ".");
    add(prefix + "input_layernorm.weight", {dim}, layer_slice(rms_att, l, dim));
    permuted.push_back(PermuteRotaryRows(layer_slice(wq, l, dim * dim), header.n_heads, hs, dim));
    add(prefix + "self_attn.q_proj.weight", {dim, dim}, permuted.back());
    permuted.push_back(
        PermuteRotaryRows(layer_slice(wk, l, kv_dim * dim), header.n_kv_heads, hs, dim));
    add(prefix + "self_attn.k_proj.weight", {kv_dim, dim}, permuted.back());
    add(prefix + "self_attn.v_proj.weight", {kv_dim, dim}, layer_slice(wv, l, kv_dim * dim));
    add(prefix + "self_attn.o_proj.weight", {dim, dim}, layer_slice(wo, l, dim * dim));
    add(prefix + "post_attention_layernorm.weight", {dim}, layer_slice(rms_ffn, l, dim));
    add(prefix + "mlp.gate_proj.weight", {hidden, dim}, layer_slice(w1, l, hidden * dim));
    add(prefix + "mlp.up_proj.weight", {hidden, dim}, layer_slice(w3, l, hidden * dim));
    add(prefix + "mlp.down_proj.weight", {dim, hidden}, layer_slice(w2, l, dim * hidden));
  }
  add("model.norm.weight", {dim}, rms_final);
  if (!header.shared_classifier) add("lm_head.weight", {header.vocab_size, dim}, wcls);

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat(out_dir, ": cannot create the output folder: ", ec.message()));
  }
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/config.json", header.ToModelConfig().ToJson()));
  return WriteSafetensors(out_dir + "/model.safetensors", tensors,
                          {{"format", "pt"}, {"source", "llama2.c"}});
}

absl::Status ConvertLlama2cModel(const std::string& checkpoint_path,
                                 const std::string& tokenizer_path, const std::string& out_dir) {
  ASSIGN_OR_RETURN(Llama2cHeader header, ReadLlama2cHeader(checkpoint_path));
  // Read the tokenizer before writing anything, so a bad tokenizer leaves no half directory.
  ASSIGN_OR_RETURN(Llama2cVocab vocab, ReadLlama2cTokenizer(tokenizer_path, header.vocab_size));
  ASSIGN_OR_RETURN(HfTokenizerFiles files, ConvertLlama2cTokenizer(vocab, header.seq_len));
  RETURN_IF_ERROR(ConvertLlama2cCheckpoint(checkpoint_path, out_dir));
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/tokenizer.json", files.tokenizer_json));
  return WriteStringToFile(out_dir + "/tokenizer_config.json", files.tokenizer_config_json);
}

}  // namespace pagoda
