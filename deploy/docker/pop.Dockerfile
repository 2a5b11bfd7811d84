# The `pop` server with the Kubernetes pod launcher (`pop serve --kubernetes`).
# Build from the repository root: docker build -f deploy/docker/pop.Dockerfile -t pop:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
 && cargo build --release --locked --features kubernetes --bin pop --bin pop-sample-handler

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --home-dir /var/lib/pop pop
COPY --from=build /src/target/release/pop /src/target/release/pop-sample-handler /usr/local/bin/
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pop"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/pop"]
