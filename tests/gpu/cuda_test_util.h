// Helpers for the CUDA kernel tests (tests/gpu/*_cuda_test.cc): device arrays that free
// themselves, host<->device copies through kernels/cuda/device_memory.h, seeded random data, and
// a bit-exact comparison that treats NaN as a value (outputs are poisoned with NaN before each
// run, so an element a kernel failed to write shows up as a NaN where the CPU twin wrote a number).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"

namespace pagoda::kernels::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline bool HasCudaDevice() { return cuda::DeviceCount() > 0; }

/// A device copy of a host vector; Host() copies it back (after all queued work).
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& values) : size_(values.size()) {
    absl::StatusOr<std::shared_ptr<void>> bytes = cuda::AllocateZeroed(Bytes());
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (!bytes.ok()) return;
    bytes_ = *std::move(bytes);
    const absl::Status s = cuda::CopyBytes(bytes_.get(), values.data(), Bytes());
    EXPECT_TRUE(s.ok()) << s;
  }
  T* get() const { return static_cast<T*>(bytes_.get()); }
  std::vector<T> Host() const {
    std::vector<T> values(size_);
    const absl::Status s = cuda::CopyBytes(values.data(), bytes_.get(), Bytes());
    EXPECT_TRUE(s.ok()) << s;
    return values;
  }

 private:
  int64_t Bytes() const { return static_cast<int64_t>(size_ * sizeof(T)); }
  size_t size_;
  std::shared_ptr<void> bytes_;
};

inline std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo = -3.0f,
                                       float hi = 3.0f) {
  std::uniform_real_distribution<float> uniform(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(rng);
  return v;
}

/// Every element equal bit for bit (NaN where the reference has NaN).
template <typename T>
void ExpectSameBits(const std::vector<T>& actual, const std::vector<T>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0) {
      ADD_FAILURE() << "element " << i << " differs: " << actual[i] << " vs " << expected[i];
      return;
    }
  }
}

/// |actual - expected| <= tolerance * (1 + |expected|) everywhere; a NaN anywhere fails.
inline void ExpectClose(const std::vector<float>& actual, const std::vector<float>& expected,
                        float tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const bool close = std::abs(actual[i] - expected[i]) <= tolerance * (1 + std::abs(expected[i]));
    if (!close) {  // also true for NaN
      ADD_FAILURE() << "element " << i << ": " << actual[i] << " vs " << expected[i]
                    << " (tolerance " << tolerance << " relative)";
      return;
    }
  }
}

}  // namespace pagoda::kernels::testing
