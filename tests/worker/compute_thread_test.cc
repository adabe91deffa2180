// ComputeThread: every task runs on its one thread, whichever thread hands it over, one at a
// time, and its result comes back.
#include "worker/compute_thread.h"

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

TEST(ComputeThread, RunsEveryTaskOnItsOneThreadOneAtATime) {
  ComputeThread compute;
  absl::Mutex mu;
  std::set<std::thread::id> ran_on;
  std::atomic<int> inside = 0;
  std::atomic<int> overlaps = 0;
  std::atomic<int> sum = 0;
  std::vector<std::thread> callers;
  std::set<std::thread::id> caller_ids;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < 50; ++i) {
        const int got = compute.Run([&] {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          {
            absl::MutexLock lock(&mu);
            ran_on.insert(std::this_thread::get_id());
          }
          inside.fetch_sub(1);
          return c * 100 + i;
        });
        EXPECT_EQ(got, c * 100 + i);
        sum.fetch_add(got);
      }
    });
    caller_ids.insert(callers.back().get_id());
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  ASSERT_EQ(ran_on.size(), 1u);
  EXPECT_FALSE(caller_ids.contains(*ran_on.begin()));
  EXPECT_NE(*ran_on.begin(), std::this_thread::get_id());
  EXPECT_EQ(sum.load(), 50 * (0 + 100 + 200 + 300) + 4 * (49 * 50 / 2));
}

TEST(ComputeThread, ReturnsMoveOnlyResultsAndRunsVoidTasks) {
  ComputeThread compute;
  std::unique_ptr<int> p = compute.Run([] { return std::make_unique<int>(7); });
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
  int touched = 0;
  compute.Run([&] { touched = 3; });
  EXPECT_EQ(touched, 3);
}

TEST(ComputeThread, StopsWithNothingHandedOver) {
  for (int i = 0; i < 20; ++i) ComputeThread idle;  // joins at once each time
}

}  // namespace
}  // namespace pagoda
