#!/usr/bin/env bash
# Configures and builds Pagoda (Release) into build/. Extra arguments go to CMake.
# BUILD_DIR names another build folder; BUILD_TARGETS (space-separated) builds only those targets
# (e.g. "pagoda pagoda-router pagoda-worker", what scripts/quickstart.sh needs).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
targets=()
for target in ${BUILD_TARGETS:-}; do
  targets+=(--target "$target")
done
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
