// Test support: below which top-two margin a SmolLM2 golden token (../shared/models/smollm2) may
// legitimately come out as the other token on this process's CPU kernels (and those of the
// workers it starts, which inherit its environment).
//
//   if (got[t] != want[t] && golden_margin[t] < SmolLm2NearTie()) break;  // another continuation
//
// The exact path (fp32 activations against dequantized weights, PAGODA_CPU_INT8_DOT=0) differs
// from the float64 goldens only by fp32 round-off: 5e-3 (the goldens' README). The default
// integer path rounds every activation row to 8 bits before the quantized weights' products
// (kernels/cpu/internal/integer_gemm.h), as llama.cpp does, which moves the logits far more:
// measured against the exact path on the 4 golden prompts x 48 steps, on each ISA (scalar, AVX2,
// AVX-512; 268 steps before the sequences part), the top-two margin moved by at most 0.71
// (median 0.09-0.10, 99th percentile 0.41-0.50) and single logits by at most 1.95; tokens
// flipped at golden margins of up to 0.30. (A first version of the quantizer, which differed only
// in how it rounded exact ties, moved them by up to 1.01 and 2.38 over 380 steps, with flips up to
// 0.40.) A token whose margin is below 1.5, 1.5 times the largest shift seen, may therefore flip;
// a flip at a larger margin is an error (a broken kernel flips tokens at margins of several units
// within a few steps: the goldens' margins reach 1 to 10).
#pragma once

namespace pagoda::testing {

inline constexpr double kSmolLm2NearTieExact = 5e-3;
inline constexpr double kSmolLm2NearTieInt8 = 1.5;
/// The largest move of a single logit by the 8-bit activations measured above (either version).
inline constexpr double kSmolLm2Int8LogitShift = 2.38;

/// Whether the CPU GEMMs of quantized weights round the activations to 8 bits here.
bool CpuKernelsQuantizeActivations();

/// kSmolLm2NearTieInt8 or kSmolLm2NearTieExact, by CpuKernelsQuantizeActivations().
double SmolLm2NearTie();

}  // namespace pagoda::testing
