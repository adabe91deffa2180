#!/usr/bin/env bash
# Routing policies side by side (issue 21's table): for each request rate and each policy, a fresh
# `pagoda serve --replicas 2 --tp 1 --routing-policy P` on the same model, driven by
# `pagoda bench serve` with the prefix dataset (K shared system prompts, each request one of them
# plus its own suffix; same seed every run), then the prefix-cache hits per replica read from the
# router's /metrics. Prints one table: hits per replica, TTFT mean/median/P90, mean TPOT, output
# tokens/s, and each policy's TTFT over round_robin's at the same rate.
#
#   benchmarks/routing.sh                                   # SmolLM2 Q4_1, rates 0.4 and 1
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

for spec in $RATES; do
  rate=${spec%%:*}
  num_prompts=${spec#*:}
  for policy in $POLICIES; do
    run="$OUT_DIR/rate${rate}_${policy}"
    mkdir -p "$run"
    "$PAGODA" serve --model "$MODEL" --replicas 2 --tp 1 --routing-policy "$policy" \
      --grpc-port 0 --http-port "$PORT" --state-file "$run/state.json" --log-dir "$run/logs" \
      --max-model-len "${MAX_MODEL_LEN:-2048}" "$@" >"$run/serve.log" 2>&1 &
    serve_pid=$!
    if ! wait_healthy "$PORT" "$serve_pid"; then
      echo "routing.sh: the cluster ($policy) did not become healthy; log in $run/serve.log" >&2
      exit 1
    fi
    echo "routing.sh: rate $rate, $num_prompts prompts, $policy" >&2
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

"$PYTHON" - "$OUT_DIR" "$RATES" "$POLICIES" <<'EOF'
import json, re, sys

out_dir, rates, policies = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
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

print(f"{'rate':>5} {'prompts':>7} {'policy':<13} {'hits r0 / r1':>13} {'failed':>6} "
      f"{'mean TTFT':>10} {'med TTFT':>9} {'P90 TTFT':>9} {'mean TPOT':>10} {'out tok/s':>9} "
      f"{'mean/rr':>7} {'med/rr':>6} {'P90/rr':>6}")
for spec in rates:
    rate, num_prompts = spec.split(':')
    rows = {}
    for policy in policies:
        run = f"{out_dir}/rate{rate}_{policy}"
        rows[policy] = (json.load(open(f"{run}/result.json")), hits(f"{run}/metrics.txt"))
    base = rows.get('round_robin', (None,))[0]
    for policy, (r, h) in rows.items():
        ratio = lambda key: (f"{r[key] / base[key]:.2f}" if base and base[key] > 0 else '-')
        print(f"{rate:>5} {num_prompts:>7} {policy:<13} {h:>13} {r['failed']:>6} "
              f"{r['mean_ttft_ms'] / 1e3:>9.2f}s {r['median_ttft_ms'] / 1e3:>8.2f}s "
              f"{r['p90_ttft_ms'] / 1e3:>8.2f}s {r['mean_tpot_ms']:>8.0f}ms "
              f"{r['output_throughput']:>9.1f} {ratio('mean_ttft_ms'):>7} "
              f"{ratio('median_ttft_ms'):>6} {ratio('p90_ttft_ms'):>6}")
print(f"results and logs: {out_dir}")
EOF
