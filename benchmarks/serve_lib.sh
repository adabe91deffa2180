# Helpers for the benchmark scripts that start a `pagoda serve` cluster (routing.sh,
# serve_memory.sh): source it.
#
#   source benchmarks/serve_lib.sh
#   wait_healthy "$PORT" "$serve_pid" || { echo "not healthy" >&2; exit 1; }

# Waits until http://127.0.0.1:PORT/health answers 200 (at most 120 s); fails when the time runs
# out or the process PID exits first.
wait_healthy() {
  local port=$1 pid=$2
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
