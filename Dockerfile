# syntax=docker/dockerfile:1
# One image for the four functions; FUNCTION_TARGET (chat, stream, cache_maintenance, backup) picks
# the handler. Build: docker build -t IMAGE .   Run: docker run -e FUNCTION_TARGET=chat -p 8080:8080 IMAGE

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies into a venv, then the product, all compiled to bytecode ----------------
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

# --- runtime: the venv and the code, no compilers, no pip cache, a user without privileges -------
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
# exec: the server is PID 1 and receives Cloud Run's SIGTERM (spans are flushed on it).
CMD ["sh", "-c", "exec functions-framework --target \"$FUNCTION_TARGET\" --source \"/app/functions/$FUNCTION_TARGET/main.py\" --asgi --host 0.0.0.0 --port \"$PORT\""]
