// SiLU-and-mul, the gated activation of LLaMA's MLP:
//   out[t, i] = silu(in[t, i]) * in[t, d + i],  silu(x) = x / (1 + exp(-x))
// where in holds the gate and up projections side by side ([gate | up], width 2*d).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct SiluAndMulParams {
  const float* input = nullptr;  // [num_tokens, 2 * d]
  float* output = nullptr;       // [num_tokens, d]
  int64_t num_tokens = 0;
  int64_t d = 0;
  Device device = Device::kCpu;  // where input and output live

  absl::Status Validate() const;
};

absl::Status SiluAndMul(const SiluAndMulParams& params);

}  // namespace pagoda::kernels
