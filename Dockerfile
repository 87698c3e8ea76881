FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY billing_project ./billing_project
COPY accounts ./accounts
COPY orgs ./orgs
COPY billing ./billing
COPY usage ./usage
RUN pip install --no-cache-dir .
COPY . .
# Collected and fingerprinted at build time; WhiteNoise serves them from the app.
RUN DATABASE_URL=postgres://build@localhost/build SECRET_KEY=build-only STATIC_MANIFEST=true \
    python manage.py collectstatic --noinput
ENV STATIC_MANIFEST=true
# var/metrics: every process's counters for /metrics (a volume web, worker and beat share).
RUN useradd --create-home tollgate && mkdir -p var/metrics && chown -R tollgate /app
USER tollgate
EXPOSE 8000
CMD ["gunicorn", "-c", "python:billing_project.gunicorn_conf", "billing_project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
