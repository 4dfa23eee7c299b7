#!/bin/bash
# Builds libchunkprov.a and runs the C test suite (tests/c) against it:
#
#   host  cargo build -p chunkprov-ffi --release -> target/release/libchunkprov.a;
#         tests built with ASan + UBSan, run by ctest
#   soft  cargo build -p chunkprov-ffi --release --target thumbv8m.main-none-eabi;
#         tests built with cmake/arm-none-eabi-m33.cmake (-mfloat-abi=soft),
#         run by ctest under QEMU mps2-an505 (tests/c/qemu/run.sh)
#   hard  the same for thumbv8m.main-none-eabihf (-mfloat-abi=hard -mfpu=fpv5-sp-d16)
#   panic the linked Cortex-M33 images must hold no core::panicking symbols
#         (tests/c/panic_check.sh prints them and who calls them)
#
#   tests/c/run.sh                 # all of the above
#   tests/c/run.sh host soft       # only these stages (panic needs soft and/or hard)
#
# Build directories: build/c-tests/<stage> (build/ is git-ignored); every
# command's output goes to build/c-tests/<stage>/*.log and is shown when it
# fails. Exits non-zero if any stage fails. Environment: JOBS (default 2),
# QEMU_TIMEOUT (per QEMU test, seconds).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/build/c-tests
jobs=${JOBS:-2}
export CARGO_BUILD_JOBS=$jobs

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(host soft hard panic)
for s in "${stages[@]}"; do
    case $s in host | soft | hard | panic) ;; *) echo "usage: $0 [host] [soft] [hard] [panic]" >&2; exit 2 ;; esac
done
wants() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

summary=()
failed=0
started=$SECONDS

say() { printf '\n==== %s\n' "$*"; }
record() { # record <PASS|FAIL> <text>
    summary+=("$(printf '%-4s  %s' "$1" "$2")")
    [ "$1" = PASS ] || failed=1
}

# run <log> <command...>: runs quietly into the log; on failure prints its tail.
run() {
    local log=$1
    shift
    echo "\$ $*" >"$log"
    "$@" >>"$log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAILED ($rc): $*"
        tail -n 60 "$log" | sed 's/^/    | /'
    fi
    return $rc
}

# ctest_stage <name> <build dir>: runs ctest, records counts.
ctest_stage() {
    local name=$1 dir=$2 log=$2/ctest.log rc line
    (cd "$dir" && ctest --output-on-failure -j "$jobs") >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        record PASS "$name: ${line:-ctest passed}"
    else
        record FAIL "$name: ${line:-ctest failed (see $log)}"
    fi
}

# ---------------------------------------------------------------- host
if wants host; then
    say "host: cargo build -p chunkprov-ffi --release + tests with ASan/UBSan"
    dir=$out/host
    mkdir -p "$dir"
    lib=$root/target/release/libchunkprov.a
    if run "$dir/cargo.log" cargo build -p chunkprov-ffi --release \
            --manifest-path "$root/Cargo.toml" &&
        run "$dir/configure.log" cmake -G Ninja -S "$here" -B "$dir" \
            -DCHUNKPROV_LIB="$lib" -DCHUNKPROV_INCLUDE="$root/include" \
            -DCHUNKPROV_SANITIZE=ON &&
        run "$dir/build.log" cmake --build "$dir" -j "$jobs"; then
        ctest_stage host "$dir"
    else
        record FAIL "host: build failed (logs in $dir)"
    fi
fi

# ---------------------------------------------------------------- Cortex-M33
for abi in soft hard; do
    wants $abi || continue
    if [ $abi = soft ]; then triple=thumbv8m.main-none-eabi; else triple=thumbv8m.main-none-eabihf; fi
    say "$abi: cargo build -p chunkprov-ffi --release --target $triple + tests under QEMU"
    dir=$out/$abi
    mkdir -p "$dir"
    # Only images of this build are checked for panics: drop those of earlier ones
    # (ninja relinks the current ones).
    rm -f "$dir"/*.elf
    lib=$root/target/$triple/release/libchunkprov.a
    if run "$dir/cargo.log" cargo build -p chunkprov-ffi --release --target $triple \
            --manifest-path "$root/Cargo.toml" &&
        run "$dir/configure.log" cmake -G Ninja -S "$here" -B "$dir" \
            -DCMAKE_TOOLCHAIN_FILE="$root/cmake/arm-none-eabi-m33.cmake" \
            -DCHUNKPROV_FLOAT_ABI=$abi -DCHUNKPROV_LIB="$lib" \
            -DCHUNKPROV_INCLUDE="$root/include" &&
        run "$dir/build.log" cmake --build "$dir" -j "$jobs"; then
        # The images must carry the float ABI asked for.
        if [ $abi = hard ]; then want=yes; else want=no; fi
        if arm-none-eabi-readelf -A "$dir/test_transfer.elf" | grep -q 'Tag_ABI_VFP_args: VFP registers'; then
            have=yes
        else
            have=no
        fi
        if [ $have = $want ]; then
            record PASS "$abi: images use the $abi-float ABI (Tag_ABI_VFP_args in VFP registers: $have)"
        else
            record FAIL "$abi: images have Tag_ABI_VFP_args in VFP registers: $have, want $want"
        fi
        ctest_stage $abi "$dir"
    else
        record FAIL "$abi: build failed (logs in $dir)"
    fi
done

# ---------------------------------------------------------------- panic symbols
if wants panic; then
    say "panic check: core::panicking symbols in the linked Cortex-M33 images"
    images=()
    for abi in soft hard; do
        # Largest first: the image detailed per ABI is the one linking most of the library.
        for elf in $(ls -S "$out/$abi"/*.elf 2>/dev/null); do
            images+=("$elf")
        done
    done
    if [ ${#images[@]} -eq 0 ]; then
        record FAIL "panic: no linked Cortex-M33 images (run the soft/hard stages)"
    else
        "$here/panic_check.sh" "${images[@]}" | tee "$out/panic_check.log"
        rc=${PIPESTATUS[0]}
        if [ "$rc" -eq 0 ]; then
            record PASS "panic: no core::panicking / panic symbols in ${#images[@]} linked images"
        else
            syms=$(sed -n 's/.*: FOUND [0-9]*: //p' "$out/panic_check.log" | tr ' ' '\n' | sed '/^$/d' |
                sort -u | tr '\n' ' ')
            bad=$(grep -c ': FOUND ' "$out/panic_check.log")
            record FAIL "panic: $bad of ${#images[@]} linked images hold core panic symbols: $syms(who calls them: above and in build/c-tests/panic_check.log)"
        fi
    fi
fi

# ---------------------------------------------------------------- summary
printf '\n==== summary (%ss)\n' $((SECONDS - started))
for line in "${summary[@]}"; do
    echo "$line"
done
if [ $failed -eq 0 ]; then
    echo "ALL PASSED"
else
    echo "FAILED"
fi
exit $failed
