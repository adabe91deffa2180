#!/usr/bin/env bash
# The whole GPU verification in one command (docs/performance.md, "GPU"):
#
#   scripts/gpu-check.sh --bundle DIR   here (nvcc and the -dev packages): builds the GPU test
#       binaries (ctest label `gpu`) with the CUDA runtime, libstdc++, libgcc, abseil, libgomp,
#       OpenBLAS and the gfortran runtime linked statically (most tests then load only glibc's
#       libraries, and the driver when they run; Gloo and a few others have no archive here), and
#       packs into DIR (git-ignored; gpu-bundle/ by convention):
#         DIR/payload.tar.xz  bin/ (the stripped test binaries), bench/ (the benchmarks), lib/
#                             (the shared libraries they still load, other than glibc and the
#                             driver; NCCL and cuBLAS are dlopened from PyTorch's wheels on the
#                             device, worker/internal/nccl.h and kernels/cuda/internal/cublas.h)
#                             and shared/ (the test model,
#                             stories260K); xz keeps it under the device tool's 64 MiB carry limit
#         DIR/ldd.txt         what each binary loads, as ldd reports it here
#   scripts/gpu-check.sh --run DIR      on the device machine: unpacks the payload, runs every
#       binary of its bin/, then of its bench/, with its lib/ on the loader path, and writes under
#       OUT ($OUT, the device tool's folder, or ./gpu-check-out) at most six files (the device
#       tool returns 8): summary.txt (one line per test binary), tests.log (every test binary's
#       output, one after another), junit.tar.gz (their JUnit XML), bench.txt (the benchmarks'
#       output), nvidia-smi.txt and, when it ran, fallback-build.log. Exits 1 when a test failed
#       or a binary did not start. If no binary starts (a loader error), it tries the fallback
#       the issue allows: building the same targets from the carried source tree (which needs
#       the -dev packages there).
#
# With the device tool, from the checkout that built the bundle:
#   run(command="scripts/gpu-check.sh --run gpu-bundle", carry=["gpu-bundle"], timeout_s=600)
#
# Environment: BUILD_DIR (default build-gpu-bundle), JOBS (default 2), PAGODA_SHARED_DIR (where
# models/stories260K is; default ../shared beside the repository), TEST_TIMEOUT_S (default 300),
# BENCH_TIMEOUT_S (default 180).
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_TESTS=(tensor_cuda_test rms_norm_cuda_test activation_cuda_test elementwise_cuda_test
           embedding_cuda_test gemm_cuda_test rotary_cuda_test kv_cache_write_cuda_test
           block_copy_cuda_test paged_attention_cuda_test sampling_cuda_test
           nccl_loader_test nccl_communicator_test model_runner_cuda_test
           worker_runtime_cuda_test)
GPU_TESTS+=(device_sampler_cuda_test)
# Benchmarks (benchmarks/): run after the tests, their output in bench.txt.
GPU_BENCHMARKS=(cuda_gemm_benchmark)

usage() {
  echo "usage: $0 --bundle DIR | --run DIR" >&2
  exit 2
}

# Libraries every Linux machine with an NVIDIA driver has: never bundled. NCCL (218 MB, over the
# device tool's 64 MiB) is dlopened, never linked; were a binary to link it, it would not be
# bundled either: --run finds the one PyTorch's wheel ships there.
is_system_lib() {
  case "$1" in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | \
      librt.so.* | libcuda.so.* | libnvidia-*.so.* | libnccl.so.*) return 0 ;;
    *) return 1 ;;
  esac
}

# The folders of the NCCL and cuBLAS libraries that PyTorch's wheels ship (nvidia-nccl-cu*,
# nvidia-cublas; both are dlopened: worker/internal/nccl.h, kernels/cuda/internal/cublas.h),
# joined with ':', then the CUDA toolkit's lib64 if it has cuBLAS.
torch_lib_dirs() {
  python3 - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = []
for pattern in ("libnccl.so*", "libcublas.so*"):
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        found = glob.glob(os.path.join(base, "nvidia", "*", "lib", pattern))
        if found:
            dirs.append(os.path.dirname(found[0]))
            break
for toolkit in ("/usr/local/cuda/lib64",):
    if glob.glob(os.path.join(toolkit, "libcublas.so*")):
        dirs.append(toolkit)
print(":".join(dict.fromkeys(dirs)))
PY
}

build_targets() {  # build_targets BUILD_DIR [extra cmake args...]
  local build_dir=$1
  shift
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=ON \
    -DPAGODA_BUILD_BENCHMARKS=ON "$@" >/dev/null
  local targets=()
  for t in "${GPU_TESTS[@]}" "${GPU_BENCHMARKS[@]}"; do targets+=(--target "$t"); done
  cmake --build "$build_dir" -j"${JOBS:-2}" "${targets[@]}"
}

bundle() {
  local dir=$1
  local build_dir=${BUILD_DIR:-build-gpu-bundle}
  local shared=${PAGODA_SHARED_DIR:-$(cd .. && pwd)/shared}
  # Everything but glibc and the driver from static archives where this machine has them:
  # abseil (PAGODA_STATIC_ABSEIL), libgomp (OpenMP's library; -fopenmp's own -lgomp then goes
  # unused under --as-needed), OpenBLAS's OpenMP build and the gfortran runtime it needs, at the
  # end of every link line. Google Benchmark has no archive here: bench/ keeps its .so in lib/.
  local gomp openblas
  gomp=$(g++ -print-file-name=libgomp.a)
  openblas=/usr/lib/$(gcc -print-multiarch)/openblas-openmp/libopenblas.a
  local static_deps=()
  if [ -f "$gomp" ] && [ -f "$openblas" ]; then
    static_deps=("-DOpenMP_gomp_LIBRARY=$gomp" "-DPAGODA_OPENBLAS_OPENMP_LIB=$openblas"
      "-DCMAKE_CXX_STANDARD_LIBRARIES=-l:libgfortran.a -l:libquadmath.a -l:libgomp.a")
  fi
  build_targets "$build_dir" -DPAGODA_CUDA_STATIC_RUNTIME=ON -DPAGODA_STATIC_ABSEIL=ON \
    "${static_deps[@]}" \
    "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc -Wl,--as-needed" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache
  rm -rf "$dir"
  local payload="$dir/payload"
  mkdir -p "$payload/bin" "$payload/bench" "$payload/lib" "$payload/shared/models"
  : >"$dir/ldd.txt"
  local t binary
  for t in "${GPU_TESTS[@]}" "${GPU_BENCHMARKS[@]}"; do
    if [ -e "$build_dir/tests/$t" ]; then
      binary="$payload/bin/$t"
      cp "$build_dir/tests/$t" "$binary"
    else
      binary="$payload/bench/$t"
      cp "$build_dir/benchmarks/$t" "$binary"
    fi
    strip --strip-unneeded "$binary"
    { echo "== $t"; ldd "$binary"; } >>"$dir/ldd.txt"
    # Copy each non-system library it loads (resolved here) into lib/.
    ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
      is_system_lib "$name" || cp -L -n "$path" "$payload/lib/$name"
    done
  done
  cp -r "$shared/models/stories260K" "$payload/shared/models/"
  local size
  size=$(du -sh "$payload" | cut -f1)
  # xz: the binaries and OpenBLAS (36 MB) would pass the device tool's 64 MiB carry limit as
  # they are.
  tar -C "$payload" -cJf "$dir/payload.tar.xz" .
  rm -rf "$payload"
  echo "gpu-check: bundled ${#GPU_TESTS[@]} tests and ${#GPU_BENCHMARKS[@]} benchmarks into $dir ($size, $(du -sh "$dir" | cut -f1)" \
    "compressed); libraries still loaded dynamically (besides glibc and the driver):"
  grep -o '^\s*lib[^ ]*' "$dir/ldd.txt" | sort -u | while read -r name; do
    is_system_lib "$name" || echo "  $name"
  done
}

# Unpacks DIR/payload.tar.xz (bin/, lib/, shared/) into a new folder and prints its path.
unpack() {
  local dir=$1 work
  work=$(mktemp -d)
  tar -C "$work" -xJf "$dir/payload.tar.xz" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$dir/payload.tar.xz" "$work"
  echo "$work"
}

run_one() {  # run_one BINARY LOGDIR -> prints a summary line
  local bin=$1 logs=$2 name rc log
  name=$(basename "$bin")
  log="$logs/$name.log"
  set +e
  timeout "${TEST_TIMEOUT_S:-300}" "$bin" --gtest_output="xml:$logs/$name.xml" >"$log" 2>&1
  rc=$?
  set -e
  local passed failed skipped
  passed=$(grep -c '^\[       OK \]' "$log" || true)
  # One line per test ends in its time; the summary's lists of names do not.
  failed=$(grep -c '^\[  FAILED  \] .* ms)$' "$log" || true)
  skipped=$(grep -c '^\[  SKIPPED \] .* ms)$' "$log" || true)
  if grep -q 'error while loading shared libraries\|cannot execute' "$log" ||
    [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
    echo "$name: DID NOT START (rc=$rc): $(head -c 300 "$log")"
  else
    echo "$name: rc=$rc passed=$passed failed=$failed skipped=$skipped"
  fi
}

run() {
  local dir out
  dir=$(unpack "$(cd "$1" && pwd)")
  out=${OUT:-$PWD/gpu-check-out}
  mkdir -p "$out"
  local logs
  logs=$(mktemp -d)
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >>"$out/nvidia-smi.txt"
  local lib_dirs
  lib_dirs=$(torch_lib_dirs)
  export LD_LIBRARY_PATH="$dir/lib${lib_dirs:+:$lib_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PAGODA_SHARED_DIR="$dir/shared"
  local summary="$out/summary.txt"
  {
    echo "gpu-check $(date -u +%FT%TZ) on $(hostname)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    echo "NCCL and cuBLAS from: ${lib_dirs:-not found (the NCCL and device GEMM tests fail with FailedPrecondition)}"
  } >"$summary"
  local started=0 bad=0 line
  for bin in "$dir"/bin/*; do
    line=$(run_one "$bin" "$logs")
    echo "$line" | tee -a "$summary"
    case "$line" in
      *"DID NOT START"*) bad=1 ;;
      *" rc=0 "*) started=1 ;;
      *) started=1 bad=1 ;;
    esac
  done
  if [ "$started" = 0 ]; then
    echo "no bundled binary started: fallback build from the source tree" | tee -a "$summary"
    if build_targets build-device >"$out/fallback-build.log" 2>&1; then
      for t in "${GPU_TESTS[@]}"; do
        run_one "build-device/tests/$t" "$logs" | sed 's/^/fallback /' | tee -a "$summary"
      done
    else
      echo "fallback build failed: see fallback-build.log" | tee -a "$summary"
    fi
  fi
  for log in "$logs"/*.log; do
    echo "===== $(basename "$log" .log)"
    cat "$log"
  done >"$out/tests.log"
  local bench
  for bench in "$dir"/bench/*; do
    [ -e "$bench" ] || continue
    echo "===== $(basename "$bench")"
    timeout "${BENCH_TIMEOUT_S:-180}" "$bench" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true 2>&1 || echo "(exit status $?)"
  done >"$out/bench.txt"
  (cd "$logs" && tar czf "$out/junit.tar.gz" ./*.xml 2>/dev/null) || true
  [ "$bad" = 0 ] && echo "gpu-check: all passed" | tee -a "$summary" && return 0
  echo "gpu-check: FAILURES (see logs/)" | tee -a "$summary"
  return 1
}

[ $# -eq 2 ] || usage
case "$1" in
  --bundle) bundle "$2" ;;
  --run) run "$2" ;;
  *) usage ;;
esac
