# The `pop-sample` handler image (registry type `samplePod`): POP's sample
# handler, reporting its result through its pod's annotations with
# `pop-pod-report`. Build from the repository root:
# docker build -f deploy/docker/pop-sample.Dockerfile -t pop-sample:1.0.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
 && cargo build --release --locked --bin pop-sample-handler -p pop-handlers-registry \
 && cargo build --release --locked --bin pop-pod-report -p pop-kube

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home pop
COPY --from=build /src/target/release/pop-sample-handler /src/target/release/pop-pod-report /usr/local/bin/
COPY deploy/docker/pop-sample-entrypoint.sh /usr/local/bin/pop-sample
USER 10001
ENTRYPOINT ["/usr/local/bin/pop-sample"]
