#!/usr/bin/env bash
# Peak resident memory of `pagoda serve --replicas 1 --tp 1` per model: starts the cluster, waits
# until the OpenAI endpoint answers, sends one chat completion (so the weights have been read and
# the KV cache touched by a real step), then prints the peak RSS (VmHWM) of the router and the
# worker, read from /proc, and stops the cluster. Extra `pagoda serve` flags go after `--`.
#
#   benchmarks/serve_memory.sh models/SmolLM2-135M-Instruct.Q4_1.gguf models/...F32.gguf
#   benchmarks/serve_memory.sh models/x.gguf -- --num-gpu-blocks-override 512
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/serve_lib.sh
PAGODA=${PAGODA:-build/bin/pagoda}
PORT=${PORT:-18431}

models=()
while (($#)) && [[ $1 != -- ]]; do
  models+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
if ((${#models[@]} == 0)); then
  echo "usage: $0 MODEL... [-- pagoda serve flags]" >&2
  exit 2
fi

peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

printf '%-40s %12s %12s %12s\n' model router_MiB worker_MiB total_MiB
for model in "${models[@]}"; do
  dir=$(mktemp -d)
  "$PAGODA" serve --model "$model" --replicas 1 --tp 1 --grpc-port 0 --http-port "$PORT" \
    --state-file "$dir/state.json" --log-dir "$dir/logs" "$@" >"$dir/serve.log" 2>&1 &
  serve_pid=$!
  if ! wait_healthy "$PORT" "$serve_pid"; then
    echo "$model: the cluster did not become healthy; log in $dir/serve.log" >&2
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    exit 1
  fi
  curl -sf "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "'"$(basename "$model" .gguf)"'", "max_tokens": 32,
         "messages": [{"role": "user", "content": "What is the capital of France?"}]}' \
    >"$dir/answer.json" || {
    echo "$model: the chat completion failed; log in $dir/serve.log" >&2
    kill "$serve_pid"
    exit 1
  }
  router_pid=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["router"]["pid"])' "$dir/state.json")
  worker_pid=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"][0]["pid"])' "$dir/state.json")
  router_kib=$(peak_kib "$router_pid")
  worker_kib=$(peak_kib "$worker_pid")
  awk -v m="$(basename "$model")" -v r="$router_kib" -v w="$worker_kib" \
    'BEGIN {printf "%-40s %12.1f %12.1f %12.1f\n", m, r / 1024, w / 1024, (r + w) / 1024}'
  kill -INT "$serve_pid"
  wait "$serve_pid" 2>/dev/null || true
  rm -rf "$dir"
done
