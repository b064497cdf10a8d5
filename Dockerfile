# One image for the four services and the `gridwork` command (migrations, streams, replays).
# docker-compose.yml runs it as `python -m services.<name>`; see docs/OPERATIONS.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services \
    && touch shared/__init__.py services/__init__.py \
    && pip install . \
    && pip uninstall -y gridwork \
    && rm -rf shared services

COPY shared ./shared
COPY services ./services
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gridwork

COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/gridwork-entrypoint
COPY --chmod=0755 deploy/docker/probe.py /usr/local/bin/gridwork-probe

USER 10001
ENV GRIDWORK_HOST=0.0.0.0 \
    GRIDWORK_LOG_FORMAT=json \
    GRIDWORK_DATA_DIR=/tmp/gridwork
# the services' ports; 9464 is the operations address of /metrics when GRIDWORK_METRICS_ADDRESS sets it
EXPOSE 8081 8082 8083 8084 9464

# Secrets from *_FILE, NATS credentials into the URL, the cluster CA into the trust bundle.
ENTRYPOINT ["gridwork-entrypoint"]
CMD ["gridwork", "--help"]
