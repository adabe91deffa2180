#include "kernels/weight_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/cpu_isa.h"

namespace pagoda::kernels {
namespace {

constexpr size_t kHugePageBytes = size_t{2} << 20;

}  // namespace

absl::StatusOr<std::shared_ptr<std::byte>> AllocateWeightBuffer(int64_t bytes) {
  if (bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("weight buffer of ", bytes, " bytes"));
  }
  // Whole huge pages, and one more to align the start: the slack is unmapped again below.
  const size_t size =
      (static_cast<size_t>(bytes) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const size_t mapped = size + kHugePageBytes;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map ", bytes, " bytes for model weights: ", std::strerror(errno)));
  }
  auto* base = static_cast<std::byte*>(p);
  const size_t head =
      (kHugePageBytes - reinterpret_cast<uintptr_t>(base) % kHugePageBytes) % kHugePageBytes;
  if (head > 0) ::munmap(base, head);
  ::munmap(base + head + size, kHugePageBytes - head);
  std::byte* data = base + head;
  // Advice only: a kernel without transparent huge pages refuses it, and the memory stays usable.
  if (WeightBuffersUseHugePages()) ::madvise(data, size, MADV_HUGEPAGE);
  return std::shared_ptr<std::byte>(data, [size](std::byte* q) { ::munmap(q, size); });
}

bool WeightBuffersUseHugePages() {
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  return config.ok() && config->huge_pages;
}

}  // namespace pagoda::kernels
