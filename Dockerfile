# syntax=docker/dockerfile:1
# The arbstream image: one image for every arbstream process (topics, worker, feed,
# simulate, replay, produce); the command picks the role. docker-compose.yml builds it.
#
#   docker build -t arbstream .
#   docker run --rm arbstream --help
#   docker run --rm -e ARBSTREAM_BROKER=kafka://HOST:9092 arbstream \
#       worker --config /etc/arbstream/compose/silver.toml
#
# Configs in the image: /etc/arbstream/compose/silver.toml (deploy/compose/silver.toml,
# feeds read the `simulator` service) and /etc/arbstream/demo/silver.toml
# (deploy/demo/silver.toml, feeds on 127.0.0.1). Mount your own over /etc/arbstream.
# The demo's scenario, the 30 Jan 2026 dislocation, is at
# /usr/share/arbstream/scenarios/dislocation-2026-01-30/ticks.jsonl (the compose
# simulator plays it).
# Ports: 6066 worker web/metrics (ARBSTREAM_WEB_PORT), 9464 feed health/metrics
# (ARBSTREAM_FEED_METRICS_PORT).

# ---- builder: arbstream and its pinned dependencies (constraints.txt) in a venv -------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

# A C compiler for sdists: faust-streaming publishes x86_64 wheels only, so on arm64
# (Apple silicon, Graviton) pip compiles its Cython extensions. Every other pinned
# dependency has manylinux wheels for both. The compiler stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/arbstream
ENV PATH=/opt/arbstream/bin:$PATH
WORKDIR /src

# 1. The runtime dependencies alone, at the versions constraints.txt pins: a cached
#    layer until pyproject.toml or constraints.txt change (dev tools are not installed).
COPY pyproject.toml constraints.txt ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# 2. arbstream itself, built as a wheel (not editable) and installed against the same pins;
#    setup.py compiles the engine with mypyc (the gcc above), and the image refuses to
#    build if the engine it installed is not the compiled one.
COPY README.md setup.py ./
COPY streams ./streams
COPY agents ./agents
COPY feeds ./feeds
COPY simulator ./simulator
COPY gateway ./gateway
COPY arbstream ./arbstream
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && pip install -c constraints.txt /tmp/wheels/arbstream-*.whl \
    && pip check \
    && arbstream --version \
    && python -c 'import sys; from arbstream import streams; i = streams.IMPLEMENTATION; sys.exit(not i.compiled and i.reason)'

# ---- runtime: the venv, the configs, a non-root user --------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="arbstream" \
      org.opencontainers.image.description="Real-time cross-venue spread and arbitrage monitor on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/arbstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ARBSTREAM_WEB_PORT=6066 \
    ARBSTREAM_FEED_METRICS_PORT=9464

# A fixed uid/gid, so mounted volumes and Kubernetes securityContext can name it.
RUN groupadd --system --gid 10001 arbstream \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/arbstream \
        --create-home --shell /usr/sbin/nologin arbstream

COPY --from=builder /opt/arbstream /opt/arbstream
COPY deploy/compose/silver.toml /etc/arbstream/compose/silver.toml
COPY deploy/demo/silver.toml /etc/arbstream/demo/silver.toml
COPY scenarios/dislocation-2026-01-30/ticks.jsonl /usr/share/arbstream/scenarios/dislocation-2026-01-30/ticks.jsonl

WORKDIR /var/lib/arbstream
USER 10001:10001
EXPOSE 6066 9464

# No HEALTHCHECK here: the roles differ (the worker and the feeds serve /healthz and
# /readyz on different ports, topics exits, the simulator serves WebSockets only), so
# docker-compose.yml sets one per service.
ENTRYPOINT ["arbstream"]
CMD ["--help"]
