# The `pop-sample` handler image (registry type `samplePod`): POP's sample
# handler built with `--features kubernetes`, so it reports progress and its
# result through its own pod's annotations (pop-handler; the pod is found by
# MY_POD_NAME and POD_NAMESPACE, the API server by the service account).
# `pop-pod-report` is in the image too, for shell handlers built on it.
# Build from the repository root:
# docker build -f deploy/docker/pop-sample.Dockerfile -t pop-sample:1.0.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pop-sample-handler -p pop-handlers-registry --features kubernetes \
 && cargo build --release --locked --bin pop-pod-report -p pop-kube

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home pop
COPY --from=build /src/target/release/pop-sample-handler /src/target/release/pop-pod-report /usr/local/bin/
USER 10001
ENTRYPOINT ["/usr/local/bin/pop-sample-handler"]
