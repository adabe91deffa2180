// `pagoda serve`: a whole local cluster in one command — R replicas of T tensor-parallel
// pagoda-worker processes (CPU backend, Gloo) and a pagoda-router in front of them, started as
// child processes on OS-chosen worker ports. It supervises them: a worker that dies is started
// again on its port (the router re-initializes its replica, which rejoins), and SIGINT/SIGTERM
// shut everything down in order.
//
//   pagoda serve --model models/stories260K --replicas 2 --tp 2 --grpc-port 50051
#pragma once

namespace pagoda {

/// Runs the subcommand; argv excludes "pagoda serve". Returns the process exit code.
int RunServeCommand(int argc, const char* const* argv);

}  // namespace pagoda
