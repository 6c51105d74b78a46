# LANP scoring service. Build:  docker build -t lanp .   Run: see docker/README.md (model directory as a volume).

# --- build stage: a venv with the pinned runtime dependencies and the project -----------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
# torch/torchvision from the PyTorch CPU index (no CUDA libraries); the GPU image swaps this index, see docker/README.md.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX" torch==2.14.1 torchvision==0.29.1
COPY docker/requirements.lock docker/requirements.lock
RUN pip install -r docker/requirements.lock
COPY pyproject.toml README.md ./
COPY models models
COPY pipeline pipeline
COPY service service
RUN pip install --no-deps .

# --- runtime stage: the venv, an unprivileged user, settings from the environment --------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANP_MODEL_DIR=/models \
    LANP_WORK_DIR=/var/lib/lanp \
    LANP_DEVICE=auto \
    TORCH_HOME=/var/lib/lanp/torch
RUN groupadd --gid 10001 lanp && useradd --create-home --uid 10001 --gid 10001 lanp \
    && mkdir -p /var/lib/lanp && chown 10001:10001 /var/lib/lanp
COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /app/docker/entrypoint.sh
WORKDIR /app
USER 10001:10001
VOLUME ["/models", "/var/lib/lanp"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["lanp", "serve", "--host", "0.0.0.0", "--port", "8000"]
