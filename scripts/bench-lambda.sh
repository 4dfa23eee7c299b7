#!/usr/bin/env bash
# The Lambda's benchmark (not part of CI's pass/fail; CI stays on the dev profile):
#   1. size of the release binary (host architecture; `cargo lambda build --release --arm64`
#      builds the deployed one),
#   2. start-up of the release binary against a local Lambda Runtime API
#      (`cargo lambda watch --only-lambda-apis`), with moto_server standing in for AWS: the time
#      from exec to its "initialized" log line (clients built, about to poll for the first
#      invocation: a proxy for AWS's Init Duration, not a measurement of it), and to the first
#      invocation's answer,
#   3. handler time for a 4 KB bundle in 256-byte frames (the in-memory fakes; no network).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/lambda}"

command -v moto_server >/dev/null || { echo "moto_server missing: run scripts/setup.sh" >&2; exit 1; }
if ! command -v cargo-lambda >/dev/null; then
    echo "bench: installing cargo-lambda (PyPI)"
    python3 -m pip install --quiet cargo-lambda
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

echo "== building the release binary"
cargo build --quiet --release -p chunkprov-lambda --bin chunkprov-lambda --example bench_handler
bin="$CARGO_TARGET_DIR/release/chunkprov-lambda"
size=$(stat -c %s "$bin")
stripped=$(mktemp); cp "$bin" "$stripped"; strip "$stripped"; ssize=$(stat -c %s "$stripped"); rm -f "$stripped"
echo "release binary ($(uname -m)): $size bytes ($ssize stripped)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(free_port); rt_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
moto_server -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 & pids+=($!)
cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$rt_port" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 300); do
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && \
    (exec 3<>"/dev/tcp/127.0.0.1/$rt_port") 2>/dev/null && break
    sleep 0.1
done
python3 - "$moto_port" <<'PY'
import sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="eu-west-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
ddb.create_table(TableName="chunkprov", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                          [("serial", "S"), ("pending_pk", "S"), ("pending_since", "N")]],
    KeySchema=[{"AttributeName": "serial", "KeyType": "HASH"}],
    GlobalSecondaryIndexes=[{"IndexName": "pending", "Projection": {"ProjectionType": "ALL"},
        "KeySchema": [{"AttributeName": "pending_pk", "KeyType": "HASH"},
                      {"AttributeName": "pending_since", "KeyType": "RANGE"}]}])
PY

echo "== start-up (release binary, local Runtime API, moto)"
sweep='{"version":"0","id":"b","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":[],"detail":{}}'
python3 - "$bin" "$rt_port" "$moto_port" "$sweep" <<'PY'
import os, subprocess, sys, time
binary, rt_port, moto_port, sweep = sys.argv[1:]
env = dict(os.environ,
    AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{rt_port}/.rt", AWS_LAMBDA_FUNCTION_NAME="_",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
    AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", IOT_DATA_ENDPOINT=f"http://127.0.0.1:{moto_port}",
    TABLE_NAME="chunkprov")
for run in range(1, 6):
    start = time.monotonic()
    fn = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    init = None
    for line in fn.stdout:
        if "initialized" in line:
            init = time.monotonic() - start
            break
    if init is None:
        sys.exit("the function exited before it was initialized")
    subprocess.run(["cargo", "lambda", "invoke", "_", "--invoke-address", "127.0.0.1",
                    "--invoke-port", rt_port, "--data-ascii", sweep],
                   check=True, stdout=subprocess.DEVNULL)
    answered = time.monotonic() - start
    fn.kill(); fn.wait()
    print(f"run {run}: initialized {init*1000:.1f} ms after exec (proxy for Init Duration); "
          f"first invocation (a sweep against moto, through `cargo lambda invoke`) answered at {answered*1000:.0f} ms")
PY

echo "== handler time (release)"
"$CARGO_TARGET_DIR/release/examples/bench_handler"
