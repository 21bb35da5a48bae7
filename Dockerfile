# The bot's image: `docker compose up -d` (compose.yaml) or `docker build -t zai-video-bot .`
# Installs exactly what `make run` installs (requirements.lock, hashes required) and runs the
# same command; secrets come from the environment (.env via compose), never from the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin videobot \
    && mkdir -p /data \
    && chown videobot:videobot /data \
    && chmod 0700 /data

WORKDIR /app
COPY requirements.lock ./
RUN python -m pip install --require-hashes -r requirements.lock
COPY bot/ bot/
COPY cogs/ cogs/
COPY storage/ storage/

# The database (and its scratch files) live on the volume; metrics and /healthz on 9108.
ENV DATABASE_URL=sqlite:////data/bot.db \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9108
VOLUME ["/data"]
EXPOSE 9108
USER videobot

# SIGTERM shuts down like Ctrl-C: submits in flight land first (compose gives it 60 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot", "health"]
CMD ["python", "-m", "bot"]
