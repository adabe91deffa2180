#!/usr/bin/env bash
# The whole test suite from a fresh machine: dependencies, the style checks (include layering,
# clang-format), a Release build + all tests, then the model-file and tokenizer tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, the concurrent parts' tests under
# ThreadSanitizer, then every parser of outside input under libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's end on stderr, in seconds since the start: the CI run has a time budget.
stage() { echo "test.sh: $1 done at ${SECONDS} s" >&2; }
scripts/install-deps.sh
stage dependencies
scripts/check-style.sh
stage style

BUILD_DIR=build scripts/build.sh
stage build
ctest --test-dir build --output-on-failure -j"$(nproc)"
stage tests

# Untrusted-input parsers (bad safetensors and GGUF files, configs, tokenizers, prompt files must
# never crash) and the paged attention/model runner paths, under AddressSanitizer and
# UndefinedBehaviorSanitizer. They build in the same clang tree as the fuzzers (ASan + UBSan +
# coverage; Debug, which compiles in half the time of -O2), so the libraries are compiled once
# for both; a separate GCC Debug ASan tree cost about 600 s of the CI run.
# The long SmolLM2 runs (batch invariance across step shapes, three ranks, the exact path, one
# thread, `pagoda generate` on the GGUF, greedy decoding against the goldens) run in the Release
# stage only: under ASan they were 690 of the stage's 1190 test-seconds on 2 cores, then 227 of
# the remaining 434, and the goldens' run alone 272 s in the clang Debug tree; they cover no
# code the fixtures' tests do not.
sanitized_tests=(file_util_test safetensors_test gguf_test model_config_test model_weights_test
                 tokenizer_test tokenizer_components_test llama2c_tokenizer_test gguf_tokenizer_test
                 llama2c_test generate_command_test paged_attention_test
                 model_runner_test step_codec_test tensor_test model_source_test gguf_model_test)
export FUZZ_BUILD_DIR=build-sanitize FUZZ_BUILD_TYPE=Debug
scripts/fuzz.sh build "${sanitized_tests[@]}"
stage "sanitizer build"
regex=$(IFS='|'; echo "${sanitized_tests[*]}")
slow='ALastTokensLogitsDoNotDependOnTheStepShape|ThreeRanksEqualOne|_exact_path|_one_thread'
slow+='|AGgufModelGeneratesItsGoldens|TheSameGreedyQuestionGetsTheSameAnswerInAnyStepShape'
slow+='|SmolLm2.GreedyTokensEqualTheGoldensUpToNearTies'
# One OpenMP thread: clang links LLVM's libomp, and Debian's OpenMP OpenBLAS (built for libgomp)
# can spin forever in its parallel GEMM under it when called from an engine thread (seen once:
# generate_command_test stuck 8 minutes in exec_blas). The timeout turns any hang into a failure.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 \
  UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-sanitize --output-on-failure \
  -j"$(nproc)" --timeout 600 -L "^(${regex})\$" -E "${slow}"
stage "sanitizer tests"

# The concurrent parts (engine loop, router, replica set, request sessions, HTTP server,
# communicators, worker runtime) under ThreadSanitizer, in their own clang tree (build-tsan/);
# any report fails the run. scripts/tsan.sh lists the tests and why each is there.
scripts/tsan.sh
stage "thread sanitizer"

# libFuzzer on every parser of outside input, 12 s each (2 minutes in all); already built above.
scripts/fuzz.sh "${PAGODA_FUZZ_SECONDS:-12}"
stage fuzzing
echo "test.sh: all tests passed"
