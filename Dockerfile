# syntax=docker/dockerfile:1
# Two images from one file:
#   runtime  the deployed functions (FUNCTION_TARGET picks one; `python -m functions` reads the
#            function registry): requirements.txt, shared/ and functions/ — no operator code.
#            docker build --target runtime -t IMAGE .   docker run -e FUNCTION_TARGET=chat -p 8080:8080 IMAGE
#   ops      agentctl, for Cloud Build steps and Cloud Run Jobs: requirements-ops.txt, shared/ and ops/.
#            docker build --target ops -t OPS_IMAGE .   docker run OPS_IMAGE migrate status

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: runtime dependencies into a venv, then the functions, compiled to bytecode ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt
WORKDIR /app
COPY shared/ shared/
COPY functions/ functions/
# Bytecode compiled now, not at every cold start (the image's file system is read-only to the app).
RUN /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib /app

# --- build-ops: the runtime's venv plus what only agentctl needs, and the operations code --------
FROM ${PYTHON_IMAGE} AS build-ops
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt requirements-ops.txt /tmp/
RUN /opt/venv/bin/pip install --no-compile -r /tmp/requirements-ops.txt
WORKDIR /app
COPY shared/ shared/
COPY ops/ ops/
RUN /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib /app

# --- ops: agentctl as the entry point -------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS ops
RUN groupadd --gid 10001 ngx && useradd --uid 10001 --gid ngx --no-create-home --shell /usr/sbin/nologin ngx
COPY --from=build-ops /opt/venv /opt/venv
COPY --from=build-ops /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["python", "-m", "ops.cli"]
CMD ["--help"]

# --- runtime: the venv and the functions, no compilers, no pip cache, a user without privileges --
# Last, so that a plain `docker build` (and Cloud Run's source deploys) produce the runtime image.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 ngx && useradd --uid 10001 --gid ngx --no-create-home --shell /usr/sbin/nologin ngx
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    FUNCTION_TARGET=chat
USER 10001:10001
EXPOSE 8080
# exec form: the server is PID 1 and receives Cloud Run's SIGTERM (spans are flushed on it).
CMD ["python", "-m", "functions"]
