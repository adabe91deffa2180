// Subprocess: a child process started from an argv (fork + exec, no shell), for `pagoda serve`'s
// supervisor and the integration tests. The child gets SIGTERM when its parent dies
// (PR_SET_PDEATHSIG), starts with SIGINT/SIGTERM unblocked, and may have stdout/stderr
// redirected to a file. The destructor terminates a child still running (SIGTERM, then SIGKILL
// after a grace period) and reaps it.
//
//   ASSIGN_OR_RETURN(Subprocess worker, Subprocess::Start({"pagoda-worker", "--port", "0"}));
//   if (auto exit = worker.TryWait()) { ... it exited with *exit ... }
//   worker.Terminate(absl::Seconds(5));
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pagoda {

struct SubprocessOptions {
  std::string log_file;  // stdout and stderr appended here; empty: inherited
};

class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const SubprocessOptions& options = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exit_status_.has_value(); }

  /// Reaps the child if it has exited: its exit code, or 128 + signal number; nullopt while it
  /// runs.
  std::optional<int> TryWait();
  /// Waits up to `timeout` for the child to exit; nullopt if it still runs.
  std::optional<int> Wait(absl::Duration timeout);
  /// Sends `signal` (e.g. SIGKILL to simulate a crash); no-op once it has exited.
  void Signal(int signal);
  /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
  int Terminate(absl::Duration grace = absl::Seconds(10));

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace pagoda
