// ExecWithShortOpenMpSpinUnlessSet in a child process: it executes the program again with
// GOMP_SPINCOUNT=3000 when neither variable is set, and leaves a set one alone. The child
// runs this test binary again, whose WritesThePolicyItRunsWith case reports what it sees.
#include "common/openmp_wait_policy.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace pagoda {
namespace {

constexpr char kOutVar[] = "PAGODA_TEST_WAIT_POLICY_OUT";

// Not a test on its own (skipped then): the program the cases below execute again.
TEST(OpenMpWaitPolicy, WritesThePolicyItRunsWith) {
  const char* out = std::getenv(kOutVar);
  if (out == nullptr) GTEST_SKIP() << "run by the other cases of this file";
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  std::ofstream(out) << (policy != nullptr ? policy : "unset") << "/"
                     << (spin != nullptr ? spin : "unset");
}

// Runs, in a child with `setup` applied to its environment, the function under test with argv
// naming this binary and the case above, then that case itself if the function returned; the
// policy the program ended up with.
std::string PolicyOfAChild(void (*setup)()) {
  const std::string out =
      (std::filesystem::temp_directory_path() / ("pagoda_wait_policy_" + std::to_string(getpid())))
          .string();
  std::filesystem::remove(out);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const pid_t pid = fork();
  if (pid == 0) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    setup();
    setenv(kOutVar, out.c_str(), 1);
    std::string filter = "--gtest_filter=OpenMpWaitPolicy.WritesThePolicyItRunsWith";
    char* args[] = {const_cast<char*>(self.c_str()), filter.data(), nullptr};
    ExecWithShortOpenMpSpinUnlessSet(args);
    execv(self.c_str(), args);  // not executed again: run the reporting case as it is
    _exit(3);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string policy;
  std::ifstream(out) >> policy;
  std::filesystem::remove(out);
  return policy;
}

TEST(OpenMpWaitPolicy, UnsetBecomesAShortSpin) {
  EXPECT_EQ(PolicyOfAChild([] {}), "unset/3000");
}

TEST(OpenMpWaitPolicy, TheUsersChoiceStays) {
  EXPECT_EQ(PolicyOfAChild([] { setenv("OMP_WAIT_POLICY", "PASSIVE", 1); }), "PASSIVE/unset");
  EXPECT_EQ(PolicyOfAChild([] { setenv("GOMP_SPINCOUNT", "10000", 1); }), "unset/10000");
}

}  // namespace
}  // namespace pagoda
