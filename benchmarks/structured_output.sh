#!/usr/bin/env bash
# Structured outputs under concurrency (issue 18's table): one `pagoda serve` (1 replica, TP 1)
# driven by `pagoda bench serve --max-concurrency 16` with 0%, 50% and 100% of the requests
# constrained by a JSON Schema (--structured-output-ratio; the default article schema of
# tools/bench/structured_workload.h, or SCHEMA=file.json). Each round runs every ratio once, in
# order, on the same server; ROUNDS rounds (default 3) and the medians are printed, with each
# ratio's output tokens/s and mean TPOT over the 0% run's. A first request with the schema warms
# the grammar caches (router and worker), so the figures are the cached path; the cold compile
# is benchmarks/grammar_benchmark's.
#
#   benchmarks/structured_output.sh                      # SmolLM2 Q4_1, 32 prompts per run
#   MODEL=path NUM_PROMPTS=48 RATIOS="0 1" benchmarks/structured_output.sh -- --threads-per-worker 2
#   SCHEMA=benchmarks/long_output_schema.json IGNORE_EOS=1 benchmarks/structured_output.sh
#
# The second form compares equal output lengths: the unconstrained requests ignore EOS (the
# constrained ones never do) and the schema cannot end within OUTPUT_LEN tokens, so every request
# of every ratio generates exactly OUTPUT_LEN tokens and the difference is the constraint's cost.
# With the default schema the constrained outputs end earlier, so more of the run is the next
# requests' prefills (which the tokens/s of the shorter outputs pay for).
#
# Extra `pagoda serve` flags go after `--`. Results and logs stay in $OUT_DIR (default: a new
# temporary folder, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/serve_lib.sh
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
RATIOS=${RATIOS:-"0 0.5 1"}
ROUNDS=${ROUNDS:-3}
NUM_PROMPTS=${NUM_PROMPTS:-32}
CONCURRENCY=${CONCURRENCY:-16}
PORT=${PORT:-18471}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/pagoda-structured.XXXXXX)}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ ${1:-} == -- ]] && shift
mkdir -p "$OUT_DIR"
for f in "$PAGODA" "$MODEL"; do
  [[ -e $f ]] || { echo "structured_output.sh: $f not found" >&2; exit 2; }
done
schema_flags=()
[[ -n ${SCHEMA:-} ]] && schema_flags=(--json-schema "$SCHEMA")

"$PAGODA" serve --model "$MODEL" --replicas 1 --tp 1 --grpc-port 0 --http-port "$PORT" \
  --state-file "$OUT_DIR/state.json" --log-dir "$OUT_DIR/logs" \
  --max-model-len "${MAX_MODEL_LEN:-2048}" "$@" >"$OUT_DIR/serve.log" 2>&1 &
serve_pid=$!
trap 'kill -INT "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true' EXIT
wait_healthy "$PORT" "$serve_pid" || {
  echo "structured_output.sh: the server did not become healthy; log in $OUT_DIR/serve.log" >&2
  exit 1
}

bench() {  # ratio num_prompts result.json (INPUT_LEN, OUTPUT_LEN: 128, 256)
  local flags=(bench serve --target "http://127.0.0.1:$PORT" --model-dir "$MODEL"
    --dataset-name random --random-input-len "${INPUT_LEN:-128}"
    --random-output-len "${OUTPUT_LEN:-256}" --seed 7 --num-prompts "$2"
    --max-concurrency "$CONCURRENCY" --result-json "$3")
  [[ $1 != 0 ]] && flags+=(--structured-output-ratio "$1" "${schema_flags[@]}")
  [[ -n ${IGNORE_EOS:-} ]] && flags+=(--ignore-eos)
  "$PAGODA" "${flags[@]}" >"$3.log" 2>&1 || {
    echo "structured_output.sh: bench failed (ratio $1); see $3.log" >&2
    exit 1
  }
}

bench 1 1 "$OUT_DIR/warmup.json"
for round in $(seq 1 "$ROUNDS"); do
  for ratio in $RATIOS; do
    echo "structured_output.sh: round $round, ratio $ratio" >&2
    bench "$ratio" "$NUM_PROMPTS" "$OUT_DIR/r${round}_${ratio}.json"
  done
done

"$PYTHON" - "$OUT_DIR" "$ROUNDS" "$RATIOS" <<'PY'
import json, statistics, sys

out_dir, rounds, ratios = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
med = lambda xs: statistics.median(xs) if xs else float('nan')
rows = {}
for ratio in ratios:
    runs = [json.load(open(f"{out_dir}/r{k}_{ratio}.json")) for k in range(1, rounds + 1)]
    rows[ratio] = {
        'failed': sum(r['failed'] for r in runs),
        'tok_s': med([r['output_throughput'] for r in runs]),
        'tpot': med([r['mean_tpot_ms'] for r in runs]),
        'itl': med([r['median_itl_ms'] for r in runs]),
        'c_tpot': med([r['mean_constrained_tpot_ms'] for r in runs if r.get('constrained_completed')]),
        'u_tpot': med([r.get('mean_unconstrained_tpot_ms', r['mean_tpot_ms']) for r in runs
                       if r['completed'] > r.get('constrained_completed', 0)]),
        'valid': sum(r.get('constrained_valid_json', 0) for r in runs),
        'constrained': sum(r.get('constrained_completed', 0) for r in runs),
        'cut': sum(r.get('constrained_hit_max_tokens', 0) for r in runs),
        'out_tokens': med([r['total_output_tokens'] for r in runs]),
    }
base = rows[ratios[0]]
print(f"{'ratio':>5} {'failed':>6} {'out tok/s':>9} {'x 0%':>5} {'mean TPOT':>9} {'x 0%':>5} "
      f"{'med ITL':>8} {'TPOT c/u':>13} {'valid/constrained (cut)':>24} {'out tokens':>10}")
for ratio, r in rows.items():
    c = (f"{r['c_tpot']:.1f}/" + (f"{r['u_tpot']:.1f}" if r['u_tpot'] == r['u_tpot'] else '-')
         if r['constrained'] else '-')
    print(f"{ratio:>5} {r['failed']:>6} {r['tok_s']:>9.1f} {r['tok_s'] / base['tok_s']:>5.2f} "
          f"{r['tpot']:>7.1f}ms {r['tpot'] / base['tpot']:>5.2f} {r['itl']:>6.1f}ms {c:>13} "
          f"{str(r['valid']) + '/' + str(r['constrained']) + ' (' + str(r['cut']) + ')':>24} "
          f"{r['out_tokens']:>10.0f}")
print(f"({rounds} rounds, medians; results in {out_dir})")
PY
