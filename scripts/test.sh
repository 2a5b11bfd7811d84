#!/usr/bin/env bash
# Runs every test of the workspace: unit and table tests, the store
# conformance suite on SQLite, and the end-to-end tests that start the real
# `pop serve` on loopback ports. The tests' `pop` is built with the
# Kubernetes pod launcher (feature `kubernetes`), which they drive against
# the fake cluster; the `pop` of `scripts/pop serve` is built without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# Python tools the tests call (kubernetes-validate), on PATH for them.
PATH="$(scripts/test-tools.sh):$PATH"
export PATH
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features pop-server/kubernetes --no-fail-fast "$@"
else
  cargo test --workspace --features pop-server/kubernetes --no-fail-fast "$@"
fi
