#!/usr/bin/env python3
"""The figures of scripts/bench.sh, from what it left in its output directory.

    bench/report.py build/bench include/chunkprov.h
"""
import re
import sys

from mapfile import contribution, map_sections

out, header = sys.argv[1], sys.argv[2]

# The targets the device library is held to.
REASSEMBLER_LOG = 8 * 1024
CLIENT_LOG = 18 * 1024
CLIENT_NO_LOG = 16 * 1024
CLIENT_AIM = 12 * 1024
STACK = 1536
RATIO = 1.5


def libc_mem(path):
    """Bytes of the C library's memcpy & co. in the image, and compiler_builtins members left."""
    libc, builtins = 0, 0
    for name, size, source in map_sections(path):
        if name.startswith(".text") and re.search(r"libc(_nano)?\.a\(lib_a-(aeabi_mem|mem|strlen)", source):
            libc += size
        if "compiler_builtins" in source and name.startswith(".text"):
            builtins += size
    return libc, builtins


def verdict(value, limit):
    return "ok" if value <= limit else "OVER"


sizes = dict(l.split()[1:] for l in open(f"{out}/sizes.txt"))
print("\nState (bytes, fixed, no heap)")
print(f"  reassembler {sizes['reassembler']:>5}   (target <= 256 + one write unit)")
print(f"  store       {sizes['store']:>5}")
print(f"  client      {sizes['client']:>5}   (reassembler and store included)")

print("\nlibchunkprov.a in a linked Cortex-M33 image (thumbv8m.main-none-eabi, opt-level z, LTO,")
print("--gc-sections; memcpy & co. from newlib-nano: cmake/chunkprov.cmake)")
print(f"  {'image':<52}{'log':>4}{'.text':>8}{'.rodata':>9}{'total':>8}   target")
rows = [
    ("footprint_reassembler", "reassembler only", "on", f"<= {REASSEMBLER_LOG}", REASSEMBLER_LOG),
    ("footprint_reassembler", "reassembler only", "off", "", None),
    ("footprint_client", "client (reassembler, store, journal, JSON, SHA-256)", "on", f"<= {CLIENT_LOG}",
     CLIENT_LOG),
    ("footprint_client", "", "off", f"<= {CLIENT_NO_LOG} (aim {CLIENT_AIM})", CLIENT_NO_LOG),
]
for image, label, log, target, limit in rows:
    s = contribution(f"{out}/m33-log-{log}/{image}.map")
    total = s[".text"] + s[".rodata"]
    mark = f"   {verdict(total, limit)}" if limit else ""
    if s[".data"] or s[".bss"]:
        mark += f"   (.data {s['.data']}, .bss {s['.bss']})"
    print(f"  {label:<52}{log:>4}{s['.text']:>8}{s['.rodata']:>9}{total:>8}   {target}{mark}".rstrip())
libc, builtins = libc_mem(f"{out}/m33-log-on/footprint_client.map")
print(f"  newlib-nano's memcpy, memset, memcmp, strlen, __aeabi_mem* in the client image: {libc} bytes")
print(f"  (the firmware's C library, not counted above); compiler_builtins code linked: {builtins} bytes")

# Stack: the most any call of the C test suite needed, and the static bound of the library's code.
measured = {}
for line in open(f"{out}/stack.txt"):
    _, name, used, calls, _ = line.split()
    m = measured.setdefault(name, [0, 0])
    m[0] = max(m[0], int(used))
    m[1] += int(calls)
static = {}
for line in open(f"{out}/stack-static.txt"):
    parts = line.split(" ", 3)
    static[parts[1]] = (int(parts[2]), parts[3].strip())
declared = re.findall(r"^[a-z].*?\b(chunkprov_[a-z0-9_]+)\(", open(header).read(), re.M)
print("\nStack per C function on the Cortex-M33 (bytes below the caller's SP; logging on)")
print("  measured: the deepest any call of the C test suite reached under QEMU, callbacks included")
print("  static:   the deepest chain of the library's own frames (bench/stack.py), callbacks excluded")
print(f"  {'function':<36}{'measured':>9}{'calls':>8}{'static':>8}   target")
for name in declared:
    used, calls = measured.get(name, (None, 0))
    bound = static.get(name, (None, ""))[0]
    worst = max(v for v in (used, bound) if v is not None) if (used or bound) else None
    mark = verdict(worst, STACK) if worst is not None else "not called"
    print(f"  {name:<36}{used if used is not None else '-':>9}{calls:>8}"
          f"{bound if bound is not None else '-':>8}   <= {STACK} {mark}")
over = [n for n in declared if n in static and static[n][0] > STACK]
for name in over:
    print(f"  {name}: {static[name][1]}")

def results(path):
    return [l.split() for l in open(path) if l.startswith("RESULT")]

print("\nFeeding a bundle as whole frames into RAM flash, against SHA-256 + memcpy of the same bytes")
print(f"  {'payload':>8}{'frames':>8}{'bytes':>7}   {'Cortex-M33 insns/B':>18}{'baseline':>10}{'ratio':>7}"
      f"   {'host ns/B':>10}{'baseline':>10}{'ratio':>7}")
host = {r[1]: r for r in results(f"{out}/host.txt")}
for r in results(f"{out}/m33.txt"):
    payload, frames, n, lib, base = r[1], r[2], int(r[3]), int(r[4]), int(r[5])
    h = host[payload]
    hl, hb = int(h[4]), int(h[5])
    mark = f"   {verdict(lib / base, RATIO)}" if int(payload) >= 256 else ""
    print(f"  {payload:>8}{frames:>8}{n:>7}   {lib/n:>18.1f}{base/n:>10.1f}{lib/base:>7.2f}"
          f"   {hl/n:>10.2f}{hb/n:>10.2f}{hl/hb:>7.2f}{mark}")
print(f"  target: ratio <= {RATIO} on the Cortex-M33 for frames >= 256 bytes")
