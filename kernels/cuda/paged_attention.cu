// Paged attention on the device: the launch plan (kernels/cuda/paged_attention_plan.h) picks one
// of two paths per call, both in fp32 with the cache's rows widened as they are read; the kernels
// are in kernels/cuda/internal/paged_attention_kernels.cuh, this file launches them.
//
// Decode (short queries): DecodeKernel, one block per (query token, KV head and chunk of its GQA
// group, context partition of kPartitionSize positions), scores every query head of the chunk
// against the partition's K rows (each row read once for the whole chunk), takes the softmax over
// the partition and the weighted sum of its V rows; with several partitions it leaves (max, sum,
// unnormalized output) per head in a workspace and CombineKernel merges them, one block per
// (query token, query head).
//
// Prefill (longer chunks): PrefillKernel, FlashAttention-style: one block per (tile of query
// tokens of one sequence, KV head and chunk of its group) walks the tile's visible context
// kKvTile positions at a time, loads their K and V rows into shared memory once, and every query
// row of the tile scores them (one lane per position) and folds them into its online softmax.
//
// A query token with nothing to attend to (a padding entry: seq_len 0) gets zeros on both paths;
// a block id outside the cache contributes nothing (the caller checks them; nothing outside the
// cache is read). Plain CUDA cores, no tensor cores: written without a device to measure on.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/status_macros.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_scratch.h"
#include "kernels/cuda/internal/paged_attention_kernels.cuh"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/paged_attention_plan.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

using internal::Args;
using internal::Bf16Cache;
using internal::CombineKernel;
using internal::DecodeKernel;
using internal::F32Cache;
using internal::MakeArgs;
using internal::PrefillKernel;

// The decode partials' buffer: the current stream's (internal::StreamScratch: it lives as long
// as the stream, whichever thread launches on it), grown to the largest launch in powers of two
// (at least 1 MiB). A CUDA graph captured with a smaller buffer holds its address: when a later,
// larger eager launch grows (frees) it, ModelRunner captures its graphs again before the next
// replay (the buffer is the forward pass's: kernels::cuda::ScopedCapturableWork).
absl::StatusOr<float*> DecodeWorkspaceBuffer(int64_t bytes) {
  int64_t grown = int64_t{1} << 20;
  while (grown < bytes) grown *= 2;
  ASSIGN_OR_RETURN(void* buffer,
                   internal::StreamScratch(internal::ScratchSlot::kAttentionWorkspace).Get(grown));
  return static_cast<float*>(buffer);
}

template <typename Cache>
absl::Status Launch(const PagedAttentionParams& p, const PagedAttentionPlan& plan) {
  const Args<Cache> args = MakeArgs<Cache>(p, plan);
  const dim3 grid(static_cast<unsigned int>(plan.grid_x), static_cast<unsigned int>(plan.grid_y),
                  static_cast<unsigned int>(plan.grid_z));
  if (plan.path == PagedAttentionPlan::Path::kPrefill) {
    const PrefillSharedLayout layout = PrefillSharedLayoutFor(p.head_dim);
    if (layout.bytes > kDefaultSharedBytes) {
      RETURN_IF_ERROR(internal::CudaStatus(
          cudaFuncSetAttribute(PrefillKernel<Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(layout.bytes)),
          "paged_attention: allow the prefill kernel's shared memory"));
    }
    PrefillKernel<Cache>
        <<<grid, kPrefillThreads, static_cast<size_t>(layout.bytes), CurrentStream()>>>(
            args, plan.tile_tokens, plan.k_row_stride, layout);
    return internal::LaunchStatus("paged_attention (prefill)");
  }
  float* workspace = nullptr;
  DecodeWorkspace ws;
  if (plan.num_partitions > 1) {
    ASSIGN_OR_RETURN(workspace, DecodeWorkspaceBuffer(plan.workspace_bytes));
    ws = DecodeWorkspaceLayout(p.num_tokens, p.num_heads, plan.num_partitions, p.head_dim);
  }
  DecodeKernel<Cache>
      <<<grid, kDecodeThreads, 0, CurrentStream()>>>(args, plan.num_partitions, workspace, ws);
  RETURN_IF_ERROR(internal::LaunchStatus("paged_attention (decode)"));
  if (plan.num_partitions == 1) return absl::OkStatus();
  const dim3 combine_grid(static_cast<unsigned int>(p.num_tokens),
                          static_cast<unsigned int>(p.num_heads));
  CombineKernel<<<combine_grid, kCombineThreads, 0, CurrentStream()>>>(
      p.out, workspace, ws, p.query_start_loc, p.seq_lens, p.num_seqs, p.num_heads, p.head_dim,
      plan.num_partitions, p.sliding_window);
  return internal::LaunchStatus("paged_attention (combine)");
}

}  // namespace

absl::Status PagedAttention(const PagedAttentionParams& p) {
  ASSIGN_OR_RETURN(const PagedAttentionPlan plan, PlanPagedAttention(p));
  if (p.cache_dtype == DType::kF32) return Launch<F32Cache>(p, plan);
  return Launch<Bf16Cache>(p, plan);  // Validate() admits kF32 and kBF16 only
}

}  // namespace pagoda::kernels::cuda
