#!/usr/bin/env bash
# Runs every test of the workspace: unit and table tests, the store
# conformance suite on SQLite, and the end-to-end tests that start the real
# `pop serve` on loopback ports. The tests' `pop` is built with the
# Kubernetes pod launcher (feature `kubernetes`), which they drive against
# the fake cluster; the `pop` of `scripts/pop serve` is built without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# Python tools the tests call (kubernetes-validate, moto_server), on PATH for them.
PATH="$(scripts/test-tools.sh):$PATH"
export PATH
# One moto server (DynamoDB, SQS, S3) for the whole run, serving one request
# at a time (scripts/moto-server.py says why); every AWS test keeps to names
# of its own.
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/moto-server.py "$moto_port" >target/test-tools/moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (echo >"/dev/tcp/127.0.0.1/$moto_port") 2>/dev/null; then break; fi
  sleep 0.1
done
export POP_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features pop-server/kubernetes,pop-server/aws,pop-server/jwt --no-fail-fast "$@"
else
  cargo test --workspace --features pop-server/kubernetes,pop-server/aws,pop-server/jwt --no-fail-fast "$@"
fi
