// The wire cost of one decode step of 256 running sequences (proto/step_codec.h): CPU time to
// encode + serialize and to parse + decode the StepPlan and the StepResult, and the bytes on the
// wire per sequence, at contexts of 128 and 4096 tokens. Workers keep each sequence's tokens and
// block table, so a decode step sends only deltas: the byte counters do not depend on the context.
// Figures only.
//
//   BM_EncodePlan, BM_DecodePlan/context      every sequence schedules 1 token; the 1 in 16 whose
//                                             next token starts a block also gets that block's
//                                             id (from a pool of 64k blocks)
//   BM_EncodeResult, BM_DecodeResult/context/logprobs
//                                             one sampled token per sequence; logprobs -1: none,
//                                             5: its logprob and its 5 best alternatives
//
//   plan_bytes_per_seq, result_bytes_per_seq   serialized message bytes / 256
//
//   build/benchmarks/step_codec_benchmark
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "common/step/step.h"
#include "proto/step_codec.h"

namespace pagoda {
namespace {

constexpr int32_t kNumSeqs = 256;
constexpr int32_t kBlockSize = 16;
constexpr uint32_t kNumBlocks = 65536;
constexpr uint32_t kVocabSize = 32000;

class Lcg {
 public:
  uint32_t Next(uint32_t bound) {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>((state_ >> 33) % bound);
  }

 private:
  uint64_t state_ = 0x9E3779B97F4A7C15ULL;
};

std::string SeqId(int32_t i) {
  return absl::StrFormat("cmpl-%016x#0", 0x5DEECE66DULL * static_cast<uint64_t>(i + 1));
}

// Sequence i holds context_len + i tokens, so block boundaries fall on different sequences.
StepPlan MakeDecodePlan(int32_t context_len) {
  Lcg rng;
  StepPlan plan{.step_id = 1000 + context_len};
  plan.cached_sequences.reserve(kNumSeqs);
  for (int32_t i = 0; i < kNumSeqs; ++i) {
    CachedSequence& seq = plan.cached_sequences.emplace_back();
    seq.seq_id = SeqId(i);
    seq.num_scheduled_tokens = 1;
    if ((context_len + i) % kBlockSize == 0) {
      seq.new_block_ids.push_back(static_cast<int32_t>(rng.Next(kNumBlocks)));
    }
  }
  return plan;
}

StepResult MakeDecodeResult(int32_t context_len, int32_t logprobs) {
  Lcg rng;
  StepResult result{.step_id = 1000 + context_len};
  result.outputs.reserve(kNumSeqs);
  for (int32_t i = 0; i < kNumSeqs; ++i) {
    SequenceOutput& out = result.outputs.emplace_back();
    out.seq_id = SeqId(i);
    const auto token = static_cast<int32_t>(rng.Next(kVocabSize));
    out.token_ids.push_back(token);
    if (logprobs < 0) continue;
    const float logprob = -0.001f * static_cast<float>(rng.Next(5000));
    out.logprobs.push_back(logprob);
    std::vector<std::pair<int32_t, float>>& top = out.top_logprobs.emplace_back();
    top.emplace_back(token, logprob);
    for (int32_t k = 1; k < logprobs; ++k) {
      top.emplace_back(static_cast<int32_t>(rng.Next(kVocabSize)),
                       logprob - 0.5f * static_cast<float>(k));
    }
  }
  return result;
}

void SetWireCounters(benchmark::State& state, const char* name, size_t bytes) {
  state.counters[name] = static_cast<double>(bytes) / kNumSeqs;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(state.iterations() * kNumSeqs);
}

// The router's side: one message reused across steps, as RemoteExecutor can.
void BM_EncodePlan(benchmark::State& state) {
  const StepPlan plan = MakeDecodePlan(static_cast<int32_t>(state.range(0)));
  internal::StepPlan proto;
  std::string wire;
  for (auto _ : state) {
    EncodeStepPlan(plan, &proto);
    proto.SerializeToString(&wire);
    benchmark::DoNotOptimize(wire.data());
  }
  SetWireCounters(state, "plan_bytes_per_seq", wire.size());
}

void BM_DecodePlan(benchmark::State& state) {
  internal::StepPlan proto;
  EncodeStepPlan(MakeDecodePlan(static_cast<int32_t>(state.range(0))), &proto);
  const std::string wire = proto.SerializeAsString();
  internal::StepPlan parsed;
  for (auto _ : state) {
    if (!parsed.ParseFromString(wire)) state.SkipWithError("parse failed");
    absl::StatusOr<StepPlan> plan = DecodeStepPlan(parsed);
    if (!plan.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(plan);
  }
  SetWireCounters(state, "plan_bytes_per_seq", wire.size());
}

// The worker's side.
void BM_EncodeResult(benchmark::State& state) {
  const StepResult result =
      MakeDecodeResult(static_cast<int32_t>(state.range(0)), static_cast<int32_t>(state.range(1)));
  internal::StepResult proto;
  std::string wire;
  for (auto _ : state) {
    EncodeStepResult(result, &proto);
    proto.SerializeToString(&wire);
    benchmark::DoNotOptimize(wire.data());
  }
  SetWireCounters(state, "result_bytes_per_seq", wire.size());
}

void BM_DecodeResult(benchmark::State& state) {
  internal::StepResult proto;
  EncodeStepResult(
      MakeDecodeResult(static_cast<int32_t>(state.range(0)), static_cast<int32_t>(state.range(1))),
      &proto);
  const std::string wire = proto.SerializeAsString();
  internal::StepResult parsed;
  for (auto _ : state) {
    if (!parsed.ParseFromString(wire)) state.SkipWithError("parse failed");
    absl::StatusOr<StepResult> result = DecodeStepResult(parsed);
    if (!result.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(result);
  }
  SetWireCounters(state, "result_bytes_per_seq", wire.size());
}

BENCHMARK(BM_EncodePlan)->ArgName("context")->Arg(128)->Arg(4096);
BENCHMARK(BM_DecodePlan)->ArgName("context")->Arg(128)->Arg(4096);
BENCHMARK(BM_EncodeResult)->ArgNames({"context", "logprobs"})->ArgsProduct({{128, 4096}, {-1, 5}});
BENCHMARK(BM_DecodeResult)->ArgNames({"context", "logprobs"})->ArgsProduct({{128, 4096}, {-1, 5}});

}  // namespace
}  // namespace pagoda
