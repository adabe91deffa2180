#!/usr/bin/env bash
# Fuzzes every parser of outside input (tests/fuzz/) with libFuzzer + ASan + UBSan.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [FUZZER...]     (default: 60 s each, every fuzzer)
#   scripts/fuzz.sh build [TARGET...]                      (build the fuzzers and TARGETs only)
#
# The build form is how scripts/test.sh builds its sanitized unit tests in the same build tree,
# so every library is compiled once for both. FUZZ_BUILD_DIR (default build-fuzz) and
# FUZZ_BUILD_TYPE (default RelWithDebInfo: fast fuzzing) choose the tree; test.sh uses a Debug
# tree, which compiles in half the time and only has to fuzz for seconds.
# Builds the fuzzers with clang into build-fuzz/ (-DPAGODA_FUZZ=ON), then runs each for the given
# time starting from its seed corpus (tests/fuzz/corpus/NAME, read-only) plus the inputs earlier
# runs found (build-fuzz/corpus/NAME, kept between runs). A crash, leak, timeout (> 10 s on one
# input) or sanitizer report stops that fuzzer, leaves the input in build-fuzz/crashes/NAME/ and
# makes the script fail; copy the input into tests/fuzz/corpus/NAME/crash_<what> once it is fixed,
# so the replay tests keep it. Prints the executions run per fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [[ ${1:-} == build ]]; then build_only=true; fi
seconds=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE="${FUZZ_BUILD_TYPE:-RelWithDebInfo}" \
  -DPAGODA_FUZZ=ON -DPAGODA_CUDA=OFF -DPAGODA_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
if $build_only; then
  exec cmake --build "$BUILD_DIR" -j"$(nproc)" --target fuzzers "$@"
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fuzzers

fuzzers=("$@")
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  for source in tests/fuzz/*_fuzzer.cc; do
    name=$(basename "$source" .cc)
    fuzzers+=("$name")
  done
fi

failed=()
for name in "${fuzzers[@]}"; do
  binary="$BUILD_DIR/tests/fuzz/$name"
  [[ -x $binary ]] || { echo "fuzz.sh: no fuzzer named $name" >&2; exit 2; }
  found="$BUILD_DIR/corpus/$name"
  crashes="$BUILD_DIR/crashes/$name"
  mkdir -p "$found" "$crashes"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
           -print_final_stats=1 -artifact_prefix="$crashes/")
  if [[ -f tests/fuzz/$name.dict ]]; then options+=(-dict="tests/fuzz/$name.dict"); fi
  log="$BUILD_DIR/$name.log"
  # New inputs go into the first directory only, so the checked-in seeds stay as they are.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$binary" "${options[@]}" "$found" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$name")
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  printf '%-24s %-6s %10s runs in %ss, %s coverage points, corpus %s files\n' \
    "$name" "$status" "$runs" "$seconds" "$coverage" "$(find "$found" -type f | wc -l)"
  if [[ $status == FAILED ]]; then
    grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error|Test unit written' "$log" | head -20 >&2 || true
    echo "fuzz.sh: $name failed; the whole log is $log" >&2
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: ${#failed[@]} fuzzer(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: every fuzzer ran ${seconds}s without a finding"
