#include "kernels/gemm.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/integer_gemm.h"
#include "kernels/dequantize.h"

namespace pagoda::kernels {
namespace {

using internal::CpuIsa;
using ::testing::HasSubstr;

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng);
  return v;
}

// C = alpha * A B^T + beta * C in double, B in [n, k] layout.
std::vector<double> Reference(const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<float>& c, int64_t m, int64_t n, int64_t k,
                              float alpha, float beta) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int64_t x = 0; x < k; ++x) dot += double{a[i * k + x]} * b[j * k + x];
      out[i * n + j] = alpha * dot + (beta == 0.0f ? 0.0 : beta * double{c[i * n + j]});
    }
  }
  return out;
}

// Tolerance 1e-5 relative + 1e-5 absolute: k = 131 products of O(1) values in fp32.
void Check(int64_t m, int64_t n, int64_t k, float alpha, float beta, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<float> a = Random(m * k, rng);
  const std::vector<float> b = Random(n * k, rng);
  std::vector<float> c = beta == 0.0f
                             ? std::vector<float>(m * n, std::numeric_limits<float>::quiet_NaN())
                             : Random(m * n, rng);
  const std::vector<double> want = Reference(a, b, c, m, n, k, alpha, beta);
  ASSERT_TRUE(Gemm({.a = a.data(),
                    .b = b.data(),
                    .c = c.data(),
                    .m = m,
                    .n = n,
                    .k = k,
                    .alpha = alpha,
                    .beta = beta})
                  .ok());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(c[i], want[i], 1e-5 + 1e-5 * std::abs(want[i])) << "m=" << m << " at " << i;
  }
}

TEST(Gemm, MatchesNaiveForGemvAndGemm) {
  for (int64_t m : {1, 2, 7}) {
    Check(m, 77, 131, 1.0f, 0.0f, 1);
  }
}

TEST(Gemm, BetaOneAccumulatesIntoC) {
  for (int64_t m : {1, 7}) {
    Check(m, 77, 131, 1.0f, 1.0f, 2);
  }
}

TEST(Gemm, AlphaScales) { Check(5, 33, 65, 0.5f, 0.0f, 3); }

TEST(Gemm, GemvAndGemmAgreeRowByRow) {
  std::mt19937 rng(4);
  constexpr int64_t kM = 7, kN = 77, kK = 131;
  const std::vector<float> a = Random(kM * kK, rng);
  const std::vector<float> b = Random(kN * kK, rng);
  std::vector<float> full(kM * kN);
  ASSERT_TRUE(
      Gemm({.a = a.data(), .b = b.data(), .c = full.data(), .m = kM, .n = kN, .k = kK}).ok());
  for (int64_t i = 0; i < kM; ++i) {
    std::vector<float> row(kN);
    ASSERT_TRUE(
        Gemm({.a = a.data() + i * kK, .b = b.data(), .c = row.data(), .m = 1, .n = kN, .k = kK})
            .ok());
    for (int64_t j = 0; j < kN; ++j) ASSERT_NEAR(row[j], full[i * kN + j], 1e-5);
  }
}

TEST(Gemm, RejectsBadParams) {
  const absl::Status s = Gemm({.m = 1, .n = 0, .k = 4});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("gemm: bad shape"));
  EXPECT_THAT(std::string(Gemm({.m = 2, .n = 3, .k = 4}).message()), HasSubstr("null"));
  EXPECT_TRUE(Gemm({.m = 0, .n = 3, .k = 4}).ok());
  EXPECT_THAT(std::string(Gemm({.m = 0, .n = 3, .k = 4, .ldc = 2}).message()),
              HasSubstr("ldc=2 is below n=3"));
}

TEST(Gemm, RejectsKThatSplitsABlockAndUnknownDTypes) {
  const float a[64] = {};
  const uint8_t b[64] = {};
  float c[1];
  const absl::Status s =
      Gemm({.a = a, .b = b, .b_dtype = DType::kQ4_0, .c = c, .m = 1, .n = 1, .k = 48});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("k=48 is not a whole number of 32-element q4_0"));
  // The K-quants' integer path needs whole 256-element super-blocks: 9 Q8 blocks are refused.
  std::vector<float> a_k(288);
  std::vector<uint8_t> b_k(2 * 144);
  const absl::Status k_quant = Gemm({.a = a_k.data(),
                                     .b = b_k.data(),
                                     .b_dtype = DType::kQ4_K,
                                     .c = c,
                                     .m = 1,
                                     .n = 1,
                                     .k = 288});
  EXPECT_EQ(k_quant.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(k_quant.message()),
              HasSubstr("k=288 is not a whole number of 256-element q4_K"));
  EXPECT_THAT(std::string(Gemm({.a = a,
                                .b = b,
                                .b_dtype = static_cast<DType>(kNumDTypes),
                                .c = c,
                                .m = 1,
                                .n = 1,
                                .k = 32})
                              .message()),
              HasSubstr("unknown weight dtype"));
}

// The float16 fields of a block format (block offsets as in ggml-common.h): the scale first,
// then the min where the format has one.
const std::vector<int>& HalfFields(DType dtype) {
  static const std::map<DType, std::vector<int>> kHalfFields = {
      {DType::kQ8_0, {0}},   {DType::kQ4_0, {0}},    {DType::kQ4_1, {0, 2}},
      {DType::kQ5_0, {0}},   {DType::kQ5_1, {0, 2}}, {DType::kQ2_K, {80, 82}},
      {DType::kQ3_K, {108}}, {DType::kQ4_K, {0, 2}}, {DType::kQ5_K, {0, 2}},
      {DType::kQ6_K, {208}}};
  return kHalfFields.at(dtype);
}

// Weights in any DType. The float types are converted from random fp32; the block formats are
// random bytes whose float16 scale fields (HalfFields) are then set to finite
// values in +-[1/64, 1/8], so every weight is finite and of order 1..100.
std::vector<uint8_t> RandomWeights(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  const DTypeTraits& t = Traits(dtype);
  std::vector<uint8_t> w(static_cast<size_t>(n * k / t.block_elements * t.block_bytes));
  if (!t.quantized) {
    const std::vector<float> f = Random(n * k, rng);
    EXPECT_TRUE(
        Quantize({.dtype = dtype, .src = f.data(), .dst = w.data(), .num_elements = n * k}).ok());
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& x : w) x = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(1.0f / 64, 1.0f / 8);
  for (size_t block = 0; block < w.size(); block += t.block_bytes) {
    for (int offset : HalfFields(dtype)) {
      const float value = (byte(rng) & 1 ? -1.0f : 1.0f) * scale(rng);
      EXPECT_TRUE(
          Quantize(
              {.dtype = DType::kF16, .src = &value, .dst = &w[block + offset], .num_elements = 1})
              .ok());
    }
  }
  return w;
}

float HalfAt(const uint8_t* p) {
  float f;
  EXPECT_TRUE(Dequantize({.dtype = DType::kF16, .src = p, .dst = &f, .num_elements = 1}).ok());
  return f;
}

// The k granule of the integer-path tests: one 32-element Q8 block, or a 256-element K-quant
// super-block.
int64_t KUnit(DType dtype) { return std::max<int64_t>(32, Traits(dtype).block_elements); }

// For the 32-element piece `piece` (0-based within its weight block at `block`): a bound T on
// |fp32 term| / (|a_t| (1 + 1/127)) summed over the piece's elements t, i.e. on the weight-side
// factor of the float products the integer path forms for it (each is a scale times an exact
// int32 sum of unsigned quants times int8 activations). Legacy formats: the quants are at most
// 128 in magnitude (Q8_0 as moved to unsigned), times |dw|, plus the min |mw|. Q4_K / Q5_K:
// (d sc_j) times quants below 16 / 32, plus dmin m_j for the mins term. Q6_K: d sc_g times the
// quant below 64 (before its offset of 32), the larger of the piece's two 16-element scales.
double PieceTermScale(DType dtype, const uint8_t* block, int64_t piece) {
  switch (dtype) {
    case DType::kQ4_K:
    case DType::kQ5_K: {
      // 12-byte scale field at offset 4 (ggml's get_scale_min_k4).
      const uint8_t* q = block + 4;
      const int j = static_cast<int>(piece);
      const int sc = j < 4 ? q[j] & 63 : (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
      const int mn = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
      const double quant_max = dtype == DType::kQ4_K ? 16 : 32;
      return std::abs(HalfAt(block)) * sc * quant_max + std::abs(HalfAt(block + 2)) * mn;
    }
    case DType::kQ6_K: {
      const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
      const int sc =
          std::max(std::abs(int{scales[2 * piece]}), std::abs(int{scales[2 * piece + 1]}));
      return std::abs(HalfAt(block + 208)) * sc * 64;
    }
    default: {
      const std::vector<int>& fields = HalfFields(dtype);
      const double dw = std::abs(HalfAt(block + fields[0]));
      const double mw = fields.size() > 1 ? std::abs(HalfAt(block + fields[1])) : 0.0;
      return 128 * dw + mw;
    }
  }
}

// Which GEMM computes C: the public dispatch, or the integer path on one ISA.
struct Path {
  bool integer = false;       // the integer path (Q8 activations) rather than the dequantizing one
  std::optional<CpuIsa> isa;  // set: call internal::IntegerGemm with it directly
};

// The path kernels::Gemm takes for this dtype under this process's configuration (the 8-bit
// activations apply at every m, all through integer dot products).
Path DispatchedPath(DType dtype) {
  const auto& config = internal::ActiveCpuKernelConfig();
  return {.integer = config.ok() && config->int8_dot && internal::HasIntegerDot(dtype)};
}

// Checks C = alpha A dequant(B)^T + beta C against float64 sums over the dequantized weights
// (Dequantize equals the gguf reference bit for bit, dequantize_test.cc).
// Dequantizing path: any order of summing k fp32 products, scaling by alpha and adding beta C
// rounds each term at most k + 4 times, so |error| <= gamma * (|alpha| sum_t |a_t w_t| + |beta c|)
// with gamma = (k + 4) u / (1 - (k + 4) u), u = 2^-24 (Higham, Accuracy and Stability, 3.1).
// 8-bit path: each activation is first rounded to d_b q with d_b = max_{t in b} |a_t| / 127
// over its 32-element block b, an error of at most d_b / 2 (plus a few ulps of d_b from fp32
// 1 / d_b and x / d_b: the 1e-3 margin), so the exact result moves by at most
// R = |alpha| sum_b (d_b / 2) sum_{t in b} |w_t|; the int32 block sums are exact, and the fp32
// terms (scales times the unsigned quants, mins and offsets times the activation sums) are each
// at most
// |a_t| (1 + 1/127) (128 |dw_b| + |mw_b|) per element (PieceTermScale: the K-quants' sub-block
// scales and mins in their place), so the fp32 rounding adds at most gamma times their sum; k + 4
// roundings per term covers the K-quants' three-factor scales (d sc_j da_j) as well, since there
// are at most 2 k / 32 terms. A wrong block, scale, min, nibble or row is off by a sizeable
// fraction of sum |a_t w_t| instead (random data: R is about 1/254 of it).
void CheckDType(DType dtype, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                uint32_t seed, Path path) {
  SCOPED_TRACE(absl::StrCat(std::string(DTypeName(dtype)), " m=", m, " n=", n, " k=", k,
                            " beta=", beta, path.integer ? " integer path" : "",
                            path.isa ? " " + std::string(internal::CpuIsaName(*path.isa)) : ""));
  std::mt19937 rng(seed);
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k, rng);
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
  if (path.isa) {
    ASSERT_TRUE(p.Validate().ok());
    internal::IntegerGemm(p, *path.isa);
  } else {
    ASSERT_TRUE(Gemm(p).ok());
  }
  const double u = std::ldexp(1.0, -24);
  const double gamma = (k + 4) * u / (1 - (k + 4) * u);
  const DTypeTraits& t = Traits(dtype);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0, magnitude = 0.0, rounding = 0.0, terms = 0.0;
      for (int64_t b = 0; b < k; b += 32) {
        double amax = 0.0, w_abs = 0.0;
        for (int64_t x = b; x < b + 32 && x < k; ++x) {
          const double p = double{a[i * k + x]} * w_f32[j * k + x];
          dot += p;
          magnitude += std::abs(p);
          amax = std::max(amax, std::abs(double{a[i * k + x]}));
          w_abs += std::abs(double{w_f32[j * k + x]});
        }
        if (path.integer) {
          // This 32-element piece lies in one weight block (32 elements, or a K-quant
          // super-block of 8 pieces).
          const uint8_t* block = w.data() + (j * k + b) / t.block_elements * t.block_bytes;
          const int64_t piece = (b % t.block_elements) / 32;
          rounding += amax / 127 / 2 * w_abs;
          terms += amax * (1 + 1.0 / 127) * 32 * PieceTermScale(dtype, block, piece);
        }
      }
      const double c_in = beta == 0.0f ? 0.0 : double{beta} * c0[i * n + j];
      const double want = alpha * dot + c_in;
      const double bound =
          path.integer ? (1 + 1e-3) * std::abs(alpha) * rounding +
                             gamma * (std::abs(alpha) * (magnitude + terms) + std::abs(c_in))
                       : gamma * (std::abs(alpha) * magnitude + std::abs(c_in));
      ASSERT_LE(std::abs(c[i * n + j] - want), bound) << "at row " << i << ", column " << j;
    }
  }
}

void CheckDType(DType dtype, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                uint32_t seed) {
  CheckDType(dtype, m, n, k, alpha, beta, seed, DispatchedPath(dtype));
}

class GemmDTypes : public ::testing::TestWithParam<DType> {
 protected:
  // Several blocks, with a partial last 256-element piece where the format allows one.
  int64_t K() const {
    const int64_t block = Traits(GetParam()).block_elements;
    return block == 1 ? 517 : block == 32 ? 17 * 32 : 3 * 256;
  }
};

TEST_P(GemmDTypes, MatchesFloat64ReferenceOnDequantizedWeights) {
  // m: one row (the streaming path for quantized weights, and for F32 the skinny kernel), odd
  // counts on both sides of the F32 skinny kernel's limit of 8 (dequantized panels and sgemm for
  // the others). n: not a multiple of the 4-row groups; 261 rows split over the threads and, at
  // the larger k, into several panels per thread.
  for (int64_t m : {1, 3, 8, 9, 17}) {
    for (int64_t n : {37, 261}) CheckDType(GetParam(), m, n, K(), 1.0f, 0.0f, 7);
  }
}

TEST_P(GemmDTypes, AlphaAndBetaApply) {
  for (int64_t m : {3, 17}) CheckDType(GetParam(), m, 37, K(), 0.5f, 1.0f, 8);
}

// A row stride (ldc) above n writes an n-column window of a wider C, as one part of a fused
// projection does: the window equals a packed GEMM's output and nothing outside it is touched.
TEST_P(GemmDTypes, RowStrideWritesAWindowOfAWiderC) {
  const DType dtype = GetParam();
  const int64_t n = 37, k = K(), ldc = n + 11, column = 5;
  for (int64_t m : {1, 3, 9, 17}) {
    for (float beta : {0.0f, 1.0f}) {
      SCOPED_TRACE(absl::StrCat(std::string(DTypeName(dtype)), " m=", m, " beta=", beta));
      std::mt19937 rng(11);
      const std::vector<uint8_t> w = RandomWeights(dtype, n, k, rng);
      const std::vector<float> a = Random(m * k, rng);
      const std::vector<float> wide0 = Random(m * ldc, rng);
      std::vector<float> packed(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; ++i) {
        std::copy_n(wide0.begin() + i * ldc + column, n, packed.begin() + i * n);
      }
      std::vector<float> wide = wide0;
      const GemmParams p{.a = a.data(),
                         .b = w.data(),
                         .b_dtype = dtype,
                         .c = packed.data(),
                         .m = m,
                         .n = n,
                         .k = k,
                         .beta = beta};
      ASSERT_TRUE(Gemm(p).ok());
      GemmParams strided = p;
      strided.c = wide.data() + column;
      strided.ldc = ldc;
      ASSERT_TRUE(Gemm(strided).ok());
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          const bool inside = j >= column && j < column + n;
          const float want = inside ? packed[i * n + j - column] : wide0[i * ldc + j];
          ASSERT_EQ(wide[i * ldc + j], want) << "row " << i << ", column " << j;
        }
      }
    }
  }
}

// The integer path on every ISA this CPU runs, called directly (whatever PAGODA_CPU_ISA says):
// m from 1 to 17 (the AVX-512 path's tiles of up to 4 activation rows, the K-quants' 4-row
// passes) and a prefill-sized 64; n odd (a partial vector of 16 weight rows), k an odd number of
// blocks and a single block (K-quants: 256-element super-blocks).
TEST_P(GemmDTypes, IntegerPathOnEveryIsaMatchesTheReference) {
  const DType dtype = GetParam();
  if (!internal::HasIntegerDot(dtype)) GTEST_SKIP() << "no integer dot product for this dtype";
  int tested = 0;
  for (CpuIsa isa : internal::kAllCpuIsas) {
    if (!internal::CpuSupports(isa)) continue;
    ++tested;
    const Path path{.integer = true, .isa = isa};
    const int64_t unit = KUnit(dtype);
    // Every m from 1 to 17: the AVX-512 path's direct tiles (m <= 4, 64 or 32 weight rows) and
    // its unpacked tiles with 4-row groups and every remainder.
    for (int64_t m = 1; m <= 17; ++m) {
      for (int64_t n : {37, 261}) CheckDType(dtype, m, n, 17 * unit, 1.0f, 0.0f, 21, path);
    }
    CheckDType(dtype, 64, 261, 17 * unit, 1.0f, 0.0f, 21, path);
    CheckDType(dtype, 1, 37, unit, 1.0f, 0.0f, 22, path);
    CheckDType(dtype, 3, 37, 4 * unit, 0.5f, 1.0f, 23, path);
  }
  EXPECT_GE(tested, 1);  // scalar runs everywhere
}

// The ISAs agree with each other to within the fp32 reordering (the int32 sums are exact; only
// the order of the fp32 block terms differs), far tighter than the activation-rounding bound.
TEST_P(GemmDTypes, IntegerPathIsasAgree) {
  const DType dtype = GetParam();
  if (!internal::HasIntegerDot(dtype)) GTEST_SKIP() << "no integer dot product for this dtype";
  const int64_t kM = 3, kN = 41, kK = 9 * KUnit(dtype);
  std::mt19937 rng(31);
  const std::vector<uint8_t> w = RandomWeights(dtype, kN, kK, rng);
  const std::vector<float> a = Random(kM * kK, rng);
  std::vector<float> scalar(kM * kN), other(kM * kN);
  GemmParams p{.a = a.data(), .b = w.data(), .b_dtype = dtype, .m = kM, .n = kN, .k = kK};
  p.c = scalar.data();
  internal::IntegerGemm(p, CpuIsa::kScalar);
  for (CpuIsa isa : internal::kAllCpuIsas) {
    if (!internal::CpuSupports(isa)) continue;
    p.c = other.data();
    internal::IntegerGemm(p, isa);
    for (int64_t i = 0; i < kM * kN; ++i) {
      ASSERT_NEAR(other[i], scalar[i], 1e-4 * (1 + std::abs(scalar[i])))
          << internal::CpuIsaName(isa) << " at " << i;
    }
  }
}

// Batch invariance: row i of an m-row product is bit for bit the 1-row product of activation row
// i, for every m, on every ISA this CPU runs (called directly) and through kernels::Gemm (whose
// ISA the gemm_test_isa_* CTest entries force with PAGODA_CPU_ISA). What makes a token's logits
// independent of the step it was computed in: decode batch size, prefill chunk, prefix-cache hit.
void CheckRowsMatchSingleRow(DType dtype, std::optional<CpuIsa> isa, int64_t n, int64_t k) {
  std::mt19937 rng(41);
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k, rng);
  constexpr int64_t kMaxRows = 64;
  const std::vector<float> a = Random(kMaxRows * k, rng);
  auto run = [&](const float* rows, int64_t m, std::vector<float>* c) {
    c->assign(static_cast<size_t>(m * n), 0.0f);
    const GemmParams p{
        .a = rows, .b = w.data(), .b_dtype = dtype, .c = c->data(), .m = m, .n = n, .k = k};
    if (isa) {
      internal::IntegerGemm(p, *isa);
    } else {
      ASSERT_TRUE(Gemm(p).ok());
    }
  };
  std::vector<std::vector<float>> single(kMaxRows);
  for (int64_t i = 0; i < kMaxRows; ++i) run(a.data() + i * k, 1, &single[i]);
  for (int64_t m : {2, 3, 4, 5, 6, 7, 8, 9, 17, 64}) {
    // Rows from different offsets, so that a row sits at different places in the tiles.
    for (int64_t first : {int64_t{0}, kMaxRows - m}) {
      std::vector<float> many;
      run(a.data() + first * k, m, &many);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          ASSERT_EQ(std::bit_cast<uint32_t>(many[i * n + j]),
                    std::bit_cast<uint32_t>(single[first + i][j]))
              << DTypeName(dtype) << (isa ? " " + std::string(internal::CpuIsaName(*isa)) : "")
              << " m=" << m << " n=" << n << " k=" << k << " row " << first + i << " col " << j;
        }
      }
    }
  }
}

TEST_P(GemmDTypes, IntegerPathRowsDoNotDependOnBatchShape) {
  const DType dtype = GetParam();
  if (!internal::HasIntegerDot(dtype)) GTEST_SKIP() << "no integer dot product for this dtype";
  for (CpuIsa isa : internal::kAllCpuIsas) {
    if (!internal::CpuSupports(isa)) continue;
    CheckRowsMatchSingleRow(dtype, isa, 37, 17 * KUnit(dtype));
    CheckRowsMatchSingleRow(dtype, isa, 6, 2 * KUnit(dtype));
  }
  if (DispatchedPath(dtype).integer) {
    // Large enough for kernels::Gemm to split the weight rows across threads.
    CheckRowsMatchSingleRow(dtype, std::nullopt, 1031, 9 * KUnit(dtype));
  }
}

// Which configurations have a packed layout (kernels::PackedGemmWeightBytes): Q8_0, Q4_0 and Q4_1
// on AVX-512 with the integer path and packing on; nothing else, and no bad shape. The
// gemm_test_packed_* CTest entries run this under forced ISAs and PAGODA_CPU_PACK_WEIGHTS=0.
TEST(GemmPacked, OnlyQ8_0AndQ4OnAvx512HaveAPackedLayout) {
  EXPECT_EQ(PackedGemmWeightBytes(DType::kF32, 16, 32), 0);
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ5_1, 16, 32), 0);
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ4_K, 16, 256), 0);
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ8_0, 16, 48), 0);  // k splits a block
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ4_1, 16, 48), 0);
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ8_0, 0, 32), 0);
  const auto& config = internal::ActiveCpuKernelConfig();
  const bool packs =
      config.ok() && config->isa == CpuIsa::kAvx512 && config->int8_dot && config->pack_weights;
  // 17 rows: 2 groups of 16; 2 blocks: 2 x 512 quant bytes and 64 scale bytes (2 x 32) a group.
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ8_0, 17, 64), packs ? 2 * (2 * 512 + 64) : 0);
  // Q4_1, 3 blocks: 3 x 256 quant bytes and 3 x 64 bytes of d and m a group.
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ4_1, 17, 96), packs ? 2 * (3 * 256 + 3 * 64) : 0);
  // Q4_0, 3 blocks: 3 x 256 quant bytes and 3 x 32 bytes of d, padded to 128, a group.
  EXPECT_EQ(PackedGemmWeightBytes(DType::kQ4_0, 33, 96), packs ? 3 * (3 * 256 + 128) : 0);
  std::vector<uint8_t> b(2 * 34), out(4096);
  const absl::Status refused = PackGemmWeights(b.data(), DType::kQ5_0, 1, 64, out.data());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("no packed layout for q5_0"));
}

// Weights in `dtype` packed at load give the bits of the stored layout: at every m from 1 to 17
// and 64 (the few-row tiles and the L2-blocked ones with every remainder), with beta 0 and 1, n
// with a partial group of 16 rows, and n large enough for kernels::Gemm to split the rows over
// threads.
void CheckPackedGivesStoredBits(DType dtype) {
  if (PackedGemmWeightBytes(dtype, 16, 32) == 0) {
    GTEST_SKIP() << "no packed " << DTypeName(dtype) << " layout in this CPU kernel configuration";
  }
  for (int64_t n : {5, 37, 261, 1031}) {
    const int64_t k = n == 1031 ? 9 * 32 : 17 * 32;
    std::mt19937 rng(51);
    const std::vector<uint8_t> w = RandomWeights(dtype, n, k, rng);
    std::vector<uint8_t> packed(static_cast<size_t>(PackedGemmWeightBytes(dtype, n, k)));
    ASSERT_TRUE(PackGemmWeights(w.data(), dtype, n, k, packed.data()).ok());
    const std::vector<float> a = Random(64 * k, rng);
    std::vector<int64_t> ms;
    for (int64_t m = 1; m <= 17; ++m) ms.push_back(m);
    ms.push_back(64);
    for (int64_t m : ms) {
      for (float beta : {0.0f, 1.0f}) {
        const std::vector<float> c0 = Random(m * n, rng);
        std::vector<float> stored = c0, from_packed = c0;
        GemmParams p{.a = a.data(),
                     .b = w.data(),
                     .b_dtype = dtype,
                     .c = stored.data(),
                     .m = m,
                     .n = n,
                     .k = k,
                     .alpha = 0.75f,
                     .beta = beta};
        ASSERT_TRUE(Gemm(p).ok());
        p.b_packed = packed.data();
        p.c = from_packed.data();
        ASSERT_TRUE(Gemm(p).ok());
        for (int64_t x = 0; x < m * n; ++x) {
          ASSERT_EQ(std::bit_cast<uint32_t>(from_packed[x]), std::bit_cast<uint32_t>(stored[x]))
              << DTypeName(dtype) << " n=" << n << " k=" << k << " m=" << m << " beta=" << beta
              << " row " << x / n << " col " << x % n;
        }
      }
    }
  }
}

TEST(GemmPacked, Q8_0PackedWeightsGiveTheStoredLayoutsBits) {
  CheckPackedGivesStoredBits(DType::kQ8_0);
}

TEST(GemmPacked, Q4_1PackedWeightsGiveTheStoredLayoutsBits) {
  CheckPackedGivesStoredBits(DType::kQ4_1);
}

TEST(GemmPacked, Q4_0PackedWeightsGiveTheStoredLayoutsBits) {
  CheckPackedGivesStoredBits(DType::kQ4_0);
}

// The packed Q4_1 GEMM against the float64 product of the dequantized weights and the
// activations: packing moves the nibbles and fields to where the kernel reads them, so an error
// in the layout (a nibble or a row's d or m in the wrong place) that the stored-layout kernel
// shared would still show here. The bound is the 8-bit rounding of the activations: at most
// d_a / 2 = max|a| / 254 per element, times sum |w| over the row.
TEST(GemmPacked, Q4_1PackedWeightsMatchTheDequantizedProduct) {
  if (PackedGemmWeightBytes(DType::kQ4_1, 16, 32) == 0) {
    GTEST_SKIP() << "no packed Q4_1 layout in this CPU kernel configuration";
  }
  const int64_t n = 37, k = 5 * 32, m = 3;
  std::mt19937 rng(7);
  const std::vector<uint8_t> w = RandomWeights(DType::kQ4_1, n, k, rng);
  std::vector<float> w_f32(static_cast<size_t>(n * k));
  ASSERT_TRUE(
      Dequantize(
          {.dtype = DType::kQ4_1, .src = w.data(), .dst = w_f32.data(), .num_elements = n * k})
          .ok());
  std::vector<uint8_t> packed(static_cast<size_t>(PackedGemmWeightBytes(DType::kQ4_1, n, k)));
  ASSERT_TRUE(PackGemmWeights(w.data(), DType::kQ4_1, n, k, packed.data()).ok());
  const std::vector<float> a = Random(m * k, rng);
  std::vector<float> c(static_cast<size_t>(m * n));
  ASSERT_TRUE(Gemm({.a = a.data(),
                    .b = w.data(),
                    .b_dtype = DType::kQ4_1,
                    .b_packed = packed.data(),
                    .c = c.data(),
                    .m = m,
                    .n = n,
                    .k = k})
                  .ok());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double want = 0.0, bound = 1e-5;
      for (int64_t x = 0; x < k; ++x) {
        want += double{a[i * k + x]} * w_f32[j * k + x];
        bound += std::abs(double{w_f32[j * k + x]}) / 254.0;
      }
      EXPECT_NEAR(c[i * n + j], want, bound) << "row " << i << " col " << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, GemmDTypes,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                           DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K,
                                           DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(Traits(info.param).ggml_name);
                         });

// Run by the gemm_test_bad_cpu_isa CTest entry with PAGODA_CPU_ISA set to a name no CPU has:
// every GEMM then fails with the configuration's error instead of running (or crashing).
// The parts of a projection in one call: each part's columns are bit for bit its own Gemm's, for
// parts that all take the integer path (one rounding of A, one parallel region over all their
// rows) and for mixed parts, at decode and prefill sizes; parts that do not share A are refused.
TEST(GemmParts, EachPartIsBitForBitItsOwnGemm) {
  std::mt19937 rng(51);
  const int64_t k = 96;
  const std::vector<std::vector<DType>> cases = {{DType::kQ4_1, DType::kQ4_1, DType::kQ4_1},
                                                 {DType::kQ8_0, DType::kQ4_0, DType::kQ5_1},
                                                 {DType::kQ4_1, DType::kF32},
                                                 {DType::kQ8_0}};
  const int64_t part_rows[] = {37, 16, 611};
  for (const std::vector<DType>& dtypes : cases) {
    std::vector<std::vector<uint8_t>> weights;
    int64_t n = 0;
    for (size_t i = 0; i < dtypes.size(); ++i) {
      weights.push_back(RandomWeights(dtypes[i], part_rows[i], k, rng));
      n += part_rows[i];
    }
    for (int64_t m : {1, 5, 17}) {
      SCOPED_TRACE(testing::Message()
                   << DTypeName(dtypes[0]) << "... x" << dtypes.size() << ", m " << m);
      const std::vector<float> a = Random(m * k, rng);
      std::vector<float> fused(m * n, 1.0f), apart(m * n, 1.0f);
      std::vector<GemmParams> parts;
      int64_t column = 0;
      for (size_t i = 0; i < dtypes.size(); ++i) {
        parts.push_back({.a = a.data(),
                         .b = weights[i].data(),
                         .b_dtype = dtypes[i],
                         .c = fused.data() + column,
                         .m = m,
                         .n = part_rows[i],
                         .k = k,
                         .beta = 0.5f,
                         .ldc = n});
        GemmParams alone = parts.back();
        alone.c = apart.data() + column;
        ASSERT_TRUE(Gemm(alone).ok());
        column += part_rows[i];
      }
      ASSERT_TRUE(GemmParts(parts).ok());
      for (int64_t i = 0; i < m * n; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(fused[i]), std::bit_cast<uint32_t>(apart[i]))
            << "element " << i;
      }
    }
  }
  const std::vector<float> a = Random(2 * k, rng), other = Random(2 * k, rng);
  const std::vector<uint8_t> w = RandomWeights(DType::kQ4_1, 8, k, rng);
  std::vector<float> c(2 * 16);
  const GemmParams first{.a = a.data(),
                         .b = w.data(),
                         .b_dtype = DType::kQ4_1,
                         .c = c.data(),
                         .m = 2,
                         .n = 8,
                         .k = k,
                         .ldc = 16};
  GemmParams second = first;
  second.a = other.data();
  second.c = c.data() + 8;
  const std::vector<GemmParams> mismatched = {first, second};
  EXPECT_THAT(GemmParts(mismatched).message(), testing::HasSubstr("part 1"));
}

TEST(GemmCpuIsa, AnUnusablePagodaCpuIsaFailsEveryGemm) {
  const char* env = std::getenv("PAGODA_CPU_ISA");
  if (env == nullptr) GTEST_SKIP() << "PAGODA_CPU_ISA is not set";
  const absl::StatusOr<CpuIsa> want =
      internal::ResolveCpuIsa(env, internal::WidestSupportedCpuIsa());
  if (want.ok()) GTEST_SKIP() << "PAGODA_CPU_ISA=" << env << " is usable here";
  std::mt19937 rng(5);
  for (DType dtype : {DType::kF32, DType::kQ4_1, DType::kQ6_K}) {
    const std::vector<uint8_t> w = RandomWeights(dtype, 4, 256, rng);
    const std::vector<float> a = Random(256, rng);
    std::vector<float> c(4);
    const absl::Status s = Gemm(
        {.a = a.data(), .b = w.data(), .b_dtype = dtype, .c = c.data(), .m = 1, .n = 4, .k = 256});
    EXPECT_EQ(s.code(), want.status().code()) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("PAGODA_CPU_ISA"));
  }
}

}  // namespace
}  // namespace pagoda::kernels
