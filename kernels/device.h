// Where a tensor's bytes and a kernel's operands live. Every op's params struct carries one
// (`.device = Device::kCuda`); the op's dispatch point (kernels/<op>.cc) sends the call to its
// cpu/ or cuda/ twin once. A CUDA request in a build without CUDA (PAGODA_CUDA=OFF) is
// FailedPrecondition, never a crash.
#pragma once

#include <cstdint>
#include <string_view>

namespace pagoda {

enum class Device : uint8_t { kCpu, kCuda };

inline std::string_view DeviceName(Device device) {
  return device == Device::kCuda ? "cuda" : "cpu";
}

}  // namespace pagoda
