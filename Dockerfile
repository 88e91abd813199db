# syntax=docker/dockerfile:1

# tokend as a sidecar image: wheels built in one stage, installed into a
# virtual environment, and only that environment carried into the runtime.
#
#   docker build -t tokend:0.1.0 .
#
# The container runs as UID 10001, needs nothing writable but the state
# volume, and so works with a read-only root filesystem.

FROM python:3.12.12-slim-trixie AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon ./daemon

# Every wheel first (tokend's own and its dependencies', with Redis for
# fleet mode, which is imported only when TOKEND_REDIS_URL is set), then an
# install from those alone: no index is asked for the name tokend. The
# venv gets no pip of its own, and pip compiles the bytecode now, so
# nothing is written into it at run time.
RUN python -m pip wheel --wheel-dir /wheels ".[redis]" \
 && python -m venv --without-pip /opt/tokend \
 && python -m pip --python /opt/tokend/bin/python install \
        --no-index --find-links /wheels "tokend[redis]"


FROM python:3.12.12-slim-trixie AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="tokend" \
      org.opencontainers.image.description="Holds the Acoustic Campaign OAuth access token and serves it to local processes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-trixie"

# A fixed UID and GID, so that volume ownership and the Kubernetes
# runAsUser agree. The base image's pip goes too: nothing installs here.
RUN groupadd --system --gid 10001 tokend \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/tokend --shell /usr/sbin/nologin tokend \
 && install --directory --owner 10001 --group 10001 --mode 0700 /var/lib/tokend \
 && python -m pip uninstall --yes --quiet --root-user-action ignore pip

COPY --from=build /opt/tokend /opt/tokend

# The token listener stays on loopback: inside a pod (or a Compose
# service's network namespace) the application shares it, and nothing
# outside does. Probes reach the health listener, which never serves the
# token. The TOKEND_* names trip hadolint's check for secrets in ENV, yet
# none of these values is one: credentials arrive as files at run time.
# hadolint ignore=DL3064
ENV PATH=/opt/tokend/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOKEND_LISTEN=127.0.0.1:8439 \
    TOKEND_HEALTH_LISTEN=0.0.0.0:8440 \
    TOKEND_STATE_FILE=/var/lib/tokend/state.json \
    TOKEND_LOG_FORMAT=json

VOLUME ["/var/lib/tokend"]
EXPOSE 8440
USER 10001:10001
WORKDIR /var/lib/tokend

# Ready means a servable token is held. Checked every 2s while starting
# (engines from Docker 25 on), every 30s after.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --start-interval=2s --retries=3 \
    CMD ["tokend", "check"]

ENTRYPOINT ["tokend"]
CMD ["serve"]
