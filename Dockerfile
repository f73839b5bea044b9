# syntax=docker/dockerfile:1
# The tcpmonitor operator image. From the repository root:
#
#   docker build -t ghcr.io/tcpmonitor-dev/tcpmonitor-operator:0.1.0 .
#
# (the release commands, for both architectures: README.md, "Releasing").
#
# Two stages: the build stage turns the project into a virtual environment, the final stage is a
# clean copy of the same slim Python base with that environment and nothing else: no compiler,
# no pip, no source tree. tests/unit/image/test_dockerfile.py checks these properties and runs
# hadolint.
#
# BASE_IMAGE replaces the official base with an equivalent one where Docker Hub is out of reach:
# .ci/provision-image builds one from Debian's packages (bookworm, Debian's Python 3.11) and
# tests/e2e/test_image.py builds this file on it with buildah and runs the result with podman.
ARG BASE_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/

# The project as a wheel, then a virtual environment without pip or setuptools, filled from
# binary wheels only: every dependency ships manylinux wheels, so nothing is compiled, and a
# dependency that would need a compiler fails the build here instead of growing the image.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/tcpmonitor \
 && python -m pip --python /opt/tcpmonitor/bin/python install --only-binary=:all: /wheels/*.whl \
 && /opt/tcpmonitor/bin/python -m compileall -f -q --invalidation-mode unchecked-hash \
      /opt/tcpmonitor/lib \
 && /opt/tcpmonitor/bin/tcpmonitor --version


FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tcpmonitor-operator" \
      org.opencontainers.image.description="Checkly-style TCP monitors as a native Kubernetes resource: the TcpMonitor operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tcpmonitor-dev/tcpmonitor-operator" \
      org.opencontainers.image.url="https://github.com/tcpmonitor-dev/tcpmonitor-operator" \
      org.opencontainers.image.documentation="https://github.com/tcpmonitor-dev/tcpmonitor-operator/blob/main/docs/install.md" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# The base image's pip, setuptools and wheel are build tools the operator never uses. The user
# entry gives UID 65532 a name: kopf asks for one at startup (getpass.getuser()) and fails
# for a UID that has none.
RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
 && rm -rf /usr/local/lib/python3.11/ensurepip \
 && groupadd --system --gid 65532 tcpmonitor \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tcpmonitor

COPY --from=build /opt/tcpmonitor /opt/tcpmonitor

# Nothing is written at run time except temporary files (a client certificate while it is
# loaded, the inline CA of a kubeconfig): bytecode is compiled at build time, and TMPDIR is the
# one writable mount (an emptyDir in the Helm chart), so the root filesystem can be read-only.
# USER answers getpass.getuser() also under an arbitrary UID without a passwd entry (OpenShift).
# MALLOC_MMAP_THRESHOLD_ pins glibc's threshold for mmap at 128 KiB: each TLS connection's
# 256 KiB read buffer is then its own mapping, given back when the probe ends. Left to adapt,
# glibc raises it after the first frees and the buffers of a burst of handshakes (the first
# probes of thousands of TLS monitors) stay in the heap for good (docs/scaling.md).
ENV PATH=/opt/tcpmonitor/bin:$PATH \
    MALLOC_MMAP_THRESHOLD_=131072 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    USER=tcpmonitor

# A numeric non-root UID and GID, so that Kubernetes can verify runAsNonRoot; the Helm chart
# runs the pod as the same IDs.
USER 65532:65532

# /metrics, /healthz and /readyz.
EXPOSE 8080

ENTRYPOINT ["tcpmonitor"]
CMD ["operator"]
