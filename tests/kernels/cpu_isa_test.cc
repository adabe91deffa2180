#include "kernels/cpu/internal/cpu_isa.h"

#include "gtest/gtest.h"

namespace pagoda::kernels::internal {
namespace {

TEST(CpuIsa, AutoAndEmptyPickTheWidest) {
  for (CpuIsa widest : kAllCpuIsas) {
    EXPECT_EQ(ResolveCpuIsa("", widest).value(), widest);
    EXPECT_EQ(ResolveCpuIsa("auto", widest).value(), widest);
  }
}

TEST(CpuIsa, ANamedIsaUpToTheWidestIsThatIsa) {
  EXPECT_EQ(ResolveCpuIsa("scalar", CpuIsa::kAvx512).value(), CpuIsa::kScalar);
  EXPECT_EQ(ResolveCpuIsa("avx2", CpuIsa::kAvx512).value(), CpuIsa::kAvx2);
  EXPECT_EQ(ResolveCpuIsa("avx512", CpuIsa::kAvx512).value(), CpuIsa::kAvx512);
  EXPECT_EQ(ResolveCpuIsa("avx2", CpuIsa::kAvx2).value(), CpuIsa::kAvx2);
}

// A CPU without the forced ISA (a fake one here, so that this runs on any machine) is an error.
TEST(CpuIsa, AnIsaTheCpuLacksIsFailedPrecondition) {
  EXPECT_EQ(ResolveCpuIsa("avx512", CpuIsa::kAvx2).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveCpuIsa("avx2", CpuIsa::kScalar).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveCpuIsa("avx512", CpuIsa::kScalar).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CpuIsa, AnUnknownNameIsInvalidArgument) {
  for (const char* name : {"AVX2", "sse", "avx1024", " auto"}) {
    EXPECT_EQ(ResolveCpuIsa(name, CpuIsa::kAvx512).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
}

TEST(CpuIsa, TheWidestSupportedIsSupportedAndScalarAlwaysIs) {
  EXPECT_TRUE(CpuSupports(CpuIsa::kScalar));
  EXPECT_TRUE(CpuSupports(WidestSupportedCpuIsa()));
  for (CpuIsa isa : kAllCpuIsas) {
    if (static_cast<int>(isa) > static_cast<int>(WidestSupportedCpuIsa())) {
      EXPECT_FALSE(CpuSupports(isa)) << CpuIsaName(isa);
    }
  }
}

}  // namespace
}  // namespace pagoda::kernels::internal
