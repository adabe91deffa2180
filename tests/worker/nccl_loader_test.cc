// The NCCL loader (worker/internal/nccl.h) on the CPU, in CUDA builds: a library it cannot load
// or that is not NCCL is a FailedPrecondition naming every file tried and why, after which the
// process keeps going; the NCCL this machine has (when it has one) loads with every entry point.
// No GPU needed: nothing here creates a communicator on a device.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/internal/nccl.h"
#include "worker/nccl_communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr)
      old_ = std::make_unique<std::string>(old);
    setenv(name, value, /*overwrite=*/1);
  }
  ~ScopedEnv() {
    if (old_ != nullptr) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::unique_ptr<std::string> old_;
};

TEST(NcclLoader, TriesTheEnvironmentsFileAloneElseTheHeadersMajor) {
  {
    ScopedEnv env("PAGODA_NCCL_LIBRARY", "/opt/nccl/lib/libnccl.so.2.99");
    EXPECT_THAT(internal::NcclLibraryNames(), ElementsAre("/opt/nccl/lib/libnccl.so.2.99"));
  }
  ScopedEnv empty("PAGODA_NCCL_LIBRARY", "");
  EXPECT_THAT(internal::NcclLibraryNames(),
              ElementsAre(absl::StrCat("libnccl.so.", NCCL_MAJOR), "libnccl.so"));
}

TEST(NcclLoader, MissingFilesAreFailedPreconditionNamingEach) {
  const absl::StatusOr<internal::NcclApi> api =
      internal::OpenNccl({"/nonexistent/libnccl.so.2", "libnccl-not-here.so"});
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition) << api.status();
  EXPECT_THAT(std::string(api.status().message()),
              AllOf(HasSubstr("NCCL could not be loaded for the nccl communicator: tried "
                              "/nonexistent/libnccl.so.2 (/nonexistent/libnccl.so.2: cannot open "
                              "shared object file"),
                    HasSubstr(", libnccl-not-here.so (libnccl-not-here.so: cannot open"),
                    HasSubstr("PAGODA_NCCL_LIBRARY")));
}

TEST(NcclLoader, ALibraryThatIsNotNcclIsFailedPreconditionNamingTheSymbol) {
  // glibc's math library: it loads, and has none of NCCL's functions.
  const absl::StatusOr<internal::NcclApi> api = internal::OpenNccl({"libm.so.6"});
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), absl::StatusCode::kFailedPrecondition) << api.status();
  EXPECT_THAT(std::string(api.status().message()),
              HasSubstr("tried libm.so.6 (symbol ncclGetVersion is missing: "));
}

// The cached loader, and the communicator above it, under PAGODA_NCCL_LIBRARY naming a missing
// file: the same clean error each time, and the process goes on. The only test here that calls
// LoadNccl (its outcome is the process's), so it runs alone in a process under CTest or first in
// the binary's own order.
TEST(NcclLoader, EnvironmentNamingAMissingFileFailsCleanlyAndStays) {
  ScopedEnv env("PAGODA_NCCL_LIBRARY", "/nonexistent/pagoda-test/libnccl.so.2");
  const absl::StatusOr<const internal::NcclApi*> first = internal::LoadNccl();
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kFailedPrecondition) << first.status();
  EXPECT_THAT(std::string(first.status().message()),
              HasSubstr("tried /nonexistent/pagoda-test/libnccl.so.2 ("));
  // No retry with another file: the outcome is kept.
  EXPECT_EQ(internal::LoadNccl().status(), first.status());

  // The communicator fails with it before the rendezvous (no 30 s wait for the peers), naming
  // the rank and the group.
  InMemoryRendezvousStore store;
  const absl::StatusOr<std::unique_ptr<Communicator>> comm =
      CreateNcclCommunicator({.rank = 1, .size = 2, .prefix = "no-nccl/"}, &store);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kFailedPrecondition) << comm.status();
  EXPECT_THAT(std::string(comm.status().message()),
              AllOf(HasSubstr("rank 1 of 2 joining the nccl group 'no-nccl/'"),
                    HasSubstr("/nonexistent/pagoda-test/libnccl.so.2")));
  EXPECT_FALSE(store.Get("no-nccl/nccl/unique_id", absl::ZeroDuration()).ok());
}

TEST(NcclLoader, TheInstalledNcclHasEveryEntryPoint) {
  ScopedEnv empty("PAGODA_NCCL_LIBRARY", "");
  const absl::StatusOr<internal::NcclApi> api = internal::OpenNccl(internal::NcclLibraryNames());
  if (!api.ok()) GTEST_SKIP() << "no NCCL on this machine's loader path: " << api.status();
  EXPECT_EQ(api->version / 10000, NCCL_MAJOR);
  EXPECT_NE(api->get_unique_id, nullptr);
  EXPECT_NE(api->comm_init_rank_config, nullptr);
  EXPECT_NE(api->comm_get_async_error, nullptr);
  EXPECT_NE(api->comm_destroy, nullptr);
  EXPECT_NE(api->comm_abort, nullptr);
  EXPECT_NE(api->all_reduce, nullptr);
  EXPECT_NE(api->all_gather, nullptr);
  EXPECT_NE(api->get_error_string, nullptr);
  EXPECT_NE(api->get_last_error, nullptr);
  // A call through the table: NCCL's own text for a result code.
  EXPECT_THAT(std::string(api->get_error_string(ncclInvalidArgument)), HasSubstr("invalid"));
}

}  // namespace
}  // namespace pagoda
