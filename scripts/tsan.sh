#!/usr/bin/env bash
# Runs the tests of Pagoda's concurrent parts under ThreadSanitizer (docs/hardening.md).
#
#   scripts/tsan.sh            build them into build-tsan/ and run them
#   scripts/tsan.sh build      build only
#   scripts/tsan.sh run [ARG...]  run only (ARGs go to ctest, e.g. -R EngineLoop)
#
# TSAN_BUILD_DIR chooses the tree (default build-tsan). clang, -fsanitize=thread at -O1 with line
# tables only (a Debug tree otherwise: assertions on): -O0 code runs the model several times
# slower under TSan, full debug info only lengthens the compile. Only the tests below and what
# they link are built.
#
# Every report fails the run: halt_on_error stops the process at its first report (exit 66),
# and each process writes its reports to $TSAN_BUILD_DIR/tsan-reports/, so a report in a process
# a test started (a router or worker of cluster_test) fails the script too, not only the test.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
shift || true
BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}

# The tests, and the concurrency each one exercises.
tests=(
  clock_test                # the fake clock's sleeps and awaits on other threads, woken by Advance
  engine_loop_test          # EngineLoop's step thread against submitting, aborting, stopping callers
  engine_failover_test      # two EngineLoops over InProcessExecutors, their threads, a real model
  in_process_executor_test  # pipelined Submit / result hand-off across the executor's thread
  global_scheduler_test     # routing decisions and load updates from many threads at once
  replica_test              # a Replica's supervisor thread restarting engines while callers route
  router_metrics_test       # ReplicaSet, request sessions, step observers on engine threads, scrapes
  health_reporter_test      # the health reporter's thread against its owner and Stop
  http_server_test          # cpp-httplib's pool: sessions, streams, disconnects, drain, timeouts
  remote_executor_test      # the router's gRPC channels (TLS) to an in-process server
  gloo_communicator_test    # tensor-parallel ranks on threads over Gloo's TCP transport
  worker_runtime_test       # the worker's plan ordering across callers, two ranks meeting in-process
  worker_drain_test         # the drain's wait on a fake clock while steps keep arriving
  compute_thread_test       # the worker's one computing thread, handed tasks by many callers
)

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [[ $mode == all || $mode == build ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DCMAKE_C_FLAGS_DEBUG="-O1 -gline-tables-only" \
    -DPAGODA_TSAN=ON -DPAGODA_CUDA=OFF -DPAGODA_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${tests[@]}"
fi
if [[ $mode == build ]]; then exit 0; fi

reports="$PWD/$BUILD_DIR/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
regex=$(IFS='|'; echo "${tests[*]}")
# OpenMP and OpenBLAS are not instrumented (their threads' hand-offs would read as races): one
# thread each. gRPC, protobuf and Gloo are not instrumented either; ignore_noninstrumented_modules
# keeps their calls of intercepted functions (memcpy, free) out of the reports, and
# tests/tsan.supp names what is left of theirs.
# clang 14's ThreadSanitizer cannot map its shadow memory when the kernel randomises mmap with
# more than 28 bits ("unexpected memory mapping"): run without address randomisation there.
no_aslr=()
if [[ $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0) -gt 28 ]]; then
  no_aslr=(setarch "$(uname -m)" -R)
fi
status=0
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1 \
suppressions=$PWD/tests/tsan.supp log_path=$reports/report" \
  "${no_aslr[@]}" ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 600 \
  -L "^(${regex})\$" "$@" || status=$?
shopt -s nullglob
found=("$reports"/report*)
for report in "${found[@]}"; do
  echo "tsan.sh: ThreadSanitizer report $report:" >&2
  cat "$report" >&2
done
if [[ ${#found[@]} -gt 0 ]]; then
  echo "tsan.sh: ${#found[@]} process(es) reported a data race or another thread error" >&2
  exit 1
fi
if [[ $status -ne 0 ]]; then
  echo "tsan.sh: tests failed" >&2
  exit "$status"
fi
echo "tsan.sh: no ThreadSanitizer report"
