# ClaimLane serving image: the API (default command) and, with another command, the Celery worker.
#
#   docker build -t claimlane .
#   docker run -p 8000:8000 claimlane                                   # embedded mode (SQLite, local files)
#   docker run claimlane celery -A workers.celery_app worker --loglevel=INFO   # a worker
#
# Serving dependencies only (`pip install .`, no `[train]` extra): no torch in the image. The
# bundled model (models/weights/<version>/) is package data, installed with the package.

# An exact tag, never a floating one: bump it deliberately (and rerun make test).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv && pip install setuptools==84.2.1

WORKDIR /src

# Dependencies first, from pyproject.toml alone, at the tested versions of constraints.txt: this
# layer stays cached while only code changes.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# Then the package itself (not editable: the final stage has no source tree). The check after it
# fails the build, not the first claim, when no model is bundled or its checksum is wrong.
COPY . .
RUN pip install --no-deps . \
    && cd / && python -c "from models.inference import default_model_path, verify_checksum; \
p = default_model_path(); verify_checksum(p.parent); print('bundled model:', p)"

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CLAIMLANE_DATA_DIR=/var/lib/claimlane

RUN groupadd --system --gid 10001 claimlane \
    && useradd --system --uid 10001 --gid claimlane --home-dir /var/lib/claimlane --shell /usr/sbin/nologin claimlane \
    && install -d -o claimlane -g claimlane -m 0750 /var/lib/claimlane

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/claimlane
USER claimlane:claimlane

EXPOSE 8000

# The worker runs this image too but serves no HTTP: compose overrides the check for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["claimlane", "serve", "--host", "0.0.0.0", "--port", "8000"]
