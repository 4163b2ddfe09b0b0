# One image for every Loopr process: web, beat, the central worker and probe
# workers. Which one a container runs is its command (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Dependencies first, so that a code change does not reinstall them.
RUN python -m venv /opt/venv
COPY requirements.txt /app/requirements.txt
RUN pip install -r /app/requirements.txt

# The code stays root-owned and read-only to the app; settings only need
# LOOPR_VAR_DIR to be writable.
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home loopr \
 && install -d -o loopr -g loopr /var/lib/loopr
WORKDIR /app
COPY . .
# collectstatic imports the settings, which insist on a SECRET_KEY: this one
# exists only for this build step and is in no image layer's environment.
RUN chmod 0755 docker/start \
 && SECRET_KEY=build-only LOOPR_VAR_DIR=/tmp/loopr-build python manage.py collectstatic --no-input --verbosity 0 \
 && rm -rf /tmp/loopr-build

ENV LOOPR_VAR_DIR=/var/lib/loopr \
    LOOPR_BIND=0.0.0.0 \
    PORT=8000
USER loopr
EXPOSE 8000
CMD ["/app/docker/start", "web"]
