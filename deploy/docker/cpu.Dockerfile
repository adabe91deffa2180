# syntax=docker/dockerfile:1
# All-in-one CPU image for demos: pagoda, pagoda-router and pagoda-worker (CPU backend, Gloo) and
# the stories260K model at /opt/pagoda/models/stories260K. By default it runs `pagoda serve`: a
# router and 2 replicas x 2 tensor-parallel workers in one container. deploy/k8s's cpu-demo
# overlay runs the router and the workers as separate pods from this same image.
#
#   docker build -f deploy/docker/cpu.Dockerfile -t pagoda-cpu:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8000:8000 pagoda-cpu:0.1.0
#   curl -N localhost:8000/v1/completions -H 'Content-Type: application/json' \
#       -d '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 64, "stream": true}'
#
# stories260K (llama2.c checkpoint and tokenizer, MIT, Karpathy's tinyllamas) is downloaded and
# checked against its sha256; with the files at hand (../shared/models/stories260K beside this
# repository) no download is needed:
#   docker build --build-context stories=../shared/models/stories260K -f deploy/docker/cpu.Dockerfile .

# The llama2.c files, at the root of this stage (or of the `stories` build context).
FROM debian:bookworm-slim AS stories
ARG STORIES_URL=https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
 && curl -fsSL --retry 3 -o /stories260K.bin "${STORIES_URL}/stories260K.bin" \
 && curl -fsSL --retry 3 -o /tok512.bin "${STORIES_URL}/tok512.bin"

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --no-python
COPY . .
RUN scripts/build.sh -DPAGODA_CUDA=OFF -DPAGODA_BUILD_TESTS=OFF -DPAGODA_BUILD_BENCHMARKS=OFF \
 && scripts/runtime-packages.sh build/bin/pagoda build/bin/pagoda-router build/bin/pagoda-worker \
      > /runtime-packages.txt
COPY --from=stories stories260K.bin tok512.bin /tmp/stories/
# The checksums of ../shared/models/stories260K/README.md.
RUN cd /tmp/stories \
 && printf '%s  %s\n' \
      b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696 stories260K.bin \
      037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312 tok512.bin \
    | sha256sum -c - \
 && /src/build/bin/pagoda convert llama2c --checkpoint stories260K.bin --tokenizer tok512.bin \
      --out /opt/pagoda/models/stories260K

FROM debian:bookworm-slim
COPY --from=build /runtime-packages.txt /tmp/
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 pagoda \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pagoda
COPY --from=build /src/build/bin/pagoda /src/build/bin/pagoda-router /src/build/bin/pagoda-worker \
     /usr/local/bin/
COPY --from=build /opt/pagoda/models/stories260K /opt/pagoda/models/stories260K
USER 10001:10001
EXPOSE 50051 8000
# The router's /health: 200 once a replica is ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["pagoda"]
CMD ["serve", "--model=/opt/pagoda/models/stories260K", "--host=0.0.0.0", "--grpc-port=50051", \
     "--http-port=8000", "--replicas=2", "--tp=2", "--kv-cache-memory-gib=0.05"]
