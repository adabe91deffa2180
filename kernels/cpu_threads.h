// The CPU kernels' threads: one OpenMP team per computing thread, and why a process should have
// only one.
//
// libgomp gives every thread that enters a parallel region its own team of worker threads, kept
// until that thread exits. Once the process holds more such threads than it has CPUs, libgomp
// stops spinning between parallel regions whatever GOMP_SPINCOUNT says (its "throttled" spin
// count, 100 iterations): every region of a decode step (~150) then wakes its workers through
// the kernel and sends them back to sleep. A 2-core process whose model was loaded on one thread
// (packing weights in parallel) and run on another had two teams, and its SmolLM2 decode ran at
// 100-120 tokens/s instead of 220-250 (a third of its CPU time in futex wake-ups and context
// switches; docs/performance.md, "One OpenMP team per process").
//
// So a process computes on one thread, and a thread that ran kernels and hands the computing to
// another (the loader, once the executor's thread takes over) releases its team:
//
//   ModelWeights weights = ...;              // loaded here, in parallel regions
//   auto executor = InProcessExecutor::Create(config, std::move(weights), options);
//   // Create ends with kernels::ReleaseCpuThreads(): the executor's thread computes from now on.
#pragma once

namespace pagoda::kernels {

/// Ends the calling thread's OpenMP team (its worker threads exit; a later parallel region on
/// this thread starts a new one). Call outside any parallel region; a no-op for a thread that
/// has none, and with LLVM's libomp (clang builds), which keeps one pool for the process.
void ReleaseCpuThreads();

}  // namespace pagoda::kernels
