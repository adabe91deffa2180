// SmolLM2-135M-Instruct in bf16 (issue 16: "the SmolLM2 golden in bf16 within its near-ties"):
// the GGUF's weights as CopyModelWeightsTo puts them on the device (Q4_1 and Q8_0 dequantized and
// rounded to nearest-even BF16, norms fp32), a bf16 KV cache, greedy decoding of the golden
// prompts (../shared/models/smollm2/golden_greedy.jsonl, 48 steps, all four in one batch) against
// the float64 golden tokens. A token may differ from the golden only where the golden's top-two
// margin is below kBf16NearTie; the rest of that sequence is then another continuation and is not
// compared.
//
// The bound: the int8 activations of the CPU's quantized path (tests/testing/smollm2_near_tie.h)
// moved the top-two margins by at most 0.71 and flipped tokens at golden margins up to 0.30; bf16
// rounds weights and activations to 8 significant bits (relative error <= 2^-9 per element),
// finer than int8's 1/254 of the row's largest value, so the same 1.5 holds with room. A broken
// kernel flips tokens at margins of several units within a few steps (the goldens' margins reach
// 1 to 10). Each case records how many tokens it compared and the largest margin shift it saw
// before a flip (|its margin of the golden token - the golden's|).
//
// On the device: ModelRunner on Device::kCuda (skipped without a device). Everywhere: the same
// bf16 weights (DeviceWeightTensor on the CPU) on the CPU runner, fp32 activations — so the
// comparison and the bound are exercised where no device is. Both skip when the model file is
// absent: $PAGODA_SMOLLM2_GGUF, else models/ of the checkout (scripts/gpu-check.sh stages it on
// the device machine, docs/performance.md "GPU").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_source.h"
#include "gtest/gtest.h"
#include "tests/gpu/cuda_test_util.h"
#include "tests/testing/model_harness.h"
#include "tests/testing/smollm2.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using kernels::testing::HasCudaDevice;

constexpr double kBf16NearTie = 1.5;

// The model's weights with every projection, the embedding and the LM head as
// DeviceWeightTensor stores them (BF16 for the GGUF's quantized types), on the host.
absl::StatusOr<ModelWeights> Bf16WeightsOnTheHost(ModelWeights weights) {
  auto convert = [](Tensor& t) -> absl::Status {
    absl::StatusOr<Tensor> converted = DeviceWeightTensor(t, Device::kCpu);
    if (!converted.ok()) return converted.status();
    t = *std::move(converted);
    return absl::OkStatus();
  };
  for (LayerWeights& layer : weights.layers) {
    for (LinearWeight* w :
         {&layer.qkv_proj, &layer.o_proj, &layer.gate_up_proj, &layer.down_proj}) {
      for (Tensor& part : w->parts) {
        if (absl::Status s = convert(part); !s.ok()) return s;
      }
      w->packed.clear();  // packed forms of the old types
    }
  }
  if (absl::Status s = convert(weights.embed_tokens); !s.ok()) return s;
  if (!weights.lm_head.empty()) {
    if (absl::Status s = convert(weights.lm_head); !s.ok()) return s;
  }
  weights.packed_lm_head = nullptr;
  return weights;
}

// Greedy decoding of the golden prompts on `device` against the goldens, as the header says.
void ExpectGoldensUpToNearTies(Device device) {
  if (!std::filesystem::exists(testing::SmolLm2Path())) {
    GTEST_SKIP() << testing::SmolLm2Path()
                 << " is absent (set PAGODA_SMOLLM2_GGUF; scripts/install-deps.sh fetches it)";
  }
  const std::vector<testing::SmolLm2Golden> goldens = testing::LoadSmolLm2Goldens();
  ASSERT_FALSE(goldens.empty()) << "golden_greedy.jsonl not found (PAGODA_SHARED_DIR)";
  absl::StatusOr<ModelSource> model = ModelSource::Open(testing::SmolLm2Path());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<ModelWeights> weights = LoadModelWeights(*model);
  ASSERT_TRUE(weights.ok()) << weights.status();
  if (device == Device::kCpu) {
    weights = Bf16WeightsOnTheHost(*std::move(weights));
    ASSERT_TRUE(weights.ok()) << weights.status();
  }
  std::vector<std::vector<int32_t>> prompts;
  int64_t steps = 0, longest = 0;
  for (const testing::SmolLm2Golden& g : goldens) {
    prompts.push_back(g.prompt_ids);
    steps = std::max<int64_t>(steps, static_cast<int64_t>(g.greedy_ids.size()));
  }
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size() + steps);
  // GreedyBatch gives every sequence the blocks the longest needs.
  const int64_t blocks = static_cast<int64_t>(prompts.size()) *
                         ((longest + testing::kHarnessBlockSize - 1) / testing::kHarnessBlockSize);
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(model->config(), *std::move(weights),
                          {.num_blocks = blocks,
                           .block_size = testing::kHarnessBlockSize,
                           .kv_cache_dtype = DType::kBF16,
                           .device = device});
  ASSERT_TRUE(runner.ok()) << runner.status();
  const testing::Generation out = testing::GreedyBatch(**runner, prompts, steps);
  ASSERT_EQ(out.tokens.size(), goldens.size());
  for (size_t s = 0; s < goldens.size(); ++s) {
    const testing::SmolLm2Golden& g = goldens[s];
    ASSERT_EQ(out.tokens[s].size(), g.greedy_ids.size());
    size_t compared = 0;
    double largest_shift = 0.0;
    std::string flip = "no flip";
    for (size_t i = 0; i < g.greedy_ids.size(); ++i, ++compared) {
      const std::vector<float>& logits = out.logits[s][i];
      const int32_t want = g.greedy_ids[i];
      float runner_up = -std::numeric_limits<float>::infinity();
      for (size_t v = 0; v < logits.size(); ++v) {
        if (static_cast<int32_t>(v) != want) runner_up = std::max(runner_up, logits[v]);
      }
      largest_shift =
          std::max(largest_shift,
                   std::abs(static_cast<double>(logits[want] - runner_up) - g.top2_margin[i]));
      if (out.tokens[s][i] != want && g.top2_margin[i] < kBf16NearTie) {
        flip =
            absl::StrCat("a near-tie flip at step ", i, " (golden margin ", g.top2_margin[i], ")");
        break;  // the rest is another continuation
      }
      ASSERT_EQ(out.tokens[s][i], want)
          << "prompt " << s << " step " << i << " (golden margin " << g.top2_margin[i] << ")";
    }
    std::printf("prompt %zu: %zu of %zu tokens compared, largest margin shift %.4f, %s\n", s,
                compared, g.greedy_ids.size(), largest_shift, flip.c_str());
    ::testing::Test::RecordProperty(absl::StrCat("prompt_", s, "_tokens_compared"),
                                    absl::StrCat(compared));
    ::testing::Test::RecordProperty(absl::StrCat("prompt_", s, "_largest_margin_shift"),
                                    absl::StrCat(largest_shift));
  }
}

TEST(SmolLm2Bf16, CudaGreedyTokensEqualTheGoldensUpToNearTies) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  ExpectGoldensUpToNearTies(Device::kCuda);
}

TEST(SmolLm2Bf16, CpuGreedyTokensOfTheSameWeightsEqualTheGoldensUpToNearTies) {
  ExpectGoldensUpToNearTies(Device::kCpu);
}

}  // namespace
}  // namespace pagoda
