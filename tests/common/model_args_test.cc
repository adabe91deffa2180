#include "common/model_args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

absl::StatusOr<ModelMemoryConfig> Parse(const std::vector<const char*>& args,
                                        std::vector<std::string>* given = nullptr) {
  ArgParser parser("test", "");
  ModelArgs model_args;
  model_args.Register(parser);
  const absl::Status status = parser.Parse(static_cast<int>(args.size()), args.data());
  if (!status.ok()) return status;
  if (given != nullptr) *given = model_args.GivenFlags(parser);
  return model_args.Build();
}

TEST(ModelArgs, DefaultsAreAutoAndNothingIsPassedOn) {
  std::vector<std::string> given;
  absl::StatusOr<ModelMemoryConfig> config = Parse({}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->weight_dtype.has_value());
  EXPECT_EQ(config->kv_cache_dtype, DType::kF32);
  EXPECT_FALSE(config->expert_parallel);
  EXPECT_EQ(config->device, DeviceChoice::kAuto);
  EXPECT_DOUBLE_EQ(config->gpu_memory_utilization, 0.9);
  EXPECT_THAT(given, IsEmpty());
}

// pagoda serve passes the switch on to every worker, so that all ranks shard the experts alike.
TEST(ModelArgs, ExpertParallelIsASwitchPassedOn) {
  std::vector<std::string> given;
  absl::StatusOr<ModelMemoryConfig> config = Parse({"--enable-expert-parallel"}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->expert_parallel);
  EXPECT_THAT(given, ElementsAre("--enable-expert-parallel"));
}

TEST(ModelArgs, ParsesTheTypesAndPassesOnTheGivenFlags) {
  std::vector<std::string> given;
  absl::StatusOr<ModelMemoryConfig> config =
      Parse({"--dtype", "bfloat16", "--kv-cache-dtype=bf16"}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->weight_dtype, DType::kBF16);
  EXPECT_EQ(config->kv_cache_dtype, DType::kBF16);
  EXPECT_THAT(given, ElementsAre("--dtype=bfloat16", "--kv-cache-dtype=bf16"));
  EXPECT_EQ(Parse({"--dtype=float16"})->weight_dtype, DType::kF16);
  EXPECT_EQ(Parse({"--dtype=Float32"})->weight_dtype, DType::kF32);
  EXPECT_EQ(Parse({"--kv-cache-dtype=float32"})->kv_cache_dtype, DType::kF32);
}

// pagoda serve passes the device flags on to every worker.
TEST(ModelArgs, ParsesTheDeviceAndPassesItOn) {
  std::vector<std::string> given;
  absl::StatusOr<ModelMemoryConfig> config =
      Parse({"--device", "CUDA", "--gpu-memory-utilization=0.5"}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->device, DeviceChoice::kCuda);
  EXPECT_DOUBLE_EQ(config->gpu_memory_utilization, 0.5);
  EXPECT_THAT(given, ElementsAre("--device=CUDA", "--gpu-memory-utilization=0.5"));
  EXPECT_EQ(Parse({"--device=cpu"})->device, DeviceChoice::kCpu);
  EXPECT_EQ(Parse({"--device=gpu"})->device, DeviceChoice::kCuda);
  EXPECT_EQ(Parse({"--gpu-memory-utilization=1"})->gpu_memory_utilization, 1.0);
}

// vLLM's switch: off by default (CUDA graphs on), passed on to every worker when given.
TEST(ModelArgs, EnforceEagerIsASwitchPassedOn) {
  std::vector<std::string> given;
  absl::StatusOr<ModelMemoryConfig> config = Parse({}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->enforce_eager);
  config = Parse({"--enforce-eager", "--device=cuda"}, &given);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->enforce_eager);
  EXPECT_THAT(given, ElementsAre("--device=cuda", "--enforce-eager"));
}

TEST(ModelArgs, ABadValueNamesTheFlagAndTheChoices) {
  const absl::Status dtype = Parse({"--dtype=q4_K"}).status();
  EXPECT_EQ(dtype.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dtype.message()),
              HasSubstr("--dtype must be auto, float32, bfloat16 or float16, got 'q4_K'"));
  const absl::Status kv = Parse({"--kv-cache-dtype=float16"}).status();
  EXPECT_THAT(std::string(kv.message()),
              HasSubstr("--kv-cache-dtype must be auto, float32 or bfloat16, got 'float16'"));
  EXPECT_THAT(std::string(Parse({"--device=tpu"}).status().message()),
              HasSubstr("--device must be auto, cpu or cuda, got 'tpu'"));
  for (const char* bad : {"--gpu-memory-utilization=0", "--gpu-memory-utilization=1.5",
                          "--gpu-memory-utilization=-0.1"}) {
    const absl::Status status = Parse({bad}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("--gpu-memory-utilization must be in (0, 1]"))
        << bad;
  }
  EXPECT_THAT(std::string(Parse({"--gpu-memory-utilization=nan"}).status().message()),
              HasSubstr("--gpu-memory-utilization expects a number, got 'nan'"));
}

}  // namespace
}  // namespace pagoda
