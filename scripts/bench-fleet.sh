#!/usr/bin/env bash
# The fleet benchmark (not part of CI's pass/fail): N simulated devices, all arriving at once,
# against a fresh local stack (real Mosquitto, the Lambda's binary behind a Runtime API with the
# template's reserved concurrency of 5, the IoT emulator, DynamoDB from moto), run twice:
#   1. with every IoT API held to AWS's default rate (RegisterThing 10/s: the binding rate),
#   2. unthrottled (the system's own capacity on this machine).
# Each run prints devices per second (first arrival to last confirmation), p50/p99 latency,
# messages per device, IoT API calls (and throttles), and how many devices were verified (the
# certificate chains to the local device CA, carries the device's key, and the control plane has
# it ACTIVE and attached to the thing); a device not verified fails the command.
#
#   bash scripts/bench-fleet.sh              # 100 and 1000 devices
#   bash scripts/bench-fleet.sh 10 50        # other sizes
#
# Devices wait 120 s before asking again (longer than the queueing delay of 1,000 devices at
# 10 registrations per second), so the figures measure the stack, not device retries.
set -euo pipefail
cd "$(dirname "$0")/.."
# `pip install` as a user puts its commands here.
export PATH="$HOME/.local/bin:$PATH"
bash scripts/setup.sh
echo "== building the Lambda and the devkit (profile host-bench)"
cargo build --quiet --profile host-bench -p chunkprov-lambda -p chunkprov-devkit --bins
bin="${CARGO_TARGET_DIR:-$PWD/target}/host-bench"
export CHUNKPROV_LAMBDA_BIN="$bin/chunkprov-lambda"
sizes=("$@")
((${#sizes[@]})) || sizes=(100 1000)
for n in "${sizes[@]}"; do
    for rates in --aws-rates ""; do
        echo
        echo "== $n devices ${rates:+(AWS default rates)}${rates:-(unthrottled)}"
        "$bin/chunkprov-devkit" fleet --devices "$n" --arrival burst --device-timeout-ms 120000 $rates
    done
done
