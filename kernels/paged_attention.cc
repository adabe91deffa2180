#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cuda/paged_attention.h"

namespace pagoda::kernels {

absl::Status PagedAttentionParams::Validate() const {
  if (num_seqs < 0 || num_tokens < 0 || num_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0 ||
      block_size <= 0 || num_blocks <= 0 || max_blocks_per_seq <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged_attention: bad shape num_seqs=", num_seqs, " num_tokens=", num_tokens,
        " num_heads=", num_heads, " num_kv_heads=", num_kv_heads, " head_dim=", head_dim,
        " block_size=", block_size, " num_blocks=", num_blocks, " max_blocks_per_seq=",
        max_blocks_per_seq, " (need num_seqs, num_tokens >= 0 and the rest > 0)"));
  }
  if (num_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("paged_attention: num_kv_heads=", num_kv_heads,
                                                   " does not divide num_heads=", num_heads));
  }
  if (!(scale > 0.0f) || !std::isfinite(scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged_attention: scale must be finite and > 0, got ", scale));
  }
  if (max_query_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged_attention: max_query_len must be >= 0 (0: unknown), got ", max_query_len));
  }
  if (sliding_window < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged_attention: sliding_window must be >= 0 (0: none), got ", sliding_window));
  }
  if (!(logit_softcap >= 0.0f) || !std::isfinite(logit_softcap)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged_attention: logit_softcap must be finite and >= 0 (0: none), got ", logit_softcap));
  }
  if (key_cache == nullptr || value_cache == nullptr) {
    return absl::InvalidArgumentError("paged_attention: key_cache or value_cache is null");
  }
  if (keys_transposed && !PrefersTransposedKeys(device, block_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged_attention: keys stored transposed are read only by the CPU's AVX-512 form with "
        "block_size a multiple of 16 (PrefersTransposedKeys); block_size=",
        block_size));
  }
  if (cache_dtype != DType::kF32 && cache_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged_attention: the cache holds float32 or bfloat16, not dtype ",
                     static_cast<int>(cache_dtype)));
  }
  if (num_seqs == 0) {
    if (num_tokens != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("paged_attention: num_tokens=", num_tokens, " with no sequences"));
    }
    return absl::OkStatus();
  }
  if (block_tables == nullptr || query_start_loc == nullptr || seq_lens == nullptr) {
    return absl::InvalidArgumentError(
        "paged_attention: block_tables, query_start_loc or seq_lens is null");
  }
  if (device == Device::kCuda) {
    if (!block_ids_checked) {
      return absl::InvalidArgumentError(
          "paged_attention: on CUDA the block tables are on the device; check them on the host "
          "and set block_ids_checked");
    }
    if (head_dim > 256) {
      return absl::UnimplementedError(
          absl::StrCat("paged_attention: the CUDA twin handles head_dim <= 256, got ", head_dim));
    }
    if (num_tokens > 0 && (q == nullptr || out == nullptr || q_stride < num_heads * head_dim)) {
      return absl::InvalidArgumentError("paged_attention: q or out is null, or q_stride too small");
    }
    return absl::OkStatus();  // the rest reads query_start_loc and seq_lens
  }
  if (num_tokens > 0) {
    if (q == nullptr || out == nullptr) {
      return absl::InvalidArgumentError("paged_attention: q or out is null");
    }
    if (q_stride < num_heads * head_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("paged_attention: q_stride=", q_stride,
                       " must be >= num_heads * head_dim = ", num_heads * head_dim));
    }
  }
  if (query_start_loc[0] != 0 || query_start_loc[num_seqs] != num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged_attention: query_start_loc must run from 0 to num_tokens=", num_tokens,
                     ", got ", query_start_loc[0], " .. ", query_start_loc[num_seqs]));
  }
  const int64_t max_context = max_blocks_per_seq * block_size;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = int64_t{query_start_loc[s + 1]} - query_start_loc[s];
    const int64_t seq_len = seq_lens[s];
    if (q_len < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("paged_attention: query_start_loc decreases at sequence ", s));
    }
    if (max_query_len > 0 && q_len > max_query_len) {
      return absl::InvalidArgumentError(absl::StrCat("paged_attention: sequence ", s, " has q_len=",
                                                     q_len, " > max_query_len=", max_query_len));
    }
    if (q_len > seq_len) {
      return absl::InvalidArgumentError(absl::StrCat("paged_attention: sequence ", s,
                                                     " has q_len=", q_len, " > seq_len=", seq_len));
    }
    if (seq_len > max_context) {
      return absl::InvalidArgumentError(absl::StrCat(
          "paged_attention: sequence ", s, " has seq_len=", seq_len,
          " beyond its block table (max_blocks_per_seq * block_size = ", max_context, ")"));
    }
  }
  return absl::OkStatus();
}

int64_t PagedAttentionParams::FirstVisiblePosition(int64_t seq) const {
  if (sliding_window == 0) return 0;
  const int64_t q_len = int64_t{query_start_loc[seq + 1]} - query_start_loc[seq];
  return std::max<int64_t>(0, seq_lens[seq] - q_len - sliding_window + 1);
}

absl::Status PagedAttentionParams::ValidateBlockIds() const {
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t blocks_used = (int64_t{seq_lens[s]} + block_size - 1) / block_size;
    for (int64_t b = FirstVisiblePosition(s) / block_size; b < blocks_used; ++b) {
      const int32_t id = block_tables[s * max_blocks_per_seq + b];
      if (id < 0 || id >= num_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat("paged_attention: sequence ", s, " block_tables[", b, "]=", id,
                         " is outside [0, num_blocks=", num_blocks, ")"));
      }
    }
  }
  return absl::OkStatus();
}

bool PrefersTransposedKeys(Device device, int64_t block_size) {
  return device == Device::kCpu && cpu::ReadsTransposedKeys(block_size);
}

absl::Status PagedAttention(const PagedAttentionParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (!params.block_ids_checked) RETURN_IF_ERROR(params.ValidateBlockIds());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::PagedAttention(params);
  cpu::PagedAttention(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
