#!/usr/bin/env bash
# Installs what building and testing POP needs on a fresh machine. rustup here
# runs with RUSTUP_AUTO_INSTALL=0, so rust-toolchain.toml alone installs
# nothing: this script does it explicitly. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^${toolchain}-"; then
  echo "bootstrap: installing Rust ${toolchain}" >&2
  rustup toolchain install "${toolchain}" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 \
    --no-self-update
fi
for component in rustfmt clippy; do
  if ! rustup component list --toolchain "${toolchain}" --installed | grep -q "^${component}"; then
    rustup component add "${component}" --toolchain "${toolchain}"
  fi
done
# Plugins (plugins/, schedulers/) are WebAssembly components built by
# host/builtin-plugins for this target.
if ! rustup target list --toolchain "${toolchain}" --installed | grep -qx "wasm32-wasip2"; then
  rustup target add wasm32-wasip2 --toolchain "${toolchain}"
fi
