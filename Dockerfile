# syntax=docker/dockerfile:1
# Market Hub — production image (python -m hub).
# Build:  docker build -t market-hub .
# Run:    docker run --env-file .env -p 8000:8000 market-hub
# No secrets are baked in: SECRET_KEY, MONGODB_URL, REDIS_URL, ... come from the
# environment at run time (see .env.example and docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

# Unprivileged runtime user (numeric id so orchestrators can verify runAsNonRoot).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

# Dependency layer: rebuilt only when the runtime lock changes; exact versions, hashes checked.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# Application code (owned by root, read-only for the runtime user).
COPY hub/ ./hub/
COPY handlers/ ./handlers/
COPY store/ ./store/
COPY auth/ ./auth/
COPY static/ ./static/

# ./var/ is the only writable place (embedded-mode database and generated key).
RUN mkdir -p /app/var && chown app:app /app/var

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4).read()"]

STOPSIGNAL SIGTERM

CMD ["python", "-m", "hub"]
