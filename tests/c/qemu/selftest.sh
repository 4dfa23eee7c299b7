#!/bin/bash
# Self-test of the QEMU mps2-an505 harness, for both float ABIs.
#
#   tests/c/qemu/selftest.sh          # build dir: build/qemu-selftest/<abi>
#
# Builds tests/c/qemu/selftest/ with cmake/arm-none-eabi-m33.cmake and
# CHUNKPROV_FLOAT_ABI=soft and =hard, runs each program through run.sh and
# checks exit status and output. One PASS/FAIL line per check, then
# "N passed, N failed"; exits non-zero if any check failed.
# Needs: cmake, ninja, arm-none-eabi-gcc + newlib, qemu-system-arm.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build_root=${SELFTEST_BUILD_DIR:-$root/build/qemu-selftest}
run="$here/run.sh"

passed=0
failed=0
report() { # report <ok:0|1> <description>
    if [ "$1" -eq 0 ]; then
        echo "PASS: $2"
        passed=$((passed + 1))
    else
        echo "FAIL: $2"
        failed=$((failed + 1))
    fi
}

# expect <abi> <name> <wanted status> <grep pattern or ""> [run.sh extra args]
# Runs <name>.elf; passes if the status matches and the output (stdout and
# stderr) contains the pattern.
expect() {
    local abi=$1 name=$2 want=$3 pattern=$4
    shift 4
    local dir="$build_root/$abi" log="$build_root/$abi/$name.log" status ok=0
    "$run" "$dir/$name.elf" "$@" >"$log" 2>&1
    status=$?
    [ "$status" -eq "$want" ] || ok=1
    if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$log"; then
        ok=1
    fi
    report $ok "$abi $name: exit status $status (want $want)${pattern:+, output has '$pattern'}"
    if [ $ok -ne 0 ]; then
        sed 's/^/    | /' "$log"
    fi
}

for abi in soft hard; do
    dir="$build_root/$abi"
    mkdir -p "$dir"
    if cmake -G Ninja -S "$here/selftest" -B "$dir" \
            -DCMAKE_TOOLCHAIN_FILE="$root/cmake/arm-none-eabi-m33.cmake" \
            -DCHUNKPROV_FLOAT_ABI=$abi >"$dir/configure.log" 2>&1 &&
        cmake --build "$dir" -j 2 >"$dir/build.log" 2>&1; then
        report 0 "$abi build (-Wall -Wextra -Werror)"
    else
        report 1 "$abi build (-Wall -Wextra -Werror)"
        tail -n 30 "$dir/configure.log" "$dir/build.log" 2>/dev/null | sed 's/^/    | /'
        continue
    fi

    # The ELF must carry the requested float ABI (as the Rust library must).
    if [ $abi = hard ]; then want_attr=yes; else want_attr=no; fi
    if arm-none-eabi-readelf -A "$dir/pass.elf" | grep -q 'Tag_ABI_VFP_args: VFP registers'; then
        has_attr=yes
    else
        has_attr=no
    fi
    report $([ $has_attr = $want_attr ] && echo 0 || echo 1) \
        "$abi ELF attribute Tag_ABI_VFP_args=VFP registers: $has_attr (want $want_attr)"

    expect $abi pass 0 "float ABI $abi, ok"
    expect $abi fail 1 ""
    expect $abi exit42 42 "exit(42)"
    expect $abi abort 98 'assertion "one == 2" failed'
    expect $abi fault 103 "FAULT: HardFault"
    expect $abi stackoverflow 103 "CFSR=0x00100000" # UsageFault STKOF
    expect $abi stack 0 "use(4000) measured"
    expect $abi stackbudget 103 "in use_2000, run on a stack budget of 1024 bytes"
    QEMU_TIMEOUT=3 expect $abi hang 124 "looping forever"

    (cd "$dir" && ctest --output-on-failure >"$dir/ctest.log" 2>&1)
    report $? "$abi ctest (tests registered with chunkprov_qemu_add_test)"

    expect $abi bench 0 "" -icount shift=0
    while IFS= read -r line; do
        case $line in
            bench:*\ ok) report 0 "$abi $line" ;;
            bench:*) report 1 "$abi $line" ;;
        esac
    done <"$dir/bench.log"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
