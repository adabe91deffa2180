#include "kernels/cpu/internal/half_gemm.h"

#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/dequantize.h"
#include "kernels/gemm.h"

namespace pagoda::kernels {
namespace {

using internal::CpuIsa;

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng);
  return v;
}

// Random weights in `dtype` (F16 or BF16), rounded from uniform fp32 in [-4, 4].
std::vector<uint16_t> RandomWeights(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  std::vector<float> f = Random(n * k, rng);
  for (float& x : f) x *= 4.0f;
  std::vector<uint16_t> w(static_cast<size_t>(n * k));
  EXPECT_TRUE(
      Quantize({.dtype = dtype, .src = f.data(), .dst = w.data(), .num_elements = n * k}).ok());
  return w;
}

// The ISAs this CPU runs, each of which HalfGemm is called with directly.
std::vector<CpuIsa> SupportedIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : internal::kAllCpuIsas) {
    if (internal::CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

// Checks HalfGemm on `isa` against float64 sums over the dequantized weights (the plain
// dequantize-then-multiply reference; the 16-bit -> fp32 conversion is exact, so only the fp32
// summation differs). Any order of summing k fp32 products (each FMA rounds once, each addition
// of the lane tree once), then scaling by alpha and adding beta C rounds each term at most k + 4
// times: |error| <= gamma (|alpha| sum_t |a_t w_t| + |beta c|), gamma = (k + 4) u / (1 - (k + 4)
// u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). A wrong row, lane, tail or conversion is
// off by a sizeable fraction of sum_t |a_t w_t| instead.
void Check(DType dtype, CpuIsa isa, int64_t m, int64_t n, int64_t k, float alpha, float beta,
           uint32_t seed) {
  SCOPED_TRACE(absl::StrCat(std::string(DTypeName(dtype)), " ",
                            std::string(internal::CpuIsaName(isa)), " m=", m, " n=", n, " k=", k,
                            " alpha=", alpha, " beta=", beta));
  std::mt19937 rng(seed);
  const std::vector<uint16_t> w = RandomWeights(dtype, n, k, rng);
  const std::vector<float> a = Random(m * k, rng);
  const std::vector<float> c0 =
      beta == 0.0f ? std::vector<float>(m * n, std::nanf("")) : Random(m * n, rng);
  std::vector<float> w_f32(static_cast<size_t>(n * k));
  ASSERT_TRUE(
      Dequantize({.dtype = dtype, .src = w.data(), .dst = w_f32.data(), .num_elements = n * k})
          .ok());
  std::vector<float> c = c0;
  const GemmParams p{.a = a.data(),
                     .b = w.data(),
                     .b_dtype = dtype,
                     .c = c.data(),
                     .m = m,
                     .n = n,
                     .k = k,
                     .alpha = alpha,
                     .beta = beta};
  ASSERT_TRUE(p.Validate().ok());
  internal::HalfGemm(p, isa);
  const double u = std::ldexp(1.0, -24);
  const double gamma = (k + 4) * u / (1 - (k + 4) * u);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0, magnitude = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const double product = double{a[i * k + t]} * w_f32[j * k + t];
        dot += product;
        magnitude += std::abs(product);
      }
      const double c_in = beta == 0.0f ? 0.0 : double{beta} * c0[i * n + j];
      const double want = alpha * dot + c_in;
      const double bound = gamma * (std::abs(alpha) * magnitude + std::abs(c_in));
      ASSERT_LE(std::abs(c[i * n + j] - want), bound) << "at row " << i << ", column " << j;
    }
  }
}

class HalfGemmTest : public ::testing::TestWithParam<DType> {};

// m = 1 .. 17 covers every tile height (AVX-512 and scalar: 4 rows, AVX2: 2) and its remainders;
// n is not a multiple of the 4-row tiles; k is below, between and above the 8- and 16-lane
// vectors and never a multiple of 16 except at 32, so the masked or padded tails run.
TEST_P(HalfGemmTest, MatchesFloat64ReferenceOnEveryIsa) {
  for (CpuIsa isa : SupportedIsas()) {
    for (int64_t m = 1; m <= 17; ++m) Check(GetParam(), isa, m, 37, 131, 1.0f, 0.0f, 1);
    for (int64_t k : {1, 7, 15, 17, 32, 517}) Check(GetParam(), isa, 5, 11, k, 1.0f, 0.0f, 2);
    for (int64_t n : {1, 2, 3, 5, 261}) Check(GetParam(), isa, 3, n, 45, 1.0f, 0.0f, 3);
  }
}

TEST_P(HalfGemmTest, AlphaAndBetaApply) {
  for (CpuIsa isa : SupportedIsas()) {
    for (int64_t m : {1, 6, 17}) Check(GetParam(), isa, m, 37, 99, 0.5f, 1.0f, 4);
    Check(GetParam(), isa, 4, 9, 40, -2.0f, 0.25f, 5);
  }
}

// More rows than one pass over the weights takes (256 KiB of activations: 128 rows at k = 517)
// and more weight rows than one thread's share.
TEST_P(HalfGemmTest, ManyRowsTakeSeveralPasses) {
  for (CpuIsa isa : SupportedIsas()) Check(GetParam(), isa, 131, 67, 517, 1.0f, 0.0f, 6);
}

// Batch invariance: row i of an m-row product is bit for bit the 1-row product of activation row
// i, for every m, wherever the row sits in the tiles, and whatever the number of threads (which
// moves the boundaries of each thread's weight rows).
TEST_P(HalfGemmTest, RowsDoNotDependOnBatchShapeOrThreads) {
  const DType dtype = GetParam();
  constexpr int64_t kN = 1031, kK = 203, kMaxRows = 40;
  std::mt19937 rng(7);
  const std::vector<uint16_t> w = RandomWeights(dtype, kN, kK, rng);
  const std::vector<float> a = Random(kMaxRows * kK, rng);
  const int saved_threads = omp_get_max_threads();
  for (CpuIsa isa : SupportedIsas()) {
    auto run = [&](const float* rows, int64_t m, std::vector<float>* c) {
      c->assign(static_cast<size_t>(m * kN), 0.0f);
      internal::HalfGemm(
          {.a = rows, .b = w.data(), .b_dtype = dtype, .c = c->data(), .m = m, .n = kN, .k = kK},
          isa);
    };
    omp_set_num_threads(1);
    std::vector<std::vector<float>> single(kMaxRows);
    for (int64_t i = 0; i < kMaxRows; ++i) run(a.data() + i * kK, 1, &single[i]);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      for (int64_t m : {1, 2, 3, 5, 8, 17, 40}) {
        for (int64_t first : {int64_t{0}, kMaxRows - m}) {
          std::vector<float> many;
          run(a.data() + first * kK, m, &many);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < kN; ++j) {
              ASSERT_EQ(std::bit_cast<uint32_t>(many[i * kN + j]),
                        std::bit_cast<uint32_t>(single[first + i][j]))
                  << DTypeName(dtype) << " " << internal::CpuIsaName(isa) << " threads=" << threads
                  << " m=" << m << " row " << first + i << " col " << j;
            }
          }
        }
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

// The public dispatch sends F16 and BF16 here: under PAGODA_CPU_ISA (the half_gemm_test_isa_*
// CTest entries force each ISA) kernels::Gemm equals HalfGemm on the configured ISA bit for bit.
TEST_P(HalfGemmTest, GemmDispatchesToTheConfiguredIsa) {
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  if (!config.ok()) GTEST_SKIP() << "PAGODA_CPU_ISA is not usable here: " << config.status();
  constexpr int64_t kM = 6, kN = 45, kK = 77;
  std::mt19937 rng(8);
  const std::vector<uint16_t> w = RandomWeights(GetParam(), kN, kK, rng);
  const std::vector<float> a = Random(kM * kK, rng);
  std::vector<float> via_gemm(kM * kN), direct(kM * kN);
  GemmParams p{.a = a.data(), .b = w.data(), .b_dtype = GetParam(), .m = kM, .n = kN, .k = kK};
  p.c = via_gemm.data();
  ASSERT_TRUE(Gemm(p).ok());
  p.c = direct.data();
  internal::HalfGemm(p, config->isa);
  for (int64_t i = 0; i < kM * kN; ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(via_gemm[i]), std::bit_cast<uint32_t>(direct[i]))
        << internal::CpuIsaName(config->isa) << " at " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(HalfTypes, HalfGemmTest, ::testing::Values(DType::kF16, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(Traits(info.param).ggml_name);
                         });

}  // namespace
}  // namespace pagoda::kernels
