#include "kernels/rotary.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/rotary.h"
#include "kernels/cuda/rotary.h"

namespace pagoda::kernels {
namespace {

absl::Status ValidateRopeConfig(const RopeConfig& c) {
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: head_dim must be positive and even, got ", c.head_dim));
  }
  if (c.max_positions <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: max_positions must be positive, got ", c.max_positions));
  }
  if (!(c.theta > 0.0) || !std::isfinite(c.theta)) {
    return absl::InvalidArgumentError(absl::StrCat("rope: theta must be > 0, got ", c.theta));
  }
  if (!c.freq_factors.empty()) {
    if (static_cast<int64_t>(c.freq_factors.size()) != c.head_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat("rope: ", c.freq_factors.size(),
                                                     " frequency factors for head_dim ", c.head_dim,
                                                     "; expected head_dim / 2 = ", c.head_dim / 2));
    }
    for (double f : c.freq_factors) {
      if (!(f > 0.0) || !std::isfinite(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("rope: frequency factors must be finite and > 0, got ", f));
      }
    }
  }
  if (!(c.attention_factor > 0.0) || !std::isfinite(c.attention_factor)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: attention_factor must be finite and > 0, got ", c.attention_factor));
  }
  if (c.linear_factor < 0.0 || !std::isfinite(c.linear_factor)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: linear_factor must be >= 0, got ", c.linear_factor));
  }
  const Llama3RopeScaling& s = c.llama3;
  if (s.factor == 0.0) return absl::OkStatus();
  if (!(s.factor > 0.0) || !std::isfinite(s.factor)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: llama3 factor must be > 0 (or 0 for none), got ", s.factor));
  }
  if (!(s.low_freq_factor > 0.0) || !(s.high_freq_factor > s.low_freq_factor) ||
      !std::isfinite(s.high_freq_factor)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: llama3 needs 0 < low_freq_factor < high_freq_factor, got ",
                     s.low_freq_factor, " and ", s.high_freq_factor));
  }
  if (s.original_max_position_embeddings <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: llama3 original_max_position_embeddings must be positive, got ",
                     s.original_max_position_embeddings));
  }
  return absl::OkStatus();
}

// transformers' _compute_llama3_parameters: long wavelengths are slowed down by `factor`, short
// ones kept, and the band between interpolated smoothly.
double Llama3InvFreq(double inv_freq, const Llama3RopeScaling& s) {
  const double old_context_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / s.low_freq_factor;
  const double high_freq_wavelen = old_context_len / s.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  if (wavelen < high_freq_wavelen) return inv_freq;
  if (wavelen > low_freq_wavelen) return inv_freq / s.factor;
  const double smooth =
      (old_context_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
}

}  // namespace

absl::StatusOr<RopeCache> BuildRopeCache(const RopeConfig& config) {
  if (absl::Status s = ValidateRopeConfig(config); !s.ok()) return s;
  const int64_t dim = config.head_dim;
  const int64_t half = dim / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(config.theta, -static_cast<double>(2 * i) / static_cast<double>(dim));
    if (config.llama3.factor != 0.0) f = Llama3InvFreq(f, config.llama3);
    // transformers' LongRoPE: 1 / (ext_factor * theta^(2i/dim)).
    if (!config.freq_factors.empty()) f /= config.freq_factors[static_cast<size_t>(i)];
    if (config.linear_factor > 0.0) f /= config.linear_factor;
    inv_freq[static_cast<size_t>(i)] = f;
  }
  RopeCache cache;
  cache.head_dim = dim;
  cache.max_positions = config.max_positions;
  cache.cos_sin.resize(static_cast<size_t>(config.max_positions * dim));
  float* table = cache.cos_sin.data();
  const double scale = config.attention_factor;
#pragma omp parallel for schedule(static) if (config.max_positions * half >= (1 << 16))
  for (int64_t pos = 0; pos < config.max_positions; ++pos) {
    float* row = table + pos * dim;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * inv_freq[static_cast<size_t>(i)];
      row[i] = static_cast<float>(scale * std::cos(angle));
      row[half + i] = static_cast<float>(scale * std::sin(angle));
    }
  }
  return cache;
}

absl::Status RotaryParams::Validate() const {
  if (num_tokens < 0 || num_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rotary: bad shape num_tokens=", num_tokens, " num_heads=", num_heads,
                     " num_kv_heads=", num_kv_heads, " head_dim=", head_dim,
                     " (need num_tokens >= 0, heads > 0, head_dim positive and even)"));
  }
  if (rotary_dim < 0 || rotary_dim > head_dim || rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rotary: rotary_dim=", rotary_dim, " must be even and in [0, head_dim=", head_dim, "]"));
  }
  if (cache == nullptr) return absl::InvalidArgumentError("rotary: cache is null");
  if (cache->head_dim != rotated_dims()) {
    return absl::InvalidArgumentError(absl::StrCat("rotary: cache head_dim=", cache->head_dim,
                                                   " differs from the rotated dims ",
                                                   rotated_dims()));
  }
  if (static_cast<int64_t>(cache->cos_sin.size()) != cache->max_positions * cache->head_dim) {
    return absl::InvalidArgumentError("rotary: cache cos_sin size is not max_positions * head_dim");
  }
  if (num_tokens == 0) return absl::OkStatus();
  if (q == nullptr || k == nullptr || positions == nullptr) {
    return absl::InvalidArgumentError("rotary: q, k or positions is null");
  }
  if (q_stride < num_heads * head_dim || k_stride < num_kv_heads * head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rotary: q_stride=", q_stride, " must be >= num_heads * head_dim = ", num_heads * head_dim,
        " and k_stride=", k_stride, " >= num_kv_heads * head_dim = ", num_kv_heads * head_dim));
  }
  if (device == Device::kCuda) {
    if (device_cos_sin == nullptr) {
      return absl::InvalidArgumentError("rotary: on CUDA device_cos_sin is null");
    }
    if (rotated_dims() != head_dim) {
      return absl::UnimplementedError(
          absl::StrCat("rotary: partial rotary (rotary_dim=", rotary_dim, " of head_dim=", head_dim,
                       ") has no CUDA twin yet"));
    }
    return absl::OkStatus();  // the positions are on the device
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (positions[t] < 0 || positions[t] >= cache->max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("rotary: positions[", t, "]=", positions[t],
                                                     " is outside [0, ", cache->max_positions,
                                                     ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyRotary(const RotaryParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::ApplyRotary(params);
  cpu::ApplyRotary(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
