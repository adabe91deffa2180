#!/usr/bin/env bash
# Speculative decoding (n-gram prompt lookup) on a real model, CPU: output tokens/s with
# speculation off and on, at batch 1 (--max-num-seqs 1: the 8 prompts one after another) and
# batch 8, on four workloads of 8 prompts (benchmarks/speculative_prompts.py: code editing that
# quotes its prompt, chat and a random word list, greedy; open-ended writing sampled at
# temperature 1, seeded). Also checks that the outputs are the same tokens with and without
# speculation, and prints the acceptance line of each run. Each pair
# of runs is repeated REPS times (default 3), off and on interleaved, and the medians are
# reported: this machine's noise between runs is tens of percent.
#
#   benchmarks/speculative.sh [MODEL.gguf|DIR] [SPEC_JSON]
# Defaults: models/SmolLM2-135M-Instruct.Q4_1.gguf and
#   '{"method": "ngram", "num_speculative_tokens": 8, "prompt_lookup_max": 4, "prompt_lookup_min": 2,
#     "disable_by_batch_size": 4}'
# Environment: REPS (3), MAX_TOKENS (200), WORKLOADS, BATCHES ("1 8"), PAGODA.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SPEC=${2:-'{"method": "ngram", "num_speculative_tokens": 8, "prompt_lookup_max": 4, "prompt_lookup_min": 2, "disable_by_batch_size": 4}'}
MAX_TOKENS=${MAX_TOKENS:-200}
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-repetitive chat wordlist random}
BATCHES=${BATCHES:-1 8}
PY=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

throughput() {  # file batch temperature [spec] -> prints "tok/s|acceptance line"
  local args=(bench throughput --model "$MODEL" --dataset-name jsonl --dataset-path "$1"
    --temperature "$3" --max-num-seqs "$2" --max-model-len 1024)
  [[ -n ${4:-} ]] && args+=(--speculative-config "$4")
  "$PAGODA" "${args[@]}" >"$dir/out.txt" 2>"$dir/err.txt" || { cat "$dir/err.txt" >&2; exit 1; }
  local tps
  tps=$(awk -F: '/^Output token throughput/ {gsub(/ /, "", $2); print $2}' "$dir/out.txt")
  echo "$tps|$(grep '^speculative decoding' "$dir/out.txt" || true)"
}

printf '%-11s %5s %10s %10s %7s  %s\n' workload batch off_tok/s spec_tok/s ratio acceptance
for workload in $WORKLOADS; do
  file="$dir/$workload.jsonl"
  $PY benchmarks/speculative_prompts.py "$workload" "$MAX_TOKENS" >"$file"
  temperature=0
  [[ $workload == random ]] && temperature=1
  # Same tokens with and without speculation (greedy, or seeded sampling).
  "$PAGODA" generate --model "$MODEL" --prompts-file "$file" --temperature "$temperature" \
    --seed 1 --max-model-len 1024 --output "$dir/off.jsonl" 2>/dev/null
  "$PAGODA" generate --model "$MODEL" --prompts-file "$file" --temperature "$temperature" \
    --seed 1 --max-model-len 1024 --speculative-config "$SPEC" --output "$dir/on.jsonl" 2>/dev/null
  if ! $PY - "$dir/off.jsonl" "$dir/on.jsonl" <<'PYEOF'
import json, sys
off = [json.loads(l)["token_ids"] for l in open(sys.argv[1])]
on = [json.loads(l)["token_ids"] for l in open(sys.argv[2])]
bad = [i for i, (a, b) in enumerate(zip(off, on)) if a != b]
if bad or len(off) != len(on):
    print(f"outputs differ with speculation on prompts {bad}", file=sys.stderr)
    sys.exit(1)
PYEOF
  then
    echo "$workload: OUTPUTS DIFFER" >&2
  fi
  for batch in $BATCHES; do
    offs=()
    ons=()
    for ((rep = 0; rep < REPS; ++rep)); do
      off=$(throughput "$file" "$batch" "$temperature")
      on=$(throughput "$file" "$batch" "$temperature" "$SPEC")
      offs+=("${off%%|*}")
      ons+=("${on%%|*}")
    done
    off_tps=$(printf '%s\n' "${offs[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    on_tps=$(printf '%s\n' "${ons[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    ratio=$(awk -v a="$on_tps" -v b="$off_tps" 'BEGIN {printf "%.2f", a / b}')
    acceptance=${on#*|}
    printf '%-11s %5s %10s %10s %7s  %s\n' "$workload" "$batch" "$off_tps" "$on_tps" "$ratio" \
      "${acceptance#speculative decoding: }"
  done
done
