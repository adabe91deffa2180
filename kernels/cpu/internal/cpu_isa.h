// The instruction set of the CPU kernels' hand-written paths (the integer dot products of
// quantized_dot.h), chosen once per process: the widest one this CPU and OS support, unless
// environment variables force another. Compiler-vectorized loops elsewhere keep their own
// target_clones dispatch (vec_math.h); this is for intrinsics, which need one known ISA.
//
//   PAGODA_CPU_ISA=auto|avx512|avx2|scalar   (default auto: the widest supported)
//   PAGODA_CPU_INT8_DOT=1|0                  (default 1; 0 sends every quantized weight through
//                                             the exact fp32 dequantizing GEMM instead)
//   PAGODA_CPU_PACK_WEIGHTS=1|0              (default 1; 0 keeps the weights' file layout for the
//                                             GEMM: kernels::PackedGemmWeightBytes says 0)
//   PAGODA_CPU_HUGE_PAGES=1|0                (default 1; 0: weight buffers without
//                                             MADV_HUGEPAGE, kernels/weight_buffer.h)
//
// A forced ISA the CPU lacks, or an unknown value, is an error that every kernels::Gemm returns
// (FailedPrecondition / InvalidArgument), never an illegal instruction.
//
//   const absl::StatusOr<CpuKernelConfig>& config = ActiveCpuKernelConfig();
//   if (!config.ok()) return config.status();
//   QuantizedDotFor(DType::kQ4_1, config->isa);
#pragma once

#include <string_view>

#include "absl/status/statusor.h"

namespace pagoda::kernels::internal {

enum class CpuIsa {
  kScalar,  // portable C++, any CPU
  kAvx2,    // AVX2 + FMA + F16C: vpmaddubsw / vpmaddwd on 256-bit vectors
  kAvx512,  // AVX-512 F/BW/VL + VNNI (vpdpbusd) on 512-bit vectors; CPUs with AVX-512 but no
            // VNNI take kAvx2
};
inline constexpr CpuIsa kAllCpuIsas[] = {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512};

/// "scalar", "avx2", "avx512": the PAGODA_CPU_ISA spellings.
std::string_view CpuIsaName(CpuIsa isa);

/// Whether this CPU (and OS: the AVX state is enabled) runs `isa`'s code.
bool CpuSupports(CpuIsa isa);

/// The ISA that `name` (a PAGODA_CPU_ISA value) selects on a CPU whose widest supported ISA is
/// `widest`: "" or "auto" give `widest`; a known name above `widest` is FailedPrecondition; an
/// unknown name is InvalidArgument.
absl::StatusOr<CpuIsa> ResolveCpuIsa(std::string_view name, CpuIsa widest);

/// The widest ISA CpuSupports.
CpuIsa WidestSupportedCpuIsa();

struct CpuKernelConfig {
  CpuIsa isa = CpuIsa::kScalar;
  bool int8_dot = true;      // quantized weights take the integer dot products where m is small
  bool pack_weights = true;  // weights the GEMM reads faster repacked are packed at load
  bool huge_pages = true;    // weight buffers ask for transparent huge pages
};

/// The config from the PAGODA_CPU_* variables above, read on the first call.
const absl::StatusOr<CpuKernelConfig>& ActiveCpuKernelConfig();

}  // namespace pagoda::kernels::internal
