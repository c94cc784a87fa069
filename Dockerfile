# syntax=docker/dockerfile:1
#
# waba-monitor image: the daemon, its simulator and `check`, as user 10001, no build tools.
#
#   docker build -t waba-monitor:0.1.0 .
#   docker run -v "$PWD/config.yaml:/etc/waba-monitor/config.yaml:ro" \
#     -e WABA_MONITOR_ACCESS_TOKEN -p 9877:9877 waba-monitor:0.1.0
#
# Both stages use the same base image on purpose: the virtualenv copied from the build stage
# points at /usr/local/bin/python of that image. Pin it by digest in your own registry
# (python:3.11-slim-bookworm@sha256:...) for bit-for-bit reproducible builds.
# Lint: `hadolint Dockerfile` (tests/test_deploy.py runs it).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency has a binary wheel for linux/amd64 and linux/arm64, so no compiler is needed
# even here; pip compiles the bytecode at install time, so a read-only root file system costs
# nothing at start-up.
RUN python -m venv /opt/waba-monitor
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN /opt/waba-monitor/bin/pip install --no-cache-dir . \
    && /opt/waba-monitor/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim-bookworm
# Keep VERSION equal to pyproject.toml's version (tests/test_deploy.py checks the default);
# CI may pass --build-arg VERSION=... REVISION=$(git rev-parse HEAD) CREATED=$(date -Iseconds).
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="waba-monitor" \
      org.opencontainers.image.description="Prometheus exporter that watches WhatsApp Business phone numbers through the Graph API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="https://github.com/waba-monitor/waba-monitor/blob/main/README.md" \
      org.opencontainers.image.source="https://github.com/waba-monitor/waba-monitor" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# One fixed, numeric, unprivileged user (Kubernetes' runAsNonRoot can only verify a numeric
# USER). The state directory belongs to it: a named Docker volume mounted there starts with
# this ownership; in Kubernetes the pod's fsGroup 10001 does the same for emptyDir and PVCs.
RUN groupadd --system --gid 10001 waba \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin waba \
    && mkdir -p /etc/waba-monitor /var/lib/waba-monitor \
    && chown 10001:10001 /var/lib/waba-monitor \
    && chmod 0750 /var/lib/waba-monitor

COPY --from=build /opt/waba-monitor /opt/waba-monitor

ENV PATH=/opt/waba-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WABA_MONITOR_STATE__DIRECTORY=/var/lib/waba-monitor

WORKDIR /var/lib/waba-monitor
USER 10001:10001
# server.listen (default 0.0.0.0:9877): /metrics, /-/healthy, /-/ready, /webhooks/whatsapp.
EXPOSE 9877
# The configuration (config.yaml, optionally web.yml) and the SQLite state file.
VOLUME ["/etc/waba-monitor", "/var/lib/waba-monitor"]

# Liveness only (/-/healthy); there is no curl in the slim image. It assumes plain HTTP on
# 9877: with another server.listen port or with TLS in web.yml, override it
# (docker run --health-cmd ..., compose `healthcheck:`) or disable it (--no-healthcheck).
# Kubernetes ignores it and uses the probes of deploy/kubernetes/.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9877/-/healthy', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["waba-monitor"]
CMD ["run", "--config", "/etc/waba-monitor/config.yaml"]
