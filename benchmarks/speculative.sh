#!/usr/bin/env bash
# Speculative decoding on a real model, CPU: output tokens/s (the whole run, prefills included)
# and decode tokens/s (`pagoda bench throughput`'s decode rate: tokens after each request's first
# per second of decoding) with speculation off and with each given --speculative-config, at
# batch 1 (--max-num-seqs 1: the 8 prompts one after another) and batch 8, on four workloads of
# 8 prompts (benchmarks/speculative_prompts.py: code editing that quotes its prompt, chat and a
# random word list, greedy; open-ended writing sampled at temperature 1, seeded). Also checks
# that the outputs are the same tokens with and without speculation, and prints the acceptance
# line of each run. Each set of runs (off, then every config) is repeated REPS times (default 3),
# interleaved, and the medians are reported: this machine's noise between runs is tens of
# percent.
#
#   benchmarks/speculative.sh [MODEL.gguf|DIR] [SPEC_JSON...]
# Defaults: models/SmolLM2-135M-Instruct.Q4_1.gguf and two configs: the n-gram proposer alone
#   '{"method": "ngram", "num_speculative_tokens": 12, "prompt_lookup_max": 4, "prompt_lookup_min": 2,
#     "disable_by_batch_size": 4}'
# and the same with a lookup history ("prompt_lookup_history_tokens": 1000000): at batch 1 the
# requests finish one after another, and each looks up the earlier ones' tokens too.
# e.g. the n-gram proposer against a Q4_1 self-draft for the F32 model
# (benchmarks/make_smollm2_variants.py writes it):
#   benchmarks/speculative.sh models/SmolLM2-135M-Instruct.F32.gguf \
#     '{"method": "ngram", "num_speculative_tokens": 8, "disable_by_batch_size": 4}' \
#     '{"model": "models/SmolLM2-135M-Instruct.Q4_1.gguf", "num_speculative_tokens": 3}'
# Environment: REPS (3), MAX_TOKENS (200), WORKLOADS, BATCHES ("1 8"), PAGODA.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGODA=${PAGODA:-build/bin/pagoda}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
SPECS=("${@:2}")
if ((${#SPECS[@]} == 0)); then
  SPECS=('{"method": "ngram", "num_speculative_tokens": 12, "prompt_lookup_max": 4, "prompt_lookup_min": 2, "disable_by_batch_size": 4}'
    '{"method": "ngram", "num_speculative_tokens": 12, "prompt_lookup_max": 4, "prompt_lookup_min": 2, "disable_by_batch_size": 4, "prompt_lookup_history_tokens": 1000000}')
fi
MAX_TOKENS=${MAX_TOKENS:-200}
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-repetitive chat wordlist random}
BATCHES=${BATCHES:-1 8}
PY=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

throughput() {  # file batch temperature [spec] -> prints "tok/s|decode tok/s|acceptance line"
  local args=(bench throughput --model "$MODEL" --dataset-name jsonl --dataset-path "$1"
    --temperature "$3" --max-num-seqs "$2" --max-model-len 1024)
  [[ -n ${4:-} ]] && args+=(--speculative-config "$4")
  "$PAGODA" "${args[@]}" >"$dir/out.txt" 2>"$dir/err.txt" || { cat "$dir/err.txt" >&2; exit 1; }
  local tps decode
  tps=$(awk -F: '/^Output token throughput/ {gsub(/ /, "", $2); print $2}' "$dir/out.txt")
  decode=$(awk -F: '/^Decode token throughput/ {gsub(/ /, "", $2); print $2}' "$dir/out.txt")
  echo "$tps|$decode|$(grep '^speculative decoding' "$dir/out.txt" || true)"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

for ((c = 0; c < ${#SPECS[@]}; ++c)); do echo "config $c: ${SPECS[c]}"; done
printf '%-11s %5s %6s %10s %10s %7s %10s %10s %7s  %s\n' workload batch config off_tok/s \
  spec_tok/s ratio off_decode spec_decode ratio acceptance
for workload in $WORKLOADS; do
  file="$dir/$workload.jsonl"
  $PY benchmarks/speculative_prompts.py "$workload" "$MAX_TOKENS" >"$file"
  temperature=0
  [[ $workload == random ]] && temperature=1
  # Same tokens with and without speculation (greedy, or seeded sampling).
  "$PAGODA" generate --model "$MODEL" --prompts-file "$file" --temperature "$temperature" \
    --seed 1 --max-model-len 1024 --output "$dir/off.jsonl" 2>/dev/null
  for spec in "${SPECS[@]}"; do
    "$PAGODA" generate --model "$MODEL" --prompts-file "$file" --temperature "$temperature" \
      --seed 1 --max-model-len 1024 --speculative-config "$spec" --output "$dir/on.jsonl" 2>/dev/null
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
      echo "$workload: OUTPUTS DIFFER with $spec" >&2
    fi
  done
  for batch in $BATCHES; do
    offs=()
    off_decodes=()
    declare -A ons=()
    declare -A on_decodes=()
    declare -A lines=()
    for ((rep = 0; rep < REPS; ++rep)); do
      off=$(throughput "$file" "$batch" "$temperature")
      offs+=("${off%%|*}")
      off=${off#*|}
      off_decodes+=("${off%%|*}")
      for ((c = 0; c < ${#SPECS[@]}; ++c)); do
        on=$(throughput "$file" "$batch" "$temperature" "${SPECS[c]}")
        ons[$c]+="${on%%|*} "
        on=${on#*|}
        on_decodes[$c]+="${on%%|*} "
        lines[$c]=${on#*|}
      done
    done
    off_tps=$(printf '%s\n' "${offs[@]}" | median)
    off_decode=$(printf '%s\n' "${off_decodes[@]}" | median)
    for ((c = 0; c < ${#SPECS[@]}; ++c)); do
      on_tps=$(printf '%s\n' ${ons[$c]} | median)
      on_decode=$(printf '%s\n' ${on_decodes[$c]} | median)
      ratio=$(awk -v a="$on_tps" -v b="$off_tps" 'BEGIN {printf "%.2f", a / b}')
      decode_ratio=$(awk -v a="$on_decode" -v b="$off_decode" 'BEGIN {printf "%.2f", a / b}')
      printf '%-11s %5s %6s %10s %10s %7s %10s %10s %7s  %s\n' "$workload" "$batch" "$c" \
        "$off_tps" "$on_tps" "$ratio" "$off_decode" "$on_decode" "$decode_ratio" \
        "${lines[$c]#speculative decoding: }"
    done
    unset ons on_decodes lines
  done
done
