# One image for the three baocao services; docker-compose.yml picks the process per service:
#   python -m services.ingest            (HTTP :8001)
#   python -m services.api               (HTTP :8002, the default below)
#   python -m services.aggregate worker  (faust worker, /metrics :6066)
#   python -m tools.topics --partitions 8  (one-shot topic creation)
# No secrets are baked in: BAOCAO_AUTH_SECRET, KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI come from
# the environment at run time, and every service refuses to start without them.
# The Python minor version deploy/install.sh sets up for development and CI (PYTHON_MINOR).
FROM python:3.12.9-slim-bookworm

# PYTHONPATH=/app: the services run from the source tree in /app (it also carries
# shared/data/catalog.json). BAOCAO_AGGREGATE_DATA_DIR: faust's local state and the aggregator's
# entry files (SQLite, rebuilt from the changelog), a volume in docker-compose.yml, owned by the
# unprivileged user.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app \
    BAOCAO_AGGREGATE_DATA_DIR=/var/lib/baocao/aggregate

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when the pins change, not on every code edit.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself.
COPY shared/ shared/
COPY services/ services/
COPY tools/ tools/
COPY deploy/ deploy/
COPY bench/ bench/
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf build ./*.egg-info

# Unprivileged user; it owns only the aggregate's state directory.
RUN groupadd --system --gid 10001 baocao \
    && useradd --system --uid 10001 --gid baocao --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin baocao \
    && mkdir -p /var/lib/baocao/aggregate \
    && chown -R baocao:baocao /var/lib/baocao
USER 10001:10001

EXPOSE 8001 8002 6066

CMD ["python", "-m", "services.api"]
