#!/usr/bin/env bash
# The main job: the local end-to-end provisioning demo. Installs what is missing
# (scripts/setup.sh), builds the Lambda and the devkit (dev profile), then starts the local stack
# (Mosquitto, the IoT emulator with the local CA, DynamoDB from moto, the Lambda's binary behind
# a Lambda Runtime API, the topic rules), provisions one simulated device in CSR mode with
# 256-byte packets, shows each step, proves the new certificate with a TLS connection, and stops
# everything. Extra arguments go to `chunkprov-devkit demo` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
# `pip install` as a user puts its commands here.
export PATH="$HOME/.local/bin:$PATH"
bash scripts/setup.sh
# One build of both, so their shared dependencies are built once.
cargo build --quiet -p chunkprov-lambda -p chunkprov-devkit --bins
export CHUNKPROV_LAMBDA_BIN="${CHUNKPROV_LAMBDA_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/chunkprov-lambda}"
exec "${CARGO_TARGET_DIR:-$PWD/target}/debug/chunkprov-devkit" demo "$@"
