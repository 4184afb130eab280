# The Chairside application image: web (gunicorn), Celery worker and beat all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var

WORKDIR /app
RUN useradd --create-home --uid 1000 chairside

COPY . .
RUN pip install --no-cache-dir --upgrade "pip>=25.1" \
    && pip install --no-cache-dir -e . \
    # A throwaway key: collectstatic needs settings, the real key comes from the environment.
    && SECRET_KEY=collectstatic-only-collectstatic-only-collectstatic-only-0000 \
       VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput \
    && mkdir -p /app/var/beat /app/var/archive && cp -r /tmp/build-var/static /app/var/static \
    && rm -rf /tmp/build-var && chown -R chairside:chairside /app/var

USER chairside
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--config", "python:config.gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3"]
