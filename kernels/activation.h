// The gated activations of a transformer MLP, where `input` holds the gate and up projections side
// by side ([gate | up], width 2*d):
//   SiluAndMul (LLaMA):        out[t, i] = silu(gate) * up,      silu(x) = x / (1 + exp(-x))
//   GeluTanhAndMul (Gemma):    out[t, i] = gelu_tanh(gate) * up,
//     gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (PyTorch's
//     gelu(approximate="tanh"), transformers' "gelu_pytorch_tanh")
// and the soft-capping of logits (Gemma 2's final logits): x <- cap * tanh(x / cap), in place.
//
//   RETURN_IF_ERROR(kernels::GeluTanhAndMul({.input = gate_up, .output = act,
//                                            .num_tokens = n, .d = inter}));
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

/// The same shapes as SiluAndMul.
using GeluTanhAndMulParams = SiluAndMulParams;

absl::Status GeluTanhAndMul(const GeluTanhAndMulParams& params);

struct SoftCapParams {
  float* data = nullptr;  // [count], in place
  int64_t count = 0;
  float cap = 0.0f;              // > 0
  Device device = Device::kCpu;  // where data lives

  absl::Status Validate() const;
};

absl::Status SoftCap(const SoftCapParams& params);

}  // namespace pagoda::kernels
