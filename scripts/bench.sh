#!/usr/bin/env bash
# chunkprov benchmark: state sizes, what libchunkprov.a adds to a linked Cortex-M33 image, and
# the cost per received byte against SHA-256 + one copy of the same bytes, on the emulated
# Cortex-M33 (instructions, QEMU -icount) and on the host (nanoseconds). Not part of CI's
# pass/fail: it prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/setup.sh
out=build/bench
mkdir -p "$out"

echo "== building (release: opt-level z, LTO)"
cargo build -q -p chunkprov-ffi --release
cargo build -q -p chunkprov-ffi --release --target thumbv8m.main-none-eabi
cmake -S bench/c -B "$out/host" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCHUNKPROV_LIB="$root/target/release/libchunkprov.a" >/dev/null
cmake --build "$out/host" >/dev/null
cmake -S bench/c -B "$out/m33" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/arm-none-eabi-m33.cmake" \
    -DCHUNKPROV_FLOAT_ABI=soft -DCHUNKPROV_LIB="$root/target/thumbv8m.main-none-eabi/release/libchunkprov.a" >/dev/null
cmake --build "$out/m33" >/dev/null 2>&1

echo "== running"
cargo run -q -p chunkprov-device --example sizes > "$out/sizes.txt"
"$out/host/bench" > "$out/host.txt"
tests/c/qemu/run.sh "$out/m33/bench.elf" -icount shift=0 > "$out/m33.txt"

python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]

def contribution(path):
    """Bytes of libchunkprov.a's input sections in a GNU ld map, by output section kind."""
    sizes = {".text": 0, ".rodata": 0, ".data": 0, ".bss": 0}
    pending = None
    lines = open(path).read().split("\n")
    # Skip the list of discarded input sections: only what was linked counts.
    start = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
    for line in lines[start:]:
        m = re.match(r"^ (\.[\w.$]+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.[\w.$]+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        name = (m.group(1) or pending) if m else None
        pending = None
        if not m or not name or "libchunkprov.a" not in m.group(3):
            continue
        for kind in sizes:
            if name.startswith(kind):
                sizes[kind] += int(m.group(2), 16)
    return sizes

sizes = dict(l.split()[1:] for l in open(f"{out}/sizes.txt"))
print("\nState (bytes, fixed, no heap)")
print(f"  reassembler {sizes['reassembler']:>5}   (target <= 256 + one write unit)")
print(f"  store       {sizes['store']:>5}")
print(f"  client      {sizes['client']:>5}   (reassembler and store included)")

print("\nlibchunkprov.a in a linked Cortex-M33 image (thumbv8m.main-none-eabi, opt-level z, LTO, --gc-sections)")
print(f"  {'image':<44}{'.text':>8}{'.rodata':>9}{'.data':>7}{'.bss':>7}")
for name, label in [("footprint_reassembler", "reassembler only"), ("footprint_client", "client (reassembler, store, JSON, SHA-256)")]:
    s = contribution(f"{out}/m33/{name}.map")
    print(f"  {label:<44}{s['.text']:>8}{s['.rodata']:>9}{s['.data']:>7}{s['.bss']:>7}")
print("  target: .text <= 12288 (everything)")

def results(path):
    return [l.split() for l in open(path) if l.startswith("RESULT")]

print("\nFeeding a bundle as whole frames into RAM flash, against SHA-256 + memcpy of the same bytes")
print(f"  {'payload':>8}{'frames':>8}{'bytes':>7}   {'Cortex-M33 insns/B':>18}{'baseline':>10}{'ratio':>7}   {'host ns/B':>10}{'baseline':>10}{'ratio':>7}")
host = {r[1]: r for r in results(f"{out}/host.txt")}
for r in results(f"{out}/m33.txt"):
    payload, frames, n, lib, base = r[1], r[2], int(r[3]), int(r[4]), int(r[5])
    h = host[payload]
    hl, hb = int(h[4]), int(h[5])
    print(f"  {payload:>8}{frames:>8}{n:>7}   {lib/n:>18.1f}{base/n:>10.1f}{lib/base:>7.2f}   {hl/n:>10.2f}{hb/n:>10.2f}{hl/hb:>7.2f}")
print("  target: ratio <= 1.5 on the Cortex-M33 for frames >= 256 bytes")
PY
