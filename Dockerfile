# syntax=docker/dockerfile:1.7
#
# clodo-operator image: a release build of the operator binary on distroless, running as non-root.
#
#   docker build -t clodo-operator:0.1.0 .
#   docker run --rm clodo-operator:0.1.0 crds      # any subcommand; the default is `run`
#
# The whole workspace is the build context (see .dockerignore): the operator's Cargo.toml is the
# workspace root, and cargo needs every member (cloudflare-emulator, kube-fake-api,
# cloudflare-client, ...) present to resolve it, even though only the operator binary is built.

ARG RUST_VERSION=1.95
# The build stage's Debian release must match the runtime's glibc (distroless cc-debian12).
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and incremental artifacts between builds; the binary is
# copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin clodo-operator \
 && install -D -m 0755 target/release/clodo-operator /out/clodo-operator

# glibc + libgcc + CA certificates, no shell, user nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="clodo-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs Cloudflare Workers services declared as custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/clodo-operator /usr/local/bin/clodo-operator
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/clodo-operator"]
CMD ["run"]
