# nightshift: one image, one binary. Build with either
#   docker build -t nightshift .
#   podman build -t nightshift .
# and run any verb: docker run --rm nightshift worker (the default), producer,
# ingest, migrate, status ... Configuration: /etc/nightshift/jobs.yaml (mount
# your own) and NS_* environment variables; secrets come from the
# environment only.

# ---- build ----------------------------------------------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config git ca-certificates \
        librdkafka-dev libcurl4-openssl-dev libcjson-dev libpq-dev \
        libhiredis-dev libxlsxwriter-dev libzstd-dev libssl-dev libyaml-dev \
        libmicrohttpd-dev libutf8proc-dev libicu-dev libexttextcat-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DNS_WERROR=ON \
    && cmake --build /build -j"$(nproc)" --target nightshift \
    && strip /build/nightshift

# ---- runtime: the libraries only ---------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        librdkafka1 libcurl4 libcjson1 libpq5 libhiredis0.14 libxlsxwriter4 \
        libzstd1 libssl3 libyaml-0-2 libmicrohttpd12 libutf8proc2 libicu72 \
        libexttextcat-2.0-0 libexttextcat-data tzdata ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin nightshift
COPY --from=build /build/nightshift /usr/local/bin/nightshift
COPY config/jobs.yaml /etc/nightshift/jobs.yaml
ENV NS_CONFIG=/etc/nightshift/jobs.yaml
USER 10001:10001
# 9463 producer metrics, 9464 worker metrics, 8088 ingest (the webhook)
EXPOSE 9463 9464 8088
# /healthz on the daemon's metrics port (NS_HEALTH_PORT: 9464 for a
# worker, 9463 for a producer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${NS_HEALTH_PORT:-9464}/healthz || exit 1"]
ENTRYPOINT ["nightshift"]
CMD ["worker"]
