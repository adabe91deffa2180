// kernels/cuda/sampling.cu against its CPU twins on a batch of random rows with NaN, +inf, -inf
// and tied maxima planted, for all rows and for a subset. Exact (same bits) for SanitizeLogits,
// Argmax, MaskTokens, ApplyTokenBitmask and TopK; LogSoftmax within 2e-5 · (1 + |x|) (the
// device's expf against the CPU's polynomial, the sum in another order); SoftmaxWeights within
// 2e-5 relative. Needs a CUDA device; skips without one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/sampling.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

constexpr int64_t kSeqs = 6;
constexpr int64_t kVocab = 1031;  // not a multiple of 32 or of the block
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> Logits(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> x = testing::RandomFloats(kSeqs * kVocab, rng, -20.0f, 20.0f);
  x[3] = kNaN;
  x[kVocab + 5] = kInf;
  x[2 * kVocab + 7] = -kInf;
  for (int64_t j = 0; j < kVocab; ++j) x[4 * kVocab + j] = -kInf;  // no finite logit
  x[5 * kVocab + 100] = 25.0f;                                     // a tie for the maximum
  x[5 * kVocab + 900] = 25.0f;
  return x;
}

// All rows, or rows 1, 2, 4 and 5 (the device twin reads `rows` from the host).
const std::vector<int32_t> kSubset = {1, 2, 4, 5};

SamplingRows Batch(bool subset, Device device) {
  return {.num_seqs = kSeqs,
          .vocab_size = kVocab,
          .rows = subset ? kSubset.data() : nullptr,
          .num_rows = subset ? static_cast<int64_t>(kSubset.size()) : kSeqs,
          .device = device};
}

class SamplingCuda : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
  bool subset() const { return GetParam(); }
};

// Sanitizes `x` on the CPU and on the device, checks both, and returns the sanitized logits.
std::vector<float> SanitizeBoth(std::vector<float> x, bool subset, DeviceArray<float>& device_x,
                                DeviceArray<float>& device_max) {
  std::vector<float> max(kSeqs, kNaN);
  EXPECT_TRUE(SanitizeLogits(
                  {.batch = Batch(subset, Device::kCpu), .logits = x.data(), .row_max = max.data()})
                  .ok());
  const absl::Status s = SanitizeLogits({.batch = Batch(subset, Device::kCuda),
                                         .logits = device_x.get(),
                                         .row_max = device_max.get()});
  EXPECT_TRUE(s.ok()) << s;
  testing::ExpectSameBits(device_x.Host(), x);
  testing::ExpectSameBits(device_max.Host(), max);
  return x;
}

TEST_P(SamplingCuda, SanitizeAndArgmaxAreExact) {
  const std::vector<float> raw = Logits(1);
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  const std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  std::vector<int32_t> ids(kSeqs, -1);
  ASSERT_TRUE(
      Argmax({.batch = Batch(subset(), Device::kCpu), .logits = x.data(), .token_ids = ids.data()})
          .ok());
  DeviceArray<int32_t> dids(std::vector<int32_t>(kSeqs, -1));
  const absl::Status s = Argmax(
      {.batch = Batch(subset(), Device::kCuda), .logits = dx.get(), .token_ids = dids.get()});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(dids.Host(), ids);
  EXPECT_EQ(ids[5], 100);  // the lower id of the tie (row 5 is in both batches)
}

TEST_P(SamplingCuda, LogSoftmaxIsClose) {
  std::vector<float> raw = Logits(2);
  for (int64_t j = 0; j < kVocab; ++j) raw[4 * kVocab + j] = static_cast<float>(j % 7);  // finite
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  const std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  std::vector<float> max(kSeqs);
  ASSERT_TRUE(
      SanitizeLogits(
          {.batch = Batch(false, Device::kCpu), .logits = raw.data(), .row_max = max.data()})
          .ok());
  const int64_t rows = Batch(subset(), Device::kCpu).num_rows;
  std::vector<float> logprobs(rows * kVocab, kNaN);
  ASSERT_TRUE(LogSoftmax({.batch = Batch(subset(), Device::kCpu),
                          .logits = x.data(),
                          .row_max = max.data(),
                          .logprobs = logprobs.data()})
                  .ok());
  DeviceArray<float> dlogprobs(std::vector<float>(rows * kVocab, kNaN));
  const absl::Status s = LogSoftmax({.batch = Batch(subset(), Device::kCuda),
                                     .logits = dx.get(),
                                     .row_max = dmax.get(),
                                     .logprobs = dlogprobs.get()});
  ASSERT_TRUE(s.ok()) << s;
  testing::ExpectClose(dlogprobs.Host(), logprobs, 2e-5f);
}

TEST_P(SamplingCuda, TopKIsExactWithTies) {
  std::vector<float> raw = Logits(3);
  for (int64_t j = 0; j < kVocab; j += 50) raw[2 * kVocab + j] = 19.5f;  // many ties in row 2
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  const std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  constexpr int64_t kMaxK = 24;
  const std::vector<int32_t> k = {0, 1, 24, 7, 3, 20};
  std::vector<int32_t> ids(kSeqs * kMaxK, -1);
  std::vector<float> values(kSeqs * kMaxK, kNaN);
  ASSERT_TRUE(TopK({.batch = Batch(subset(), Device::kCpu),
                    .values = x.data(),
                    .k = k.data(),
                    .max_k = kMaxK,
                    .top_ids = ids.data(),
                    .top_values = values.data()})
                  .ok());
  DeviceArray<int32_t> dids(std::vector<int32_t>(kSeqs * kMaxK, -1));
  DeviceArray<float> dvalues(std::vector<float>(kSeqs * kMaxK, kNaN));
  const absl::Status s = TopK({.batch = Batch(subset(), Device::kCuda),
                               .values = dx.get(),
                               .k = k.data(),
                               .max_k = kMaxK,
                               .top_ids = dids.get(),
                               .top_values = dvalues.get()});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(dids.Host(), ids);
  testing::ExpectSameBits(dvalues.Host(), values);
}

TEST_P(SamplingCuda, MaskAndBitmaskAreExact) {
  const std::vector<float> raw = Logits(4);
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  // Row s masks ids {s, 10 s, an id past the vocabulary, a negative one}; row 3 none.
  std::vector<int64_t> offsets = {0};
  std::vector<int32_t> mask_ids;
  for (int32_t s = 0; s < kSeqs; ++s) {
    if (s != 3) mask_ids.insert(mask_ids.end(), {s, 10 * s, int32_t{kVocab} + 4, -2});
    offsets.push_back(static_cast<int64_t>(mask_ids.size()));
  }
  ASSERT_TRUE(MaskTokens({.batch = Batch(subset(), Device::kCpu),
                          .logits = x.data(),
                          .offsets = offsets.data(),
                          .token_ids = mask_ids.data()})
                  .ok());
  absl::Status s = MaskTokens({.batch = Batch(subset(), Device::kCuda),
                               .logits = dx.get(),
                               .offsets = offsets.data(),
                               .token_ids = mask_ids.data()});
  ASSERT_TRUE(s.ok()) << s;
  testing::ExpectSameBits(dx.Host(), x);

  // 30 words cover 960 of the 1031 ids: the rest are never allowed.
  constexpr int64_t kWords = 30;
  std::mt19937 rng(5);
  const int64_t rows = Batch(subset(), Device::kCpu).num_rows;
  std::vector<uint32_t> bitmask(rows * kWords);
  for (int64_t i = 0; i < rows * kWords; ++i) {
    bitmask[i] = i % 5 == 0 ? 0u : i % 5 == 1 ? ~0u : static_cast<uint32_t>(rng());
  }
  ASSERT_TRUE(ApplyTokenBitmask({.batch = Batch(subset(), Device::kCpu),
                                 .logits = x.data(),
                                 .bitmask = bitmask.data(),
                                 .bitmask_words = kWords})
                  .ok());
  s = ApplyTokenBitmask({.batch = Batch(subset(), Device::kCuda),
                         .logits = dx.get(),
                         .bitmask = bitmask.data(),
                         .bitmask_words = kWords});
  ASSERT_TRUE(s.ok()) << s;
  testing::ExpectSameBits(dx.Host(), x);
}

TEST_P(SamplingCuda, SoftmaxWeightsAreClose) {
  const std::vector<float> raw = Logits(6);
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  const std::vector<float> temperature = {0.5f, 1.0f, 1.7f, 0.9f, 1.0f, 2.0f};
  const std::vector<float> min_p = {0.0f, 0.05f, 0.0f, 0.3f, 0.0f, 0.0f};
  std::vector<float> max(kSeqs, kNaN);
  ASSERT_TRUE(SoftmaxWeights({.batch = Batch(subset(), Device::kCpu),
                              .logits = x.data(),
                              .temperature = temperature.data(),
                              .min_p = min_p.data(),
                              .row_max = max.data()})
                  .ok());
  const absl::Status s = SoftmaxWeights({.batch = Batch(subset(), Device::kCuda),
                                         .logits = dx.get(),
                                         .temperature = temperature.data(),
                                         .min_p = min_p.data(),
                                         .row_max = dmax.get()});
  ASSERT_TRUE(s.ok()) << s;
  testing::ExpectSameBits(dmax.Host(), max);
  // Row 4 has no finite logit: all its weights are 0 on both (when selected).
  testing::ExpectClose(dx.Host(), x, 2e-5f);
}

TEST_P(SamplingCuda, PenaltiesAreExact) {
  const std::vector<float> raw = Logits(7);
  DeviceArray<float> dx(raw), dmax(std::vector<float>(kSeqs, kNaN));
  std::vector<float> x = SanitizeBoth(raw, subset(), dx, dmax);
  // Each row its own mix: none, repetition only, frequency and presence, all three, ...
  const std::vector<float> repetition = {1.0f, 1.3f, 1.0f, 0.8f, 1.5f, 1.2f};
  const std::vector<float> frequency = {0.0f, 0.0f, 0.5f, 0.25f, -0.3f, 0.7f};
  const std::vector<float> presence = {0.0f, 0.0f, 1.0f, 0.5f, 0.0f, -0.2f};
  std::mt19937 rng(8);
  std::uniform_int_distribution<int32_t> id(0, 60);  // few distinct ids: repeats and overlaps
  std::vector<int64_t> prompt_offsets = {0}, output_offsets = {0};
  std::vector<int32_t> prompt_ids, output_ids;
  for (int64_t s = 0; s < kSeqs; ++s) {
    for (int j = 0; j < 40; ++j) prompt_ids.push_back(id(rng));
    for (int j = 0; j < 25 * static_cast<int>(s); ++j) output_ids.push_back(id(rng) + 20);
    prompt_offsets.push_back(static_cast<int64_t>(prompt_ids.size()));
    output_offsets.push_back(static_cast<int64_t>(output_ids.size()));
  }
  auto params = [&](Device device, float* logits) {
    return PenaltiesParams{.batch = Batch(subset(), device),
                           .logits = logits,
                           .repetition_penalty = repetition.data(),
                           .frequency_penalty = frequency.data(),
                           .presence_penalty = presence.data(),
                           .prompt_offsets = prompt_offsets.data(),
                           .prompt_token_ids = prompt_ids.data(),
                           .output_offsets = output_offsets.data(),
                           .output_token_ids = output_ids.data()};
  };
  ASSERT_TRUE(ApplyPenalties(params(Device::kCpu, x.data())).ok());
  const absl::Status s = ApplyPenalties(params(Device::kCuda, dx.get()));
  ASSERT_TRUE(s.ok()) << s;
  testing::ExpectSameBits(dx.Host(), x);
}

INSTANTIATE_TEST_SUITE_P(Rows, SamplingCuda, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Subset" : "All";
                         });

// The draw on a regular grid of kDraws uniforms, (i + 0.5) / kDraws, one batch row each over the
// same weights: an inverse CDF over any order of the kept entries then picks each kept entry
// within one of kDraws · w / (kept weight) times, and nothing else. The reference keeps the
// entries in float64 by the CPU twin's rules (top_k heaviest, lowest ids on ties; then the
// smallest heaviest-first prefix reaching top_p of their weight); the CPU twin's own counts on
// the same grid are checked the same way, also where no device is.
struct DrawCase {
  int32_t top_k;
  float top_p;
};

void PrintTo(const DrawCase& c, std::ostream* os) {
  *os << "top_k=" << c.top_k << " top_p=" << c.top_p;
}

class SampleFromWeightsCuda : public ::testing::TestWithParam<DrawCase> {};

constexpr int64_t kDraws = 2048;

std::vector<float> DrawWeights() {
  std::mt19937 rng(9);
  std::vector<float> w = testing::RandomFloats(kVocab, rng, 0.0f, 1.0f);
  for (int64_t j = 0; j < kVocab; j += 3) w[j] *= w[j] * w[j];  // a long tail
  for (int64_t j = 5; j < kVocab; j += 97) w[j] = 0.0f;         // never drawn
  for (int64_t j : {10, 20, 30, 40, 50}) w[j] = 0.9990f;        // ties around the top-k cut
  w[700] = 1.0f;                                                // the maximum
  return w;
}

// Which ids the draw may pick, and the kept weight.
std::vector<bool> KeptByReference(const std::vector<float>& w, const DrawCase& c, double* total) {
  std::vector<int64_t> order(w.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return w[a] > w[b]; });
  size_t kept = order.size();
  if (c.top_k > 0 && static_cast<size_t>(c.top_k) < kept) kept = c.top_k;
  if (c.top_p < 1.0f) {
    double all = 0;
    for (size_t i = 0; i < kept; ++i) all += w[order[i]];
    const double target = static_cast<double>(c.top_p) * all;
    double running = 0;
    for (size_t i = 0; i < kept; ++i) {
      running += w[order[i]];
      if (running >= target) {
        kept = i + 1;
        break;
      }
    }
  }
  std::vector<bool> keep(w.size(), false);
  *total = 0;
  for (size_t i = 0; i < kept; ++i) {
    keep[order[i]] = w[order[i]] > 0.0f;
    *total += w[order[i]];
  }
  return keep;
}

void ExpectGridCounts(const std::vector<int32_t>& ids, const std::vector<float>& w,
                      const std::vector<bool>& keep, double total, const char* who) {
  std::vector<int64_t> counts(w.size(), 0);
  for (int32_t id : ids) {
    ASSERT_GE(id, 0) << who;
    ASSERT_LT(id, static_cast<int32_t>(w.size())) << who;
    ASSERT_TRUE(keep[id]) << who << " drew id " << id << " (weight " << w[id]
                          << "), which the filters drop";
    ++counts[id];
  }
  for (size_t j = 0; j < w.size(); ++j) {
    if (!keep[j]) continue;
    const double expected = kDraws * static_cast<double>(w[j]) / total;
    EXPECT_LE(std::abs(static_cast<double>(counts[j]) - expected), 1.01)
        << who << ": id " << j << " drawn " << counts[j] << " times, expected " << expected;
  }
}

TEST_P(SampleFromWeightsCuda, KeepsTheSameEntriesAndDrawsTheirDistribution) {
  const DrawCase c = GetParam();
  const std::vector<float> row = DrawWeights();
  std::vector<float> weights;
  for (int64_t i = 0; i < kDraws; ++i) weights.insert(weights.end(), row.begin(), row.end());
  const std::vector<int32_t> top_k(kDraws, c.top_k);
  const std::vector<float> top_p(kDraws, c.top_p);
  std::vector<double> uniform(kDraws);
  for (int64_t i = 0; i < kDraws; ++i) uniform[i] = (static_cast<double>(i) + 0.5) / kDraws;
  const SamplingRows cpu{.num_seqs = kDraws, .vocab_size = kVocab, .num_rows = kDraws};
  SamplingRows cuda = cpu;
  cuda.device = Device::kCuda;

  std::vector<int32_t> ids(kDraws, -1);
  ASSERT_TRUE(SampleFromWeights({.batch = cpu,
                                 .weights = weights.data(),
                                 .top_k = top_k.data(),
                                 .top_p = top_p.data(),
                                 .uniform = uniform.data(),
                                 .token_ids = ids.data()})
                  .ok());
  double total = 0;
  const std::vector<bool> keep = KeptByReference(row, c, &total);
  ExpectGridCounts(ids, row, keep, total, "the CPU twin");  // the reference checked, anywhere

  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  DeviceArray<float> dweights(weights);
  DeviceArray<int32_t> dids(std::vector<int32_t>(kDraws, -1));
  const absl::Status s = SampleFromWeights({.batch = cuda,
                                            .weights = dweights.get(),
                                            .top_k = top_k.data(),
                                            .top_p = top_p.data(),
                                            .uniform = uniform.data(),
                                            .token_ids = dids.get()});
  ASSERT_TRUE(s.ok()) << s;
  ExpectGridCounts(dids.Host(), row, keep, total, "the CUDA twin");
}

INSTANTIATE_TEST_SUITE_P(Filters, SampleFromWeightsCuda,
                         ::testing::Values(DrawCase{0, 1.0f}, DrawCase{1, 1.0f}, DrawCase{3, 1.0f},
                                           DrawCase{7, 1.0f}, DrawCase{50, 1.0f}, DrawCase{0, 0.6f},
                                           DrawCase{0, 0.05f}, DrawCase{40, 0.5f},
                                           DrawCase{600, 0.9f}));

}  // namespace
}  // namespace pagoda::kernels
