#!/usr/bin/env bash
# chunkprov's test command: installs what is missing, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# `pip install` as a user puts its commands here.
export PATH="$HOME/.local/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

# Everything is also logged, to count the tests that ran for the closing line.
log=$(mktemp)
fresh=$(mktemp)
trap 'rm -f "$log" "$fresh"' EXIT
exec > >(tee "$log") 2>&1

step "setup"
bash scripts/setup.sh

step "format"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --all-targets -- -D warnings
cargo clippy -p chunkprov-ffi --all-targets -- -D warnings
cargo clippy -p chunkprov-ffi --no-default-features --all-targets -- -D warnings
cargo clippy -p chunkprov-device --features defmt --target thumbv8m.main-none-eabi -- -D warnings

step "Rust tests (the devkit's on real Mosquitto brokers; its end-to-end tests run the Lambda's binary)"
# The Lambda binary this build makes (its integration tests need it) is the one the end-to-end
# tests run: the same dev-profile build, nothing compiled twice.
export CHUNKPROV_LAMBDA_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/chunkprov-lambda"
cargo test --no-run
test -x "$CHUNKPROV_LAMBDA_BIN" || { echo "cargo test did not build $CHUNKPROV_LAMBDA_BIN" >&2; exit 1; }
cargo test

step "Cortex-M33 builds (32-bit size and alignment assertions of the C ABI)"
cargo build -p chunkprov-ffi --target thumbv8m.main-none-eabi
cargo build -p chunkprov-ffi --target thumbv8m.main-none-eabihf
cargo build -p chunkprov-ffi --target thumbv8m.main-none-eabi --no-default-features

step "include/chunkprov.h is what cbindgen generates"
cbindgen --quiet --config ffi/cbindgen.toml --crate chunkprov-ffi --output "$fresh" ffi
if ! diff -u include/chunkprov.h "$fresh"; then
    echo "include/chunkprov.h is stale: regenerate it with" >&2
    echo "  cbindgen --config ffi/cbindgen.toml --crate chunkprov-ffi --output include/chunkprov.h ffi" >&2
    exit 1
fi

step "C tests: host (ASan + UBSan) and Cortex-M33 under QEMU (soft and hard float)"
bash tests/c/qemu/selftest.sh
bash tests/c/run.sh

step "embedded-Linux app (-Wall -Wextra -Werror) and its C tests under ASan + UBSan"
# The library comes from target/release (built above), shared through CHUNKPROV_CARGO_TARGET_DIR.
cmake -G Ninja -S . -B build/linux-asan -DCHUNKPROV_SANITIZE=ON \
    -DCHUNKPROV_CARGO_TARGET_DIR="$PWD/target" >/dev/null
cmake --build build/linux-asan
ctest --test-dir build/linux-asan --output-on-failure | tee build/linux-asan/ctest.log
line=$(grep -E '^[0-9]+% tests passed' build/linux-asan/ctest.log | tail -n 1)
echo "PASS  app: $line"

step "zephyr-app: native_sim/native/64 and nrf9160dk/nrf9160 (Cortex-M33, arm-none-eabi-gcc)"
. scripts/zephyr-env.sh
zephyr_find
if [ -z "$ZEPHYR_BASE" ]; then
    echo "no Zephyr tree (ZEPHYR_BASE unset and no ~/zephyrproject/zephyr): zephyr-app not built"
else
    echo "Zephyr $ZEPHYR_VERSION at $ZEPHYR_BASE; modules: $ZEPHYR_MODULES; Python: $ZEPHYR_PYTHON"
    for board in native_sim/native/64 nrf9160dk/nrf9160; do
        dir=build/zephyr/$(echo "$board" | cut -d/ -f1)
        mkdir -p "$dir"
        start=$SECONDS
        if ! zephyr_build "$board" "$dir" >"$dir.log" 2>&1; then
            tail -n 60 "$dir.log" >&2
            echo "zephyr-app did not build for $board (log: $dir.log)" >&2
            exit 1
        fi
        echo "zephyr-app for $board: $dir/zephyr/zephyr.elf ($((SECONDS - start)) s)"
        grep -E '^ +(FLASH|RAM):' "$dir.log" || true
    done
fi

step "cloud: deployment template (cfn-lint; the Lambda's moto-backed tests ran with cargo test)"
cfn-lint deploy/template.yaml

rust=$(grep -hoE '^test result: ok\. [0-9]+ passed' "$log" | awk '{n += $4} END {print n + 0}')
c=$(grep -hoE '^PASS +[a-z]+: 100% tests passed, 0 tests failed out of [0-9]+' "$log" | awk '{n += $NF} END {print n + 0}')
step "all checks passed"
echo "checks: $((rust + c)) passed, 0 failed"
