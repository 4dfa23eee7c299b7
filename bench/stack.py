#!/usr/bin/env python3
"""Static stack bound of every chunkprov_* function in linked Cortex-M33 images.

    bench/stack.py IMAGE.elf [IMAGE.elf ...]

Reads the disassembly (arm-none-eabi-objdump), takes each function's frame from its prologue
(push/stmdb of registers, vpush, `sub sp, #n`, `str rX, [sp, #-n]!`) and its callees from its
direct calls and tail branches (bl, b, b.w to another function), and prints for each function of
the C ABI the deepest chain: the sum of the frames along it, and the chain itself.

A bound for the library's own code: calls through function pointers (the platform's callbacks)
are not followed, so the callbacks' stack comes on top; a tail branch is counted as a call (its
caller's frame is in fact popped first), so chains that end in one are slightly overstated. The
library does not recurse (a cycle would be reported). The measured figures (tests/c/qemu/stack.h)
are what the C test suite's calls reached, callbacks included.

Output: one line per function, "STATIC <function> <bytes> <frame>[<bytes>] > ...".
"""
import re
import subprocess
import sys

FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")
TARGET = re.compile(r"<([^+>]+)>")


def registers(spec):
    n = 0
    for r in spec.split(","):
        r = r.strip()
        if "-" in r:
            a, b = r.split("-")
            n += int(b.strip()[1:]) - int(a.strip()[1:]) + 1
        elif r:
            n += 1
    return n


def parse(elf):
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", elf],
                         capture_output=True, text=True, check=True).stdout
    funcs = {}
    cur = None
    for line in dis.splitlines():
        m = FUNC.match(line)
        if m:
            cur = m.group(2)
            funcs[cur] = {"frame": 0, "calls": set(), "dynamic": False}
            continue
        m = INSN.match(line) if cur else None
        if not m:
            continue
        op, args = m.group(1), m.group(2)
        f = funcs[cur]
        regs = re.search(r"\{(.*)\}", args)
        if (op == "push" or (op.startswith("stmdb") and args.startswith("sp!"))) and regs:
            f["frame"] += 4 * registers(regs.group(1))
        elif op.startswith("vpush") and regs:
            f["frame"] += 8 * registers(regs.group(1).replace("d", "r"))
        elif op in ("sub", "sub.w", "subw") and re.match(r"sp, (sp, )?", args):
            imm = re.match(r"sp, (sp, )?#(\d+)", args)
            if imm:
                f["frame"] += int(imm.group(2))
            else:
                f["dynamic"] = True
        elif op.startswith("str") and re.search(r"\[sp, #-(\d+)\]!", args):
            f["frame"] += int(re.search(r"\[sp, #-(\d+)\]!", args).group(1))
        if op in ("bl", "b", "b.w", "b.n"):
            t = TARGET.search(args)
            if t and t.group(1) != cur:
                f["calls"].add(t.group(1))
    return funcs


def deepest(funcs, name, memo, path=()):
    if name in memo:
        return memo[name]
    if name in path:
        return (0, [name + " (cycle)"])
    f = funcs.get(name)
    if f is None:
        return (0, [])
    best = (0, [])
    for callee in sorted(f["calls"]):
        d = deepest(funcs, callee, memo, path + (name,))
        if d[0] > best[0]:
            best = d
    label = f"{short(name)}[{f['frame']}{'+dynamic' if f['dynamic'] else ''}]"
    result = (f["frame"] + best[0], [label] + best[1])
    memo[name] = result
    return result


def short(name):
    """The last path segment of a Rust symbol: Reassembler::feed -> feed."""
    m = re.match(r"_ZN(.*)17h[0-9a-f]{16}E$", name)
    if not m:
        return name
    parts, rest = [], m.group(1)
    while rest:
        n = re.match(r"(\d+)", rest)
        if not n:
            break
        k = int(n.group(1))
        parts.append(rest[len(n.group(1)):len(n.group(1)) + k])
        rest = rest[len(n.group(1)) + k:]
    if not parts:
        return name
    text = "::".join(parts[-2:])
    for code, char in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"),
                       ("$u7d$", "}"), ("$C$", ","), ("$RF$", "&"), ("..", "::")):
        text = text.replace(code, char)
    return text.lstrip("_")


def main():
    best = {}
    for elf in sys.argv[1:]:
        funcs = parse(elf)
        memo = {}
        for name in funcs:
            if re.fullmatch(r"chunkprov_[a-z0-9_]+", name):
                d = deepest(funcs, name, memo)
                if name not in best or d[0] > best[name][0]:
                    best[name] = d
    for name in sorted(best):
        total, chain = best[name]
        print(f"STATIC {name} {total} " + " > ".join(chain))


if __name__ == "__main__":
    main()
