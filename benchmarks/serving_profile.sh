#!/usr/bin/env bash
# Where a serving step's time goes (issue 15): `pagoda serve --replicas 1 --tp 1` on one model,
# driven by `pagoda bench serve` at 1 and at 16 concurrent streams, while `perf record` samples
# every CPU (cpu-clock, no call graphs). Each sample of the router or the worker is put in one
# bucket by process, library and function:
#   model      the worker's kernels and forward pass (pagoda::kernels, ModelRunner, the decoder
#              blocks, OpenBLAS)
#   omp        the worker's OpenMP runtime (libgomp: barriers and idle threads spinning)
#   sampler    the worker's sampling and logits processing
#   worker rt  the rest of the worker: StepRunner bookkeeping, plan/result (de)serialisation,
#              gRPC, protobuf, allocation, the kernel's syscalls
#   engine     the router's engine core: scheduler, KV-cache manager, plan building, output
#              processing, detokenisation, stop checks
#   frontend   the router's HTTP server and OpenAI JSON (cpp-httplib, nlohmann::json)
#   router rt  the rest of the router: gRPC to the worker, protobuf, abseil, allocation, syscalls
# and prints, per stream count, CPU milliseconds per generated token in each bucket beside the
# wall-clock figures: the client's mean TPOT, the router's mean step duration (submission to
# result, pagoda's engine) and the worker's mean Execute time (pagoda_worker:step_latency_seconds);
# the difference of the last two is the transport and the engine's own time per step.
#
#   benchmarks/serving_profile.sh                    # SmolLM2-135M-Instruct Q4_1, 2 threads
#   MODEL=models/x.gguf THREADS=1 STREAMS="1 16" OUTPUT_LEN=128 benchmarks/serving_profile.sh
#
# Needs perf (Debian's linux-perf) and root or kernel.perf_event_paranoid <= 0 (system-wide
# sampling). Results and logs stay in $OUT_DIR (default: a new temporary folder, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/serve_lib.sh
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-$(nproc)}
STREAMS=${STREAMS:-"1 16"}
INPUT_LEN=${INPUT_LEN:-64}
OUTPUT_LEN=${OUTPUT_LEN:-128}
REQUESTS_PER_STREAM=${REQUESTS_PER_STREAM:-3}
PORT=${PORT:-18481}
FREQ=499  # perf samples per second of CPU time
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/pagoda-serving-profile.XXXXXX)}
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT_DIR"

command -v perf >/dev/null || { echo "serving_profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 2; }
[[ -x $PAGODA ]] || { echo "serving_profile.sh: $PAGODA not found; build first" >&2; exit 2; }
[[ -e $MODEL ]] || { echo "serving_profile.sh: model $MODEL not found" >&2; exit 2; }

serve_pid=
perf_pid=
cleanup() {
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
  if [[ -n $serve_pid ]]; then
    kill -INT "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

"$PAGODA" serve --model "$MODEL" --replicas 1 --tp 1 --threads-per-worker "$THREADS" \
  --grpc-port 0 --http-port "$PORT" --max-model-len 2048 --state-file "$OUT_DIR/state.json" \
  --log-dir "$OUT_DIR/logs" >"$OUT_DIR/serve.log" 2>&1 &
serve_pid=$!
wait_healthy "$PORT" "$serve_pid" || {
  echo "serving_profile.sh: the cluster did not become healthy; see $OUT_DIR/serve.log" >&2
  exit 1
}
read -r router_pid worker_pid worker_metrics < <("$PYTHON" -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["router"]["pid"], s["workers"][0]["pid"], s["workers"][0]["metrics_port"])' "$OUT_DIR/state.json")
echo "serving_profile.sh: router pid $router_pid, worker pid $worker_pid, $THREADS thread(s); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

bench() {  # bench STREAMS NUM_PROMPTS RESULT_JSON
  "$PAGODA" bench serve --target "http://127.0.0.1:$PORT" --model-dir "$MODEL" \
    --dataset-name random --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" \
    --num-prompts "$2" --max-concurrency "$1" --request-rate inf --ignore-eos --seed 1 \
    --result-json "$3"
}
bench 2 2 "$OUT_DIR/warmup.json" >"$OUT_DIR/warmup.log" 2>&1

for streams in $STREAMS; do
  run="$OUT_DIR/streams$streams"
  mkdir -p "$run"
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$run/router-before.txt"
  curl -sf "http://127.0.0.1:$worker_metrics/metrics" >"$run/worker-before.txt"
  perf record -a -e cpu-clock -F "$FREQ" -o "$run/perf.data" >"$run/perf.log" 2>&1 &
  perf_pid=$!
  sleep 1
  echo "serving_profile.sh: $streams stream(s), $((streams * REQUESTS_PER_STREAM)) requests" >&2
  bench "$streams" $((streams * REQUESTS_PER_STREAM)) "$run/result.json" >"$run/bench.log" 2>&1
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf_pid=
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$run/router-after.txt"
  curl -sf "http://127.0.0.1:$worker_metrics/metrics" >"$run/worker-after.txt"
  perf script -i "$run/perf.data" -F pid,ip,sym,dso --pid "$router_pid,$worker_pid" 2>/dev/null \
    | "$PYTHON" benchmarks/serving_profile_buckets.py --router-pid "$router_pid" \
      --worker-pid "$worker_pid" >"$run/buckets.json"
done

"$PYTHON" benchmarks/serving_profile_buckets.py --report "$OUT_DIR" --rate "$FREQ" $STREAMS
echo "results and logs: $OUT_DIR"
