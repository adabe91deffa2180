#include "router/frontend/health_reporter.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;

// What a reporter reported, and a way to wait for it (the deadline only keeps a broken reporter
// from hanging the test; nothing is timed).
class Reports {
 public:
  void Add(bool serving) {
    absl::MutexLock lock(&mu_);
    reports_.push_back(serving);
  }
  bool WaitForCount(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reports_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(60));
  }
  std::vector<bool> Get() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }

 private:
  absl::Mutex mu_;
  std::vector<bool> reports_ ABSL_GUARDED_BY(mu_);
};

TEST(HealthReporter, ReportsNotServingFirstThenEachChange) {
  std::atomic<bool> ready = false;
  Reports reports;
  HealthReporter reporter([&] { return ready.load(); }, [&](bool s) { reports.Add(s); },
                          absl::Milliseconds(1));
  ASSERT_TRUE(reports.WaitForCount(1));
  EXPECT_THAT(reports.Get(), ElementsAre(false));
  ready = true;
  ASSERT_TRUE(reports.WaitForCount(2));
  ready = false;
  ASSERT_TRUE(reports.WaitForCount(3));
  reporter.Stop();
  EXPECT_THAT(reports.Get(), ElementsAre(false, true, false));  // no repeats of an unchanged state
}

TEST(HealthReporter, StopEndsTheThreadAtOnceAndNothingIsReportedAfterIt) {
  std::atomic<bool> ready = false;
  std::atomic<int> checks = 0;
  Reports reports;
  // A period far longer than any test: Stop() must not wait for it.
  HealthReporter reporter(
      [&] {
        ++checks;
        return ready.load();
      },
      [&](bool s) { reports.Add(s); }, absl::Hours(1));
  ASSERT_TRUE(reports.WaitForCount(1));
  reporter.Stop();
  const int checks_at_stop = checks.load();
  ready = true;
  reporter.Stop();  // idempotent
  EXPECT_EQ(checks.load(), checks_at_stop);
  EXPECT_THAT(reports.Get(), ElementsAre(false));
}

}  // namespace
}  // namespace pagoda
