# syntax=docker/dockerfile:1
#
# One image for every Itinera service. What runs is chosen by the command:
#   itinera serve <service> --host 0.0.0.0 --port <port> --role api|worker|all
#   itinera migrate <service>
#   itinera topics create
#
# Stage "build" turns the workspace packages and their pinned dependencies into
# wheels and installs them into /opt/venv; stage "runtime" copies only that venv and
# the schemas, so no compiler, pip cache or source tree reaches production.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Only what the packages need to build; .dockerignore keeps tests, caches and the
# deploy files out of the context.
COPY constraints.txt ./
COPY libs/common/ libs/common/
COPY services/ services/

# Every dependency, and the workspace packages themselves, as wheels pinned by
# constraints.txt; then an offline install of exactly those wheels into the venv.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels -c constraints.txt ./libs/common ./services/*

RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check


FROM ${PYTHON_IMAGE} AS runtime

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in Kubernetes and the
# venv's bytecode is compiled at install time. ITINERA_HEALTHCHECK_URL lets a
# service on another port reuse the image's HEALTHCHECK.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ITINERA_SCHEMAS_DIR=/app/schemas \
    ITINERA_HEALTHCHECK_URL=http://127.0.0.1:8001/healthz

# A fixed numeric id so Kubernetes can verify runAsNonRoot without a name lookup.
RUN groupadd --system --gid 10001 itinera \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app \
       --no-create-home --shell /usr/sbin/nologin itinera

# Owned by root and not writable by the service user: code and contracts are data.
COPY --from=build /opt/venv /opt/venv
COPY schemas/ /app/schemas/

WORKDIR /app
USER 10001:10001

EXPOSE 8001

# python:3.11-slim has no curl; urlopen raises (exit status 1) on refusal, timeout
# or any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['ITINERA_HEALTHCHECK_URL'], timeout=3)"]

CMD ["itinera", "serve", "ingestion", "--host", "0.0.0.0", "--port", "8001", "--role", "all"]
