#!/usr/bin/env bash
# Runs every test of the workspace: unit and table tests, the store
# conformance suite on SQLite, and the end-to-end tests that start the real
# `pop serve` on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
