#!/usr/bin/env bash
# Pagoda's main job on a fresh machine: install the dependencies and SmolLM2-135M-Instruct
# (scripts/install-deps.sh: Debian packages, .venv, models/SmolLM2-135M-Instruct.Q4_1.gguf), build
# pagoda, pagoda-router and pagoda-worker (scripts/build.sh; ninja skips what is up to date), then
# serve the model in the foreground with `pagoda serve`: a router and 1 replica x 1 CPU worker,
# gRPC on port 50051, the OpenAI-compatible HTTP API and /metrics on port 8000. Ctrl-C stops the
# router and the workers. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/quickstart.sh [--no-setup] [--] [pagoda serve flags...]

Sets up (scripts/install-deps.sh, scripts/build.sh) and serves SmolLM2-135M-Instruct (Q4_1 GGUF)
with `pagoda serve` in the foreground; Ctrl-C stops the whole cluster.

  --no-setup   skip install-deps.sh and the build (serve what build/ already holds)
  --help, -h   this text
  --           everything after it goes to `pagoda serve` (so does the first argument that is not
               one of the above); later flags win, e.g. `-- --http-port 8080 --api-key k`
               (set the topology with PAGODA_REPLICAS / PAGODA_TP: the threads follow it)

Defaults (environment variables override them):
  PAGODA_MODEL      models/SmolLM2-135M-Instruct.Q4_1.gguf
  PAGODA_REPLICAS   1     replicas
  PAGODA_TP         1     tensor-parallel ranks per replica (SmolLM2-135M: 1 or 3, not 2)
  OMP_NUM_THREADS   threads per worker (default: pagoda serve shares the cores out)
  PAGODA_HOST       127.0.0.1
  PAGODA_GRPC_PORT  50051 pagoda.v1.Generation (gRPC)
  PAGODA_HTTP_PORT  8000  OpenAI-compatible API (/v1/chat/completions, /v1/completions,
                          /v1/models) and /metrics
  PAGODA_KV_CACHE_MEMORY_GIB  0.5  KV cache per rank: room for a whole 8192-token context
  BUILD_DIR         build

Examples:
  scripts/quickstart.sh                         # 1 replica x TP 1 on ports 50051 / 8000
  PAGODA_TP=3 scripts/quickstart.sh             # SmolLM2's heads split over 3 ranks
  PAGODA_HTTP_PORT=8080 scripts/quickstart.sh   # another HTTP port
  scripts/quickstart.sh -- --help               # every `pagoda serve` flag
Then, from another terminal:
  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \
      -d '{"messages": [{"role": "user", "content": "What is 2 + 2?"}], "temperature": 0}'
EOF
}

setup=1
serve_args=()
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --no-setup)
      setup=0
      shift
      ;;
    --)
      shift
      serve_args=("$@")
      break
      ;;
    *)
      serve_args=("$@")
      break
      ;;
  esac
done

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
model=${PAGODA_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}

if ((setup)); then
  scripts/install-deps.sh
  BUILD_DIR=$BUILD_DIR BUILD_TARGETS="pagoda pagoda-router pagoda-worker" scripts/build.sh
fi
for binary in pagoda pagoda-router pagoda-worker; do
  if [[ ! -x $BUILD_DIR/bin/$binary ]]; then
    echo "quickstart: $BUILD_DIR/bin/$binary is missing (run without --no-setup)" >&2
    exit 1
  fi
done
if [[ ! -f $model ]]; then
  echo "quickstart: $model is missing (scripts/install-deps.sh fetches it)" >&2
  exit 1
fi

echo "quickstart: serving $model; gRPC on ${PAGODA_HOST:-127.0.0.1}:${PAGODA_GRPC_PORT:-50051}," \
  "OpenAI API on http://${PAGODA_HOST:-127.0.0.1}:${PAGODA_HTTP_PORT:-8000}/v1; Ctrl-C stops it"
exec "$BUILD_DIR/bin/pagoda" serve --model "$model" \
  --replicas "${PAGODA_REPLICAS:-1}" --tp "${PAGODA_TP:-1}" \
  --host "${PAGODA_HOST:-127.0.0.1}" \
  --grpc-port "${PAGODA_GRPC_PORT:-50051}" --http-port "${PAGODA_HTTP_PORT:-8000}" \
  --kv-cache-memory-gib "${PAGODA_KV_CACHE_MEMORY_GIB:-0.5}" \
  "${serve_args[@]}"
