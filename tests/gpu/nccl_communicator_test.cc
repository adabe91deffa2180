// NCCL communicator on one GPU (a group of one rank): needs a CUDA device, skips without one.
#include "worker/nccl_communicator.h"

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

bool HasCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

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
  // Fails in the rendezvous, before touching the device: runs without a GPU too.
  InMemoryRendezvousStore store;
  const absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateNcclCommunicator(
      {.rank = 1, .size = 2, .prefix = "lonely/", .timeout = absl::Milliseconds(200)}, &store);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_THAT(std::string(comm.status().message()), HasSubstr("lonely/nccl/unique_id"));
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
