#include "tools/bench/request_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace pagoda {

RunResult RunRequests(ServingBackend& backend, const std::vector<BenchRequest>& requests,
                      const RunOptions& options) {
  using Clock = std::chrono::steady_clock;
  const int64_t count = static_cast<int64_t>(requests.size());
  const int64_t limit = options.max_concurrency > 0 ? options.max_concurrency : kMaxClientThreads;
  const int64_t num_threads = std::min(count, limit);

  RunResult result;
  result.records.resize(requests.size());
  std::atomic<int64_t> next = 0;
  const Clock::time_point start = Clock::now();
  auto client = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < count;) {
      const double at_s = i < static_cast<int64_t>(options.arrival_times_s.size())
                              ? options.arrival_times_s[i]
                              : 0.0;
      std::this_thread::sleep_until(
          start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at_s)));
      const Clock::time_point sent = Clock::now();
      RequestRecord record = backend.Send(requests[i], options.params);
      record.start_time_s = std::chrono::duration<double>(sent - start).count();
      if (options.progress != nullptr) options.progress->Advance(!record.success);
      result.records[i] = std::move(record);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(num_threads);
  for (int64_t t = 0; t < num_threads; ++t) threads.emplace_back(client);
  for (std::thread& thread : threads) thread.join();
  result.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace pagoda
