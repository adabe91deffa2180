# syntax=docker/dockerfile:1
# pagoda-worker with the CUDA backend (-DPAGODA_CUDA=ON, NCCL): one tensor-parallel rank per GPU.
#
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t pagoda-worker-cuda:0.1.0 .
#   docker run --gpus 1 -p 50061:50061 -p 9400:9400 -v /srv/models:/models:ro \
#       pagoda-worker-cuda:0.1.0 --comm-host=10.0.0.7
#
# Builder: NVIDIA's CUDA devel image (nvcc, NCCL headers), with scripts/install-deps.sh and
# scripts/build.sh as CI runs them. The host compiler is GCC 12, CI's (Debian 12): -Werror
# builds see the same warnings. Runtime: NVIDIA's CUDA runtime image (cudart, NCCL) plus the
# packages whose libraries the binary loads (scripts/runtime-packages.sh, CUDA's own left to the
# base), an unprivileged user, and GET /health on the metrics port as the HEALTHCHECK.
ARG CUDA_VERSION=12.6.3
ARG UBUNTU_VERSION=24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build
# Hopper, plus PTX that newer GPUs and sm_80+ JIT-compile (CMakeLists.txt's default).
ARG CUDA_ARCHITECTURES="90a-real;80-virtual"
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --no-python \
 && apt-get install -y --no-install-recommends gcc-12 g++-12
COPY . .
RUN CC=gcc-12 CXX=g++-12 scripts/build.sh -DPAGODA_CUDA=ON -DCMAKE_CUDA_HOST_COMPILER=g++-12 \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES}" \
      -DPAGODA_BUILD_TESTS=OFF -DPAGODA_BUILD_BENCHMARKS=OFF \
 && scripts/runtime-packages.sh --exclude '^(cuda-|libcu|libnccl|libnv)' build/bin/pagoda-worker \
      > /runtime-packages.txt

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION}
COPY --from=build /runtime-packages.txt /tmp/
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 pagoda \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pagoda
COPY --from=build /src/build/bin/pagoda-worker /usr/local/bin/
ENV NCCL_DEBUG=WARN
USER 10001:10001
EXPOSE 50061 9400
# 200 while the process serves (the router re-initializes an uninitialized or failed worker).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:9400/health || exit 1
ENTRYPOINT ["pagoda-worker", "--host=0.0.0.0", "--port=50061", "--metrics-port=9400"]
CMD []
