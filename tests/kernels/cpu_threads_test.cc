// kernels::ReleaseCpuThreads: a thread that ran a parallel region keeps its OpenMP team's worker
// threads until it exits, unless it releases them (libgomp; the count of the process's threads
// shows them).
#include "kernels/cpu_threads.h"

#include <omp.h>

#include <atomic>
#include <filesystem>
#include <iterator>
#include <thread>

#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

int64_t NumThreadsOfThisProcess() {
  const std::filesystem::directory_iterator tasks("/proc/self/task");
  return std::distance(std::filesystem::begin(tasks), std::filesystem::end(tasks));
}

TEST(ReleaseCpuThreads, EndsTheCallingThreadsTeamAndALaterRegionStartsAnother) {
#if defined(__clang__)
  GTEST_SKIP() << "LLVM's libomp keeps one pool for the process; ReleaseCpuThreads is libgomp's";
#endif
  std::thread computing([] {
    const int64_t before = NumThreadsOfThisProcess();
    std::atomic<int> ran = 0;
#pragma omp parallel num_threads(3)
    ran.fetch_add(1);
    EXPECT_EQ(ran.load(), 3);
    EXPECT_EQ(NumThreadsOfThisProcess(), before + 2);  // the team's two workers stay
    ReleaseCpuThreads();
    EXPECT_EQ(NumThreadsOfThisProcess(), before);
    ReleaseCpuThreads();  // no team: nothing to do
    EXPECT_EQ(NumThreadsOfThisProcess(), before);
#pragma omp parallel num_threads(3)
    ran.fetch_add(1);
    EXPECT_EQ(ran.load(), 6);
    EXPECT_EQ(NumThreadsOfThisProcess(), before + 2);
  });
  computing.join();
}

}  // namespace
}  // namespace pagoda::kernels
