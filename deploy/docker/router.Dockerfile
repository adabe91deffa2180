# syntax=docker/dockerfile:1
# pagoda-router: the gRPC (pagoda.v1, grpc.health.v1) and OpenAI HTTP front of a Pagoda cluster.
# It reads only the model's config.json and tokenizer (--model); the workers hold the weights.
#
#   docker build -f deploy/docker/router.Dockerfile -t pagoda-router:0.1.0 .
#   docker run -p 50051:50051 -p 8000:8000 -v /srv/models:/models:ro pagoda-router:0.1.0 \
#       --model=/models/stories260K --replica=w0:50061,w1:50061
#
# Built as CI builds (scripts/install-deps.sh, scripts/build.sh) on CI's Debian 12; the runtime
# stage installs exactly the packages whose libraries the binary loads
# (scripts/runtime-packages.sh), runs as an unprivileged user and checks GET /health.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --no-python
COPY . .
RUN scripts/build.sh -DPAGODA_CUDA=OFF -DPAGODA_BUILD_TESTS=OFF -DPAGODA_BUILD_BENCHMARKS=OFF \
 && scripts/runtime-packages.sh build/bin/pagoda-router > /runtime-packages.txt

FROM debian:bookworm-slim
COPY --from=build /runtime-packages.txt /tmp/
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 pagoda \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pagoda
COPY --from=build /src/build/bin/pagoda-router /usr/local/bin/
USER 10001:10001
EXPOSE 50051 8000
# 200 while a replica is ready (503 while none is: the container runs, but cannot serve yet).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8000/health || exit 1
# The ports the HEALTHCHECK and EXPOSE name; arguments given to `docker run` follow these.
ENTRYPOINT ["pagoda-router", "--host=0.0.0.0", "--grpc-port=50051", "--http-port=8000"]
CMD ["--help"]
