#include "engine/engine_args.h"

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Status Parse(ArgParser& parser, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parser.Parse(static_cast<int>(argv.size()), argv.data());
}

// Registers `args` on a fresh parser, parses `flags` and builds.
absl::StatusOr<EngineSetup> BuildFrom(EngineArgs args, const std::vector<std::string>& flags) {
  ArgParser parser("test", "engine flags");
  args.Register(parser);
  if (absl::Status status = Parse(parser, flags); !status.ok()) return status;
  return args.Build();
}

TEST(EngineArgs, DefaultsAreTheServingDefaults) {
  absl::StatusOr<EngineSetup> setup = BuildFrom(EngineArgs{}, {});
  ASSERT_TRUE(setup.ok()) << setup.status();
  const EngineConfig& engine = setup->engine;
  EXPECT_EQ(engine.max_num_seqs, 256);
  EXPECT_EQ(engine.max_num_batched_tokens, 4096);
  EXPECT_EQ(engine.max_model_len, 0);
  EXPECT_EQ(engine.num_scheduler_steps, 1);
  EXPECT_TRUE(engine.enable_prefix_caching);
  EXPECT_TRUE(engine.async_output);
  EXPECT_EQ(engine.preemption_mode, PreemptionMode::kRecompute);
  EXPECT_EQ(engine.policy, SchedulingPolicy::kFcfs);
  EXPECT_EQ(engine.scheduler, SchedulerKind::kContinuous);
  EXPECT_EQ(setup->cache.block_size, 16);
  EXPECT_EQ(setup->cache.num_gpu_blocks_override, 0);
  EXPECT_EQ(setup->cache.kv_cache_memory_bytes, int64_t{1} << 28);  // 0.25 GiB
  EXPECT_EQ(setup->cache.swap_space_bytes, 0);
}

TEST(EngineArgs, EveryFlagReachesTheConfig) {
  absl::StatusOr<EngineSetup> setup = BuildFrom(
      EngineArgs{.enable_prefix_caching = false, .offline = true},
      {"--block-size=32", "--num-gpu-blocks-override=100", "--kv-cache-memory-gib=2",
       "--swap-space=0.5", "--max-model-len=256", "--max-num-seqs=8", "--max-num-batched-tokens=64",
       "--num-scheduler-steps=4", "--enable-prefix-caching", "--disable-async-output-proc",
       "--preemption-mode=swap", "--scheduling-policy=priority", "--scheduler=static"});
  ASSERT_TRUE(setup.ok()) << setup.status();
  const EngineConfig& engine = setup->engine;
  EXPECT_EQ(engine.max_num_seqs, 8);
  EXPECT_EQ(engine.max_num_batched_tokens, 64);
  EXPECT_EQ(engine.max_model_len, 256);
  EXPECT_EQ(engine.num_scheduler_steps, 4);
  EXPECT_TRUE(engine.enable_prefix_caching);
  EXPECT_FALSE(engine.async_output);
  EXPECT_EQ(engine.preemption_mode, PreemptionMode::kSwap);
  EXPECT_EQ(engine.policy, SchedulingPolicy::kPriority);
  EXPECT_EQ(engine.scheduler, SchedulerKind::kStatic);
  EXPECT_EQ(setup->cache.block_size, 32);
  EXPECT_EQ(setup->cache.num_gpu_blocks_override, 100);
  EXPECT_EQ(setup->cache.kv_cache_memory_bytes, int64_t{2} << 30);
  EXPECT_EQ(setup->cache.swap_space_bytes, int64_t{1} << 29);
}

TEST(EngineArgs, PrefixCachingHasBothSwitches) {
  absl::StatusOr<EngineSetup> off = BuildFrom(EngineArgs{}, {"--no-enable-prefix-caching"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->engine.enable_prefix_caching);
  absl::StatusOr<EngineSetup> on =
      BuildFrom(EngineArgs{.enable_prefix_caching = false}, {"--enable-prefix-caching"});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->engine.enable_prefix_caching);
}

TEST(EngineArgs, OldSpellingsStillWorkAndWarnWithTheNewName) {
  const struct {
    std::vector<std::string> flags;
    std::string new_name;
  } cases[] = {
      {{"--num-kv-blocks=7"}, "--num-gpu-blocks-override"},
      {{"--kv-cache-blocks", "7"}, "--num-gpu-blocks-override"},
      {{"--swap-space-gib=1"}, "--swap-space"},
      {{"--disable-prefix-caching"}, "--no-enable-prefix-caching"},
      {{"--no-async-output"}, "--disable-async-output-proc"},
  };
  for (const auto& c : cases) {
    EngineArgs args;
    ArgParser parser("test", "engine flags");
    args.Register(parser);
    ASSERT_TRUE(Parse(parser, c.flags).ok()) << c.flags[0];
    ASSERT_EQ(parser.warnings().size(), 1u) << c.flags[0];
    EXPECT_THAT(parser.warnings()[0], HasSubstr("use " + c.new_name));
    absl::StatusOr<EngineSetup> setup = args.Build();
    ASSERT_TRUE(setup.ok()) << setup.status();
  }
  absl::StatusOr<EngineSetup> setup = BuildFrom(
      EngineArgs{},
      {"--num-kv-blocks=7", "--swap-space-gib=1", "--disable-prefix-caching", "--no-async-output"});
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->cache.num_gpu_blocks_override, 7);
  EXPECT_EQ(setup->cache.swap_space_bytes, int64_t{1} << 30);
  EXPECT_FALSE(setup->engine.enable_prefix_caching);
  EXPECT_FALSE(setup->engine.async_output);
}

TEST(EngineArgs, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> flags;
    std::string expected;
  } cases[] = {
      {{"--block-size=0"}, "--block-size must be in [1, 1024]"},
      {{"--block-size=2048"}, "--block-size"},
      {{"--num-gpu-blocks-override=-1"}, "--num-gpu-blocks-override must be >= 0"},
      {{"--kv-cache-memory-gib=-1"}, "--kv-cache-memory-gib"},
      {{"--kv-cache-memory-gib=0"}, "--kv-cache-memory-gib must be > 0"},
      {{"--swap-space=-2"}, "--swap-space"},
      {{"--max-model-len=-1"}, "--max-model-len must be >= 0"},
      {{"--max-num-seqs=0"}, "--max-num-seqs"},
      {{"--max-num-batched-tokens=0"}, "--max-num-batched-tokens"},
      {{"--max-num-seqs=64", "--max-num-batched-tokens=32"}, "--max-num-seqs"},
      {{"--num-scheduler-steps=65"}, "--num-scheduler-steps"},
      {{"--num-scheduler-steps=4294967297"}, "--num-scheduler-steps"},
      {{"--preemption-mode=drop"}, "--preemption-mode: preemption mode must be recompute or swap"},
      {{"--preemption-mode=swap"}, "--swap-space"},
      {{"--scheduling-policy=lifo"}, "--scheduling-policy"},
      // 4 blocks of 16 hold 64 tokens: a 128-token context could never run.
      {{"--num-gpu-blocks-override=4", "--max-model-len=128"},
       "the KV cache holds 64 tokens (4 blocks of 16), fewer than max_model_len 128: give it more "
       "memory (--kv-cache-memory-gib or --num-gpu-blocks-override) or lower --max-model-len to "
       "at most 64"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<EngineSetup> setup = BuildFrom(EngineArgs{}, c.flags);
    ASSERT_FALSE(setup.ok()) << c.flags[0];
    EXPECT_EQ(setup.status().code(), absl::StatusCode::kInvalidArgument) << c.flags[0];
    EXPECT_THAT(setup.status().message(), HasSubstr(c.expected)) << c.flags[0];
  }
  // Blocks given: no memory needed. Swap space given: swap preemption is fine.
  EXPECT_TRUE(
      BuildFrom(EngineArgs{}, {"--kv-cache-memory-gib=0", "--num-gpu-blocks-override=8"}).ok());
  EXPECT_TRUE(BuildFrom(EngineArgs{}, {"--preemption-mode=swap", "--swap-space=1"}).ok());
  // A cache that holds exactly one context is enough; the model's own length is checked once the
  // executor reports it (EngineConfig::Validate).
  EXPECT_TRUE(BuildFrom(EngineArgs{}, {"--num-gpu-blocks-override=4", "--max-model-len=64"}).ok());
  EXPECT_TRUE(BuildFrom(EngineArgs{}, {"--num-gpu-blocks-override=4"}).ok());
}

TEST(EngineConfig, RefusesAKvCacheThatCannotHoldOneContext) {
  const EngineConfig config;  // max_model_len 0: the executor's
  const ExecutorInfo fits{.num_device_blocks = 32, .block_size = 16, .max_model_len = 512};
  EXPECT_TRUE(config.Validate(fits).ok());
  ExecutorInfo small = fits;
  small.num_device_blocks = 31;  // 496 tokens < 512
  const absl::Status status = config.Validate(small);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("holds 496 tokens (31 blocks of 16), fewer than "
                                          "max_model_len 512"));
  // A shorter --max-model-len fits it.
  EXPECT_TRUE(EngineConfig{.max_model_len = 496}.Validate(small).ok());
}

TEST(EngineConfig, WithKvCacheGroupsNamesTheLongestContextThatFits) {
  // One full-attention group and five of window 4 (Gemma 3's pattern at K = 1), blocks of 4: a
  // context of L tokens holds ceil(L / 4) blocks in the full group and at most 2 in each local
  // one (the window's 4 tokens may straddle two blocks).
  const ExecutorInfo info{.num_device_blocks = 64,
                          .block_size = 4,
                          .max_model_len = 256,
                          .kv_group_windows = {0, 4, 4, 4, 4, 4}};
  const EngineConfig config;
  const absl::Status status = config.Validate(info);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const int64_t needed = config.PeakSequenceBlocks(info, 256);
  EXPECT_GT(needed, 64);
  int64_t fits = 0;
  while (config.PeakSequenceBlocks(info, fits + 1) <= 64) ++fits;
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("holds 64 blocks of 4 tokens, which a sequence's 6 KV cache "
                                     "groups share; one of max_model_len 256 needs up to ",
                                     needed)));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("--max-model-len to at most ", fits)));
  EXPECT_TRUE(EngineConfig{.max_model_len = fits}.Validate(info).ok());
  EXPECT_FALSE(EngineConfig{.max_model_len = fits + 1}.Validate(info).ok());
  // An unbounded length (the flag-level check passes INT64_MAX) neither overflows (UBSan runs
  // this) nor wraps: the full group alone needs ceil(INT64_MAX / 4) blocks.
  constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();
  EXPECT_GE(config.PeakSequenceBlocks(info, kUnbounded), kUnbounded / 4 + 1);
  ExecutorInfo one_block = info;
  one_block.block_size = 1;
  one_block.kv_group_windows = {0, 0};
  EXPECT_EQ(config.PeakSequenceBlocks(one_block, kUnbounded), kUnbounded);  // saturates
}

TEST(EngineArgs, StaticSchedulingIsAnOfflineFlag) {
  absl::StatusOr<EngineSetup> serving = BuildFrom(EngineArgs{}, {"--scheduler=static"});
  EXPECT_THAT(serving.status().message(), HasSubstr("unknown flag --scheduler"));
  absl::StatusOr<EngineSetup> bad = BuildFrom(EngineArgs{.offline = true}, {"--scheduler=waves"});
  EXPECT_THAT(bad.status().message(), HasSubstr("--scheduler"));
}

TEST(EngineArgs, GivenFlagsAreTheSetOnesInTheirNewSpelling) {
  EngineArgs args;
  ArgParser parser("pagoda serve", "engine flags");
  args.Register(parser);
  ASSERT_TRUE(Parse(parser, {"--num-kv-blocks=64", "--kv-cache-memory-gib=0.05",
                             "--disable-prefix-caching", "--max-num-seqs", "8"})
                  .ok());
  const std::vector<std::string> given = args.GivenFlags(parser);
  EXPECT_THAT(given, ElementsAre("--num-gpu-blocks-override=64", "--kv-cache-memory-gib=0.05",
                                 "--max-num-seqs=8", "--no-enable-prefix-caching"));

  // What the router parses from them is what was given here.
  EngineArgs router_args;
  ArgParser router("pagoda-router", "engine flags");
  router_args.Register(router);
  ASSERT_TRUE(Parse(router, given).ok());
  EXPECT_THAT(router.warnings(), ElementsAre());
  absl::StatusOr<EngineSetup> here = args.Build();
  absl::StatusOr<EngineSetup> there = router_args.Build();
  ASSERT_TRUE(here.ok() && there.ok());
  EXPECT_EQ(there->cache.num_gpu_blocks_override, 64);
  EXPECT_EQ(there->cache.kv_cache_memory_bytes, here->cache.kv_cache_memory_bytes);
  EXPECT_FALSE(there->engine.enable_prefix_caching);
  EXPECT_EQ(there->engine.max_num_seqs, 8);
}

}  // namespace
}  // namespace pagoda
