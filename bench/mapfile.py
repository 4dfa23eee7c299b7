"""What a static library contributes to a linked image, read from a GNU ld map file (used by
bench/report.py and by scripts/bench.sh's zephyr-app figures)."""
import re


def map_sections(path):
    """(output section kind, bytes, input file) of every input section linked, from a GNU ld map."""
    lines = open(path).read().split("\n")
    # Skip the list of discarded input sections: only what was linked counts.
    start = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
    pending = None
    for line in lines[start:]:
        m = re.match(r"^ (\.[\w.$]+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.[\w.$]+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        name = (m.group(1) or pending) if m else None
        pending = None
        if m and name:
            yield name, int(m.group(2), 16), m.group(3)


def contribution(path):
    """Bytes of libchunkprov.a's input sections, by output section kind."""
    sizes = {".text": 0, ".rodata": 0, ".data": 0, ".bss": 0}
    for name, size, source in map_sections(path):
        if "libchunkprov.a" in source:
            for kind in sizes:
                if name.startswith(kind):
                    sizes[kind] += size
    return sizes
