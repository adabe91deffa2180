#!/usr/bin/env bash
# Soak under faults (tests/integration/soak_test.py): a local cluster (2 replicas x TP 2,
# stories260K) under mixed HTTP and gRPC traffic for DURATION seconds (default 60, what CI runs)
# while a worker is killed every KILL_INTERVAL seconds (default 30) and comes back; then checks that
# nothing failed, greedy outputs equal their goldens, the replicas are idle with an empty KV cache,
# and memory and file descriptors did not grow. Uses the build in build/ (scripts/build.sh).
#
#   scripts/soak.sh 1800            # 30 minutes
#   PAGODA_SOAK_CLIENTS=8 scripts/soak.sh 300 15
set -euo pipefail
cd "$(dirname "$0")/.."
export PAGODA_SOAK_SECONDS=${1:-60}
export PAGODA_SOAK_KILL_INTERVAL_S=${2:-${PAGODA_SOAK_KILL_INTERVAL_S:-30}}
shared=${PAGODA_SHARED_DIR:-$(cd .. && pwd)/shared}
PYTHONPATH=tests/testing exec .venv/bin/python tests/integration/soak_test.py \
  --bin-dir build/bin --source-dir "$PWD" --shared-dir "$shared"
