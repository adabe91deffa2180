#!/usr/bin/env bash
# Pagoda's main job on a fresh machine: install dependencies, build, convert the stories260K
# llama2.c checkpoint from ../shared/models into a Hugging Face directory (first use only), and
# generate from it. Arguments replace the default prompt flags, e.g.
#   scripts/quickstart.sh --prompt "The little dog" --temperature 0.8 --seed 1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh

SRC=${PAGODA_STORIES_DIR:-../shared/models/stories260K}
MODEL=models/stories260K
if [[ ! -f $MODEL/model.safetensors ]]; then
  build/tools/pagoda convert llama2c --checkpoint "$SRC/stories260K.bin" \
    --tokenizer "$SRC/tok512.bin" --out "$MODEL"
fi
if (($#)); then
  exec build/tools/pagoda generate --model "$MODEL" "$@"
fi
exec build/tools/pagoda generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 64 \
  --temperature 0
