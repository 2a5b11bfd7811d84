#!/usr/bin/env bash
# Installs what the tests need beyond Rust: `kubernetes-validate` (PyPI),
# which checks the manifests in deploy/kubernetes offline, into a venv under
# target/. Safe to run again; prints the venv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-tools/venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "test-tools: installing kubernetes-validate into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi
echo "$(pwd)/$venv/bin"
