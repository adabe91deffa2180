#include "kernels/cpu/internal/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

namespace pagoda::kernels::internal {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// F16C from CPUID leaf 1 (clang's __builtin_cpu_supports does not know the name); its register
// state is the AVX state, which the AVX2 check covers.
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
#endif

}  // namespace

std::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

bool CpuSupports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return true;
#if defined(__x86_64__) && defined(__GNUC__)
    // __builtin_cpu_supports checks the OS enabled the register state too (XGETBV).
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
    case CpuIsa::kAvx512:
      return CpuSupports(CpuIsa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
#else
    default:
      return false;
#endif
  }
  return false;
}

CpuIsa WidestSupportedCpuIsa() {
  CpuIsa widest = CpuIsa::kScalar;
  for (CpuIsa isa : kAllCpuIsas) {
    if (CpuSupports(isa)) widest = isa;
  }
  return widest;
}

absl::StatusOr<CpuIsa> ResolveCpuIsa(std::string_view name, CpuIsa widest) {
  if (name.empty() || name == "auto") return widest;
  for (CpuIsa isa : kAllCpuIsas) {
    if (name != CpuIsaName(isa)) continue;
    if (static_cast<int>(isa) > static_cast<int>(widest)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PAGODA_CPU_ISA=", std::string(name),
          ": this CPU does not support it (widest: ", std::string(CpuIsaName(widest)), ")"));
    }
    return isa;
  }
  return absl::InvalidArgumentError(absl::StrCat("PAGODA_CPU_ISA=", std::string(name),
                                                 ": unknown (auto, avx512, avx2 or scalar)"));
}

namespace {

// A 0/1 switch from the environment: unset or empty keeps *value.
absl::Status ReadSwitch(const char* name, bool* value) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return absl::OkStatus();
  const std::string_view v(env);
  if (v != "0" && v != "1") {
    return absl::InvalidArgumentError(absl::StrCat(name, "=", std::string(v), ": expected 0 or 1"));
  }
  *value = v == "1";
  return absl::OkStatus();
}

absl::StatusOr<CpuKernelConfig> ConfigFromEnv() {
  const char* isa_env = std::getenv("PAGODA_CPU_ISA");
  absl::StatusOr<CpuIsa> isa =
      ResolveCpuIsa(isa_env == nullptr ? "" : isa_env, WidestSupportedCpuIsa());
  if (!isa.ok()) return isa.status();
  CpuKernelConfig config{.isa = *isa};
  RETURN_IF_ERROR(ReadSwitch("PAGODA_CPU_INT8_DOT", &config.int8_dot));
  RETURN_IF_ERROR(ReadSwitch("PAGODA_CPU_PACK_WEIGHTS", &config.pack_weights));
  RETURN_IF_ERROR(ReadSwitch("PAGODA_CPU_HUGE_PAGES", &config.huge_pages));
  return config;
}

}  // namespace

const absl::StatusOr<CpuKernelConfig>& ActiveCpuKernelConfig() {
  static const absl::StatusOr<CpuKernelConfig> config = ConfigFromEnv();
  return config;
}

}  // namespace pagoda::kernels::internal
