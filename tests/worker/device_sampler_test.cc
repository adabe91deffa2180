// The DeviceSampler's host side, on any machine: which steps it takes (Handles), and the clear
// errors for bad arguments and for a machine without a CUDA device. Its sampling on a device is
// tests/gpu/device_sampler_cuda_test.cc.
#include "worker/device_sampler.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(DeviceSampler, HandlesStepsWithoutLogprobsAllowListsBadWordsOrBias) {
  SamplingParams greedy{.temperature = 0.0f};
  SamplingParams random{.temperature = 0.8f, .top_k = 20, .top_p = 0.9f, .min_p = 0.05f};
  random.repetition_penalty = 1.2f;
  random.min_tokens = 4;
  const std::vector<uint32_t> bitmask(2, 0xffu);
  std::vector<SamplingInput> inputs = {{.params = &greedy},
                                       {.params = &random, .token_bitmask = bitmask}};
  EXPECT_TRUE(DeviceSampler::Handles(inputs));
  EXPECT_TRUE(DeviceSampler::Handles({}));

  SamplingParams logprobs = greedy;
  logprobs.logprobs = 0;
  SamplingParams allowed = greedy;
  allowed.allowed_token_ids = {1, 2};
  SamplingParams bad_words = greedy;
  bad_words.bad_words_token_ids = {{3}};
  SamplingParams bias = greedy;
  bias.logit_bias = {{5, 1.0f}};
  for (const SamplingParams* p : {&logprobs, &allowed, &bad_words, &bias}) {
    inputs.push_back({.params = p});
    EXPECT_FALSE(DeviceSampler::Handles(inputs));
    inputs.pop_back();
  }
  inputs.push_back({.params = nullptr});
  EXPECT_FALSE(DeviceSampler::Handles(inputs));
}

TEST(DeviceSampler, BadArgumentsAreInvalidArgumentBeforeTheDeviceIsTouched) {
  SamplingParams greedy{.temperature = 0.0f};
  const std::vector<SamplingInput> one = {{.params = &greedy}};
  DeviceSampler sampler;
  absl::StatusOr<std::vector<SampleOutput>> out = sampler.Sample(nullptr, 1, 0, one);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("bad logits shape"));
  out = sampler.Sample(nullptr, 2, 10, one);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("1 sampling inputs for 2"));
  const std::vector<SamplingInput> negative = {{.params = &greedy, .step = -1}};
  out = sampler.Sample(nullptr, 1, 10, negative);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("negative step"));
  SamplingParams logprobs = greedy;
  logprobs.logprobs = 2;
  const std::vector<SamplingInput> host_only = {{.params = &logprobs}};
  out = sampler.Sample(nullptr, 1, 10, host_only);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("only the host Sampler"));
  // No rows: nothing to do, on any machine.
  out = sampler.Sample(nullptr, 0, 10, {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->empty());
}

TEST(DeviceSampler, WithoutADeviceIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is visible";
  SamplingParams greedy{.temperature = 0.0f};
  const std::vector<SamplingInput> one = {{.params = &greedy}};
  std::vector<float> logits(10, 0.0f);
  DeviceSampler sampler;
  const absl::StatusOr<std::vector<SampleOutput>> out = sampler.Sample(logits.data(), 1, 10, one);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();
}

}  // namespace
}  // namespace pagoda
