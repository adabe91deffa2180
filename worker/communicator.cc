#include "worker/communicator.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

class SingleCommunicator final : public Communicator {
 public:
  int32_t rank() const override { return 0; }
  int32_t size() const override { return 1; }
  std::string_view backend() const override { return "single"; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    return CheckAllReduceArguments(data, count);
  }

  absl::Status AllGather(const float* input, int64_t count, float* output) override {
    RETURN_IF_ERROR(CheckAllGatherArguments(input, count, output));
    std::copy_n(input, count, output);
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Communicator> CreateSingleCommunicator() {
  return std::make_unique<SingleCommunicator>();
}

absl::Status CheckAllReduceArguments(const float* data, int64_t count) {
  if (count < 0 || (count > 0 && data == nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("all-reduce of ", count, " floats needs count >= 0 and a buffer"));
  }
  return absl::OkStatus();
}

absl::Status CheckAllGatherArguments(const float* input, int64_t count, const float* output) {
  if (count < 0 || (count > 0 && (input == nullptr || output == nullptr))) {
    return absl::InvalidArgumentError(
        absl::StrCat("all-gather of ", count, " floats needs count >= 0 and two buffers"));
  }
  return absl::OkStatus();
}

absl::Status CheckGroupArguments(std::string_view backend, int32_t rank, int32_t size,
                                 bool has_store, absl::Duration timeout) {
  const std::string name(backend);  // absl::StrCat takes no std::string_view here
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " communicator rank ", rank, " is outside [0, ", size, ")"));
  }
  if (!has_store) {
    return absl::InvalidArgumentError(absl::StrCat(name, " communicator needs a store"));
  }
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " communicator timeout must be positive, got ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

}  // namespace pagoda
