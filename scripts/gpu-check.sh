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
#                             device, worker/internal/nccl.h and kernels/cuda/internal/cublas.h),
#                             shared/ (the test model stories260K, SmolLM2's goldens) and python/
#                             (benchmarks/hf_generate_baseline.py); xz keeps it under the device
#                             tool's 64 MiB carry limit
#         DIR/ldd.txt         what each binary loads, as ldd reports it here
#         DIR/smollm2/        part-1 .. part-N and MANIFEST: SmolLM2's GGUF, xz-compressed and cut
#                             in parts that each travel in one call (98 MB do not travel in one
#                             call beside the payload), the last one with the payload
#   scripts/gpu-check.sh --stage DIR    on the device machine, in the calls before --run: keeps
#       the SmolLM2 parts this call carried (DIR/smollm2/part-K) for --run.
#   scripts/gpu-check.sh --run DIR      on the device machine: unpacks the payload, runs every
#       binary of its bin/, then of its bench/, then the Hugging Face baseline over the requests
#       the throughput benchmark ran, with its lib/ on the loader path, and writes under
#       OUT ($OUT, the device tool's folder, or ./gpu-check-out) at most six files (the device
#       tool returns 8): summary.txt (one line per test binary, then the benchmark figures and
#       Pagoda / HF), tests.log (every test binary's
#       output, one after another), junit.tar.gz (their JUnit XML), bench.txt (the benchmarks'
#       output), nvidia-smi.txt and, when it ran, fallback-build.log. Exits 1 when a test failed
#       or a binary did not start. If no binary starts (a loader error), it tries the fallback
#       the issue allows: building the same targets from the carried source tree (which needs
#       the -dev packages there).
#
# With the device tool, from the checkout that built the bundle (not timed on a device yet):
#   run(command="scripts/gpu-check.sh --run gpu-bundle", carry=["gpu-bundle/payload.tar.xz"],
#       timeout_s=600)
# and with SmolLM2's golden on the device, one --stage call per part but the last (--bundle says
# how many: two when the payload is under about 20 MiB), each next call at once (the machine stays
# warm for 30 s after a call; a cold one has lost the staged parts, and smollm2_cuda_test's device
# case skips, saying so):
#   run(command="scripts/gpu-check.sh --stage gpu-bundle", carry=["gpu-bundle/smollm2/part-1"])
#   run(command="scripts/gpu-check.sh --run gpu-bundle", carry=["gpu-bundle/payload.tar.xz",
#       "gpu-bundle/smollm2/part-2", "gpu-bundle/smollm2/MANIFEST"], timeout_s=600)
#
# Environment: BUILD_DIR (default build-gpu-bundle), JOBS (default 2), PAGODA_SHARED_DIR (where
# models/stories260K is; default ../shared beside the repository), PAGODA_SMOLLM2_GGUF (--bundle:
# the model; default models/SmolLM2-135M-Instruct.Q4_1.gguf), TEST_TIMEOUT_S (default 300),
# BENCH_TIMEOUT_S (default 180), THROUGHPUT_REQUESTS (default 1000), THROUGHPUT_TIMEOUT_S
# (default 300), HF_MAX_SECONDS (the baseline's batches stop after it; default 120), HF_TIMEOUT_S
# (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_TESTS=(tensor_cuda_test rms_norm_cuda_test activation_cuda_test elementwise_cuda_test
           embedding_cuda_test gemm_cuda_test rotary_cuda_test kv_cache_write_cuda_test
           block_copy_cuda_test paged_attention_cuda_test sampling_cuda_test
           nccl_loader_test nccl_communicator_test model_runner_cuda_test
           worker_runtime_cuda_test)
GPU_TESTS+=(device_sampler_cuda_test)
# CUDA graphs of decode batches against the eager path (--enforce-eager's).
GPU_TESTS+=(cuda_graph_cuda_test)
# SmolLM2's golden in bf16: needs the model staged on the device (--stage, below); skips without.
GPU_TESTS+=(smollm2_cuda_test)
# Benchmarks (benchmarks/): run after the tests, their output in bench.txt.
GPU_BENCHMARKS=(cuda_gemm_benchmark)
# Paged attention alone: split-context decode and tiled prefill, time and K/V bandwidth.
GPU_BENCHMARKS+=(cuda_attention_benchmark)
# The Llama-3-8B-shaped dummy bf16 model: decode/prefill beside the floor, offline throughput.
GPU_BENCHMARKS+=(cuda_model_benchmark cuda_throughput_benchmark)

usage() {
  echo "usage: $0 --bundle DIR | --stage DIR | --run DIR" >&2
  exit 2
}

# SmolLM2-135M-Instruct's GGUF (98 MB: over the device tool's 64 MiB a call with the payload)
# travels xz-compressed in parts over several calls (bundle_smollm2): --stage DIR keeps the parts
# a call carried in SMOLLM2_STAGE on the device machine, --run DIR joins them with the parts its
# own call carried and, when all of them are there and the sha256 is DIR/smollm2/MANIFEST's, hands
# the model to smollm2_cuda_test (PAGODA_SMOLLM2_GGUF).
SMOLLM2_STAGE=/tmp/pagoda-smollm2-stage
# Each call carries at most this much of our files (64 MiB less room for the working tree).
CARRY_BUDGET_BYTES=$((52 * 1024 * 1024))

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
  cp -r "$shared/models/smollm2" "$payload/shared/models/"  # goldens only: the model is staged
  mkdir -p "$payload/python"
  cp benchmarks/hf_generate_baseline.py "$payload/python/"
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
  bundle_smollm2 "$dir"
}

# DIR/smollm2/: the SmolLM2 GGUF xz-compressed and cut into parts part-1 .. part-N of at most
# CARRY_BUDGET_BYTES each, the last small enough to travel with the payload, and MANIFEST (the
# GGUF's sha256 and N).
bundle_smollm2() {
  local dir=$1 model=${PAGODA_SMOLLM2_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
  if [ ! -f "$model" ]; then
    echo "gpu-check: $model is absent: smollm2_cuda_test's device case will skip"
    return 0
  fi
  mkdir -p "$dir/smollm2"
  local packed="$dir/smollm2/model.xz"
  xz -T"${JOBS:-2}" -c "$model" >"$packed"
  local total last rest offset=0 n=0 size
  total=$(stat -c %s "$packed")
  last=$((CARRY_BUDGET_BYTES - $(stat -c %s "$dir/payload.tar.xz")))
  [ "$last" -gt "$total" ] && last=$total
  rest=$((total - last))
  while [ "$offset" -lt "$rest" ]; do
    size=$((rest - offset))
    [ "$size" -gt "$CARRY_BUDGET_BYTES" ] && size=$CARRY_BUDGET_BYTES
    n=$((n + 1))
    dd if="$packed" of="$dir/smollm2/part-$n" bs=1M iflag=skip_bytes,count_bytes skip="$offset" \
      count="$size" status=none
    offset=$((offset + size))
  done
  n=$((n + 1))
  tail -c "$last" "$packed" >"$dir/smollm2/part-$n"
  rm "$packed"
  echo "$(sha256sum "$model" | cut -d' ' -f1) $n" >"$dir/smollm2/MANIFEST"
  echo "gpu-check: SmolLM2 in $dir/smollm2: $n parts ($(cd "$dir/smollm2" && du -m part-* |
    awk '{printf "%s%s %s MiB", sep, $2, $1; sep = ", "}')); part-$n travels with the payload"
}

# On the device machine: keeps the SmolLM2 parts this call carried for a later call's --run.
stage() {
  local dir=$1 part
  mkdir -p "$SMOLLM2_STAGE"
  for part in "$dir"/smollm2/part-*; do
    [ -e "$part" ] && cp "$part" "$SMOLLM2_STAGE/"
  done
  echo "gpu-check: staged in $SMOLLM2_STAGE:" "$SMOLLM2_STAGE"/part-*
}

# Joins the carried and staged SmolLM2 parts (DIR/smollm2/MANIFEST says how many) into
# WORK/SmolLM2-135M-Instruct.Q4_1.gguf; prints its path when its sha256 is the manifest's, else
# says why not on stderr.
assemble_smollm2() {
  local dir=$1 work=$2 out sha parts part i
  out="$work/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -r "$dir/smollm2/MANIFEST" ] || ! read -r sha parts <"$dir/smollm2/MANIFEST"; then
    echo "SmolLM2: no $dir/smollm2/MANIFEST carried: smollm2_cuda_test's device case skips" >&2
    return 0
  fi
  : >"$out.xz"
  for ((i = 1; i <= parts; ++i)); do
    part="$dir/smollm2/part-$i"
    [ -e "$part" ] || part="$SMOLLM2_STAGE/part-$i"
    if [ ! -e "$part" ]; then
      echo "SmolLM2: part-$i neither carried nor staged (--stage in the calls before)" >&2
      return 0
    fi
    cat "$part" >>"$out.xz"
  done
  if ! xz -dc "$out.xz" >"$out" 2>/dev/null; then
    echo "SmolLM2: the parts do not decompress (parts of two bundles?)" >&2
    return 0
  fi
  rm -f "$out.xz"
  if [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$sha" ]; then
    echo "SmolLM2: the joined file's sha256 is not the manifest's (parts of two bundles?)" >&2
    return 0
  fi
  echo "$out"
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
  local machine_ld_path=${LD_LIBRARY_PATH:-}  # for PyTorch, which must not see our lib/
  export LD_LIBRARY_PATH="$dir/lib${lib_dirs:+:$lib_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PAGODA_SHARED_DIR="$dir/shared"
  local summary="$out/summary.txt"
  {
    echo "gpu-check $(date -u +%FT%TZ) on $(hostname)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    echo "NCCL and cuBLAS from: ${lib_dirs:-not found (the NCCL and device GEMM tests fail with FailedPrecondition)}"
  } >"$summary"
  local smollm2
  smollm2=$(assemble_smollm2 "$1" "$logs" 2>>"$summary")
  [ -n "$smollm2" ] && export PAGODA_SMOLLM2_GGUF="$smollm2" && echo "SmolLM2: staged model ok" >>"$summary"
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
    # bench_args is split into words on purpose (paths of mktemp, no spaces).
    # shellcheck disable=SC2046
    timeout "$(bench_timeout "$bench")" "$bench" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true $(bench_args "$bench" "$logs") 2>&1 ||
      echo "(exit status $?)"
  done >"$out/bench.txt"
  LD_LIBRARY_PATH=$machine_ld_path hf_baseline "$dir" "$logs" >>"$out/bench.txt"
  figures "$out/bench.txt" | tee -a "$summary"
  (cd "$logs" && tar czf "$out/junit.tar.gz" ./*.xml 2>/dev/null) || true
  [ "$bad" = 0 ] && echo "gpu-check: all passed" | tee -a "$summary" && return 0
  echo "gpu-check: FAILURES (see logs/)" | tee -a "$summary"
  return 1
}

# A benchmark's own flags and time limit: the throughput benchmark writes the requests it runs
# for the HF baseline and runs THROUGHPUT_REQUESTS of them (default 1000).
bench_args() {  # bench_args BINARY LOGDIR
  case "$(basename "$1")" in
    cuda_throughput_benchmark)
      echo "--requests_out=$2/requests.jsonl --num_requests=${THROUGHPUT_REQUESTS:-1000}" ;;
  esac
}
bench_timeout() {  # bench_timeout BINARY
  case "$(basename "$1")" in
    cuda_throughput_benchmark) echo "${THROUGHPUT_TIMEOUT_S:-300}" ;;
    *) echo "${BENCH_TIMEOUT_S:-180}" ;;
  esac
}

# Hugging Face transformers' generate over the throughput benchmark's requests
# (benchmarks/hf_generate_baseline.py), HF_MAX_SECONDS of batches.
hf_baseline() {  # hf_baseline UNPACKED LOGDIR
  local requests="$2/requests.jsonl"
  echo "===== hf_generate_baseline"
  if [ ! -s "$requests" ]; then
    echo "(no requests: cuda_throughput_benchmark did not write $requests)"
    return 0
  fi
  PYTHONUNBUFFERED=1 timeout "${HF_TIMEOUT_S:-300}" python3 "$1/python/hf_generate_baseline.py" \
    --requests "$requests" --max-seconds "${HF_MAX_SECONDS:-120}" 2>&1 ||
    echo "(exit status $?)"
}

# The summary's figures from bench.txt: the model and attention benchmarks' medians, both
# throughputs and Pagoda / HF.
figures() {  # figures BENCH_TXT
  grep -E '^BM_(DeviceCopy|DecodeStep|Prefill|Attention).*(_median|ERROR OCCURRED)' "$1" || true
  # The throughput run's result, or where it was when its time limit stopped it.
  grep -E '^pagoda_throughput:' "$1" || grep -E '^pagoda_throughput_progress:' "$1" | tail -n 1 ||
    true
  grep -E '^hf_baseline: requests=' "$1" | tail -n 1 || true  # its rates so far, after each batch
  awk '/^pagoda_throughput:/ { for (i = 2; i <= NF; ++i) { split($i, kv, "="); p[kv[1]] = kv[2] } }
       /^hf_baseline: requests=/ { for (i = 2; i <= NF; ++i) { split($i, kv, "="); h[kv[1]] = kv[2] } }
       END {
         if (p["requests_per_s"] > 0 && h["requests_per_s"] > 0)
           printf "pagoda_over_hf: requests_per_s %.2fx output_tokens_per_s %.2fx\n",
             p["requests_per_s"] / h["requests_per_s"],
             p["output_tokens_per_s"] / h["output_tokens_per_s"]
         else print "pagoda_over_hf: not measured (a figure is missing above)"
       }' "$1"
}

[ $# -eq 2 ] || usage
case "$1" in
  --bundle) bundle "$2" ;;
  --stage) stage "$2" ;;
  --run) run "$2" ;;
  *) usage ;;
esac
