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

TEST(ModelArgs, ABadValueNamesTheFlagAndTheChoices) {
  const absl::Status dtype = Parse({"--dtype=q4_K"}).status();
  EXPECT_EQ(dtype.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dtype.message()),
              HasSubstr("--dtype must be auto, float32, bfloat16 or float16, got 'q4_K'"));
  const absl::Status kv = Parse({"--kv-cache-dtype=float16"}).status();
  EXPECT_THAT(std::string(kv.message()),
              HasSubstr("--kv-cache-dtype must be auto, float32 or bfloat16, got 'float16'"));
}

}  // namespace
}  // namespace pagoda
