// Orderly shutdown on SIGINT / SIGTERM for the long-running binaries (pagoda-router,
// pagoda-worker, pagoda serve): block both signals in every thread before any is started, then
// wait for one on the main thread and shut down in order — no work in a signal handler.
//
//   BlockTerminationSignals();          // first thing in main(), before threads start
//   ... start servers and threads ...
//   int signal = WaitForTerminationSignal();
//   server->Shutdown(deadline);
#pragma once

#include "absl/time/time.h"

namespace pagoda {

/// Blocks SIGINT and SIGTERM in the calling thread; threads created afterwards inherit it.
void BlockTerminationSignals();

/// Waits until SIGINT or SIGTERM is delivered to the process and returns it.
int WaitForTerminationSignal();

/// Waits at most `timeout` for SIGINT or SIGTERM: the signal, or 0 when none came (e.g. a second
/// signal that cuts a graceful drain short).
int WaitForTerminationSignalFor(absl::Duration timeout);

/// Blocks SIGHUP too (call with BlockTerminationSignals), for a process that reloads its
/// configuration on it instead of dying.
void BlockReloadSignal();

/// Waits until SIGINT, SIGTERM or SIGHUP is delivered and returns it (after BlockReloadSignal).
int WaitForTerminationOrReloadSignal();

/// Sends SIGTERM to this process, so the thread in WaitForTerminationSignal() returns (for a
/// shutdown requested from elsewhere, e.g. an RPC).
void RequestTermination();

}  // namespace pagoda
