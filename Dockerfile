# recd: multi-stage build. The build stage compiles bin/recd on Debian 12; the runtime stage is Debian slim
# with only the shared libraries, a non-root user and a health check on /healthz.
#   docker build -t recd .
#   docker run -p 8080:8080 -v $PWD/snapshots:/var/lib/recd/snapshots:ro recd
FROM debian:12 AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev liblmdb-dev libuv1-dev \
      zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean && make -j"$(nproc)" bin/recd

FROM debian:12-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libmicrohttpd12 libjansson4 libopenblas0-pthread liblmdb0 libuv1 zlib1g curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/recd --shell /usr/sbin/nologin recd \
    && mkdir -p /var/lib/recd/snapshots /var/lib/recd/state /etc/recd \
    && chown -R recd:recd /var/lib/recd
COPY --from=build /src/bin/recd /usr/local/bin/recd
COPY configs/recd.docker.json /etc/recd/recd.json
USER recd
# recd serve reads RECD_PORT (overrides http.port); the health check follows it.
ENV RECD_PORT=8080
EXPOSE 8080
VOLUME ["/var/lib/recd/snapshots", "/var/lib/recd/state"]
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${RECD_PORT}/healthz" || exit 1
ENTRYPOINT ["/usr/local/bin/recd"]
CMD ["serve", "-c", "/etc/recd/recd.json"]
