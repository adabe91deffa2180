// The NCCL communicator through the library loaded at run time (worker/internal/nccl.h): a group
// of one rank on one GPU, and two ranks (threads, one GPU each) whose all-reduce and all-gather
// equal the sums and concatenations computed on the host, including input a kernel wrote just
// before the collective. Needs a CUDA device (two for the two-rank tests) and skips without.
#include "worker/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/internal/nccl.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

bool HasCudaDevice() { return DeviceCount() > 0; }

// A device copy of `values`, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&data_, n * sizeof(float)), cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<float>& values) : DeviceBuffer(values.size()) {
    EXPECT_EQ(cudaMemcpy(data_, values.data(), n_ * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* get() { return static_cast<float*>(data_); }
  std::vector<float> ToHost() const {
    std::vector<float> values(n_);
    EXPECT_EQ(cudaMemcpy(values.data(), data_, n_ * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return values;
  }

 private:
  size_t n_;
  void* data_ = nullptr;
};

TEST(NcclCommunicator, OneRankAllReduceAndAllGatherOnTheDevice) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  InMemoryRendezvousStore store;
  absl::StatusOr<std::unique_ptr<Communicator>> comm =
      CreateNcclCommunicator({.rank = 0, .size = 1, .prefix = "nccl-test/"}, &store);
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->backend(), "nccl");
  EXPECT_EQ((*comm)->rank(), 0);
  EXPECT_EQ((*comm)->size(), 1);
  // Rank 0 published the group's id.
  EXPECT_TRUE(store.Get("nccl-test/nccl/unique_id", absl::ZeroDuration()).ok());

  for (size_t n : {1, 7, 1001}) {
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = static_cast<float>(i % 13) - 6.5f;
    DeviceBuffer data(values);
    ASSERT_TRUE((*comm)->AllReduceSum(data.get(), static_cast<int64_t>(n)).ok());
    EXPECT_EQ(data.ToHost(), values) << n;
    DeviceBuffer gathered(n);
    ASSERT_TRUE((*comm)->AllGather(data.get(), static_cast<int64_t>(n), gathered.get()).ok());
    EXPECT_EQ(gathered.ToHost(), values) << n;
  }
}

TEST(NcclCommunicator, RankWhoseRootNeverPublishesTimesOut) {
  // Fails in the rendezvous, before touching the device: runs without a GPU too, where NCCL loads.
  if (absl::Status loaded = internal::LoadNccl().status(); !loaded.ok()) {
    GTEST_SKIP() << "NCCL does not load here (nccl_loader_test covers that): " << loaded;
  }
  InMemoryRendezvousStore store;
  const absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateNcclCommunicator(
      {.rank = 1, .size = 2, .prefix = "lonely/", .timeout = absl::Milliseconds(200)}, &store);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("lonely/nccl/unique_id"));
}

// Runs body(rank, communicator) for ranks 0 and 1, each on its own thread and GPU.
void RunTwoRanks(const std::string& prefix,
                 const std::function<void(int32_t, Communicator&)>& body) {
  InMemoryRendezvousStore store;
  std::vector<std::thread> threads;
  for (int32_t rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
      absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateNcclCommunicator(
          {.rank = rank, .size = 2, .device = rank, .prefix = prefix, .timeout = absl::Seconds(60)},
          &store);
      ASSERT_TRUE(comm.ok()) << comm.status();
      EXPECT_EQ((*comm)->rank(), rank);
      EXPECT_EQ((*comm)->size(), 2);
      body(rank, **comm);
    });
  }
  for (std::thread& t : threads) t.join();
}

// Rank r's input of n values: distinct per rank and element, exact in fp32 when summed.
std::vector<float> RankValues(int32_t rank, size_t n) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = static_cast<float>(static_cast<int>(i % 251) - 125) * 0.25f + 1000.0f * rank;
  }
  return values;
}

TEST(NcclCommunicator, TwoRanksAllReduceAndAllGatherEqualTheHostResult) {
  if (DeviceCount() < 2) GTEST_SKIP() << "needs two CUDA devices, found " << DeviceCount();
  RunTwoRanks("nccl-two/", [](int32_t rank, Communicator& comm) {
    for (size_t n : {1, 7, 1001, 1 << 20}) {
      const std::vector<float> mine = RankValues(rank, n);
      std::vector<float> sum(n), concatenated;
      for (int32_t r = 0; r < 2; ++r) {
        const std::vector<float> theirs = RankValues(r, n);
        for (size_t i = 0; i < n; ++i) sum[i] += theirs[i];
        concatenated.insert(concatenated.end(), theirs.begin(), theirs.end());
      }
      DeviceBuffer data(mine);
      ASSERT_TRUE(comm.AllReduceSum(data.get(), static_cast<int64_t>(n)).ok()) << n;
      EXPECT_EQ(data.ToHost(), sum) << "all-reduce of " << n << " on rank " << rank;
      DeviceBuffer input(mine);
      DeviceBuffer gathered(2 * n);
      ASSERT_TRUE(comm.AllGather(input.get(), static_cast<int64_t>(n), gathered.get()).ok()) << n;
      EXPECT_EQ(gathered.ToHost(), concatenated) << "all-gather of " << n << " on rank " << rank;
    }
  });
}

// The model's kernels run on the default stream and return before they finish; the collective
// that follows must read what they wrote. A 256 MiB memset queued there just before the
// all-reduce stands in for the kernel.
TEST(NcclCommunicator, TwoRanksSeeWhatTheDefaultStreamWroteJustBefore) {
  if (DeviceCount() < 2) GTEST_SKIP() << "needs two CUDA devices, found " << DeviceCount();
  RunTwoRanks("nccl-order/", [](int32_t rank, Communicator& comm) {
    constexpr size_t kCount = size_t{64} << 20;
    DeviceBuffer data(kCount);
    ASSERT_EQ(cudaMemset(data.get(), 0, kCount * sizeof(float)), cudaSuccess);
    // Bytes 0x40 0x40 0x40 0x40: the float 3.0039215 on each rank, 6.007843 summed.
    ASSERT_EQ(cudaMemsetAsync(data.get(), 0x40, kCount * sizeof(float), /*stream=*/0), cudaSuccess);
    ASSERT_TRUE(comm.AllReduceSum(data.get(), static_cast<int64_t>(kCount)).ok());
    float one;
    const uint32_t bits = 0x40404040u;
    std::memcpy(&one, &bits, sizeof(one));
    const std::vector<float> got = data.ToHost();
    size_t wrong = 0;
    for (float v : got) wrong += v != one + one ? 1 : 0;
    EXPECT_EQ(wrong, 0u) << "of " << kCount << " on rank " << rank;
  });
}

TEST(NcclCommunicator, RejectsBadOptions) {
  InMemoryRendezvousStore store;
  EXPECT_EQ(CreateNcclCommunicator({.rank = 1, .size = 1}, &store).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateNcclCommunicator({.rank = 0, .size = 1}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
