#!/bin/bash
# Checks linked Cortex-M33 images for Rust panic machinery from `core`.
#
#   tests/c/panic_check.sh IMAGE.elf...
#
# The library promises "no panics"; if its panic paths were really dead,
# --gc-sections would drop core::panicking from a linked image. For every
# image this looks for symbols naming core's panicking module (v0 mangling
# `4core9panicking`, legacy `_ZN4core9panicking`, demangled
# `core::panicking`) or any other `panic` symbol, and prints them. For the
# first image with findings in each directory (one per float ABI) it also
# prints who calls them: the call graph
# (from `arm-none-eabi-objdump -d`) walked back from the panic symbols until
# functions outside `core`, i.e. the library functions that can panic, and
# the archive member each panic symbol was linked from (from IMAGE.map, if
# present).
#
# Exit status: 0 no panic symbols in any image, 1 found some, 2 usage/tools.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 IMAGE.elf..." >&2
    exit 2
fi
for tool in arm-none-eabi-readelf arm-none-eabi-objdump arm-none-eabi-c++filt; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 2; }
done

pattern='core[0-9]*9panicking|_ZN4core9panicking|core::panicking|[Pp]anic'

# Symbol names (column 8 of readelf -sW) matching the pattern.
panic_symbols() {
    arm-none-eabi-readelf -sW "$1" | awk 'NF >= 8 {print $8}' | grep -E "$pattern" | sort -u
}

# Reverse call graph from the panic symbols up to the first non-core callers.
callers_report() {
    local elf=$1
    arm-none-eabi-objdump -d --no-show-raw-insn "$elf" | awk -v pat="$pattern" '
        /^[0-9a-f]+ <[^>]+>:$/ {
            fn = $2; sub(/^</, "", fn); sub(/>:$/, "", fn); next
        }
        fn != "" && match($0, /<[^>]+>/) {
            callee = substr($0, RSTART + 1, RLENGTH - 2)
            sub(/\+0x[0-9a-f]+$/, "", callee)
            if (callee != fn && !((fn SUBSEP callee) in seen)) {
                seen[fn, callee] = 1
                callers[callee] = callers[callee] " " fn
            }
        }
        function is_core(s) { return s ~ /^_RN.*4core/ || s ~ /^_ZN4core/ || s ~ /^_ZN[0-9]+_\$LT\$core/ }
        END {
            n = 0
            for (c in callers) if (c ~ pat) { queue[n++] = c; inq[c] = 1 }
            for (i = 0; i < n; i++) {
                t = queue[i]
                k = split(callers[t], cs, " ")
                for (j = 1; j <= k; j++) {
                    c = cs[j]
                    if (is_core(c)) {
                        print "core  " c "  ->  " t
                        if (!(c in inq)) { queue[n++] = c; inq[c] = 1 }
                    } else {
                        print "LIB   " c "  ->  " t
                    }
                }
            }
        }' | sort -u | arm-none-eabi-c++filt
}

found=0
detailed_dirs=" "
for elf in "$@"; do
    if [ ! -f "$elf" ]; then
        echo "$0: no such file: $elf" >&2
        exit 2
    fi
    syms=$(panic_symbols "$elf")
    if [ -z "$syms" ]; then
        echo "panic check: $elf: no panic symbols"
        continue
    fi
    found=1
    echo "panic check: $elf: FOUND $(echo "$syms" | wc -l): $(echo "$syms" | tr '\n' ' ')"
    dir=$(dirname "$elf")
    case $detailed_dirs in *" $dir "*) continue ;; esac
    detailed_dirs="$detailed_dirs$dir "
    echo "  symbols (demangled):"
    while IFS= read -r s; do
        printf '    %s\n        = %s\n' "$s" "$(echo "$s" | arm-none-eabi-c++filt)"
    done <<<"$syms"
    echo "  call graph to them (LIB = function in libchunkprov.a outside core, i.e. chunkprov or a"
    echo "  dependency, that reaches a panic; core = core helper on the way):"
    callers_report "$elf" | sed 's/^/    /'
    map=${elf%.elf}.map
    if [ -f "$map" ]; then
        echo "  linked from (${map##*/}):"
        while IFS= read -r s; do
            grep -A1 -E "^ \.text(\.unlikely)?\.$s\$" "$map" |
                grep -oE '[^ /]*\.a\([^)]*\)' | sort -u | sed "s|^|    $s <- |"
        done <<<"$syms"
    fi
done
exit $found
