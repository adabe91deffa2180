// worker/device_sampler.cc against the host Sampler on the same logits: greedy rows (plain, with
// penalties, with the min_tokens mask, with a grammar's bitmask) give the same tokens; random
// rows give a token the filters keep, and over many draws on a small vocabulary the frequencies
// of the softmax at the row's temperature (chi-square, false alarm 1e-6); rows left without a
// finite logit fail the call as on the host. Needs a CUDA device; skips without one.
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "tests/gpu/cuda_test_util.h"
#include "worker/device_sampler.h"
#include "worker/sampler.h"

namespace pagoda {
namespace {

using kernels::testing::DeviceArray;
namespace gpu = kernels::testing;
using ::testing::HasSubstr;

constexpr int64_t kVocab = 50261;  // odd, past a few blocks of threads
constexpr float kInf = std::numeric_limits<float>::infinity();

class DeviceSamplerCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gpu::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(DeviceSamplerCuda, GreedyRowsGiveTheHostSamplersTokens) {
  std::mt19937 rng(11);
  SamplingParams plain{.temperature = 0.0f};
  SamplingParams penalized{.temperature = 0.0f, .repetition_penalty = 1.3f};
  penalized.presence_penalty = 0.7f;
  penalized.frequency_penalty = 0.4f;
  SamplingParams min_tokens{.temperature = 0.0f};
  min_tokens.min_tokens = 5;
  min_tokens.stop_token_ids = {17};
  SamplingParams constrained{.temperature = 0.0f};
  const std::vector<int32_t> prompt = {1, 2, 3, 40000};
  const std::vector<int32_t> outputs = {9, 9, 123, 50000};
  const std::vector<int32_t> eos = {2};
  std::vector<uint32_t> bitmask((kVocab + 31) / 32, 0u);
  for (int32_t id : {5, 77, 4096, 50260}) bitmask[id / 32] |= 1u << (id % 32);
  const std::vector<SamplingInput> inputs = {
      {.params = &plain, .step = 0},
      {.params = &penalized, .step = 4, .prompt_token_ids = prompt, .output_token_ids = outputs},
      {.params = &min_tokens, .step = 1, .eos_token_ids = eos},
      {.params = &constrained, .step = 2, .token_bitmask = bitmask},
  };
  const int64_t rows = static_cast<int64_t>(inputs.size());
  std::vector<float> logits = gpu::RandomFloats(rows * kVocab, rng, -10.0f, 10.0f);
  // The penalized row's and the masked row's best tokens are the ones their rules change.
  logits[1 * kVocab + 9] = 30.0f;
  logits[1 * kVocab + 40000] = 29.0f;
  logits[2 * kVocab + 2] = 30.0f;
  logits[2 * kVocab + 17] = 29.0f;
  logits[0 * kVocab + 3] = std::numeric_limits<float>::quiet_NaN();
  logits[0 * kVocab + 1234] = kInf;  // the largest float after sanitizing: the argmax

  std::vector<float> host = logits;
  const absl::StatusOr<std::vector<SampleOutput>> expected =
      Sampler().Sample(absl::MakeSpan(host), rows, kVocab, inputs);
  ASSERT_TRUE(expected.ok()) << expected.status();
  DeviceArray<float> device(logits);
  DeviceSampler sampler;
  const absl::StatusOr<std::vector<SampleOutput>> got =
      sampler.Sample(device.get(), rows, kVocab, inputs);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), expected->size());
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ((*got)[r].token_id, (*expected)[r].token_id) << "row " << r;
  }
  EXPECT_EQ((*got)[0].token_id, 1234);
  EXPECT_NE((*got)[2].token_id, 2);  // EOS masked below min_tokens
  EXPECT_NE((*got)[2].token_id, 17);
}

TEST_F(DeviceSamplerCuda, RandomRowsKeepTheirFiltersAndFollowTheSoftmax) {
  // 6 finite logits, 997 ids apart, in rows of 5982 (the rest -inf): 6000 draws of the same row,
  // one step each.
  constexpr int kDraws = 6000;
  constexpr int64_t kRowVocab = 6 * 997;
  const std::vector<float> small = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.2f};
  SamplingParams params{.temperature = 0.7f};
  std::vector<SamplingInput> inputs(kDraws);
  for (int i = 0; i < kDraws; ++i) inputs[i] = {.params = &params, .seed = 99, .step = i};
  std::vector<float> logits(static_cast<size_t>(kDraws) * kRowVocab, -kInf);
  for (int i = 0; i < kDraws; ++i) {
    for (size_t j = 0; j < small.size(); ++j) logits[i * kRowVocab + j * 997] = small[j];
  }
  DeviceArray<float> device(logits);
  DeviceSampler sampler;
  const absl::StatusOr<std::vector<SampleOutput>> got =
      sampler.Sample(device.get(), kDraws, kRowVocab, inputs);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<double> counts(small.size(), 0.0);
  for (const SampleOutput& out : *got) {
    ASSERT_EQ(out.token_id % 997, 0) << out.token_id;
    ASSERT_LT(out.token_id / 997, static_cast<int>(small.size()));
    ++counts[out.token_id / 997];
  }
  double z = 0.0;
  for (float x : small) z += std::exp(x / 0.7);
  double chi2 = 0.0;
  for (size_t j = 0; j < small.size(); ++j) {
    const double expected = kDraws * std::exp(small[j] / 0.7) / z;
    chi2 += (counts[j] - expected) * (counts[j] - expected) / expected;
  }
  // 5 degrees of freedom: P(chi2 > 35.9) = 1e-6.
  EXPECT_LT(chi2, 35.9) << "counts " << ::testing::PrintToString(counts);

  // top_k 2: only the two best; top_p small: only the best.
  SamplingParams top_k{.temperature = 1.0f, .top_k = 2};
  SamplingParams top_p{.temperature = 1.0f, .top_p = 0.05f};
  for (int i = 0; i < kDraws; ++i) inputs[i].params = i % 2 == 0 ? &top_k : &top_p;
  DeviceArray<float> again(logits);
  const absl::StatusOr<std::vector<SampleOutput>> filtered =
      sampler.Sample(again.get(), kDraws, kRowVocab, inputs);
  ASSERT_TRUE(filtered.ok()) << filtered.status();
  std::set<int32_t> top_k_tokens, top_p_tokens;
  for (int i = 0; i < kDraws; ++i) {
    (i % 2 == 0 ? top_k_tokens : top_p_tokens).insert((*filtered)[i].token_id);
  }
  EXPECT_EQ(top_k_tokens, (std::set<int32_t>{0, 4 * 997}));
  EXPECT_EQ(top_p_tokens, (std::set<int32_t>{4 * 997}));
}

TEST_F(DeviceSamplerCuda, RowsWithoutAFiniteLogitFailTheCallAsOnTheHost) {
  SamplingParams greedy{.temperature = 0.0f};
  SamplingParams random{.temperature = 1.0f};
  const std::vector<uint32_t> nothing_allowed((kVocab + 31) / 32, 0u);
  struct Case {
    std::vector<SamplingInput> inputs;
    bool all_nan;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{{.params = &greedy}, {.params = &random}}, true, "sequence 0: no finite logit left in"},
      {{{.params = &greedy}, {.params = &greedy, .token_bitmask = nothing_allowed}},
       false,
       "sequence 1: no finite logit left after"},
      {{{.params = &random, .token_bitmask = nothing_allowed}, {.params = &greedy}},
       false,
       "sequence 0: no finite logit left after"},
  };
  for (const Case& c : cases) {
    std::vector<float> logits(2 * kVocab, 1.0f);
    if (c.all_nan) {
      for (int64_t j = 0; j < kVocab; ++j) logits[j] = std::numeric_limits<float>::quiet_NaN();
    }
    std::vector<float> host = logits;
    const absl::StatusOr<std::vector<SampleOutput>> expected =
        Sampler().Sample(absl::MakeSpan(host), 2, kVocab, c.inputs);
    DeviceArray<float> device(logits);
    DeviceSampler sampler;
    const absl::StatusOr<std::vector<SampleOutput>> got =
        sampler.Sample(device.get(), 2, kVocab, c.inputs);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.message));
    EXPECT_EQ(got.status(), expected.status());
  }
}

}  // namespace
}  // namespace pagoda
