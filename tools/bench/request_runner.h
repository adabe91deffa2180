// RunRequests: sends a benchmark's requests through a ServingBackend on their arrival schedule,
// with at most max_concurrency in flight, and collects one RequestRecord per request.
//
// A fixed set of client threads (max_concurrency of them, or one per request up to
// kMaxClientThreads) takes requests in order; each waits until its request's arrival time, then
// sends it and blocks until it ends. A request whose time has come while every thread is busy
// waits for one (vLLM's semaphore), and its latencies count from when it was actually sent.
//
//   RunResult run = RunRequests(*backend, requests,
//                               {.arrival_times_s = ArrivalTimes(n, arrivals),
//                                .params = {.model = "stories260K"}, .progress = &bar});
#pragma once

#include <cstdint>
#include <vector>

#include "tools/bench/bench_metrics.h"
#include "tools/bench/dataset.h"
#include "tools/bench/progress_bar.h"
#include "tools/bench/serving_backend.h"

namespace pagoda {

/// Requests in flight at most when --max-concurrency is not given.
inline constexpr int64_t kMaxClientThreads = 1024;

struct RunOptions {
  std::vector<double> arrival_times_s;  // one per request, from the start, nondecreasing
  int64_t max_concurrency = 0;          // 0: up to kMaxClientThreads
  RequestParams params;
  ProgressBar* progress = nullptr;  // may be null
};

struct RunResult {
  std::vector<RequestRecord> records;  // in request order, start_time_s filled
  double duration_s = 0;               // from the start until the last request ended
};

RunResult RunRequests(ServingBackend& backend, const std::vector<BenchRequest>& requests,
                      const RunOptions& options);

}  // namespace pagoda
