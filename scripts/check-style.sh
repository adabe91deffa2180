#!/usr/bin/env bash
# The house rules that need no build: includes follow the layering (scripts/check-layering.py)
# and every C++/CUDA source is clang-format clean (Google style, 100 columns: .clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-layering.py
git ls-files -z -- '*.h' '*.cc' '*.cu' '*.cuh' | xargs -0 clang-format --dry-run --Werror
echo "check-style: clang-format clean"
