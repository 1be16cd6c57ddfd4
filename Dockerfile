# A static failover-guard binary in a distroless image (non-root, no shell).
#   docker build -t ghcr.io/failover-guard/failover-guard:0.1.0 .
FROM rust:1.89-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY deploy/base/config.yaml ./deploy/base/config.yaml
COPY README.md ./
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/failover-guard /failover-guard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /failover-guard /failover-guard
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/failover-guard"]
CMD ["serve", "--config=/etc/failover-guard/config.yaml"]
