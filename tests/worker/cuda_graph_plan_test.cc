#include "worker/cuda_graph_plan.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/kv_cache.h"
#include "worker/model_weights.h"
#include "worker/models/model.h"
#include "worker/models/registry.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CudaGraphPlan, DefaultSizesAreVllmsUpToTheEnginesLargestBatch) {
  EXPECT_THAT(DefaultCudaGraphSizes(1), ElementsAre(1));
  EXPECT_THAT(DefaultCudaGraphSizes(3), ElementsAre(1, 2, 3));
  EXPECT_THAT(DefaultCudaGraphSizes(4), ElementsAre(1, 2, 4));
  EXPECT_THAT(DefaultCudaGraphSizes(20), ElementsAre(1, 2, 4, 8, 16, 20));
  EXPECT_THAT(DefaultCudaGraphSizes(24), ElementsAre(1, 2, 4, 8, 16, 24));
  const std::vector<int64_t> all = DefaultCudaGraphSizes(256);
  ASSERT_EQ(all.size(), 3u + 32u);  // 1, 2, 4, then 8, 16, ..., 256
  EXPECT_THAT(std::vector<int64_t>(all.begin(), all.begin() + 5), ElementsAre(1, 2, 4, 8, 16));
  EXPECT_EQ(all.back(), 256);
  for (size_t i = 3; i < all.size(); ++i) EXPECT_EQ(all[i], 8 * static_cast<int64_t>(i - 2));
  // Capped at 256, and 256 when the engine's largest batch is unknown.
  EXPECT_EQ(DefaultCudaGraphSizes(1024), all);
  EXPECT_EQ(DefaultCudaGraphSizes(0), all);
}

TEST(CudaGraphPlan, NormalizedSizesAreSortedUniqueAndInRange) {
  EXPECT_THAT(*NormalizeCudaGraphSizes({8, 1, 4, 8, 2}), ElementsAre(1, 2, 4, 8));
  EXPECT_THAT(std::string(NormalizeCudaGraphSizes({}).status().message()),
              HasSubstr("no CUDA graph capture size"));
  for (const int64_t bad : {int64_t{0}, int64_t{-3}, int64_t{257}}) {
    const absl::StatusOr<std::vector<int64_t>> sizes = NormalizeCudaGraphSizes({1, bad});
    EXPECT_EQ(sizes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(sizes.status().message()), HasSubstr("outside [1, 256]"));
  }
}

TEST(CudaGraphPlan, PicksTheSmallestSizeThatHoldsTheBatch) {
  const std::vector<int64_t> sizes = {1, 2, 4, 8, 16, 24};
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 1), 0);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 2), 1);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 3), 2);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 8), 3);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 9), 4);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 17), 5);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 24), 5);
  EXPECT_EQ(CudaGraphSizeIndex(sizes, 25), -1);  // larger than every graph: eager
}

TEST(CudaGraphPlan, OnlyDecodeBatchesThatSampleEverySequenceAreEligible) {
  const std::vector<int32_t> one = {5};
  const std::vector<int32_t> three = {5, 6, 7};
  const std::vector<int32_t> table = {0, 1};
  const SequenceInput decode{.token_ids = one, .num_computed_tokens = 4, .block_table = table};
  EXPECT_EQ(CudaGraphIneligibility(std::vector<SequenceInput>{decode, decode}, 1), "");

  SequenceInput prefill = decode;
  prefill.token_ids = three;
  EXPECT_THAT(std::string(CudaGraphIneligibility(std::vector<SequenceInput>{decode, prefill}, 1)),
              HasSubstr("prefill"));
  SequenceInput verify = prefill;  // a speculative verification chunk samples every position
  verify.num_sampled_tokens = 3;
  EXPECT_THAT(std::string(CudaGraphIneligibility(std::vector<SequenceInput>{verify}, 1)),
              HasSubstr("chunk"));
  SequenceInput silent = decode;
  silent.sample = false;
  EXPECT_THAT(std::string(CudaGraphIneligibility(std::vector<SequenceInput>{decode, silent}, 1)),
              HasSubstr("does not sample"));
  EXPECT_THAT(std::string(CudaGraphIneligibility(std::vector<SequenceInput>{decode}, 2)),
              HasSubstr("KV cache group"));
  EXPECT_THAT(std::string(CudaGraphIneligibility({}, 1)), HasSubstr("empty"));
}

TEST(CudaGraphPlan, LayoutArraysAreAlignedDisjointAndInsideTheBuffer) {
  for (const int64_t size : {1, 3, 8, 17, 256}) {
    for (const int64_t blocks : {1, 7, 512}) {
      const CudaGraphMetadataLayout l = CudaGraphMetadataLayout::For(size, blocks);
      EXPECT_EQ(l.size, size);
      EXPECT_EQ(l.max_blocks_per_seq, blocks);
      // (offset, bytes) in layout order.
      const std::vector<std::pair<int64_t, int64_t>> arrays = {{l.token_ids, size * 4},
                                                               {l.positions, size * 4},
                                                               {l.slot_mapping, size * 8},
                                                               {l.query_start_loc, (size + 1) * 4},
                                                               {l.seq_lens, size * 4},
                                                               {l.row_tokens, size * 8},
                                                               {l.block_tables, size * blocks * 4}};
      EXPECT_EQ(arrays[0].first, 0);
      for (size_t i = 0; i < arrays.size(); ++i) {
        EXPECT_EQ(arrays[i].first % 8, 0) << i;
        if (i > 0) {
          EXPECT_GE(arrays[i].first, arrays[i - 1].first + arrays[i - 1].second) << i;
        }
      }
      EXPECT_GE(l.bytes, arrays.back().first + arrays.back().second);
      EXPECT_EQ(l.bytes % 8, 0);
      // A larger graph's buffer holds a smaller one's (they share one device buffer).
      EXPECT_LE(l.bytes, CudaGraphMetadataLayout::For(size + 1, blocks).bytes);
    }
  }
}

template <typename T>
std::vector<T> Read(const std::vector<std::byte>& bytes, int64_t offset, int64_t count) {
  std::vector<T> values(count);
  std::memcpy(values.data(), bytes.data() + offset, count * sizeof(T));
  return values;
}

TEST(CudaGraphPlan, FillsTheBatchThenPaddingThatWritesNoSlot) {
  constexpr int64_t kBlockSize = 4;
  const std::vector<int32_t> t0 = {7}, t1 = {2}, t2 = {96};
  // Sequence 0 decodes position 5 (block 9, offset 1); sequence 1 position 0 (block 4);
  // sequence 2 position 11 with a table longer than max_blocks_per_seq = 3 (truncated).
  const std::vector<int32_t> table0 = {3, 9}, table1 = {4}, table2 = {8, 6, 5, 1};
  const std::vector<SequenceInput> batch = {
      {.token_ids = t0, .num_computed_tokens = 5, .block_table = table0},
      {.token_ids = t1, .num_computed_tokens = 0, .block_table = table1},
      {.token_ids = t2, .num_computed_tokens = 11, .block_table = table2}};
  const CudaGraphMetadataLayout l = CudaGraphMetadataLayout::For(5, 3);
  std::vector<std::byte> out(l.bytes, std::byte{0xAB});  // poisoned: every byte must be written
  FillCudaGraphMetadata(batch, kBlockSize, l, absl::MakeSpan(out));

  EXPECT_THAT(Read<int32_t>(out, l.token_ids, 5), ElementsAre(7, 2, 96, 0, 0));
  EXPECT_THAT(Read<int32_t>(out, l.positions, 5), ElementsAre(5, 0, 11, 0, 0));
  EXPECT_THAT(Read<int64_t>(out, l.slot_mapping, 5),
              ElementsAre(9 * 4 + 1, 4 * 4 + 0, 5 * 4 + 3, -1, -1));
  EXPECT_THAT(Read<int32_t>(out, l.query_start_loc, 6), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(Read<int32_t>(out, l.seq_lens, 5), ElementsAre(6, 1, 12, 1, 1));
  EXPECT_THAT(Read<int64_t>(out, l.row_tokens, 5), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(Read<int32_t>(out, l.block_tables, 15),
              ElementsAre(3, 9, 0,  // sequence 0
                          4, 0, 0,  // sequence 1
                          8, 6, 5,  // sequence 2, cut at max_blocks_per_seq
                          0, 0, 0,  // padding: block 0
                          0, 0, 0));
  // The bytes between arrays are zeroed, not left as they were.
  for (int64_t b = l.token_ids + 5 * 4; b < l.positions; ++b) EXPECT_EQ(out[b], std::byte{0});

  // The same buffer filled again for a smaller batch: no entry of the earlier one survives.
  FillCudaGraphMetadata(std::vector<SequenceInput>{batch[1]}, kBlockSize, l, absl::MakeSpan(out));
  EXPECT_THAT(Read<int32_t>(out, l.token_ids, 5), ElementsAre(2, 0, 0, 0, 0));
  EXPECT_THAT(Read<int64_t>(out, l.slot_mapping, 5), ElementsAre(16, -1, -1, -1, -1));
  EXPECT_THAT(Read<int32_t>(out, l.seq_lens, 5), ElementsAre(1, 1, 1, 1, 1));
  EXPECT_THAT(Read<int32_t>(out, l.block_tables, 6), ElementsAre(4, 0, 0, 0, 0, 0));
}

ModelConfig TinyLlama() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 128;
  return c;
}

// A model and its KV cache on the CPU, for running batches laid out by hand or by the plan.
struct CpuModel {
  static constexpr int64_t kBlockSize = 4;
  std::unique_ptr<Model> model;
  KvCache cache;
  ModelConfig config = TinyLlama();

  CpuModel() {
    const absl::StatusOr<ShardLayout> layout = ComputeShardLayout(config, {});
    EXPECT_TRUE(layout.ok()) << layout.status();
    const absl::StatusOr<const ModelArchitecture*> arch =
        FindModelArchitecture(config.architecture);
    EXPECT_TRUE(arch.ok()) << arch.status();
    absl::StatusOr<std::unique_ptr<Model>> created = (*arch)->CreateModel(
        config, *layout, DummyModelWeights(config, /*seed=*/7), {.max_positions = 128});
    EXPECT_TRUE(created.ok()) << created.status();
    model = *std::move(created);
    absl::StatusOr<KvCache> allocated = KvCache::Create({.num_layers = config.num_hidden_layers,
                                                         .num_blocks = 12,
                                                         .block_size = kBlockSize,
                                                         .num_kv_heads = 2,
                                                         .head_dim = 8});
    EXPECT_TRUE(allocated.ok()) << allocated.status();
    cache = *std::move(allocated);
  }

  std::vector<float> Forward(const ForwardBatch& batch) {
    std::vector<float> hidden(batch.num_tokens * config.hidden_size);
    const absl::Status status = model->Forward({.batch = batch, .kv_cache = &cache}, hidden.data());
    EXPECT_TRUE(status.ok()) << status;
    return hidden;
  }

  // Every layer's keys and values, as floats.
  std::vector<float> CacheContents() {
    std::vector<float> all;
    const int64_t n = cache.shape().num_blocks * cache.shape().elements_per_block();
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      for (const void* part : {cache.key(l), cache.value(l)}) {
        const float* f = static_cast<const float*>(part);
        all.insert(all.end(), f, f + n);
      }
    }
    return all;
  }
};

// The graphs' padded batch, run on the CPU twins (which read padding as the CUDA ones do), gives
// the real sequences what the unpadded step gives them, and writes no KV slot but theirs.
TEST(CudaGraphPlan, PaddedDecodeBatchComputesTheSameRowsAndWritesNoOtherSlot) {
  // Three sequences of 5, 1 and 11 tokens of context, each prefilled by hand, then one decode
  // token each: positions 5, 1 and 11.
  const std::vector<int32_t> table0 = {3, 9}, table1 = {4}, table2 = {8, 6, 5};
  const std::vector<std::vector<int32_t>> tables = {table0, table1, table2};
  const std::vector<int64_t> context = {5, 1, 11};
  std::vector<int32_t> prompt_ids, prompt_positions, prompt_qsl = {0}, prompt_lens,
                                                     prompt_tables(3 * 3, 0);
  std::vector<int64_t> prompt_slots;
  for (int s = 0; s < 3; ++s) {
    for (int64_t p = 0; p < context[s]; ++p) {
      prompt_ids.push_back(static_cast<int32_t>((s * 31 + p * 7) % 97));
      prompt_positions.push_back(static_cast<int32_t>(p));
      prompt_slots.push_back(int64_t{tables[s][p / 4]} * 4 + p % 4);
    }
    prompt_qsl.push_back(static_cast<int32_t>(prompt_ids.size()));
    prompt_lens.push_back(static_cast<int32_t>(context[s]));
    std::copy(tables[s].begin(), tables[s].end(), prompt_tables.begin() + 3 * s);
  }
  const ForwardBatch prefill{.num_tokens = static_cast<int64_t>(prompt_ids.size()),
                             .token_ids = prompt_ids.data(),
                             .positions = prompt_positions.data(),
                             .slot_mapping = prompt_slots.data(),
                             .num_seqs = 3,
                             .query_start_loc = prompt_qsl.data(),
                             .seq_lens = prompt_lens.data(),
                             .block_tables = prompt_tables.data(),
                             .max_blocks_per_seq = 3};
  CpuModel eager, padded;
  eager.Forward(prefill);
  padded.Forward(prefill);
  const std::vector<float> before = padded.CacheContents();

  // The decode step unpadded, laid out by hand as ModelRunner's eager path lays it out.
  const std::vector<int32_t> ids = {7, 2, 96}, positions = {5, 1, 11}, qsl = {0, 1, 2, 3},
                             lens = {6, 2, 12};
  const std::vector<int64_t> slots = {9 * 4 + 1, 4 * 4 + 1, 5 * 4 + 3};
  const ForwardBatch step{.num_tokens = 3,
                          .token_ids = ids.data(),
                          .positions = positions.data(),
                          .slot_mapping = slots.data(),
                          .num_seqs = 3,
                          .query_start_loc = qsl.data(),
                          .seq_lens = lens.data(),
                          .block_tables = prompt_tables.data(),
                          .max_blocks_per_seq = 3};
  const std::vector<float> expected = eager.Forward(step);

  // The same step as a graph of 8 would run it: the plan's layout, 32 blocks per table.
  std::vector<SequenceInput> batch;
  for (int s = 0; s < 3; ++s) {
    batch.push_back({.token_ids = absl::MakeConstSpan(&ids[s], 1),
                     .num_computed_tokens = context[s],
                     .block_table = tables[s]});
  }
  const CudaGraphMetadataLayout l = CudaGraphMetadataLayout::For(8, 128 / 4);
  std::vector<std::byte> bytes(l.bytes);
  FillCudaGraphMetadata(batch, /*block_size=*/4, l, absl::MakeSpan(bytes));
  const auto at = [&bytes](int64_t offset) { return bytes.data() + offset; };
  const ForwardBatch graph_step{
      .num_tokens = 8,
      .token_ids = reinterpret_cast<const int32_t*>(at(l.token_ids)),
      .positions = reinterpret_cast<const int32_t*>(at(l.positions)),
      .slot_mapping = reinterpret_cast<const int64_t*>(at(l.slot_mapping)),
      .num_seqs = 8,
      .query_start_loc = reinterpret_cast<const int32_t*>(at(l.query_start_loc)),
      .seq_lens = reinterpret_cast<const int32_t*>(at(l.seq_lens)),
      .block_tables = reinterpret_cast<const int32_t*>(at(l.block_tables)),
      .max_blocks_per_seq = l.max_blocks_per_seq};
  const std::vector<float> actual = padded.Forward(graph_step);

  // The GEMMs see 8 rows instead of 3, which may change their summation order: a few ulp.
  const int64_t hidden = eager.config.hidden_size;
  for (int64_t i = 0; i < 3 * hidden; ++i) {
    ASSERT_NEAR(actual[i], expected[i], 1e-5f * (1.0f + std::fabs(expected[i]))) << i;
  }
  for (int64_t i = 3 * hidden; i < 8 * hidden; ++i) ASSERT_TRUE(std::isfinite(actual[i])) << i;
  // The caches agree, and the padded step changed nothing but the three slots it decodes.
  const std::vector<float> eager_cache = eager.CacheContents();
  const std::vector<float> after = padded.CacheContents();
  // One layer's keys (or values): 12 blocks of [2 heads, 4 rows, 8 dims] (kv_cache_write.h).
  const int64_t block_floats = 2 * 4 * 8;
  for (size_t i = 0; i < after.size(); ++i) {
    const int64_t in_tensor = static_cast<int64_t>(i) % (12 * block_floats);
    const int64_t slot = in_tensor / block_floats * 4 + in_tensor / 8 % 4;
    const bool decoded = slot == slots[0] || slot == slots[1] || slot == slots[2];
    if (decoded) {
      ASSERT_NEAR(after[i], eager_cache[i], 1e-5f * (1.0f + std::fabs(eager_cache[i]))) << i;
    } else {
      ASSERT_EQ(after[i], before[i]) << "slot " << slot << " changed";
    }
  }
}

}  // namespace
}  // namespace pagoda
