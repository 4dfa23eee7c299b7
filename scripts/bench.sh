#!/usr/bin/env bash
# chunkprov benchmark: state sizes; what libchunkprov.a adds to a linked Cortex-M33 image, with
# logging and without; the stack each C function needs on the Cortex-M33; and the cost per
# received byte against SHA-256 + one copy of the same bytes, on the emulated Cortex-M33
# (instructions, QEMU -icount) and on the host (nanoseconds). With a Zephyr tree, also zephyr-app's
# images with and without the library and the stack its threads need. Not part of CI's
# pass/fail: it prints figures, with the targets beside them.
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

# ---------------------------------------------------------------- zephyr-app
# With a Zephyr tree (ZEPHYR_BASE or ~/zephyrproject/zephyr): the nrf9160dk/nrf9160 image with
# and without the library, and the stack each thread of the application needs, measured on a
# Cortex-M33: zephyr-app for mps2/an521/cpu0 under QEMU provisions itself against the local stack
# (Zephyr's IP stack over QEMU's user-mode network, TLS with Mbed TLS in the main thread) and the
# thread analyzer reports what every thread used.
. scripts/zephyr-env.sh
zephyr_find
if [ -z "$ZEPHYR_BASE" ]; then
    echo
    echo "zephyr-app: no Zephyr tree (ZEPHYR_BASE unset and no ~/zephyrproject/zephyr): not measured"
    exit 0
fi
zout=$root/$out/zephyr
mkdir -p "$zout"

echo
seconds=()
for board in native_sim/native/64 nrf9160dk/nrf9160; do
    name=$(echo "$board" | cut -d/ -f1)
    echo "== zephyr-app for $board (Zephyr $ZEPHYR_VERSION, from scratch)"
    rm -rf "${zout:?}/$name"
    start=$SECONDS
    zephyr_build "$board" "$zout/$name" >"$zout/$name.log" 2>&1 ||
        { tail -n 40 "$zout/$name.log"; exit 1; }
    seconds+=($((SECONDS - start)))
done

echo "== zephyr-app for mps2/an521/cpu0 against the local stack (QEMU)"
cargo build -q -p chunkprov-devkit -p chunkprov-lambda
stack_state=$zout/stack
rm -rf "$stack_state"
CHUNKPROV_LAMBDA_BIN=$root/target/debug/chunkprov-lambda \
    "$root/target/debug/chunkprov-devkit" stack --state "$stack_state" >"$zout/stack.log" 2>&1 &
stack_pid=$!
trap 'kill $stack_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
    [ -f "$stack_state/stack.json" ] && break
    kill -0 $stack_pid 2>/dev/null || { cat "$zout/stack.log"; exit 1; }
    sleep 0.5
done
[ -f "$stack_state/stack.json" ] || { echo "the local stack did not start" >&2; exit 1; }
"$root/target/debug/chunkprov-devkit" claim --batch bench --state "$stack_state" >/dev/null
claims=$zout/claims
mkdir -p "$claims"
cp "$stack_state/ca/server.crt" "$claims/ca.pem"
cp "$stack_state/claims/bench.crt" "$claims/claim.crt"
cp "$stack_state/claims/bench.key" "$claims/claim.key"
read -r claim_port device_port < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['claim_port'], d['device_port'])" "$stack_state/stack.json")
rm -rf "$zout/mps2"
zephyr_build mps2/an521/cpu0 "$zout/mps2" -DCONFIG_CHUNKPROV_APP_CLAIM_PEM_DIR=\"$claims\" \
    -DCONFIG_CHUNKPROV_APP_CLAIM_PORT="$claim_port" -DCONFIG_CHUNKPROV_APP_DEVICE_PORT="$device_port" \
    -DCONFIG_CHUNKPROV_APP_SERIAL=\"352656199999999\" >"$zout/mps2.log" 2>&1 ||
    { tail -n 40 "$zout/mps2.log"; exit 1; }
# The application resets at the end of its run; with -no-reboot that ends QEMU.
timeout 300 qemu-system-arm -cpu cortex-m33 -machine mps2-an521 -m 16 -nographic -vga none \
    -no-reboot -nic user -kernel "$zout/mps2/zephyr/zephyr.elf" >"$zout/mps2-run.log" 2>&1 </dev/null || true
kill $stack_pid 2>/dev/null || true

python3 - "$zout" "${seconds[0]}" "${seconds[1]}" <<'PY'
import re, subprocess, sys
sys.path.insert(0, "bench")
from mapfile import contribution
zout, native_seconds, nrf_seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def flash_ram(sizes):
    """Flash (code, constants, the load image of initialised data) and RAM (data, bss)."""
    return sizes[".text"] + sizes[".rodata"] + sizes[".data"], sizes[".data"] + sizes[".bss"]

def segments(elf):
    """Flash (bytes loaded from flash) and RAM (bytes occupied in RAM) from the ELF's LOAD
    segments, as the linker's memory report counts them."""
    out = subprocess.run(["arm-none-eabi-readelf", "-lW", elf], capture_output=True, text=True).stdout
    flash = ram = 0
    for line in out.splitlines():
        f = line.split()
        if not f or f[0] != "LOAD":
            continue
        virt, phys, filesz, memsz = int(f[2], 16), int(f[3], 16), int(f[4], 16), int(f[5], 16)
        if phys < 0x20000000:
            flash += filesz
        if virt >= 0x20000000:
            ram += memsz
    return flash, ram

def berkeley(elf):
    """text, data, bss of an ELF (GNU size)."""
    f = subprocess.run(["size", elf], capture_output=True, text=True).stdout.splitlines()[1].split()
    return int(f[0]), int(f[1]), int(f[2])

nat = f"{zout}/native_sim/zephyr"
text, data, bss = berkeley(f"{nat}/zephyr.elf")
lib_flash, lib_ram = flash_ram(contribution(f"{nat}/zephyr.map"))
print("\nzephyr-app on native_sim/native/64 (the Zephyr image zephyr.elf, x86-64; NSOS, Mbed TLS)")
print(f"  {'image':<36}{'text+data':>10}{'data+bss':>10}")
print(f"  {'with the library':<36}{text + data:>10}{data + bss:>10}")
print(f"  {'libchunkprov.a in it':<36}{lib_flash:>10}{lib_ram:>10}")
print(f"  {'without the library':<36}{text + data - lib_flash:>10}{data + bss - lib_ram:>10}")
print(f"  build from scratch: {native_seconds} s")

nrf = f"{zout}/nrf9160dk/zephyr"
flash, ram = segments(f"{nrf}/zephyr.elf")
lib_flash, lib_ram = flash_ram(contribution(f"{nrf}/zephyr.map"))
print("\nzephyr-app on nrf9160dk/nrf9160 (Cortex-M33, soft float; MQTT, TLS with Mbed TLS, flash map;")
print("upstream Zephyr: the IP stack and Mbed TLS a modem would replace are in this image)")
print(f"  {'image':<36}{'flash':>9}{'RAM':>9}")
print(f"  {'with the library':<36}{flash:>9}{ram:>9}")
print(f"  {'libchunkprov.a in it':<36}{lib_flash:>9}{lib_ram:>9}")
print(f"  {'without the library':<36}{flash - lib_flash:>9}{ram - lib_ram:>9}")
print(f"  build from scratch: {nrf_seconds} s")

run = open(f"{zout}/mps2-run.log", errors="replace").read()
print("\nStack each thread needed: zephyr-app on mps2/an521/cpu0 (Cortex-M33 under QEMU), one")
print("provisioning against the local stack (CSR mode; TLS handshakes with Mbed TLS in main)")
done = re.search(r"chunkprov: provisioned, slot (\w)", run)
msgs = re.search(r"chunkprov: messages: (.*)", run)
if not done:
    print("  the run did not provision; its console:")
    print("\n".join("    " + l for l in run.splitlines()[-30:]))
    sys.exit(1)
print(f"  provisioned into slot {done.group(1)}; {msgs.group(1) if msgs else ''}")
print(f"  {'thread':<28}{'used':>8}{'size':>8}")
for m in re.finditer(r"^\s*(\S[^:]*?)\s*: STACK: unused (\d+) usage (\d+) / (\d+)", run, re.M):
    print(f"  {m.group(1):<28}{m.group(3):>8}{m.group(4):>8}")
PY
