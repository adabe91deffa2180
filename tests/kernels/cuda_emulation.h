// Just enough of CUDA's execution model, on the CPU, to run a kernel of kernels/cuda/ in a unit
// test where no device is: include this, then the kernel's device header (which sees
// PAGODA_CUDA_EMULATION), and call cuda_emulation::Launch(grid, threads, shared_bytes, kernel,
// args...) in place of kernel<<<grid, threads, shared_bytes>>>(args...).
//
// Each block runs alone; each of its threads is a fiber (ucontext) on one OS thread, switched
// only where CUDA threads meet: __syncthreads() (every thread of the block) and the warp
// shuffles (the 32 lanes of a warp exchange through a slot each, with a barrier before and
// after). `__shared__` variables are function statics, which the one running block shares. A
// fiber runs until it waits, which is the worst order for a missing barrier: a thread reading
// shared memory another has not written yet sees stale data. A barrier some threads never reach
// (a barrier in divergent code, a thread that returned early) stops the test with a message
// instead of hanging. Not emulated: timing, memory coalescing, register or shared-memory limits,
// races between blocks (they run one after another), and the width of float math (the host's).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#define PAGODA_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(threads)

struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// What a CUDA thread reads; set by the scheduler before it resumes each fiber.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

using std::max;
using std::min;

namespace cuda_emulation {

inline constexpr int kWarpSize = 32;
inline constexpr int kMaxWarps = 32;
inline constexpr size_t kStackBytes = 64 * 1024;

// One running block: its fibers, the scheduler's context and the barriers' state.
struct Block {
  int num_threads = 0;
  std::vector<ucontext_t> contexts;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<bool> done;
  ucontext_t scheduler;
  int current = 0;
  std::function<void()> body;
  // Barriers: arrivals so far and a generation that advances when the last one arrives.
  int block_arrived = 0;
  uint64_t block_generation = 0;
  int warp_arrived[kMaxWarps] = {};
  uint64_t warp_generation[kMaxWarps] = {};
  float slots[kMaxWarps][kWarpSize] = {};
  uint64_t events = 0;  // arrivals and exits: a scheduler round without any is a deadlock
};

inline Block*& CurrentBlock() {
  static Block* block = nullptr;
  return block;
}

inline std::vector<std::max_align_t>& DynamicSharedBuffer() {
  static std::vector<std::max_align_t> buffer;
  return buffer;
}

/// The block's dynamic shared memory (`extern __shared__` on a device).
inline void* DynamicShared() { return DynamicSharedBuffer().data(); }

inline void Yield() {
  Block& b = *CurrentBlock();
  swapcontext(&b.contexts[b.current], &b.scheduler);
}

// Waits until `count` threads arrived at the barrier (arrived, generation).
inline void Barrier(int* arrived, uint64_t* generation, int count) {
  Block& b = *CurrentBlock();
  ++b.events;
  const uint64_t mine = *generation;
  if (++*arrived == count) {
    *arrived = 0;
    ++*generation;
    return;
  }
  while (*generation == mine) Yield();
}

inline void SyncThreads() {
  Block& b = *CurrentBlock();
  Barrier(&b.block_arrived, &b.block_generation, b.num_threads);
}

// Lane `lane` of the calling warp gets `value`'s copy from lane src_of(lane).
inline float Exchange(float value, int source_lane) {
  Block& b = *CurrentBlock();
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  b.slots[warp][lane] = value;
  Barrier(&b.warp_arrived[warp], &b.warp_generation[warp], kWarpSize);
  const float result = b.slots[warp][source_lane % kWarpSize];
  Barrier(&b.warp_arrived[warp], &b.warp_generation[warp], kWarpSize);
  return result;
}

inline void FiberMain() {
  Block& b = *CurrentBlock();
  b.body();
  b.done[b.current] = true;
  ++b.events;
  // Returning resumes uc_link: the scheduler.
}

// getcontext and swapcontext return twice: kept out of line, so no loop variable of the
// scheduler lives across them (GCC's -Wclobbered).
__attribute__((noinline)) inline void StartFiber(Block* b, int t) {
  getcontext(&b->contexts[t]);
  b->contexts[t].uc_stack.ss_sp = b->stacks[t].get();
  b->contexts[t].uc_stack.ss_size = kStackBytes;
  b->contexts[t].uc_link = &b->scheduler;
  makecontext(&b->contexts[t], FiberMain, 0);
  b->done[t] = false;
}

__attribute__((noinline)) inline void ResumeFiber(Block* b, int t) {
  b->current = t;
  threadIdx = {static_cast<unsigned int>(t), 0, 0};
  swapcontext(&b->scheduler, &b->contexts[t]);
}

/// Runs kernel(args...) over the grid, block after block; blocks are 1-D (threads a multiple
/// of 32, at most 1024).
template <typename Kernel, typename... Args>
void Launch(dim3 grid, int threads, size_t shared_bytes, Kernel kernel, Args... args) {
  if (threads % kWarpSize != 0 || threads > kWarpSize * kMaxWarps) {
    std::fprintf(stderr, "cuda_emulation: %d threads per block\n", threads);
    std::abort();
  }
  DynamicSharedBuffer().assign(shared_bytes / sizeof(std::max_align_t) + 1, std::max_align_t{});
  gridDim = grid;
  blockDim = dim3(static_cast<unsigned int>(threads));
  Block block;
  block.num_threads = threads;
  block.contexts.resize(threads);
  block.done.resize(threads);
  for (int t = 0; t < threads; ++t) {
    block.stacks.push_back(std::unique_ptr<char[]>(new char[kStackBytes]));  // not zeroed
  }
  block.body = [&] { kernel(args...); };
  CurrentBlock() = &block;
  for (unsigned int z = 0; z < grid.z; ++z) {
    for (unsigned int y = 0; y < grid.y; ++y) {
      for (unsigned int x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        for (int t = 0; t < threads; ++t) StartFiber(&block, t);
        int finished = 0;
        while (finished < threads) {
          const uint64_t events = block.events;
          finished = 0;
          for (int t = 0; t < threads; ++t) {
            if (block.done[t]) {
              ++finished;
              continue;
            }
            ResumeFiber(&block, t);
          }
          if (finished < threads && block.events == events) {
            std::fprintf(stderr,
                         "cuda_emulation: block (%u, %u, %u) deadlocked: %d of %d threads "
                         "finished, the rest wait at a barrier some never reach\n",
                         x, y, z, finished, threads);
            std::abort();
          }
        }
      }
    }
  }
  CurrentBlock() = nullptr;
}

}  // namespace cuda_emulation

inline void __syncthreads() { cuda_emulation::SyncThreads(); }
inline float __shfl_xor_sync(unsigned int /*mask*/, float value, int lane_mask) {
  return cuda_emulation::Exchange(value, (static_cast<int>(threadIdx.x) % 32) ^ lane_mask);
}
inline float __shfl_sync(unsigned int /*mask*/, float value, int source_lane) {
  return cuda_emulation::Exchange(value, source_lane);
}
// expf, tanhf, fmaxf and INFINITY: the C library's, from <cmath>.

namespace pagoda::kernels::cuda::internal {
inline constexpr int kWarpSize = 32;
/// bfloat16 bits -> float (exact), as kernels/cuda/internal/device_math.cuh.
inline float Bf16ToFloat(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &widened, sizeof(f));
  return f;
}
}  // namespace pagoda::kernels::cuda::internal
