#!/usr/bin/env bash
# Pagoda's main job on a fresh machine: install dependencies, build, convert the stories260K
# llama2.c checkpoint from ../shared/models into a Hugging Face directory (first use only), and
# serve it with a local cluster: `pagoda serve` = a router + 2 replicas x 2 tensor-parallel CPU
# workers, gRPC on port 50051 (Ctrl-C stops everything). Arguments are passed to `pagoda serve`,
# e.g.
#   scripts/quickstart.sh --replicas 1 --tp 4 --grpc-port 6000
# Then, from another terminal:
#   /usr/bin/python3 examples/python/client.py --target localhost:50051 --prompt "Once upon a time"
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh

SRC=${PAGODA_STORIES_DIR:-../shared/models/stories260K}
MODEL=models/stories260K
if [[ ! -f $MODEL/model.safetensors ]]; then
  build/bin/pagoda convert llama2c --checkpoint "$SRC/stories260K.bin" \
    --tokenizer "$SRC/tok512.bin" --out "$MODEL"
fi
exec build/bin/pagoda serve --model "$MODEL" --replicas 2 --tp 2 "$@"
