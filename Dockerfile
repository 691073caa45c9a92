# tiw-push-exporter container image.
#
#   docker build -t tiw-push-exporter:0.1.0 .
#   docker run --rm -p 9877:9877 tiw-push-exporter:0.1.0 demo --listen 0.0.0.0:9877
#   docker run --rm -p 9877:9877 -e TENCENTCLOUD_SECRET_ID -e TENCENTCLOUD_SECRET_KEY \
#       tiw-push-exporter:0.1.0 run --task 1400000001:your_task_id
#
# Two stages: `builder` turns the source into wheels (the project's and those of its runtime
# dependencies); the final stage installs exactly those wheels with no package index, so it holds
# no source tree, no build tooling and no pip cache. tests/test_packaging.py runs these same pip
# steps (and the HEALTHCHECK command) in a fresh virtualenv, and lints this file with hadolint.

# One base for both stages, pinned to a full Python patch version and Debian release.
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY exporter/ exporter/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# A fixed, unprivileged UID/GID (the Kubernetes manifests use the same numbers) and a directory it
# owns for --state-file.
RUN groupadd --system --gid 10001 tiw \
    && useradd --system --uid 10001 --gid tiw --home-dir /var/lib/tiw-exporter --no-create-home \
       --shell /usr/sbin/nologin tiw \
    && install -d -o tiw -g tiw -m 0750 /var/lib/tiw-exporter

# Keep in step with exporter.__version__ (a test checks); a release build may pass --build-arg.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tiw-push-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Tencent Cloud Interactive Whiteboard (TIW) push tasks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tiw-push-exporter/tiw-push-exporter" \
      org.opencontainers.image.documentation="https://github.com/tiw-push-exporter/tiw-push-exporter#deploy"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The builder's wheels are bind-mounted for this one step (BuildKit), so they never become a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/tiw_push_exporter-*.whl

WORKDIR /var/lib/tiw-exporter
USER 10001:10001

EXPOSE 9877
# /-/healthy needs no credentials even with basic auth configured. The port follows
# TIW_EXPORTER_LISTEN; with TLS (--web-config-file) override this check with an https URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TIW_EXPORTER_LISTEN', ':9877').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/-/healthy', timeout=4)"]

ENTRYPOINT ["tiw-exporter"]
CMD ["run"]
