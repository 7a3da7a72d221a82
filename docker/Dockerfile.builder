# Runtime images of avalon-api and avalon-ws — the builder path, for hosts with registry access (GitHub
# Actions): `cargo xtask image build --from source` builds this file with the repository as the context.
# Hosts without a registry use Dockerfile (the no-pull path) instead; the legacy builder builds every stage
# whatever --target says, so the pulling stages live in this separate file.
#
# cargo-chef splits the build so the dependency layer stays cached until Cargo.toml/Cargo.lock change:
# a one-line change in the services recompiles only the workspace crates.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm

FROM ${RUST_IMAGE} AS chef
# The slim rust image already carries ca-certificates, whose bundle stage-rootfs.sh copies.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies of avalon-api only: cargo-chef turns every local crate into an empty skeleton for the cook,
# and avalon-ws's socketioxide would then compile against the skeleton of the patched engineioxide in
# vendor/ (vendor/README.md). avalon-ws's few crates of its own are compiled by the full build below.
RUN cargo chef cook --release --locked --recipe-path recipe.json --package avalon-api
COPY . .
# The context has no .git (.dockerignore), so the revision comes in as an argument.
ARG AVALON_GIT_REVISION=unknown
RUN AVALON_GIT_REVISION="${AVALON_GIT_REVISION}" \
    cargo build --release --locked --package avalon-api --package avalon-ws \
 && sh docker/stage-rootfs.sh /staged target/release/avalon-api target/release/avalon-ws

FROM scratch AS staged
COPY --from=builder /staged/ /staged/

# ---- runtime stages (identical in Dockerfile and Dockerfile.builder) ----
FROM scratch AS runtime
# Loader, glibc and the libraries `ldd` lists; the CA bundle; an empty, writable data directory.
COPY --from=staged /staged/rootfs/ /
COPY --from=staged --chown=10001:10001 /staged/data/ /var/lib/avalon/
# BIND_ADDRESS: a container is reached through its own interface, whatever APP_ENV an overlay sets (the
# services bind loopback when APP_ENV=development and BIND_ADDRESS is unset).
ENV APP_ENV=production \
    BIND_ADDRESS=0.0.0.0 \
    CONFIG_DIR=/etc/avalon \
    DATA_DIR=/var/lib/avalon \
    LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /var/lib/avalon
# Numeric ids: scratch has no /etc/passwd, and Kubernetes' runAsNonRoot can only verify a number.
USER 10001:10001

FROM runtime AS api
COPY --from=staged /staged/bin/avalon-api /usr/local/bin/avalon-api
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/usr/local/bin/avalon-api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/avalon-api"]
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="avalon-api" \
      org.opencontainers.image.description="Avalon HTTP API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

FROM runtime AS ws
COPY --from=staged /staged/bin/avalon-ws /usr/local/bin/avalon-ws
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/usr/local/bin/avalon-ws", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/avalon-ws"]
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="avalon-ws" \
      org.opencontainers.image.description="Avalon Socket.IO game server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
