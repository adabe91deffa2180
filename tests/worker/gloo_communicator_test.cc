#include "worker/gloo_communicator.h"

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

// Runs body(rank, communicator) on `size` threads, one Gloo rank each, on 127.0.0.1.
void RunGroup(int32_t size, const std::string& prefix,
              const std::function<void(int32_t, Communicator&)>& body) {
  InMemoryRendezvousStore store;
  std::vector<std::thread> threads;
  for (int32_t rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(
          {.rank = rank, .size = size, .prefix = prefix, .timeout = absl::Seconds(20)}, &store);
      ASSERT_TRUE(comm.ok()) << comm.status();
      EXPECT_EQ((*comm)->rank(), rank);
      EXPECT_EQ((*comm)->size(), size);
      EXPECT_EQ((*comm)->backend(), "gloo");
      body(rank, **comm);
    });
  }
  for (std::thread& t : threads) t.join();
}

// Integer-valued floats, so any summation order gives the exact sum.
float Value(int32_t rank, int64_t i, int64_t round) {
  return static_cast<float>((rank + 1) * 1000 + i % 997 + round);
}

class GlooCommunicatorTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(GlooCommunicatorTest, AllReduceSumsOddSizesExactly) {
  const int32_t size = GetParam();
  RunGroup(size, "all-reduce/", [size](int32_t rank, Communicator& comm) {
    int64_t round = 0;
    for (int64_t count : {1, 7, 1000, 0, 300'001}) {
      std::vector<float> data(count);
      for (int64_t i = 0; i < count; ++i) data[i] = Value(rank, i, round);
      ASSERT_TRUE(comm.AllReduceSum(data.data(), count).ok());
      for (int64_t i = 0; i < count; ++i) {
        float expected = 0;
        for (int32_t r = 0; r < size; ++r) expected += Value(r, i, round);
        ASSERT_EQ(data[i], expected) << "count " << count << " element " << i;
      }
      ++round;
    }
  });
}

TEST_P(GlooCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  const int32_t size = GetParam();
  RunGroup(size, "all-gather/", [size](int32_t rank, Communicator& comm) {
    int64_t round = 0;
    for (int64_t count : {1, 7, 1000}) {
      std::vector<float> input(count);
      for (int64_t i = 0; i < count; ++i) input[i] = Value(rank, i, round);
      std::vector<float> output(size * count, -1.0f);
      ASSERT_TRUE(comm.AllGather(input.data(), count, output.data()).ok());
      for (int32_t r = 0; r < size; ++r) {
        for (int64_t i = 0; i < count; ++i) {
          ASSERT_EQ(output[r * count + i], Value(r, i, round)) << "rank " << r << " i " << i;
        }
      }
      ++round;
    }
  });
}

TEST_P(GlooCommunicatorTest, InterleavedCollectivesStayMatched) {
  const int32_t size = GetParam();
  RunGroup(size, "mixed/", [size](int32_t rank, Communicator& comm) {
    for (int step = 0; step < 20; ++step) {
      float x = static_cast<float>(rank + step);
      ASSERT_TRUE(comm.AllReduceSum(&x, 1).ok());
      EXPECT_EQ(x, static_cast<float>(size * step + size * (size - 1) / 2));
      std::vector<float> all(size);
      const float mine = static_cast<float>(rank * 10 + step);
      ASSERT_TRUE(comm.AllGather(&mine, 1, all.data()).ok());
      for (int32_t r = 0; r < size; ++r) EXPECT_EQ(all[r], static_cast<float>(r * 10 + step));
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Sizes, GlooCommunicatorTest,
                         ::testing::Values(2, 3, 4),  // 3: ring; 2, 4: bcube
                         [](const auto& info) { return "Size" + std::to_string(info.param); });

TEST(GlooCommunicator, RejectsBadOptionsAndBuffers) {
  InMemoryRendezvousStore store;
  EXPECT_EQ(CreateGlooCommunicator({.rank = 2, .size = 2}, &store).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateGlooCommunicator({.rank = 0, .size = 1}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A group of one needs no peer.
  absl::StatusOr<std::unique_ptr<Communicator>> single =
      CreateGlooCommunicator({.rank = 0, .size = 1, .prefix = "one/"}, &store);
  ASSERT_TRUE(single.ok()) << single.status();
  std::vector<float> data = {1, 2, 3};
  ASSERT_TRUE((*single)->AllReduceSum(data.data(), 3).ok());
  EXPECT_THAT(data, ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ((*single)->AllReduceSum(nullptr, 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*single)->AllGather(data.data(), -1, data.data()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GlooCommunicator, PeerThatNeverJoinsFailsWithinTheTimeout) {
  InMemoryRendezvousStore store;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(
      {.rank = 0, .size = 2, .prefix = "lonely/", .timeout = absl::Seconds(2)}, &store);
  const absl::Duration waited = absl::Now() - start;
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("lonely/"));
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("rank 0 of 2"));
  EXPECT_LT(waited, absl::Seconds(10));
}

TEST(GlooCommunicator, PeerThatLeavesGivesAnErrorNotAHang) {
  InMemoryRendezvousStore store;
  absl::Status survivor_status;
  std::thread leaver;
  std::thread survivor([&] {
    absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(
        {.rank = 0, .size = 2, .prefix = "leaving/", .timeout = absl::Seconds(2)}, &store);
    ASSERT_TRUE(comm.ok()) << comm.status();
    float x = 1;
    ASSERT_TRUE((*comm)->AllReduceSum(&x, 1).ok());
    // Rank 1 is gone now: the next collective fails, and so does every later one.
    std::vector<float> data(1000, 1.0f);
    survivor_status = (*comm)->AllReduceSum(data.data(), 1000);
    EXPECT_EQ((*comm)->AllGather(data.data(), 1, data.data() + 1).code(), survivor_status.code());
  });
  leaver = std::thread([&] {
    absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(
        {.rank = 1, .size = 2, .prefix = "leaving/", .timeout = absl::Seconds(2)}, &store);
    ASSERT_TRUE(comm.ok()) << comm.status();
    float x = 1;
    ASSERT_TRUE((*comm)->AllReduceSum(&x, 1).ok());
  });  // destroys its communicator, closing its connections
  leaver.join();
  survivor.join();
  EXPECT_FALSE(survivor_status.ok());
  EXPECT_TRUE(survivor_status.code() == absl::StatusCode::kUnavailable ||
              survivor_status.code() == absl::StatusCode::kDeadlineExceeded)
      << survivor_status;
  EXPECT_THAT(std::string(survivor_status.message()), HasSubstr("gloo all-reduce"));
}

TEST(InMemoryRendezvousStore, GetWaitsForSetAndTimesOutNamingTheKey) {
  InMemoryRendezvousStore store;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(store.Set("g1/key", "value").ok());
  });
  absl::StatusOr<std::string> value = store.Get("g1/key", absl::Seconds(10));
  setter.join();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "value");

  const absl::StatusOr<std::string> missing = store.Get("g1/absent", absl::Milliseconds(100));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("'g1/absent'"));
}

TEST(SingleCommunicator, IsAGroupOfOne) {
  std::unique_ptr<Communicator> comm = CreateSingleCommunicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->backend(), "single");
  std::vector<float> data = {1.5f, -2.0f};
  ASSERT_TRUE(comm->AllReduceSum(data.data(), 2).ok());
  EXPECT_THAT(data, ::testing::ElementsAre(1.5f, -2.0f));
  std::vector<float> out(2);
  ASSERT_TRUE(comm->AllGather(data.data(), 2, out.data()).ok());
  EXPECT_EQ(out, data);
}

}  // namespace
}  // namespace pagoda
