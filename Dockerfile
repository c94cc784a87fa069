# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin waba \
    && mkdir -p /etc/waba-monitor /var/lib/waba-monitor \
    && chown 10001 /var/lib/waba-monitor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
ENV WABA_MONITOR_STATE__DIRECTORY=/var/lib/waba-monitor
WORKDIR /var/lib/waba-monitor
USER 10001
EXPOSE 9877
VOLUME ["/etc/waba-monitor", "/var/lib/waba-monitor"]
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9877/-/healthy', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["waba-monitor"]
CMD ["run", "--config", "/etc/waba-monitor/config.yaml"]
