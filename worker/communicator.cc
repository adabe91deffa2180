#include "worker/communicator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pagoda {
namespace {

class SingleCommunicator final : public Communicator {
 public:
  int32_t rank() const override { return 0; }
  int32_t size() const override { return 1; }
  std::string_view backend() const override { return "single"; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    if (count < 0 || (count > 0 && data == nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("all-reduce of ", count, " floats needs count >= 0 and a buffer"));
    }
    return absl::OkStatus();
  }

  absl::Status AllGather(const float* input, int64_t count, float* output) override {
    if (count < 0 || (count > 0 && (input == nullptr || output == nullptr))) {
      return absl::InvalidArgumentError(
          absl::StrCat("all-gather of ", count, " floats needs count >= 0 and two buffers"));
    }
    std::copy_n(input, count, output);
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Communicator> CreateSingleCommunicator() {
  return std::make_unique<SingleCommunicator>();
}

}  // namespace pagoda
