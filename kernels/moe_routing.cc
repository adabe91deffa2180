#include "kernels/moe_routing.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/moe_routing.h"

namespace pagoda::kernels {

absl::Status MoeRouteParams::Validate() const {
  if (num_tokens < 0 || num_experts <= 0 || top_k <= 0 || top_k > num_experts ||
      num_experts > (int64_t{1} << 30) || num_tokens * top_k > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("moe_route: bad shape num_tokens=", num_tokens, " num_experts=", num_experts,
                     " top_k=", top_k, " (need num_tokens >= 0, 1 <= top_k <= num_experts)"));
  }
  if (expert_offsets == nullptr)
    return absl::InvalidArgumentError("moe_route: expert_offsets is null");
  if (num_tokens > 0 &&
      (router_logits == nullptr || topk_weights == nullptr || topk_experts == nullptr ||
       sorted_tokens == nullptr || token_rows == nullptr)) {
    return absl::InvalidArgumentError("moe_route: an input or output is null");
  }
  return absl::OkStatus();
}

absl::Status MoeRoute(const MoeRouteParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens > 0) {
    cpu::MoeRoute(params);
  } else {
    for (int64_t e = 0; e <= params.num_experts; ++e) params.expert_offsets[e] = 0;
  }
  return absl::OkStatus();
}

absl::Status MoeGatherParams::Validate() const {
  if (num_tokens < 0 || num_rows < 0 || width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("moe_gather: bad shape num_tokens=", num_tokens,
                                                   " num_rows=", num_rows, " width=", width));
  }
  if (num_rows > 0 && (input == nullptr || rows == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("moe_gather: an input or output is null");
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    if (rows[r] < 0 || rows[r] >= num_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("moe_gather: rows[", r, "] = ", rows[r],
                                                     " is outside [0, ", num_tokens, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status MoeGather(const MoeGatherParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_rows > 0) cpu::MoeGather(params);
  return absl::OkStatus();
}

absl::Status MoeCombineParams::Validate() const {
  if (num_tokens < 0 || top_k <= 0 || num_rows < 0 || width <= 0 || row_begin < 0 ||
      row_begin + num_rows > num_tokens * top_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("moe_combine: bad shape num_tokens=", num_tokens, " top_k=", top_k,
                     " num_rows=", num_rows, " row_begin=", row_begin, " width=", width,
                     " (need row_begin + num_rows <= num_tokens * top_k)"));
  }
  if (num_tokens > 0 && (expert_out == nullptr || topk_weights == nullptr ||
                         token_rows == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("moe_combine: an input or output is null");
  }
  const int64_t all_rows = num_tokens * top_k;
  for (int64_t i = 0; i < all_rows; ++i) {
    if (token_rows[i] < 0 || token_rows[i] >= all_rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "moe_combine: token_rows[", i, "] = ", token_rows[i], " is outside [0, ", all_rows, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status MoeCombine(const MoeCombineParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens > 0) cpu::MoeCombine(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
