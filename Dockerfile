# LANP scoring service. Build:  docker build -t lanp:cpu .   Run: see docs/deployment.md (model directory as a volume).
# The default image has no torch (under 1 GB): it scores with the networks `lanp export` wrote into the model
# directory, run by ONNX Runtime. --build-arg TORCH_INDEX=<a PyTorch wheel index> adds torch (the GPU image,
# docker/compose.gpu.yaml), which scores any model directory on the GPU.

# The base: any Debian-like image with Python 3.11 and venv. Users take python:3.11-slim; where no registry can be
# reached, scripts/container-test.sh builds one from Debian packages and passes --build-arg BASE_IMAGE=....
ARG BASE_IMAGE=python:3.11-slim

# --- build stage: a venv with the pinned runtime dependencies and the project -----------------------------------
FROM ${BASE_IMAGE} AS build
LABEL org.opencontainers.image.title=lanp-vad
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
COPY docker/requirements.lock docker/requirements.lock
RUN pip install -r docker/requirements.lock
# torch and the rest of the torch extra only when an index is given (the GPU image: the CUDA wheels' index).
ARG TORCH_INDEX=""
COPY docker/requirements-torch.lock docker/requirements-torch.lock
RUN if [ -n "$TORCH_INDEX" ]; then \
        pip install --index-url "$TORCH_INDEX" torch==2.14.1 torchvision==0.29.1 \
        && pip install -r docker/requirements-torch.lock; \
    fi
COPY pyproject.toml README.md ./
COPY lanp_vad lanp_vad
COPY models models
COPY pipeline pipeline
COPY service service
# The project becomes a wheel installed in the runtime stage: the venv layer stays cached when only the sources
# change.
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime stage: the venv, an unprivileged user, settings from the environment --------------------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title=lanp-vad
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANP_MODEL_DIR=/models \
    LANP_WORK_DIR=/var/lib/lanp \
    LANP_DEVICE=auto \
    TORCH_HOME=/var/lib/lanp/torch
RUN groupadd --gid 10001 lanp && useradd --create-home --uid 10001 --gid 10001 lanp \
    && mkdir -p /var/lib/lanp && chown 10001:10001 /var/lib/lanp
COPY --from=build /opt/venv /opt/venv
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl && rm -r /tmp/wheels
COPY docker/entrypoint.sh /app/docker/entrypoint.sh
WORKDIR /app
USER 10001:10001
VOLUME ["/models", "/var/lib/lanp"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["lanp", "serve", "--host", "0.0.0.0", "--port", "8000"]
