#!/usr/bin/env bash
# The fleet benchmark (not part of CI's pass/fail): N simulated devices against a fresh local
# stack each time (real Mosquitto, the Lambda's binary behind a Runtime API with the template's
# reserved concurrency of 5, the IoT emulator, DynamoDB from moto), three runs per size:
#   1. every IoT API held to AWS's default rate (RegisterThing 10/s: the binding rate), all
#      devices at once,
#   2. the same rates, devices arriving on a ramp of 12 per second (1.2 x the binding rate),
#   3. unthrottled, all at once (the system's own capacity on this machine).
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
run() {
    echo
    echo "== $*"
    "$bin/chunkprov-devkit" fleet --device-timeout-ms 120000 "$@"
}
for n in "${sizes[@]}"; do
    # Held to AWS's rates: all at once (pulls and confirmations queue behind every request),
    # and a ramp at 1.2 times the binding rate (RegisterThing, 10/s), which keeps it saturated.
    run --devices "$n" --aws-rates --arrival burst
    run --devices "$n" --aws-rates --arrival ramp --rate 12
    # Unthrottled: the local stack's own capacity on this machine.
    run --devices "$n" --arrival burst
done
