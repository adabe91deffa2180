#!/usr/bin/env bash
# Routing policies side by side (issue 21's table): for each request rate and each policy, a fresh
# `pagoda serve --replicas 2 --tp 1 --routing-policy P` on the same model, driven by
# `pagoda bench serve` with the prefix dataset (K shared system prompts, each request one of them
# plus its own suffix; same seed every run), then the prefix-cache hits per replica read from the
# router's /metrics. Prints one table: hits per replica, TTFT mean/median/P90, mean TPOT, output
# tokens/s, and each policy's TTFT over round_robin's at the same rate. With REPEATS=N every
# (rate, policy) runs N times, the policies interleaved within each repetition, and each figure
# is the median over the repetitions with its range: the run-to-run noise beside the differences
# (ratios are taken within a repetition, then their median).
#
#   benchmarks/routing.sh                                   # SmolLM2 Q4_1, rates 0.4 and 1
#   REPEATS=3 benchmarks/routing.sh                         # medians and ranges of 3 runs
#   MODEL=path/to/model RATES="0.4:36 1:48" benchmarks/routing.sh
#   POLICIES="round_robin prefix_aware" benchmarks/routing.sh -- --threads-per-worker 1
#
# RATES is a list of RATE:NUM_PROMPTS; extra `pagoda serve` flags go after `--` (MAX_MODEL_LEN,
# 2048 by default, keeps SmolLM2's 8192-token context from needing more KV cache than the
# default). JSON results and logs stay in $OUT_DIR (default: a new temporary folder, printed at
# the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/serve_lib.sh
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
RATES=${RATES:-"0.4:36 1:48"}
POLICIES=${POLICIES:-"round_robin least_loaded prefix_aware"}
REPEATS=${REPEATS:-1}
PORT=${PORT:-18461}
SEED=${SEED:-5}
PREFIX_FLAGS=(--dataset-name prefix --prefix-num-prompts "${PREFIX_NUM_PROMPTS:-12}"
              --prefix-len "${PREFIX_LEN:-384}" --suffix-len "${SUFFIX_LEN:-32}"
              --prefix-output-len "${PREFIX_OUTPUT_LEN:-16}" --seed "$SEED" --ignore-eos)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/pagoda-routing.XXXXXX)}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ ${1:-} == -- ]] && shift
mkdir -p "$OUT_DIR"

if [[ ! -x $PAGODA ]]; then
  echo "routing.sh: $PAGODA not found; build first (scripts/build.sh)" >&2
  exit 2
fi
if [[ ! -e $MODEL ]]; then
  echo "routing.sh: model $MODEL not found (scripts/install-deps.sh fetches SmolLM2)" >&2
  exit 2
fi

serve_pid=
stop_cluster() {
  if [[ -n $serve_pid ]]; then
    kill -INT "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
  fi
}
trap stop_cluster EXIT

for rep in $(seq 1 "$REPEATS"); do
for spec in $RATES; do
  rate=${spec%%:*}
  num_prompts=${spec#*:}
  for policy in $POLICIES; do
    run="$OUT_DIR/rate${rate}_${policy}_rep${rep}"
    mkdir -p "$run"
    "$PAGODA" serve --model "$MODEL" --replicas 2 --tp 1 --routing-policy "$policy" \
      --grpc-port 0 --http-port "$PORT" --state-file "$run/state.json" --log-dir "$run/logs" \
      --max-model-len "${MAX_MODEL_LEN:-2048}" "$@" >"$run/serve.log" 2>&1 &
    serve_pid=$!
    if ! wait_healthy "$PORT" "$serve_pid"; then
      echo "routing.sh: the cluster ($policy) did not become healthy; log in $run/serve.log" >&2
      exit 1
    fi
    echo "routing.sh: rate $rate, $num_prompts prompts, $policy (repetition $rep of $REPEATS)" >&2
    "$PAGODA" bench serve --target "http://127.0.0.1:$PORT" --model-dir "$MODEL" \
      "${PREFIX_FLAGS[@]}" --num-prompts "$num_prompts" --request-rate "$rate" \
      --result-json "$run/result.json" >"$run/bench.log" 2>&1 || {
      echo "routing.sh: bench failed ($policy, rate $rate); see $run/bench.log" >&2
      exit 1
    }
    curl -sf "http://127.0.0.1:$PORT/metrics" >"$run/metrics.txt"
    stop_cluster
  done
done
done

"$PYTHON" - "$OUT_DIR" "$RATES" "$POLICIES" "$REPEATS" <<'EOF'
import json, re, statistics, sys

out_dir, rates, policies = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
repeats = int(sys.argv[4])
hit_re = re.compile(r'^pagoda:prefix_cache_hits_total\{([^}]*)\}\s+(\S+)$')

def hits(path):
    per_replica = {}
    for line in open(path):
        m = hit_re.match(line.strip())
        if not m:
            continue
        labels = dict(kv.split('=', 1) for kv in m.group(1).split(','))
        replica = labels.get('replica', '"?"').strip('"')
        per_replica[replica] = per_replica.get(replica, 0) + float(m.group(2))
    return ' / '.join(str(int(per_replica[r])) for r in sorted(per_replica)) or '-'

def spread(values, scale=1.0, digits=2):
    """The median, and with several runs the range: '1.23' or '1.23 (1.10-1.40)'."""
    med = statistics.median(values) * scale
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"

print(f"{'rate':>5} {'prompts':>7} {'policy':<13} {'hits r0 / r1 (last run)':>24} {'failed':>6} "
      f"{'mean TTFT s':>17} {'med TTFT s':>17} {'P90 TTFT s':>17} {'mean TPOT ms':>14} "
      f"{'out tok/s':>9} {'mean/rr':>7} {'med/rr':>6} {'P90/rr':>6}")
for spec in rates:
    rate, num_prompts = spec.split(':')
    runs = {policy: [json.load(open(f"{out_dir}/rate{rate}_{policy}_rep{rep}/result.json"))
                     for rep in range(1, repeats + 1)] for policy in policies}
    base = runs.get('round_robin')
    for policy, results in runs.items():
        last = f"{out_dir}/rate{rate}_{policy}_rep{repeats}/metrics.txt"

        def ratio(key):
            if not base:
                return '-'
            values = [r[key] / b[key] for r, b in zip(results, base) if b[key] > 0]
            return f"{statistics.median(values):.2f}" if values else '-'

        print(f"{rate:>5} {num_prompts:>7} {policy:<13} {hits(last):>24} "
              f"{sum(r['failed'] for r in results):>6} "
              f"{spread([r['mean_ttft_ms'] for r in results], 1e-3):>17} "
              f"{spread([r['median_ttft_ms'] for r in results], 1e-3):>17} "
              f"{spread([r['p90_ttft_ms'] for r in results], 1e-3):>17} "
              f"{spread([r['mean_tpot_ms'] for r in results], 1, 0):>14} "
              f"{statistics.median([r['output_throughput'] for r in results]):>9.1f} "
              f"{ratio('mean_ttft_ms'):>7} {ratio('median_ttft_ms'):>6} {ratio('p90_ttft_ms'):>6}")
print(f"results and logs: {out_dir}")
EOF
