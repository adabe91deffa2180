#include "common/shared_library.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SharedLibrary, TheEnvironmentVariableReplacesTheDefaults) {
  unsetenv("PAGODA_TEST_LIBRARY");
  EXPECT_THAT(LibraryNames("PAGODA_TEST_LIBRARY", {"liba.so.1", "liba.so"}),
              ElementsAre("liba.so.1", "liba.so"));
  setenv("PAGODA_TEST_LIBRARY", "", 1);
  EXPECT_THAT(LibraryNames("PAGODA_TEST_LIBRARY", {"liba.so"}), ElementsAre("liba.so"));
  setenv("PAGODA_TEST_LIBRARY", "/opt/b.so", 1);
  EXPECT_THAT(LibraryNames("PAGODA_TEST_LIBRARY", {"liba.so"}), ElementsAre("/opt/b.so"));
  unsetenv("PAGODA_TEST_LIBRARY");
}

struct MathApi {
  double (*cos)(double) = nullptr;
  double (*sqrt)(double) = nullptr;
};

bool ResolveMath(void* library, MathApi& api, std::string& error) {
  return ResolveSymbol(library, "cos", api.cos, error) &&
         ResolveSymbol(library, "sqrt", api.sqrt, error);
}

TEST(SharedLibrary, TheFirstLibraryWithEveryEntryPointIsLoaded) {
  const absl::StatusOr<MathApi> api = LoadFirstLibrary<MathApi>(
      {"/nonexistent/libnothing.so", "libm.so.6"}, ResolveMath, "libm", "hint");
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_EQ(api->cos(0.0), 1.0);
  EXPECT_EQ(api->sqrt(16.0), 4.0);
}

TEST(SharedLibrary, NoneLoadingIsFailedPreconditionNamingEachFileAndWhy) {
  const absl::StatusOr<MathApi> api = LoadFirstLibrary<MathApi>(
      {"/nonexistent/libnothing.so", "libm.so.6"},
      [](void* library, MathApi& api, std::string& error) {
        return ResolveSymbol(library, "pagoda_no_such_symbol", api.cos, error);
      },
      "the test library could not be loaded", "set PAGODA_TEST_LIBRARY");
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(api.status().message());
  EXPECT_THAT(message, HasSubstr("the test library could not be loaded: tried "
                                 "/nonexistent/libnothing.so ("));
  EXPECT_THAT(message, HasSubstr("libm.so.6 (symbol pagoda_no_such_symbol is missing"));
  EXPECT_THAT(message, HasSubstr("; set PAGODA_TEST_LIBRARY"));
}

}  // namespace
}  // namespace pagoda
