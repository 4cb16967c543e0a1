# The callback relay: gunicorn with threaded workers, as a non-root user.
# Build: docker build -t tack-relay .
# Run:   docker run -p 8000:8000 -v relay-data:/data \
#          -e RELAY_PUBLIC_URL=https://relay.example.com \
#          -e RELAY_CALLBACK_KEYS=k1:$(openssl rand -base64 32) \
#          -e RELAY_ALLOWED_REPO_IDS=123456789 tack-relay
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --home-dir /app --shell /usr/sbin/nologin relay \
    && mkdir -p /data \
    && chown relay:relay /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tack_action ./tack_action
COPY relay ./relay
RUN pip install --no-compile .

USER relay

# SQLite in WAL mode needs a local disk: mount a volume at /data. Set
# RELAY_DB_URL=postgresql://... to run several replicas instead.
ENV RELAY_DB_URL=sqlite:////data/relay.db \
    PORT=8000
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"

CMD ["gunicorn", "-c", "/app/relay/gunicorn.conf.py", "relay:create_app()"]
