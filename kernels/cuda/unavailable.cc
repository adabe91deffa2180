// The kernels/cuda/ entry points in a build without CUDA (PAGODA_CUDA=OFF): every request for
// the device is FailedPrecondition, so CPU-only builds link and say plainly what is missing.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/block_copy.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/kv_cache_write.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rotary.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

absl::Status NoCuda(const char* what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": this build has no CUDA backend (built with PAGODA_CUDA=OFF)"));
}

// No stream can be created here (Stream::Create fails): the current one stays null.
thread_local internal::StreamState* current_state = nullptr;

}  // namespace

bool BuiltWithCuda() { return false; }
int DeviceCount() { return 0; }
absl::StatusOr<std::shared_ptr<void>> AllocateZeroed(int64_t) { return NoCuda("cuda allocate"); }
absl::Status CopyBytes(void*, const void*, int64_t) { return NoCuda("cuda copy"); }
absl::Status CopyRows(void*, int64_t, const void*, int64_t, int64_t, int64_t) {
  return NoCuda("cuda copy");
}
absl::Status Synchronize() { return NoCuda("cuda synchronize"); }
absl::StatusOr<DeviceMemoryInfo> MemoryInfo() { return NoCuda("cuda memory info"); }
absl::Status SetDevice(int) { return NoCuda("cuda set device"); }
ScopedCapturableWork::ScopedCapturableWork() = default;
ScopedCapturableWork::~ScopedCapturableWork() = default;
AllocationMark MarkAllocations() { return {}; }
bool FreedSince(AllocationMark&) { return false; }

absl::StatusOr<Stream> Stream::Create() { return NoCuda("cuda stream"); }
StreamHandle Stream::get() const { return nullptr; }
StreamHandle CurrentStream() { return nullptr; }
ScopedStream::ScopedStream(const Stream& stream) : previous_(current_state) {
  current_state = stream.state_.get();
}
ScopedStream::~ScopedStream() { current_state = previous_; }
absl::StatusOr<DeviceGraph> DeviceGraph::Capture(absl::FunctionRef<absl::Status()>) {
  return NoCuda("cuda graph capture");
}
absl::Status DeviceGraph::Launch() const { return NoCuda("cuda graph launch"); }
bool CapturingGraph() { return false; }

absl::Status Embedding(const EmbeddingParams&) { return NoCuda("embedding"); }
absl::Status Gemm(const GemmParams&) { return NoCuda("gemm"); }
absl::Status RmsNorm(const RmsNormParams&) { return NoCuda("rms_norm"); }
absl::Status SiluAndMul(const SiluAndMulParams&) { return NoCuda("silu_and_mul"); }
absl::Status GeluTanhAndMul(const GeluTanhAndMulParams&) { return NoCuda("gelu_tanh_and_mul"); }
absl::Status SoftCap(const SoftCapParams&) { return NoCuda("soft_cap"); }
absl::Status BroadcastRows(const BroadcastRowsParams&) { return NoCuda("broadcast_rows"); }
absl::Status Scale(const ScaleParams&) { return NoCuda("scale"); }
absl::Status GatherRows(const GatherRowsParams&) { return NoCuda("gather_rows"); }
absl::Status ApplyRotary(const RotaryParams&) { return NoCuda("rotary"); }
absl::Status WriteKvCache(const KvCacheWriteParams&) { return NoCuda("kv_cache_write"); }
absl::Status CopyBlocks(const BlockCopyParams&) { return NoCuda("block_copy"); }
absl::Status PagedAttention(const PagedAttentionParams&) { return NoCuda("paged_attention"); }
absl::Status SanitizeLogits(const SanitizeLogitsParams&) { return NoCuda("sanitize_logits"); }
absl::Status LogSoftmax(const LogSoftmaxParams&) { return NoCuda("log_softmax"); }
absl::Status TopK(const TopKParams&) { return NoCuda("top_k"); }
absl::Status MaskTokens(const MaskTokensParams&) { return NoCuda("mask_tokens"); }
absl::Status ApplyTokenBitmask(const TokenBitmaskParams&) { return NoCuda("token_bitmask"); }
absl::Status Argmax(const ArgmaxParams&) { return NoCuda("argmax"); }
absl::Status SoftmaxWeights(const SoftmaxWeightsParams&) { return NoCuda("softmax_weights"); }
absl::Status ApplyPenalties(const PenaltiesParams&) { return NoCuda("penalties"); }
absl::Status SampleFromWeights(const SampleFromWeightsParams&) {
  return NoCuda("sample_from_weights");
}

}  // namespace pagoda::kernels::cuda
