#!/usr/bin/env bash
# chunkprov benchmark: state sizes; what libchunkprov.a adds to a linked Cortex-M33 image, with
# logging and without; the stack each C function needs on the Cortex-M33; and the cost per
# received byte against SHA-256 + one copy of the same bytes, on the emulated Cortex-M33
# (instructions, QEMU -icount) and on the host (nanoseconds). Not part of CI's pass/fail: it
# prints figures, with the targets beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/setup.sh
out=build/bench
mkdir -p "$out"
m33=(-G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/arm-none-eabi-m33.cmake" -DCHUNKPROV_FLOAT_ABI=soft)

echo "== building (release: opt-level z, LTO; Cortex-M33 with logging and without)"
cargo build -q -p chunkprov-ffi --release
cmake -S bench/c -B "$out/host" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCHUNKPROV_LIB="$root/target/release/libchunkprov.a" >/dev/null
cmake --build "$out/host" >/dev/null
# Each Cortex-M33 archive is copied out of target/: when features change, cargo may put back a
# cached archive with its old time stamp, which a build system would take for unchanged.
for log in on off; do
    features=()
    [ $log = off ] && features=(--no-default-features)
    cargo build -q -p chunkprov-ffi --release --target thumbv8m.main-none-eabi "${features[@]}"
    mkdir -p "$out/lib-log-$log"
    cp target/thumbv8m.main-none-eabi/release/libchunkprov.a "$out/lib-log-$log/"
    cmake -S bench/c -B "$out/m33-log-$log" "${m33[@]}" \
        -DCHUNKPROV_LIB="$root/$out/lib-log-$log/libchunkprov.a" >/dev/null
    cmake --build "$out/m33-log-$log" >/dev/null 2>&1
done
# Stack: the C test suite on the Cortex-M33 with every chunkprov_* call measured and none
# limited (tests/c/qemu/stack.h).
cmake -S tests/c -B "$out/stack" "${m33[@]}" -DCHUNKPROV_LIB="$root/$out/lib-log-on/libchunkprov.a" \
    -DCHUNKPROV_STACK_BUDGET=0 >/dev/null
cmake --build "$out/stack" >/dev/null 2>&1

echo "== running"
cargo run -q -p chunkprov-device --example sizes > "$out/sizes.txt"
"$out/host/bench" > "$out/host.txt"
tests/c/qemu/run.sh "$out/m33-log-on/bench.elf" -icount shift=0 > "$out/m33.txt"
: > "$out/stack.txt"
for elf in "$out"/stack/test_*.elf; do
    name=$(basename "$elf" .elf)
    if ! QEMU_TIMEOUT=600 tests/c/qemu/run.sh "$elf" > "$out/stack/$name.log" 2>&1; then
        echo "warning: $name failed under QEMU: only its calls up to the failure are measured" \
            "($out/stack/$name.log)" >&2
    fi
    grep '^STACK ' "$out/stack/$name.log" >> "$out/stack.txt" || true
done
python3 bench/stack.py "$out"/stack/test_*.elf > "$out/stack-static.txt"

python3 bench/report.py "$out" include/chunkprov.h
