#!/usr/bin/env bash
# Installs what the tests need beyond Rust into a venv under target/:
# `kubernetes-validate` (PyPI), which checks the manifests in
# deploy/kubernetes offline, and `moto[server]`, the stand-in for DynamoDB,
# SQS and S3 the AWS adapters are tested on. Safe to run again; prints the
# venv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-tools/venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/moto_server" ]; then
  echo "test-tools: installing kubernetes-validate and moto[server] into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0" "moto[server]==5.2.5"
fi
echo "$(pwd)/$venv/bin"
