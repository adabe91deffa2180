#!/usr/bin/env bash
# Installs every Debian package Pagoda's build and tests need. Idempotent and non-interactive.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config git ca-certificates python3
  libabsl-dev libspdlog-dev nlohmann-json3-dev
  libopenblas-openmp-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libgloo-dev
  prometheus-cpp-dev libcpp-httplib-dev python3-grpcio python3-grpc-tools python3-numpy
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
